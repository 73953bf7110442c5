#pragma once
// FakeProvider: an in-memory providers::Provider for sync engine tests. Records are kept per
// provider user (CallContext::provider_user_id) and type; PushData stores new records with fresh
// ids, keeping meta.origin (like a provider's external-id field) unless keep_origin is false.
//
// Tokens: one valid access token and one valid refresh token. A data call with another access
// token -> kUnauthenticated (401). Refresh(valid refresh) rotates both (like Fitbit); Refresh(any
// other) -> kAuthRevoked ("invalid_grant").
//
// Scripting: FailNext(op, error) fails the next call(s) of an op ("fetch_metadata",
// "fetch_payloads", "push_data", "refresh"); FailPushFrom(i, error) makes the next push refuse its
// records from index i on (per-record results); hooks run outside the lock: before_call(op),
// on_refresh(), after_push() (after the records are stored: throw from it to simulate a crash
// between the push and the commit).
// Thread-safe. Header-only.
#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "providers/provider.hpp"

namespace syncwell::fakes {

class FakeProvider final : public providers::Provider {
 public:
  FakeProvider(std::string name, const Clock& clock) : name_(std::move(name)), clock_(clock) {}

  // ---- test control ----
  void SetTokens(std::string access, std::string refresh) {
    std::lock_guard lock(mu_);
    access_ = std::move(access);
    refresh_ = std::move(refresh);
  }
  std::string access_token() const {
    std::lock_guard lock(mu_);
    return access_;
  }
  // Every access token is refused (a 401 even right after a refresh).
  void RejectAllTokens(bool v) {
    std::lock_guard lock(mu_);
    reject_all_ = v;
  }
  void FailNext(const std::string& op, Error e, int times = 1) {
    std::lock_guard lock(mu_);
    for (int i = 0; i < times; ++i) failures_[op].push_back(e);
  }
  void FailPushFrom(size_t index, Error e) {
    std::lock_guard lock(mu_);
    push_fail_from_ = index;
    push_fail_error_ = std::move(e);
  }
  void set_keep_origin(bool v) {
    std::lock_guard lock(mu_);
    keep_origin_ = v;
  }
  std::function<void(std::string_view op)> before_call;
  std::function<void()> on_refresh;
  std::function<void()> after_push;

  void Put(const std::string& provider_user, providers::Record r) {
    std::lock_guard lock(mu_);
    auto& m = data_[provider_user];
    auto key = std::make_pair(r.meta.type, r.meta.id);
    m[key] = std::move(r);
  }
  void Remove(const std::string& provider_user, providers::DataType t, const std::string& id) {
    std::lock_guard lock(mu_);
    data_[provider_user].erase({t, id});
  }
  std::vector<providers::Record> All(const std::string& provider_user,
                                     providers::DataType t) const {
    std::lock_guard lock(mu_);
    std::vector<providers::Record> out;
    auto it = data_.find(provider_user);
    if (it == data_.end()) return out;
    for (const auto& [k, r] : it->second) {
      if (k.first == t) out.push_back(r);
    }
    return out;
  }
  size_t Count(const std::string& provider_user, providers::DataType t) const {
    return All(provider_user, t).size();
  }
  int calls(const std::string& op) const {
    std::lock_guard lock(mu_);
    auto it = calls_.find(op);
    return it == calls_.end() ? 0 : it->second;
  }
  int refresh_calls() const { return calls("refresh"); }

  // ---- Provider ----
  std::string_view name() const override { return name_; }
  bool supports_webhooks() const override { return false; }

  Result<providers::TokenGrant> Authenticate(const std::string&, const std::string&,
                                             const std::string&) override {
    return MakeError(Errc::kPermanent, "not supported by the fake");
  }

  Result<providers::TokenGrant> Refresh(const std::string& refresh_token) override {
    if (auto f = Begin("refresh")) return *f;
    if (on_refresh) on_refresh();
    std::lock_guard lock(mu_);
    if (refresh_token != refresh_) return MakeError(Errc::kAuthRevoked, "invalid_grant");
    ++generation_;
    access_ = name_ + "-access-" + std::to_string(generation_);
    refresh_ = name_ + "-refresh-" + std::to_string(generation_);
    providers::TokenGrant g;
    g.access_token = access_;
    g.refresh_token = refresh_;
    g.expires_at = clock_.Now() + std::chrono::hours{8};
    return g;
  }

  Status Revoke(const providers::CallContext&) override { return {}; }

  Result<std::vector<providers::RecordMeta>> FetchMetadata(const providers::CallContext& ctx,
                                                           providers::DataType type,
                                                           providers::TimeRange range) override {
    if (auto f = Begin("fetch_metadata")) return *f;
    std::lock_guard lock(mu_);
    if (auto e = CheckToken(ctx)) return *e;
    std::vector<providers::RecordMeta> out;
    auto it = data_.find(ctx.provider_user_id);
    if (it != data_.end()) {
      for (const auto& [k, r] : it->second) {
        if (k.first != type) continue;
        const auto& m = r.meta;
        const bool starts = m.start_ms >= range.start_ms && m.start_ms < range.end_ms;
        const bool modified = m.modified_ms >= range.start_ms && m.modified_ms < range.end_ms;
        if (starts || modified) out.push_back(m);
      }
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.start_ms < b.start_ms; });
    return out;
  }

  Result<std::vector<providers::Record>> FetchPayloads(
      const providers::CallContext& ctx, providers::DataType type,
      const std::vector<std::string>& ids) override {
    if (auto f = Begin("fetch_payloads")) return *f;
    std::lock_guard lock(mu_);
    if (auto e = CheckToken(ctx)) return *e;
    std::vector<providers::Record> out;
    auto& m = data_[ctx.provider_user_id];
    for (const auto& id : ids) {
      auto it = m.find({type, id});
      if (it != m.end()) out.push_back(it->second);  // else gone: left out (the port's contract)
    }
    return out;
  }

  Result<std::vector<providers::PushResult>> PushData(
      const providers::CallContext& ctx, providers::DataType type,
      const std::vector<providers::Record>& records) override {
    if (auto f = Begin("push_data")) return *f;
    std::vector<providers::PushResult> out;
    {
      std::lock_guard lock(mu_);
      if (auto e = CheckToken(ctx)) return *e;
      auto& m = data_[ctx.provider_user_id];
      for (size_t i = 0; i < records.size(); ++i) {
        providers::PushResult pr;
        pr.source_id = records[i].meta.id;
        if (push_fail_from_ && i >= *push_fail_from_) {
          pr.ok = false;
          pr.error = push_fail_error_;
          out.push_back(std::move(pr));
          continue;
        }
        providers::Record stored = records[i];
        stored.meta.id = name_ + "-" + std::to_string(++next_id_);
        stored.meta.type = type;
        stored.meta.modified_ms = ToUnixMillis(clock_.Now());
        if (!keep_origin_) stored.meta.origin.clear();
        pr.ok = true;
        pr.dest_id = stored.meta.id;
        m[{type, stored.meta.id}] = std::move(stored);
        out.push_back(std::move(pr));
      }
      push_fail_from_.reset();
    }
    if (after_push) after_push();
    return out;
  }

  Result<providers::WebhookOutcome> VerifyWebhook(const providers::WebhookRequest&) override {
    return MakeError(Errc::kInvalidArgument, "not supported by the fake");
  }

 private:
  // Counts the call, runs the hook, pops a scripted failure.
  std::optional<Error> Begin(const std::string& op) {
    {
      std::lock_guard lock(mu_);
      ++calls_[op];
    }
    if (before_call) before_call(op);
    std::lock_guard lock(mu_);
    auto& q = failures_[op];
    if (q.empty()) return std::nullopt;
    Error e = q.front();
    q.pop_front();
    return e;
  }
  std::optional<Error> CheckToken(const providers::CallContext& ctx) const {
    if (reject_all_ || ctx.access_token != access_) {
      return MakeError(Errc::kUnauthenticated, "401: invalid access token");
    }
    return std::nullopt;
  }

  const std::string name_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::string access_ = "access-0";
  std::string refresh_ = "refresh-0";
  bool reject_all_ = false;
  bool keep_origin_ = true;
  int generation_ = 0;
  int64_t next_id_ = 0;
  std::map<std::string, std::deque<Error>> failures_;
  std::optional<size_t> push_fail_from_;
  Error push_fail_error_;
  std::map<std::string, int> calls_;
  std::map<std::string, std::map<std::pair<providers::DataType, std::string>, providers::Record>>
      data_;
};

}  // namespace syncwell::fakes
