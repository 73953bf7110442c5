#pragma once
// SyncEngine: the sync algorithm of SPEC S4 as a worker::JobHandler, plus the device-upload path.
// The algorithm, the ledger and the exactly-once reasoning (with its crash windows) are written
// up in src/sync/README.md; this header states the interface.
//
// One job (Handle / Run):
//   a. conflict settings (the matching SyncConfig, else the user's settings_json default, else
//      source_wins; threshold from settings_json "conflictOverlapSeconds") and the cursor;
//      historical jobs use their date range instead and never move the cursor backwards;
//   b. source FetchMetadata since the cursor; nothing new -> only the cursor advances;
//   c. loop suppression: records whose origin is ours, or that the ledger says we wrote at the
//      source connection, are dropped;
//   d. sync confidence: the destination read is skipped under source_wins, or after more than
//      `confidence_skip_threshold` consecutive empty destination reads -- but never while the
//      ledger has pending rows (or a changed, already-synced record) for these records;
//   e. destination FetchMetadata around the records; pending rows whose record is found at the
//      destination (origin == OriginTag(fingerprint)) are completed without a push;
//   f. conflict resolution (conflict.hpp) -> the records to write, with a reason per skip;
//   g. FetchPayloads for exactly those ids (any failure: the job fails, nothing written);
//   h. ledger intents (pending, durable) THEN PushData; per-record failures fail the job
//      retryably after the successes are committed as done;
//   i. CommitSync: ledger rows done + cursor compare-and-set + job SUCCEEDED with a summary, one
//      transaction (stale cursor -> the ledger rows are committed alone and the job is retried).
// Every provider call goes through one guard: circuit breaker, rate-limit token (the pool paid
// the first source call), deadline, cancellation, 401 -> refresh -> one retry, metrics.
//
// Errors returned follow worker/job_handler.hpp: kRetryable, kRateLimited (+retry_after; the
// pool defers), kNotYet (+retry_after: write_settle; the pool defers), kAuthRevoked (connection
// needs_reauth; job FAILED at once), kPermanent (DLQ).
//
// Health data lives only in this object's stack frames during a call: the store receives ids,
// times and fingerprints; logs, errors and the job summary carry counts and ids only.
//
// Thread-safety: Handle/Run/SyncDeviceBatch may run concurrently on any threads. The store,
// registry, SecretBox, limiter, breakers, clock, metrics registry and counter must outlive it.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/fan_out.hpp"
#include "core/ids.hpp"
#include "core/priority.hpp"
#include "core/result.hpp"
#include "obs/metrics.hpp"
#include "providers/provider.hpp"
#include "providers/records.hpp"
#include "ratelimit/rate_limiter.hpp"
#include "secrets/secret_box.hpp"
#include "store/store.hpp"
#include "sync/circuit_breaker.hpp"
#include "sync/confidence.hpp"
#include "sync/conflict.hpp"
#include "sync/connection_session.hpp"
#include "sync/job_dates.hpp"
#include "sync/sync_metrics.hpp"
#include "worker/job_handler.hpp"

namespace syncwell::sync {

struct SyncEngineSettings {
  // First sync of a (source, destination, type): how far back to read.
  Duration initial_lookback = std::chrono::hours{24 * 30};
  // Each incremental window starts this long before the cursor, for records a provider shows
  // late (ingestion delay, clock skew). Records seen again are recognised by the ledger.
  Duration cursor_overlap = std::chrono::minutes{10};
  // Candidate records one incremental job processes; the cursor stops at the last one and the
  // next job continues. Historical jobs (bounded chunks) are not capped.
  size_t max_records_per_job = 1000;
  // Deadline of every provider call (CallContext::deadline).
  Duration call_timeout = std::chrono::seconds{30};
  // Independent HTTP requests of one provider call (day windows, per-record creates) run side by
  // side on this pool, at most parallel_requests at once (providers::ForEachRequest); null or 1:
  // one after another. Not owned.
  FanOut* fan_out = nullptr;
  size_t parallel_requests = 1;
  // A record with a write intent (pending ledger row) younger than this, which the destination
  // read did not show, is not pushed again yet: the earlier push may still land (a request that
  // timed out at the client can be applied by the provider later). The job is deferred for the
  // rest of this time (Errc::kNotYet, not a failed attempt); then the destination read finds
  // the late record or the push is repeated safely. >= the per-request HTTP timeout (10 s) plus
  // the time a provider may take to apply a request it received: measured with an overloaded
  // simulator (1,024 concurrent jobs on 2 cores), 20 s still let 1 of ~430 retried pushes land
  // twice (50 without the settle); requests can queue at the provider well past the client's
  // timeout.
  Duration write_settle = std::chrono::seconds{60};
  // Overlap threshold when the user has not set "conflictOverlapSeconds" (clamped to 10-300 s).
  std::chrono::seconds default_overlap_threshold{60};
  // Skip the destination read after MORE than this many consecutive empty reads.
  int64_t confidence_skip_threshold = 10;
  Duration confidence_ttl = std::chrono::hours{24 * 7};
  // The destination window extends this far around the source records (>= the 14 h timezone
  // tolerance of conflict resolution plus the threshold).
  Duration dest_window_margin = std::chrono::hours{15};
  // Skip reasons kept per job result (counts are always complete).
  size_t max_reasons = 20;
  SessionSettings session;
};

// The result of one job or device batch. Ids and counts only.
struct SyncOutcome {
  struct Skip {
    std::string source_id;
    std::string reason;  // conflict.hpp reasons or the engine's own (see README)
  };
  int64_t fetched = 0;     // source records read (metadata)
  int64_t candidates = 0;  // after loop suppression and the ledger
  int64_t written = 0;     // pushed and committed as done
  int64_t recovered = 0;   // written by an interrupted attempt, found at the destination
  int64_t failed = 0;      // refused by the destination in this attempt
  std::map<std::string, int64_t> skipped;  // by reason class (own_origin, already_synced, ...)
  std::vector<Skip> reasons;               // the first max_reasons skips, with their reason
  bool destination_read = false;
  bool more = false;  // capped by max_records_per_job: the next job continues
  // "written 3, skipped 2 (identical 1, own_origin 1)" -- the job's stored summary.
  std::string Summary() const;
  int64_t skipped_total() const;
};
using DeviceSyncResult = SyncOutcome;

class SyncEngine final : public worker::JobHandler {
 public:
  // `confidence` may be null: an InProcessCounter owned by the engine is used.
  SyncEngine(store::Store& store, const providers::ProviderRegistry& providers,
             const secrets::SecretBox& box, ratelimit::RateLimiter& limiter,
             CircuitBreakers& breakers, const Clock& clock, obs::Registry& metrics,
             SyncEngineSettings settings = {}, Counter* confidence = nullptr);
  ~SyncEngine() override;

  Result<void> Handle(const store::Job& job, worker::JobContext& ctx) override;
  // The engine records every provider 429 against the provider that sent it (source or
  // destination), so the pool must not blame the source for a destination's refusal.
  bool ReportsProviderRateLimits() const override { return true; }
  // Handle with the job's outcome (tests, tools).
  Result<SyncOutcome> Run(const store::Job& job, worker::JobContext& ctx);

  // Device upload (POST /v1/device-upload): runs steps d-i with the uploaded records as the
  // source, synchronously, so the records are never stored. `device_connection` plays the source
  // connection (ledger key, loop suppression); source ids are the device's record ids. Every
  // record must have `type` and a non-empty, unique id (else kInvalidArgument). `strategy`
  // empty: the matching sync config, else the user's default. No cursor is involved.
  Result<DeviceSyncResult> SyncDeviceBatch(const UserId& user,
                                           const ConnectionId& device_connection,
                                           const ConnectionId& destination,
                                           providers::DataType type,
                                           std::vector<providers::Record> records,
                                           std::optional<Strategy> strategy = std::nullopt);

  ConnectionSessions& sessions() { return sessions_; }

 private:
  void EnqueueContinuation(const store::Job& job);

 public:
 private:
  struct JobRun;
  struct Pipeline;

  Result<ConflictSettings> ResolveSettings(const UserId& user, const ConnectionId& source,
                                           const ConnectionId& destination,
                                           std::string_view data_type,
                                           std::optional<Strategy> forced);
  Result<SyncOutcome> RunJob(const store::Job& job, worker::JobContext& ctx);

  // The provider call guard (see the file comment). `op` names the call in metrics.
  template <class T, class F>
  Result<T> Call(JobRun& run, ConnectionSession& session, bool source_side, const char* op, F&& fn);
  Status AcquireToken(JobRun& run, const ConnectionSession& session);

  // Step c and the ledger: drops our own records and those already synced; the rest become
  // p.candidates. `fingerprints` (device path) makes "already synced" exact.
  Status Classify(JobRun& run, std::vector<providers::RecordMeta> metas,
                  const std::map<std::string, std::string>* fingerprints, Pipeline& p);
  // Steps d-h over p.candidates; fills p.done / p.failure. An error means nothing was pushed.
  Status Execute(JobRun& run, Pipeline& p);
  // The destination session, opened on first use.
  Result<ConnectionSession*> Destination(JobRun& run);
  void UpdateConfidence(const JobRun& run, const Pipeline& p);

  store::Store& store_;
  const providers::ProviderRegistry& providers_;
  ratelimit::RateLimiter& limiter_;
  CircuitBreakers& breakers_;
  const Clock& clock_;
  const SyncEngineSettings settings_;
  std::unique_ptr<Counter> owned_confidence_;
  Counter& confidence_;
  ConnectionSessions sessions_;
  SyncMetrics metrics_;
};

}  // namespace syncwell::sync
