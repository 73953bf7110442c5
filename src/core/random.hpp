#pragma once
// Cryptographically random identifiers (OpenSSL RAND_bytes; requests up to 512 bytes are cut
// from a per-thread 4 KiB block drawn from it, reset in a forked child). Thread-safe.
#include <chrono>
#include <string>

namespace syncwell {

std::string NewUuidV4();  // 8-4-4-4-12 lowercase hex
// RFC 9562 version 7: the 48-bit Unix time in milliseconds of `now`, then 74 random bits, as
// 8-4-4-4-12 lowercase hex. Ids made in a later millisecond sort after earlier ones, so rows keyed
// by them are appended to their B-tree instead of dirtying a random leaf per insert.
std::string NewUuidV7(std::chrono::system_clock::time_point now);
std::string RandomToken(size_t bytes);  // lowercase hex, 2*bytes chars
std::string RandomBytes(size_t bytes);  // raw

}  // namespace syncwell
