#pragma once
// The RateLimiter port (SPEC S6): may this worker call provider P on behalf of provider user U
// now, at priority p? Provider quotas are shared by every worker process, so the limiter is global:
// in process when embedded (InProcessLimiter), in Redis when scaled out (later adapter).
//
// Contract for callers (the worker):
//   - Call TryAcquire before every provider request (n = number of requests about to be made).
//   - granted        -> make the call(s).
//   - not granted    -> do NOT call the provider; defer the job through the queue (deferral does
//   not
//                       count as a failed receive) by at least Decision::retry_after, normally via
//                       Backoff::Delay(attempt, retry_after) (backoff.hpp).
//   - a provider 429 -> RecordRetryAfter(provider, user or "", Retry-After), then defer.
//   - error kUnavailable (or Available() == false): SAFE MODE. The limiter's backing state is
//                       unreachable; make no provider calls at all and defer the job with backoff.
//                       A job is never failed or dead-lettered because the limiter is down.
//   - error kInvalidArgument: unknown provider or n that can never be granted; a bug or a config
//                       error, not a reason to retry as is.
// Thread-safety: implementations are safe to call from any thread.
#include <cstdint>
#include <string_view>

#include "core/clock.hpp"
#include "core/priority.hpp"
#include "core/result.hpp"

namespace syncwell::ratelimit {

// The job priority (core/priority.hpp, the same type the queue uses):
//   kHigh   — manual ("sync now") jobs: may spend a bucket down to zero.
//   kMedium — scheduled/webhook jobs: stop at the reserve floor (10% of capacity by default).
//   kLow    — backfill: stops first, at 30% of capacity by default.
using syncwell::Priority;
using syncwell::PriorityName;

struct Decision {
  bool granted = false;
  // When not granted: how long until enough tokens are available for this priority in every
  // applicable bucket (and every Retry-After block has ended), assuming nobody else takes them.
  // Always > 0 when not granted, 0 when granted.
  Duration retry_after{0};
};

class RateLimiter {
 public:
  virtual ~RateLimiter() = default;

  // False when the backing state is unreachable (safe mode, see above).
  virtual bool Available() const = 0;

  // Takes n tokens from EVERY bucket that applies to (provider, provider_user) — the provider app's
  // buckets and the user's buckets, all windows — or from none (all or nothing). Never grants more
  // than a bucket holds. provider_user may be empty for app-level calls (then only app buckets).
  virtual Result<Decision> TryAcquire(std::string_view provider, std::string_view provider_user,
                                      Priority priority, int64_t n = 1) = 0;

  // Feedback from a provider's 429 + Retry-After: no request for that provider (provider_user
  // empty: the whole app; otherwise that user) is granted until now + retry_after.
  virtual Status RecordRetryAfter(std::string_view provider, std::string_view provider_user,
                                  Duration retry_after) = 0;
};

}  // namespace syncwell::ratelimit
