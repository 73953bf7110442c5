#pragma once
// Base64url without padding (RFC 4648 §5), as used by JWS/JWK (RFC 7515 §2).
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace syncwell::auth {

std::string Base64UrlEncode(std::string_view raw);

// Strict: rejects characters outside [A-Za-z0-9_-], padding, impossible lengths and non-zero
// trailing bits, so each byte string has exactly one accepted encoding. kInvalidArgument on error.
Result<std::string> Base64UrlDecode(std::string_view text);

}  // namespace syncwell::auth
