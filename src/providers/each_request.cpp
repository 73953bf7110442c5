// PushEach and FetchEach (provider.hpp): the per-record push and per-id read loops the
// connectors share, side by side when the call context allows.
#include <algorithm>
#include <mutex>
#include <optional>

#include "providers/provider.hpp"

namespace syncwell::providers {

namespace {

bool IsCallLevel(Errc c) {
  return c == Errc::kUnauthenticated || c == Errc::kAuthRevoked || c == Errc::kRateLimited;
}

}  // namespace

Result<std::vector<PushResult>> PushEach(const CallContext& ctx, const std::vector<Record>& records,
                                         const std::function<PushResult(const Record&)>& push) {
  std::vector<PushResult> out(records.size());
  std::mutex mu;
  std::optional<Error> stop;  // the first call-level failure
  ForEachRequest(ctx, records.size(), [&](size_t i) {
    {
      std::lock_guard lock(mu);
      if (stop) {
        out[i].source_id = records[i].meta.id;
        out[i].error = *stop;
        return;
      }
    }
    PushResult pr = push(records[i]);
    if (!pr.ok && IsCallLevel(pr.error.code)) {
      std::lock_guard lock(mu);
      if (!stop) stop = pr.error;
    }
    out[i] = std::move(pr);
  });
  if (stop && std::none_of(out.begin(), out.end(), [](const PushResult& r) { return r.ok; })) {
    return *stop;  // nothing written: the call failed
  }
  return out;
}

Result<std::vector<Record>> FetchEach(
    const CallContext& ctx, const std::vector<std::string>& ids,
    const std::function<Result<std::optional<Record>>(const std::string&)>& fetch) {
  std::vector<Result<std::optional<Record>>> got(ids.size(), std::optional<Record>{});
  ForEachRequest(ctx, ids.size(), [&](size_t i) { got[i] = fetch(ids[i]); });
  std::vector<Record> out;
  out.reserve(ids.size());
  for (auto& g : got) {
    if (!g) return g.error();
    if (*g) out.push_back(std::move(**g));
  }
  return out;
}

}  // namespace syncwell::providers
