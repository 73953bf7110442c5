#pragma once
// RFC 9457 problem+json responses with stable machine codes (SPEC S2).
#include <string>
#include <string_view>

#include "api/http_types.hpp"

namespace syncwell::api {

// Codes are part of the API contract: clients switch on them. Never rename; add new ones.
namespace code {
inline constexpr const char* kValidationFailed = "VALIDATION_FAILED";
inline constexpr const char* kMalformedJson = "MALFORMED_JSON";
inline constexpr const char* kIdempotencyKeyMissing = "IDEMPOTENCY_KEY_MISSING";
inline constexpr const char* kIdempotencyKeyInvalid = "IDEMPOTENCY_KEY_INVALID";
inline constexpr const char* kIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED";
inline constexpr const char* kIdempotencyInProgress = "IDEMPOTENCY_REQUEST_IN_PROGRESS";
inline constexpr const char* kUnauthenticated = "UNAUTHENTICATED";
inline constexpr const char* kForbidden = "FORBIDDEN";
inline constexpr const char* kProRequired = "PRO_TIER_REQUIRED";
inline constexpr const char* kNotFound = "NOT_FOUND";
inline constexpr const char* kMethodNotAllowed = "METHOD_NOT_ALLOWED";
inline constexpr const char* kConflict = "CONFLICT";
inline constexpr const char* kVersionConflict = "VERSION_CONFLICT";
inline constexpr const char* kPreconditionRequired = "PRECONDITION_REQUIRED";
inline constexpr const char* kCapabilityMismatch = "CAPABILITY_MISMATCH";
inline constexpr const char* kPayloadTooLarge = "PAYLOAD_TOO_LARGE";
inline constexpr const char* kHeadersTooLarge = "HEADERS_TOO_LARGE";
inline constexpr const char* kUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE";
inline constexpr const char* kBadRequest = "BAD_REQUEST";
inline constexpr const char* kRateLimited = "RATE_LIMITED";
inline constexpr const char* kUnavailable = "SERVICE_UNAVAILABLE";
inline constexpr const char* kUserDeletionPending = "USER_DELETION_PENDING";
inline constexpr const char* kInternal = "INTERNAL_ERROR";
inline constexpr const char* kOAuthCodeRejected = "OAUTH_CODE_REJECTED";
inline constexpr const char* kProviderError = "PROVIDER_ERROR";
inline constexpr const char* kProviderNotConfigured = "PROVIDER_NOT_CONFIGURED";
inline constexpr const char* kProviderUnavailable = "PROVIDER_UNAVAILABLE";
inline constexpr const char* kWebhookRejected = "WEBHOOK_REJECTED";
}  // namespace code

HttpResponse Problem(int status, std::string_view code, std::string_view detail);
// Same, with an extra "errors":[{"field":..,"message":..}] list for validation failures.
HttpResponse ValidationProblem(std::string_view field, std::string_view message);

}  // namespace syncwell::api
