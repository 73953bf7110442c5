#pragma once
// Every metric of the sync engine, declared in one place (STYLE §13). Domain code calls the
// methods; tests read the same names back from the obs::Registry. Labels are bounded: provider
// names, call names, outcome and reason classes -- never user ids or record ids.
//
//   syncwell_sync_jobs_total{outcome}                      jobs by outcome (succeeded, nothing_new,
//                                                          retryable, rate_limited, auth_revoked,
//                                                          permanent, ...)
//   syncwell_sync_job_duration_seconds                     one job, end to end
//   syncwell_sync_records_read_total{side}                 records from source / destination reads
//   syncwell_sync_records_written_total                    records pushed and committed as done
//   syncwell_sync_records_skipped_total{reason}            not written, by reason class
//   syncwell_sync_records_failed_total                     per-record push failures
//   syncwell_sync_destination_reads_skipped_total          sync-confidence skips (SPEC S4 step 4)
//   syncwell_provider_calls_total{provider,call,outcome}   every provider call (ok or the Errc)
//   syncwell_provider_call_duration_seconds{provider,call}
//   syncwell_provider_quota_used_ratio{provider,scope}     used/limit as reported by the provider
//   syncwell_sync_token_refresh_total{provider,outcome}    (connection_session.cpp)
// Thread-safe (obs::Registry).
#include <chrono>
#include <string>
#include <string_view>

#include "obs/metrics.hpp"

namespace syncwell::sync {

class SyncMetrics {
 public:
  explicit SyncMetrics(obs::Registry& r);

  void Job(std::string_view outcome, std::chrono::nanoseconds duration);
  void RecordsRead(std::string_view side, uint64_t n);
  void RecordsWritten(uint64_t n);
  void RecordsSkipped(std::string_view reason, uint64_t n = 1);
  void RecordsFailed(uint64_t n);
  void DestinationReadSkipped();
  // Records whose interrupted push may still land: their job was deferred (write_settle).
  void WritesUnsettled(uint64_t n);
  void ProviderCall(std::string_view provider, std::string_view call, std::string_view outcome,
                    std::chrono::nanoseconds duration);
  void QuotaObserved(std::string_view provider, std::string_view scope, double used_ratio);

 private:
  obs::Registry& r_;
  obs::Histogram& job_duration_;
  obs::Counter& written_;
  obs::Counter& failed_;
  obs::Counter& dest_read_skipped_;
  obs::Counter& unsettled_;
};

}  // namespace syncwell::sync
