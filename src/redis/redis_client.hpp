#pragma once
// RedisClient: a small blocking Redis 7 client (hiredis 0.14) with a bounded connection pool,
// shared by the Redis adapters (ratelimit/redis, cache/redis). Blocking is fine: every caller is
// on a worker or API handler thread, never an I/O thread (ARCHITECTURE §5).
//
// Failure behaviour (SPEC S8 "Redis down"): every command has a deadline (command_timeout); a
// command that cannot reach Redis returns kUnavailable quickly. After a connection failure the
// client does not retry connecting for `reconnect_backoff` (commands fail fast meanwhile), so a
// dead Redis costs callers microseconds, not a connect timeout each. Healthy() reports the last
// outcome.
//
// Thread-safety: all methods are thread-safe.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace syncwell::redis {

struct RedisSettings {
  std::string url = "redis://127.0.0.1:6379";  // redis://[:password@]host:port[/db]
  size_t pool_size = 8;
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds command_timeout{500};
  std::chrono::milliseconds reconnect_backoff{250};
  std::string key_prefix = "sw:";  // prepended by the adapters to every key they use
};

struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;  // kString, kStatus, kError
  std::vector<RedisReply> elements;
};

// Parsed redis://[[user]:password@]host[:port][/db] (port 6379 and db 0 by default). The password
// is sent with AUTH (AUTH user password when a user is given) and db with SELECT on every connect.
struct RedisUrl {
  std::string host;
  int port = 6379;
  std::string user;
  std::string password;
  int db = 0;
};
Result<RedisUrl> ParseRedisUrl(std::string_view url);

// A Lua script run with EVALSHA (loaded with SCRIPT LOAD on NOSCRIPT, transparently).
struct RedisScript {
  std::string source;
  std::string sha1;  // computed from source by the constructor
  explicit RedisScript(std::string src);
};

class RedisClient {
 public:
  // Does not connect (connections are opened on first use). Throws std::invalid_argument for a
  // malformed url or pool_size 0 (a start-up error).
  explicit RedisClient(RedisSettings settings);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  const RedisSettings& settings() const { return settings_; }

  // One command. A Redis error reply is returned as a reply of Type::kError (not an Error);
  // transport failures -> kUnavailable.
  Result<RedisReply> Command(const std::vector<std::string>& argv);
  // Several commands in one round trip (pipelined), replies in order.
  Result<std::vector<RedisReply>> Pipeline(const std::vector<std::vector<std::string>>& commands);
  // EVALSHA script keys args (SCRIPT LOAD + retry on NOSCRIPT).
  Result<RedisReply> Eval(const RedisScript& script, const std::vector<std::string>& keys,
                          const std::vector<std::string>& args);

  // The last outcome: true after a successful round trip, false after a transport failure or a
  // failed connect. When nothing was tried yet, or the reconnect backoff has passed since a
  // failure, it probes with a PING first (bounded by connect_timeout + command_timeout), so a
  // recovered Redis is noticed by callers that check Healthy() before sending anything.
  bool Healthy() const;

  struct Impl;

 private:
  RedisSettings settings_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace syncwell::redis
