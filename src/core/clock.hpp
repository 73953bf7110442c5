#pragma once
// Injectable time (no ambient time in domain code). SystemClock for production, ManualClock for
// tests. Thread-safe.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace syncwell {

using TimePoint = std::chrono::system_clock::time_point;
using Duration = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::system_clock::now(); }
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = TimePoint{std::chrono::seconds{1'800'000'000}})
      : now_us_(std::chrono::duration_cast<std::chrono::microseconds>(start.time_since_epoch())
                    .count()) {}
  TimePoint Now() const override { return TimePoint{std::chrono::microseconds{now_us_.load()}}; }
  void Advance(std::chrono::microseconds d) { now_us_ += d.count(); }

 private:
  std::atomic<int64_t> now_us_;
};

inline int64_t ToUnixMillis(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline TimePoint FromUnixMillis(int64_t ms) { return TimePoint{std::chrono::milliseconds{ms}}; }

// RFC 3339 in UTC with millisecond precision, e.g. 2026-11-27T07:25:28.123Z.
std::string FormatRfc3339(TimePoint t);

}  // namespace syncwell
