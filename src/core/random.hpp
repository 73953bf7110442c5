#pragma once
// Cryptographically random identifiers (OpenSSL RAND_bytes). Thread-safe.
#include <string>

namespace syncwell {

std::string NewUuidV4();                // 8-4-4-4-12 lowercase hex
std::string RandomToken(size_t bytes);  // lowercase hex, 2*bytes chars
std::string RandomBytes(size_t bytes);  // raw

}  // namespace syncwell
