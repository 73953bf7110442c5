#include "core/random.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace syncwell {

namespace {

void Fill(unsigned char* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) throw std::runtime_error("RAND_bytes failed");
}

// Small requests (ids, tokens: 16-32 bytes, several per request served) are cut from a
// per-thread block drawn from RAND_bytes 4 KiB at a time: one RAND_bytes call per ~200 ids
// instead of one each (its locking and DRBG set-up per call were ~2.5% of all CPU in the
// end-to-end bench). Bytes handed out are wiped from the block. A forked child starts with an
// empty block, so it never repeats what its parent hands out next.
struct Block {
  static constexpr size_t kSize = 4096;
  unsigned char bytes[kSize];
  size_t used = kSize;
};
thread_local Block tl_block;
std::once_flag atfork_once;
void ForgetBlockAfterFork() { tl_block.used = Block::kSize; }

}  // namespace

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  if (n > Block::kSize / 8) {
    Fill(dst, n);
    return out;
  }
  std::call_once(atfork_once, [] { pthread_atfork(nullptr, nullptr, &ForgetBlockAfterFork); });
  Block& b = tl_block;
  if (b.used + n > Block::kSize) {
    Fill(b.bytes, Block::kSize);
    b.used = 0;
  }
  std::memcpy(dst, b.bytes + b.used, n);
  OPENSSL_cleanse(b.bytes + b.used, n);
  b.used += n;
  return out;
}

static std::string Hex(const std::string& raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string RandomToken(size_t bytes) { return Hex(RandomBytes(bytes)); }

// 16 bytes with the version nibble and the RFC 9562 variant set, as 8-4-4-4-12 hex.
static std::string FormatUuid(std::string b, unsigned version) {
  b[6] = static_cast<char>((static_cast<unsigned char>(b[6]) & 0x0f) | (version << 4));
  b[8] = static_cast<char>((static_cast<unsigned char>(b[8]) & 0x3f) | 0x80);
  std::string h = Hex(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string NewUuidV4() { return FormatUuid(RandomBytes(16), 4); }

std::string NewUuidV7(std::chrono::system_clock::time_point now) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const auto unix_ms = static_cast<uint64_t>(std::max<int64_t>(0, ms.count()));
  std::string b = RandomBytes(16);
  for (int i = 0; i < 6; ++i) b[i] = static_cast<char>((unix_ms >> (40 - 8 * i)) & 0xff);
  return FormatUuid(std::move(b), 7);
}

}  // namespace syncwell
