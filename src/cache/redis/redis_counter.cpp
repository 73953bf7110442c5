#include "cache/redis/redis_counter.hpp"

#include <charconv>
#include <utility>

namespace syncwell::cache {
namespace {

using Type = redis::RedisReply::Type;

// KEYS[1] = counter, ARGV[1] = ttl in ms. INCR + PEXPIRE atomically; returns the new value.
constexpr const char* kIncrementScript = R"lua(
local v = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return v
)lua";

Error ReplyError(std::string_view cmd, const redis::RedisReply& r) {
  return MakeError(Errc::kInternal, "redis " + std::string(cmd) + ": " +
                                        (r.type == Type::kError ? r.str : "unexpected reply"));
}

}  // namespace

RedisCounter::RedisCounter(redis::RedisClient& client) : client_(client), incr_(kIncrementScript) {}

std::string RedisCounter::Key(std::string_view key) const {
  std::string k = client_.settings().key_prefix;
  k += key;
  return k;
}

Result<int64_t> RedisCounter::Get(std::string_view key) {
  auto r = client_.Command({"GET", Key(key)});
  if (!r.ok()) return r.error();
  if (r->type == Type::kNil) return int64_t{0};
  if (r->type == Type::kInteger) return r->integer;
  if (r->type != Type::kString) return ReplyError("GET", *r);
  int64_t v = 0;
  const char* end = r->str.data() + r->str.size();
  auto [p, ec] = std::from_chars(r->str.data(), end, v);
  if (ec != std::errc() || p != end) {
    return MakeError(Errc::kInternal, "redis counter " + std::string(key) + " is not an integer");
  }
  return v;
}

Result<int64_t> RedisCounter::Increment(std::string_view key, Duration ttl) {
  auto r = client_.Eval(incr_, {Key(key)}, {std::to_string(ttl.count())});
  if (!r.ok()) return r.error();
  if (r->type != Type::kInteger) return ReplyError("INCR", *r);
  return r->integer;
}

Status RedisCounter::Reset(std::string_view key) {
  auto r = client_.Command({"DEL", Key(key)});
  if (!r.ok()) return r.error();
  if (r->type != Type::kInteger) return ReplyError("DEL", *r);
  return {};
}

}  // namespace syncwell::cache
