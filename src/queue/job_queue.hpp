#pragma once
// The JobQueue port (SPEC S3). This issue needs only the durable, dedup-aware send and the
// gauges; receive/visibility/DLQ arrive with the queue issue and extend this interface.
#include <chrono>
#include <cstdint>
#include <string>

#include "core/result.hpp"

namespace syncwell::queue {

enum class Priority { kHigh = 0, kMedium = 1, kLow = 2 };
bool ParsePriority(std::string_view s, Priority* out);
const char* PriorityName(Priority p);

struct OutgoingMessage {
  std::string dedup_id;
  std::string group_id;
  Priority priority = Priority::kMedium;
  std::chrono::milliseconds delay{0};
  std::string body;
};

struct SendOutcome {
  std::string message_id;
  bool deduplicated = false;  // an earlier message with the same dedup id inside the window
};

struct QueueStats {
  int64_t visible = 0;
  int64_t delayed = 0;
  int64_t in_flight = 0;
  int64_t dlq = 0;
  int64_t enqueued_total = 0;
  int64_t deduplicated_total = 0;
  double oldest_age_seconds = 0;
};

class JobQueue {
 public:
  virtual ~JobQueue() = default;
  // Durable when it returns ok (survives kill -9).
  virtual Result<SendOutcome> Send(const OutgoingMessage& m) = 0;
  virtual Result<QueueStats> Stats() = 0;
};

}  // namespace syncwell::queue
