#pragma once
// Run statistics (one per worker thread, merged at the end) and the report writer: a readable
// block and one JSON line. No Asio.
#include <cstdint>
#include <iosfwd>

#include "loadgen/histogram.hpp"
#include "loadgen/loadgen.hpp"
#include "loadgen/timeline.hpp"

namespace syncwell::loadgen {

struct RunStats {
  uint64_t scheduled = 0;  // requests the plan asked for (fixed rate) or started (saturation)
  uint64_t sent = 0;       // written to a socket
  uint64_t completed = 0;  // got a full response, any status
  uint64_t completed_in_window = 0;  // of those, completed before the schedule ended (not late)
  uint64_t status_2xx = 0;
  uint64_t status_1xx = 0, status_3xx = 0, status_4xx = 0, status_5xx = 0, status_other = 0;
  uint64_t err_connect = 0;       // request failed because its connection could not be opened
  uint64_t err_timeout = 0;       // sent, no full response within timeout of its scheduled time
  uint64_t err_io = 0;            // reset / EOF / malformed or unsupported response
  uint64_t not_sent = 0;          // never written: expired while queued or the run ended first
  uint64_t connect_failures = 0;  // failed connect attempts (includes pool warm-up)
  uint64_t connections_opened = 0;
  uint64_t max_queue = 0;        // deepest wait queue seen (fixed rate)
  uint64_t internal_errors = 0;  // exceptions escaped from a coroutine (bugs)
  int64_t elapsed_ns = 0;        // start to last response (or to the end of the schedule)
  LatencyHistogram latency;      // every completed response, from its scheduled time
  LatencyHistogram service;      // the same responses from the actual write (uncorrected):
                                 //   latency - service = time queued waiting for a connection
  Timeline timeline;             // second by second from the start: responses, errors, latency

  void Merge(const RunStats& o);
  uint64_t Errors() const;  // non-2xx + connect + timeout + io + not_sent
};

void WriteReport(const LoadgenOptions& options, const RunStats& stats, std::ostream& out);

}  // namespace syncwell::loadgen
