#include "sync/sync_metrics.hpp"

namespace syncwell::sync {
namespace {

std::string Label(std::string_view k, std::string_view v) {
  std::string out(k);
  out += "=\"";
  out += v;
  out += '"';
  return out;
}

double Seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

SyncMetrics::SyncMetrics(obs::Registry& r)
    : r_(r),
      job_duration_(r.GetHistogram("syncwell_sync_job_duration_seconds",
                                   "Duration of one sync job (provider calls included)", "",
                                   obs::LatencyBuckets())),
      written_(r.GetCounter("syncwell_sync_records_written_total",
                            "Records written to destinations and committed to the ledger")),
      failed_(r.GetCounter("syncwell_sync_records_failed_total",
                           "Records a destination refused in a push (retried)")),
      dest_read_skipped_(r.GetCounter(
          "syncwell_sync_destination_reads_skipped_total",
          "Destination reads skipped by sync confidence or source_wins (SPEC S4 step 4)")),
      unsettled_(r.GetCounter("syncwell_sync_writes_unsettled_total",
                              "Records not pushed again yet because an interrupted push of them "
                              "may still land (the job was deferred for write_settle)")) {}

void SyncMetrics::Job(std::string_view outcome, std::chrono::nanoseconds duration) {
  r_.GetCounter("syncwell_sync_jobs_total", "Sync jobs by outcome", Label("outcome", outcome))
      .Inc();
  job_duration_.Observe(Seconds(duration));
}

void SyncMetrics::RecordsRead(std::string_view side, uint64_t n) {
  if (n == 0) return;
  r_.GetCounter("syncwell_sync_records_read_total", "Records read (metadata) by side",
                Label("side", side))
      .Inc(n);
}

void SyncMetrics::RecordsWritten(uint64_t n) {
  if (n) written_.Inc(n);
}

void SyncMetrics::RecordsSkipped(std::string_view reason, uint64_t n) {
  if (n == 0) return;
  r_.GetCounter("syncwell_sync_records_skipped_total", "Records not written, by reason",
                Label("reason", reason))
      .Inc(n);
}

void SyncMetrics::RecordsFailed(uint64_t n) {
  if (n) failed_.Inc(n);
}

void SyncMetrics::DestinationReadSkipped() { dest_read_skipped_.Inc(); }
void SyncMetrics::WritesUnsettled(uint64_t n) { unsettled_.Inc(n); }

void SyncMetrics::ProviderCall(std::string_view provider, std::string_view call,
                               std::string_view outcome, std::chrono::nanoseconds duration) {
  const std::string pc = Label("provider", provider) + "," + Label("call", call);
  r_.GetCounter("syncwell_provider_calls_total", "Provider calls by outcome",
                pc + "," + Label("outcome", outcome))
      .Inc();
  r_.GetHistogram("syncwell_provider_call_duration_seconds", "Provider call latency", pc,
                  obs::LatencyBuckets())
      .Observe(Seconds(duration));
}

void SyncMetrics::QuotaObserved(std::string_view provider, std::string_view scope,
                                double used_ratio) {
  static const std::vector<double> kRatioBuckets = {0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0};
  r_.GetHistogram("syncwell_provider_quota_used_ratio",
                  "Quota use reported by providers (used/limit)",
                  Label("provider", provider) + "," + Label("scope", scope), kRatioBuckets)
      .Observe(used_ratio);
}

}  // namespace syncwell::sync
