#pragma once
// MurmurHash3 x86_32 (Austin Appleby, public domain): a fast, stable, well-distributed hash for
// placing users on scheduler shards (SPEC S7 "murmur3(userId) % shards"). Not cryptographic.
// The value is part of the stored data (users.shard), so it must never change for a given
// input: the reference test vectors are in tests/unit/schedule_test.cpp.
#include <cstdint>
#include <string_view>

namespace syncwell {

uint32_t Murmur3_32(std::string_view data, uint32_t seed = 0);

}  // namespace syncwell
