#include "sync/sync_engine.hpp"

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <utility>

#include "core/log.hpp"
#include "store/job_message.hpp"

namespace syncwell::sync {

using providers::DataType;
using providers::Record;
using providers::RecordMeta;
using SteadyClock = std::chrono::steady_clock;

namespace {

// The time a record last changed as far as the window is concerned: its start or its
// modification, whichever is later, capped at the window end (a provider clock ahead of ours
// must not push the cursor into the future).
int64_t ChangeKey(const RecordMeta& m, int64_t window_end) {
  return std::min(std::max(m.start_ms, m.modified_ms), window_end);
}

// "dest_wins: x overlaps by 90 s" -> "dest_wins".
std::string ReasonClass(std::string_view reason) {
  return std::string(reason.substr(0, reason.find_first_of(": ")));
}

std::chrono::seconds ClampThreshold(std::chrono::seconds s) {
  return std::clamp(s, kMinOverlapThreshold, kMaxOverlapThreshold);
}

}  // namespace

int64_t SyncOutcome::skipped_total() const {
  int64_t n = 0;
  for (const auto& [k, v] : skipped) n += v;
  return n;
}

std::string SyncOutcome::Summary() const {
  std::string s = "written " + std::to_string(written);
  if (recovered) s += ", recovered " + std::to_string(recovered);
  if (failed) s += ", failed " + std::to_string(failed);
  s += ", skipped " + std::to_string(skipped_total());
  if (!skipped.empty()) {
    s += " (";
    bool first = true;
    for (const auto& [reason, n] : skipped) {
      if (!first) s += ", ";
      first = false;
      s += reason + " " + std::to_string(n);
    }
    s += ')';
  }
  if (more) s += ", more to sync";
  return s;
}

// The state of one job or device batch.
struct SyncEngine::JobRun {
  UserId user;
  JobId job;  // empty for device batches
  Priority priority = Priority::kMedium;
  const worker::JobContext* ctx = nullptr;  // null for device batches
  // The worker pool took one rate-limit token for this execution's first source call.
  bool source_token_prepaid = false;
  ConnectionId source;  // a connection, or a device connection
  ConnectionId destination;
  DataType type = DataType::kWorkout;
  std::string data_type;
  ConflictSettings conflict;
  std::optional<ConnectionSession> src;
  std::optional<ConnectionSession> dst;
  SyncOutcome out;
  size_t max_reasons = 0;

  // The connection `id` as the worker pool already read it, if it did (see JobContext).
  const store::Connection* Loaded(const ConnectionId& id) const {
    return ctx != nullptr ? ctx->Loaded(id) : nullptr;
  }

  void Skip(SyncMetrics& m, const std::string& source_id, std::string reason) {
    const std::string cls = ReasonClass(reason);
    ++out.skipped[cls];
    m.RecordsSkipped(cls);
    if (out.reasons.size() < max_reasons) {
      out.reasons.push_back({source_id, std::move(reason)});
    }
  }
};

// Steps d-h: inputs from the source side, outputs for the commit.
struct SyncEngine::Pipeline {
  std::vector<RecordMeta> candidates;  // source metadata to resolve, in processing order
  std::map<std::string, std::vector<store::LedgerEntry>> pending;  // by source id
  std::map<std::string, std::vector<store::LedgerEntry>> done;     // by source id (changed)
  bool force_dest_read = false;  // pending rows or changed records: confidence cannot skip
  // Full records for ids (the job: FetchPayloads; a device batch: the upload itself).
  std::function<Result<std::vector<Record>>(JobRun&, const std::vector<std::string>&)> hydrate;

  std::vector<store::LedgerEntry> commit;  // rows to commit as done
  std::optional<Error> failure;            // per-record push failures (after the commit)
  bool dest_read = false;
  bool dest_empty = false;
};

SyncEngine::SyncEngine(store::Store& store, const providers::ProviderRegistry& providers,
                       const secrets::SecretBox& box, ratelimit::RateLimiter& limiter,
                       CircuitBreakers& breakers, const Clock& clock, obs::Registry& metrics,
                       SyncEngineSettings settings, Counter* confidence)
    : store_(store),
      providers_(providers),
      limiter_(limiter),
      breakers_(breakers),
      clock_(clock),
      settings_(settings),
      owned_confidence_(confidence ? nullptr : std::make_unique<InProcessCounter>(clock)),
      confidence_(confidence ? *confidence : *owned_confidence_),
      sessions_(store, providers, box, clock, metrics, settings_.session),
      metrics_(metrics) {}

SyncEngine::~SyncEngine() = default;

// ---- configuration ----

Result<ConflictSettings> SyncEngine::ResolveSettings(const UserId& user, const ConnectionId& source,
                                                     const ConnectionId& destination,
                                                     std::string_view data_type,
                                                     std::optional<Strategy> forced) {
  ConflictSettings cs;
  cs.strategy = Strategy::kSourceWins;
  cs.overlap_threshold = ClampThreshold(settings_.default_overlap_threshold);
  auto u = store_.GetUser(user);
  if (!u.ok() && u.error().code != Errc::kNotFound) return u.error();
  if (u.ok()) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(u->settings_json, ec);
    if (!ec && v.is_object()) {
      const auto& o = v.get_object();
      if (const auto* s = o.if_contains("conflictResolutionStrategy"); s && s->is_string()) {
        Strategy st;
        if (ParseStrategy(std::string_view(s->get_string()), &st)) cs.strategy = st;
      }
      if (const auto* t = o.if_contains("conflictOverlapSeconds"); t && t->is_number()) {
        boost::system::error_code nec;
        const double secs = t->to_number<double>(nec);
        if (!nec && std::isfinite(secs) && secs >= 0 && secs < 1e6) {
          cs.overlap_threshold = ClampThreshold(std::chrono::seconds{std::llround(secs)});
        }
      }
    }
  }
  if (forced) {
    cs.strategy = *forced;
    return cs;
  }
  auto cfgs = store_.ListSyncConfigs(user);
  if (!cfgs.ok()) return cfgs.error();
  for (const auto& c : *cfgs) {
    if (c.source == source && c.destination == destination && c.data_type == data_type) {
      Strategy st;
      if (ParseStrategy(c.conflict_strategy, &st)) cs.strategy = st;
      break;
    }
  }
  return cs;
}

// ---- the provider call guard ----

Status SyncEngine::AcquireToken(JobRun& run, const ConnectionSession& s) {
  const std::string& provider = s.connection().provider;
  if (!limiter_.Available()) {
    return MakeError(Errc::kRateLimited, "rate limiter unavailable (safe mode)");
  }
  auto d = limiter_.TryAcquire(provider, s.connection().provider_user_id, run.priority, 1);
  if (!d.ok()) {
    return MakeError(Errc::kRateLimited, std::string(d.error().code == Errc::kUnavailable
                                                         ? "rate limiter unavailable (safe mode): "
                                                         : "rate limiter error: ") +
                                             d.error().message);
  }
  if (!d->granted) {
    Error e = MakeError(Errc::kRateLimited, "rate limited: " + provider);
    e.retry_after = d->retry_after;
    return e;
  }
  return {};
}

template <class T, class F>
Result<T> SyncEngine::Call(JobRun& run, ConnectionSession& s, bool source_side, const char* op,
                           F&& fn) {
  const std::string provider = s.connection().provider;
  for (int attempt = 0;; ++attempt) {
    if (run.ctx != nullptr && run.ctx->Cancelled()) {
      return MakeError(Errc::kRetryable, "job cancelled");
    }
    CircuitBreaker& breaker = breakers_.For(provider);
    // Checked before a token is spent; Allow() below takes the half-open probe slot.
    if (breaker.state() == CircuitState::kOpen) {
      metrics_.ProviderCall(provider, op, "circuit_open", {});
      return MakeError(Errc::kRetryable, "circuit open: " + provider);
    }
    if (source_side && run.source_token_prepaid) {
      run.source_token_prepaid = false;
    } else if (Status st = AcquireToken(run, s); !st.ok()) {
      metrics_.ProviderCall(provider, op, "deferred", {});
      return st.error();
    }
    if (!breaker.Allow()) {
      metrics_.ProviderCall(provider, op, "circuit_open", {});
      return MakeError(Errc::kRetryable, "circuit open: " + provider);
    }
    providers::CallContext ctx = s.Context(SteadyClock::now() + settings_.call_timeout);
    ctx.on_rate_limit = [this, &provider](const providers::RateLimitObservation& o) {
      if (o.limit > 0) {
        metrics_.QuotaObserved(provider, o.scope,
                               static_cast<double>(o.used) / static_cast<double>(o.limit));
      }
    };
    // The slowest single HTTP request decides "slow call" (a paging method may take long).
    // Requests may run side by side (ctx.fan_out): the maximum is kept atomically.
    std::atomic<int64_t> slowest{-1};
    ctx.on_http_request = [&slowest](std::chrono::milliseconds d) {
      int64_t seen = slowest.load(std::memory_order_relaxed);
      while (d.count() > seen &&
             !slowest.compare_exchange_weak(seen, d.count(), std::memory_order_relaxed)) {
      }
    };
    ctx.fan_out = settings_.fan_out;
    ctx.max_parallel = settings_.parallel_requests;
    const auto t0 = SteadyClock::now();
    Result<T> r = fn(s, ctx);
    const auto elapsed = SteadyClock::now() - t0;
    const bool failure =
        !r.ok() && (r.error().code == Errc::kRetryable || r.error().code == Errc::kUnavailable);
    breaker.Record(failure, slowest.load() >= 0
                                ? std::chrono::milliseconds(slowest.load())
                                : std::chrono::duration_cast<std::chrono::milliseconds>(elapsed));
    metrics_.ProviderCall(provider, op, r.ok() ? "ok" : ErrcName(r.error().code), elapsed);
    if (r.ok()) return r;
    const Error& e = r.error();
    if (e.code == Errc::kRateLimited && e.retry_after.count() > 0) {
      (void)limiter_.RecordRetryAfter(provider, s.connection().provider_user_id, e.retry_after);
    }
    if (e.code != Errc::kUnauthenticated) return r;
    if (attempt > 0) return s.Revoked("the provider rejected a freshly refreshed token");
    if (Status st = s.RefreshAfterUnauthorized(); !st.ok()) return st.error();
  }
}

Result<ConnectionSession*> SyncEngine::Destination(JobRun& run) {
  if (!run.dst) {
    auto s = sessions_.Open(run.user, run.destination, run.Loaded(run.destination));
    if (!s.ok()) return s.error();
    run.dst.emplace(std::move(*s));
  }
  return &*run.dst;
}

// ---- steps c-h ----

Status SyncEngine::Classify(JobRun& run, std::vector<RecordMeta> metas,
                            const std::map<std::string, std::string>* fingerprints, Pipeline& p) {
  // c. Loop suppression, by origin tag first (no store read needed).
  std::vector<RecordMeta> kept;
  kept.reserve(metas.size());
  for (auto& m : metas) {
    if (m.id.empty() || m.type != run.type) {
      run.Skip(metrics_, m.id, "invalid: wrong type or no id");
    } else if (providers::IsOurOrigin(m.origin)) {
      run.Skip(metrics_, m.id, "own_origin: written by SyncWell");
    } else {
      kept.push_back(std::move(m));
    }
  }
  if (kept.empty()) return {};
  std::vector<std::string> ids;
  ids.reserve(kept.size());
  for (const auto& m : kept) ids.push_back(m.id);
  // ... then by the ledger: records we wrote AT the source connection (providers that do not
  // keep our origin tag).
  auto own = store_.OwnWrittenRecords(run.user, run.source, ids);
  if (!own.ok()) return own.error();
  const std::set<std::string> own_ids(own->begin(), own->end());
  auto rows = store_.GetLedgerEntries(run.user, run.destination, run.source, ids);
  if (!rows.ok()) return rows.error();
  std::map<std::string, std::vector<store::LedgerEntry>> by_id;
  for (auto& e : *rows) by_id[e.source_record_id].push_back(std::move(e));

  for (auto& m : kept) {
    if (own_ids.count(m.id)) {
      run.Skip(metrics_, m.id, "own_ledger: written by SyncWell to this connection");
      continue;
    }
    std::vector<store::LedgerEntry> pending, done;
    if (auto it = by_id.find(m.id); it != by_id.end()) {
      for (auto& e : it->second) {
        (e.state == store::LedgerState::kDone ? done : pending).push_back(std::move(e));
      }
    }
    if (!done.empty()) {
      // Already written. Without the payload (jobs) "unchanged" means "not modified since";
      // with it (device batches) the fingerprint decides.
      const store::LedgerEntry* same = nullptr;
      if (fingerprints != nullptr) {
        const std::string& fp = fingerprints->at(m.id);
        for (const auto& e : done) {
          if (e.fingerprint == fp) same = &e;
        }
      } else {
        const auto newest = std::max_element(done.begin(), done.end(), [](auto& a, auto& b) {
          return a.source_modified_ms < b.source_modified_ms;
        });
        if (m.modified_ms <= newest->source_modified_ms) same = &*newest;
      }
      if (same != nullptr) {
        run.Skip(metrics_, m.id, "already_synced: " + same->dest_record_id);
        continue;
      }
      // Changed since it was written: resolved again against the destination, which holds
      // our earlier copy (README: updates).
      p.done[m.id] = std::move(done);
      p.force_dest_read = true;
    }
    if (!pending.empty()) {
      p.pending[m.id] = std::move(pending);
      p.force_dest_read = true;
    }
    p.candidates.push_back(std::move(m));
  }
  return {};
}

Status SyncEngine::Execute(JobRun& run, Pipeline& p) {
  if (p.candidates.empty()) return {};
  std::map<std::string, const RecordMeta*> candidate_by_id;
  for (const auto& m : p.candidates) candidate_by_id[m.id] = &m;
  // The destination first: a connection that is gone or needs re-consent fails the job before
  // any hydration or ledger write.
  auto dst = Destination(run);
  if (!dst.ok()) return dst.error();

  // d. Sync confidence: may the destination read be skipped?
  bool read = true;
  if (!p.force_dest_read) {
    if (run.conflict.strategy == Strategy::kSourceWins) {
      read = false;
    } else {
      auto n = confidence_.Get(ConfidenceKey(run.user, (*dst)->connection().provider));
      // A counter failure means "read" (SPEC S4: cache down -> always read the destination).
      if (n.ok() && *n > settings_.confidence_skip_threshold) read = false;
    }
  }

  // e. The destination around the candidates; pending rows found there are complete.
  std::vector<RecordMeta> dest;
  if (read) {
    const int64_t margin = settings_.dest_window_margin.count();
    providers::TimeRange window{std::numeric_limits<int64_t>::max(),
                                std::numeric_limits<int64_t>::min()};
    for (const auto& m : p.candidates) {
      window.start_ms = std::min(window.start_ms, m.start_ms - margin);
      window.end_ms = std::max(window.end_ms, std::max(m.end_ms, m.start_ms) + margin + 1);
    }
    auto got =
        Call<std::vector<RecordMeta>>(run, **dst, false, "fetch_metadata",
                                      [&](ConnectionSession& s, const providers::CallContext& ctx) {
                                        return s.provider().FetchMetadata(ctx, run.type, window);
                                      });
    if (!got.ok()) return got.error();
    dest = std::move(*got);
    p.dest_read = true;
    p.dest_empty = dest.empty();
    run.out.destination_read = true;
    metrics_.RecordsRead("destination", dest.size());
  } else {
    metrics_.DestinationReadSkipped();
  }

  std::map<std::string, const RecordMeta*> dest_by_origin;
  for (const auto& d : dest) {
    if (providers::IsOurOrigin(d.origin)) dest_by_origin.emplace(d.origin, &d);
  }
  auto recover = [&](const store::LedgerEntry& row, const std::string& dest_id) {
    store::LedgerEntry e = row;
    e.dest_record_id = dest_id;
    e.state = store::LedgerState::kDone;
    if (!run.job.empty()) e.job = run.job;
    p.commit.push_back(std::move(e));
    ++run.out.recovered;
  };
  std::vector<RecordMeta> to_resolve;
  for (const auto& m : p.candidates) {
    bool recovered = false;
    if (auto it = p.pending.find(m.id); it != p.pending.end()) {
      for (const auto& row : it->second) {
        auto d = dest_by_origin.find(providers::OriginTag(row.fingerprint));
        if (d != dest_by_origin.end()) {
          recover(row, d->second->id);
          recovered = true;
          break;
        }
      }
    }
    if (!recovered) to_resolve.push_back(m);
  }

  // f. Conflict resolution on metadata.
  std::vector<std::string> write_ids;
  for (auto& d : Resolve(to_resolve, dest, run.conflict)) {
    if (d.action == Decision::Action::kWrite) {
      write_ids.push_back(d.source_id);
      continue;
    }
    auto pend = p.pending.find(d.source_id);
    if (pend != p.pending.end() && ReasonClass(d.reason) == "identical" &&
        !d.conflicting_dest_id.empty()) {
      // An interrupted attempt's record at a destination that dropped our origin tag.
      recover(pend->second.back(), d.conflicting_dest_id);
      continue;
    }
    run.Skip(metrics_, d.source_id, std::move(d.reason));
  }
  if (write_ids.empty()) return {};
  // Records to write again whose intent (not confirmed by the destination read) was recorded
  // less than write_settle ago: the earlier push may still land, so pushing again now could write
  // the record twice (seen under overload: client timeouts, then the late write next to the
  // retry's). Defer the whole job, before any hydration or push.
  if (!p.pending.empty()) {
    const TimePoint now = clock_.Now();
    std::chrono::milliseconds wait{0};
    size_t unsettled = 0;
    for (const auto& id : write_ids) {
      auto it = p.pending.find(id);
      if (it == p.pending.end()) continue;
      TimePoint newest{};
      for (const auto& row : it->second) newest = std::max(newest, row.updated_at);
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          newest + settings_.write_settle - now);
      if (left.count() > 0) {
        wait = std::max(wait, left);
        ++unsettled;
      }
    }
    if (unsettled > 0) {
      metrics_.WritesUnsettled(unsettled);
      Error e =
          MakeError(Errc::kNotYet, std::to_string(unsettled) +
                                       " record(s) of an interrupted push may still land at the "
                                       "destination; retrying once they have settled");
      e.retry_after = wait;
      return e;
    }
  }

  // g. Hydrate exactly the records to write; any failure fails the job before any write.
  auto full = p.hydrate(run, write_ids);
  if (!full.ok()) return full.error();
  std::map<std::string, Record> by_id;
  for (auto& r : *full) {
    std::string id = r.meta.id;
    by_id.emplace(std::move(id), std::move(r));
  }
  std::vector<Record> push;
  std::vector<store::LedgerEntry> intents;
  // Two source records with the same content (a source listing one measurement twice under two
  // ids) are written once: the twin is ledgered with the pushed record's destination id, so no
  // later job writes it either. Seen in the demo: two weights appended in the same second.
  std::map<std::string, size_t> pushed_fp;                   // fingerprint -> index in push
  std::vector<std::pair<store::LedgerEntry, size_t>> twins;  // ledger row, index of the pushed one
  for (const auto& id : write_ids) {
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      // Listed by the metadata call, gone by this one (deleted at the source, or out of its
      // history): nothing to write. Failing the job instead would hold back its other records.
      run.Skip(metrics_, id, "gone_at_source");
      continue;
    }
    Record r = std::move(it->second);
    if (r.meta.type != run.type) {
      return MakeError(Errc::kPermanent, "source record " + id + " has another data type");
    }
    const std::string fp = providers::Fingerprint(r);
    const RecordMeta& meta = *candidate_by_id.at(id);
    if (auto done = p.done.find(id); done != p.done.end()) {
      const auto same = std::find_if(done->second.begin(), done->second.end(),
                                     [&](const auto& e) { return e.fingerprint == fp; });
      if (same != done->second.end()) {
        // Modified at the source, same content: nothing to write; remember the new time so the
        // next job does not hydrate it again.
        store::LedgerEntry touch = *same;
        touch.source_modified_ms = meta.modified_ms;
        p.commit.push_back(std::move(touch));
        run.Skip(metrics_, id, "unchanged: same content as " + same->dest_record_id);
        continue;
      }
    }
    r.meta.origin = providers::OriginTag(fp);
    store::LedgerEntry e;
    e.user = run.user;
    e.destination = run.destination;
    e.source = run.source;
    e.source_record_id = id;
    e.fingerprint = fp;
    e.state = store::LedgerState::kPending;
    e.job = run.job;
    e.source_modified_ms = meta.modified_ms;
    if (auto twin = pushed_fp.find(fp); twin != pushed_fp.end()) {
      run.Skip(metrics_, id,
               "identical: same content as source record " + push[twin->second].meta.id);
      twins.emplace_back(std::move(e), twin->second);
      continue;
    }
    pushed_fp.emplace(fp, push.size());
    intents.push_back(std::move(e));
    push.push_back(std::move(r));
  }
  if (push.empty()) return {};

  // h. Intents first (durable), then the push.
  if (Status st = store_.RecordPendingWrites(intents); !st.ok()) return st.error();
  auto results = Call<std::vector<providers::PushResult>>(
      run, **dst, false, "push_data", [&](ConnectionSession& s, const providers::CallContext& ctx) {
        return s.provider().PushData(ctx, run.type, push);
      });
  if (!results.ok()) return results.error();
  std::map<std::string, const providers::PushResult*> result_by_id;
  for (const auto& r : *results) result_by_id.emplace(r.source_id, &r);
  std::optional<Error> worst;
  auto rank = [](Errc c) {
    return c == Errc::kRateLimited   ? 3
           : c == Errc::kPermanent   ? 1
           : c == Errc::kAuthRevoked ? 0
                                     : 2;
  };
  for (auto& e : intents) {
    auto it = result_by_id.find(e.source_record_id);
    if (it != result_by_id.end() && it->second->ok) {
      e.dest_record_id = it->second->dest_id;
      e.state = store::LedgerState::kDone;
      p.commit.push_back(std::move(e));
      ++run.out.written;
      continue;
    }
    ++run.out.failed;
    Error err = it == result_by_id.end()
                    ? MakeError(Errc::kRetryable, "no push result for " + e.source_record_id)
                    : it->second->error;
    // 401/revoked per record cannot be fixed by this job; retry the whole job instead.
    if (err.code == Errc::kUnauthenticated || err.code == Errc::kAuthRevoked) {
      err.code = Errc::kRetryable;
    }
    if (!worst || rank(err.code) > rank(worst->code) ||
        (err.code == worst->code && err.retry_after > worst->retry_after)) {
      worst = err;
    }
  }
  // A twin is done once its pushed record is (else a retry sees both again).
  for (auto& [e, pushed] : twins) {
    auto it = result_by_id.find(push[pushed].meta.id);  // the pushed record's source id
    if (it == result_by_id.end() || !it->second->ok) continue;
    e.dest_record_id = it->second->dest_id;
    e.state = store::LedgerState::kDone;
    p.commit.push_back(std::move(e));
  }
  metrics_.RecordsWritten(static_cast<uint64_t>(run.out.written));
  metrics_.RecordsFailed(static_cast<uint64_t>(run.out.failed));
  if (worst) {
    Error e = *worst;
    e.message = std::to_string(run.out.failed) + " of " + std::to_string(intents.size()) +
                " records failed at the destination: " + worst->message;
    if (e.code != Errc::kRateLimited && e.code != Errc::kPermanent) e.code = Errc::kRetryable;
    p.failure = std::move(e);
  }
  return {};
}

void SyncEngine::UpdateConfidence(const JobRun& run, const Pipeline& p) {
  if (!p.dest_read || !run.dst) return;
  const std::string key = ConfidenceKey(run.user, run.dst->connection().provider);
  if (p.dest_empty) {
    (void)confidence_.Increment(key, settings_.confidence_ttl);
  } else {
    (void)confidence_.Reset(key);
  }
}

// ---- a job ----

Result<void> SyncEngine::Handle(const store::Job& job, worker::JobContext& ctx) {
  auto r = Run(job, ctx);
  if (!r.ok()) return r.error();
  return {};
}

Result<SyncOutcome> SyncEngine::Run(const store::Job& job, worker::JobContext& ctx) {
  const auto t0 = SteadyClock::now();
  auto r = RunJob(job, ctx);
  std::string outcome;
  if (r.ok()) {
    outcome = r->candidates == 0 ? "nothing_new" : "succeeded";
  } else {
    outcome = ErrcName(r.error().code);
    log::Info(
        "sync: job not completed",
        {{"job", job.id.str()}, {"code", ErrcName(r.error().code)}, {"error", r.error().message}});
  }
  metrics_.Job(outcome, SteadyClock::now() - t0);
  return r;
}

Result<SyncOutcome> SyncEngine::RunJob(const store::Job& job, worker::JobContext& ctx) {
  JobRun run;
  run.user = job.user;
  run.job = job.id;
  run.ctx = &ctx;
  run.source_token_prepaid = true;
  run.source = job.source;
  run.destination = job.destination;
  run.data_type = job.data_type;
  run.max_reasons = settings_.max_reasons;
  if (!providers::ParseDataType(job.data_type, &run.type)) {
    return MakeError(Errc::kPermanent, "unknown data type " + job.data_type);
  }
  if (!ParsePriority(job.priority, &run.priority)) run.priority = Priority::kMedium;

  // a. Settings and cursor (or the historical range).
  auto cs = ResolveSettings(job.user, job.source, job.destination, job.data_type, std::nullopt);
  if (!cs.ok()) return cs.error();
  run.conflict = *cs;
  const store::SyncCursorKey key{job.user, job.source, job.destination, job.data_type};
  std::optional<store::SyncCursor> cursor;
  if (auto c = store_.GetCursor(key); c.ok()) {
    cursor = std::move(*c);
  } else if (c.error().code != Errc::kNotFound) {
    return c.error();
  }
  const int64_t now_ms = ToUnixMillis(clock_.Now());
  const bool historical = job.mode == "historical";
  providers::TimeRange window;
  if (historical) {
    if (!ParseJobDate(job.start_date, false, &window.start_ms) ||
        !ParseJobDate(job.end_date, true, &window.end_ms)) {
      return MakeError(Errc::kPermanent, "historical job with an invalid date range");
    }
    window.end_ms = std::min(window.end_ms, now_ms);
  } else {
    window.start_ms = cursor ? cursor->last_sync_ms - settings_.cursor_overlap.count()
                             : now_ms - settings_.initial_lookback.count();
    window.end_ms = now_ms;
  }
  if (window.start_ms >= window.end_ms) return run.out;  // an empty (future) range

  // b. Source metadata.
  auto src = sessions_.Open(run.user, run.source, run.Loaded(run.source));
  if (!src.ok()) return src.error();
  run.src.emplace(std::move(*src));
  auto metas =
      Call<std::vector<RecordMeta>>(run, *run.src, true, "fetch_metadata",
                                    [&](ConnectionSession& s, const providers::CallContext& c) {
                                      return s.provider().FetchMetadata(c, run.type, window);
                                    });
  if (!metas.ok()) return metas.error();
  run.out.fetched = static_cast<int64_t>(metas->size());
  metrics_.RecordsRead("source", metas->size());
  std::stable_sort(metas->begin(), metas->end(), [&](const RecordMeta& a, const RecordMeta& b) {
    const int64_t ka = ChangeKey(a, window.end_ms), kb = ChangeKey(b, window.end_ms);
    return ka != kb ? ka < kb : a.id < b.id;
  });

  // c. Loop suppression and the ledger.
  Pipeline p;
  if (Status st = Classify(run, std::move(*metas), nullptr, p); !st.ok()) return st.error();
  int64_t cursor_to = window.end_ms;
  if (!historical && p.candidates.size() > settings_.max_records_per_job) {
    p.candidates.resize(std::max<size_t>(1, settings_.max_records_per_job));
    cursor_to = ChangeKey(p.candidates.back(), window.end_ms);
    run.out.more = true;
  }
  run.out.candidates = static_cast<int64_t>(p.candidates.size());
  std::optional<store::SyncCommit::CursorUpdate> cursor_update;
  if (!historical) {
    const int64_t to = cursor ? std::max(cursor->last_sync_ms, cursor_to) : cursor_to;
    if (!cursor || to != cursor->last_sync_ms) {
      cursor_update = store::SyncCommit::CursorUpdate{key, cursor ? cursor->version : 0, to};
    }
  } else if (cursor && window.start_ms <= cursor->last_sync_ms &&
             cursor_to > cursor->last_sync_ms) {
    // A historical range that reaches past the cursor covered everything up to its end.
    cursor_update = store::SyncCommit::CursorUpdate{key, cursor->version, cursor_to};
  }

  // d-h.
  p.hydrate = [this](JobRun& r, const std::vector<std::string>& ids) {
    return Call<std::vector<Record>>(r, *r.src, true, "fetch_payloads",
                                     [&](ConnectionSession& s, const providers::CallContext& c) {
                                       return s.provider().FetchPayloads(c, r.type, ids);
                                     });
  };
  if (Status st = Execute(run, p); !st.ok()) return st.error();

  // i. One transaction: ledger rows done + cursor + job status.
  store::SyncCommit commit;
  commit.done = std::move(p.commit);
  if (p.failure) {
    // The successes are committed so a retry never writes them again; no cursor move.
    if (!commit.done.empty()) {
      if (Status st = store_.CommitSync(commit); !st.ok()) return st.error();
    }
    return *p.failure;
  }
  if (!cursor_update && commit.done.empty()) {
    UpdateConfidence(run, p);
    return run.out;  // nothing to persist (write avoidance)
  }
  commit.cursor = cursor_update;
  commit.job =
      store::SyncCommit::JobUpdate{job.id, store::JobStatus::kSucceeded, "", run.out.Summary()};
  if (store_.AcksInCommit()) commit.ack_receipt = ctx.receipt;  // SPEC S4: one transaction
  if (Status st = store_.CommitSync(commit); !st.ok()) {
    if (st.error().code != Errc::kConflict || !commit.cursor) return st.error();
    // Another execution moved the cursor: keep what this one wrote, then retry the job.
    commit.cursor.reset();
    commit.job.reset();
    commit.ack_receipt.clear();  // the job is retried: its message stays
    if (!commit.done.empty()) {
      if (Status again = store_.CommitSync(commit); !again.ok()) return again.error();
    }
    return MakeError(Errc::kRetryable, "sync cursor moved concurrently");
  }
  ctx.status_committed = true;  // SUCCEEDED is durable: the worker need not write it again
  ctx.acked = !commit.ack_receipt.empty();
  UpdateConfidence(run, p);
  if (run.out.more) EnqueueContinuation(job);
  return run.out;
}

// A job capped at max_records_per_job committed its cursor at the last record it processed; a
// follow-up job of the same pair continues from there at once instead of waiting for the next
// trigger. Its id derives from this job's, so a re-run of this job cannot add a second one.
void SyncEngine::EnqueueContinuation(const store::Job& job) {
  store::Job next = job;
  next.id = JobId(job.id.str().substr(0, 96) + ".next");
  next.status = store::JobStatus::kQueued;
  next.error.clear();
  next.summary.clear();
  next.created_at = next.updated_at = clock_.Now();
  const queue::OutgoingMessage msg = store::JobMessage(next, next.id.str());
  if (Status st = store_.CreateJob(next, msg, nullptr);
      !st.ok() && st.error().code != Errc::kAlreadyExists) {
    log::Warn("sync: could not enqueue the continuation job; the next trigger continues",
              {{"job", job.id.str()}, {"error", st.error().message}});
  }
}

// ---- a device batch ----

Result<DeviceSyncResult> SyncEngine::SyncDeviceBatch(const UserId& user,
                                                     const ConnectionId& device_connection,
                                                     const ConnectionId& destination, DataType type,
                                                     std::vector<Record> records,
                                                     std::optional<Strategy> strategy) {
  const auto t0 = SteadyClock::now();
  auto finish = [&](Result<DeviceSyncResult> r) {
    metrics_.Job(r.ok() ? "device_succeeded" : std::string("device_") + ErrcName(r.error().code),
                 SteadyClock::now() - t0);
    return r;
  };
  if (user.empty() || device_connection.empty() || destination.empty()) {
    return finish(
        MakeError(Errc::kInvalidArgument, "user, device connection and destination are required"));
  }
  JobRun run;
  run.user = user;
  run.priority = Priority::kHigh;  // the user is waiting for the response
  run.source = device_connection;
  run.destination = destination;
  run.type = type;
  run.data_type = std::string(providers::DataTypeName(type));
  run.max_reasons = settings_.max_reasons;

  std::map<std::string, std::string> fingerprints;
  std::map<std::string, Record> by_id;
  std::vector<RecordMeta> metas;
  metas.reserve(records.size());
  for (auto& r : records) {
    if (r.meta.id.empty() || r.meta.type != type) {
      return finish(
          MakeError(Errc::kInvalidArgument, "every record needs an id and the batch's data type"));
    }
    if (!fingerprints.emplace(r.meta.id, providers::Fingerprint(r)).second) {
      return finish(MakeError(Errc::kInvalidArgument, "duplicate record id " + r.meta.id));
    }
    metas.push_back(r.meta);
    std::string id = r.meta.id;
    by_id.emplace(std::move(id), std::move(r));
  }
  run.out.fetched = static_cast<int64_t>(metas.size());
  metrics_.RecordsRead("device", metas.size());

  auto cs = ResolveSettings(user, device_connection, destination, run.data_type, strategy);
  if (!cs.ok()) return finish(cs.error());
  run.conflict = *cs;

  Pipeline p;
  if (Status st = Classify(run, std::move(metas), &fingerprints, p); !st.ok()) {
    return finish(st.error());
  }
  run.out.candidates = static_cast<int64_t>(p.candidates.size());
  p.hydrate = [&by_id](JobRun&,
                       const std::vector<std::string>& ids) -> Result<std::vector<Record>> {
    std::vector<Record> out;
    out.reserve(ids.size());
    for (const auto& id : ids) {
      auto it = by_id.find(id);
      if (it != by_id.end()) out.push_back(std::move(it->second));
    }
    return out;
  };
  if (Status st = Execute(run, p); !st.ok()) return finish(st.error());
  if (!p.commit.empty()) {
    store::SyncCommit commit;
    commit.done = std::move(p.commit);
    if (Status st = store_.CommitSync(commit); !st.ok()) return finish(st.error());
  }
  if (p.failure) return finish(*p.failure);
  UpdateConfidence(run, p);
  return finish(run.out);
}

}  // namespace syncwell::sync
