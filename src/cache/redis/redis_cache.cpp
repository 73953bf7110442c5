#include "cache/redis/redis_cache.hpp"

#include <utility>

namespace syncwell::cache {
namespace {

using Type = redis::RedisReply::Type;

Error ReplyError(std::string_view cmd, const redis::RedisReply& r) {
  return MakeError(Errc::kInternal, "redis " + std::string(cmd) + ": " +
                                        (r.type == Type::kError ? r.str : "unexpected reply"));
}

}  // namespace

RedisCache::RedisCache(redis::RedisClient& client) : client_(client) {}

std::string RedisCache::Key(std::string_view key) const {
  std::string k = client_.settings().key_prefix;
  k += key;
  return k;
}

Result<std::optional<std::string>> RedisCache::Get(std::string_view key) {
  auto r = client_.Command({"GET", Key(key)});
  if (!r.ok()) return r.error();
  if (r->type == Type::kNil) return std::optional<std::string>{};
  if (r->type != Type::kString) return ReplyError("GET", *r);
  return std::optional<std::string>(std::move(r->str));
}

Status RedisCache::Set(std::string_view key, std::string_view value, Duration ttl) {
  if (ttl <= Duration::zero()) return MakeError(Errc::kInvalidArgument, "cache ttl must be > 0");
  auto r =
      client_.Command({"SET", Key(key), std::string(value), "PX", std::to_string(ttl.count())});
  if (!r.ok()) return r.error();
  if (r->type != Type::kStatus) return ReplyError("SET", *r);
  return {};
}

Status RedisCache::Delete(std::string_view key) {
  auto r = client_.Command({"DEL", Key(key)});
  if (!r.ok()) return r.error();
  if (r->type != Type::kInteger) return ReplyError("DEL", *r);
  return {};
}

Status RedisCache::DeleteMany(const std::vector<std::string>& keys) {
  if (keys.empty()) return {};
  std::vector<std::string> argv;
  argv.reserve(keys.size() + 1);
  argv.emplace_back("DEL");
  for (const auto& k : keys) argv.push_back(Key(k));
  auto r = client_.Command(argv);
  if (!r.ok()) return r.error();
  if (r->type != Type::kInteger) return ReplyError("DEL", *r);
  return {};
}

}  // namespace syncwell::cache
