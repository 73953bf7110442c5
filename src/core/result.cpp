#include "core/result.hpp"

namespace syncwell {

const char* ErrcName(Errc c) {
  switch (c) {
    case Errc::kInvalidArgument:
      return "invalid_argument";
    case Errc::kNotFound:
      return "not_found";
    case Errc::kConflict:
      return "conflict";
    case Errc::kAlreadyExists:
      return "already_exists";
    case Errc::kUnauthenticated:
      return "unauthenticated";
    case Errc::kForbidden:
      return "forbidden";
    case Errc::kRetryable:
      return "retryable";
    case Errc::kRateLimited:
      return "rate_limited";
    case Errc::kNotYet:
      return "not_yet";
    case Errc::kAuthRevoked:
      return "auth_revoked";
    case Errc::kPermanent:
      return "permanent";
    case Errc::kUnavailable:
      return "unavailable";
    case Errc::kInternal:
      return "internal";
  }
  return "unknown";
}

}  // namespace syncwell
