// RedisClient against the test Redis: commands and reply types, pipelines, EVALSHA with a
// transparent reload after SCRIPT FLUSH, the pool under concurrency, URL handling (AUTH, SELECT),
// broken connections being discarded, command timeouts and an unreachable server (fail fast).
#include "redis/redis_client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "redis/redis_test_env.hpp"

namespace syncwell::redis {
namespace {

using test_support::ClosedPort;
using test_support::TestRedisUrl;
using test_support::UniqueRedisName;
using Type = RedisReply::Type;

RedisSettings Settings(size_t pool = 4) {
  RedisSettings s;
  s.url = TestRedisUrl();
  s.pool_size = pool;
  return s;
}

RedisReply Must(Result<RedisReply> r) {
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : RedisReply{};
}

TEST(RedisUrl, Parses) {
  auto u = ParseRedisUrl("redis://127.0.0.1:6380");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->password, "");
  EXPECT_EQ(u->db, 0);
  u = ParseRedisUrl("redis://:s3cr@t@cache.internal:7000/3");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "cache.internal");
  EXPECT_EQ(u->port, 7000);
  EXPECT_EQ(u->user, "");
  EXPECT_EQ(u->password, "s3cr@t");
  EXPECT_EQ(u->db, 3);
  u = ParseRedisUrl("redis://worker:pw@h");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->user, "worker");
  EXPECT_EQ(u->password, "pw");
  EXPECT_EQ(u->port, 6379);
  u = ParseRedisUrl("redis://[::1]:6390/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 6390);
  EXPECT_FALSE(ParseRedisUrl("http://h:1").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://h:port").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://h:1/x").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://:1").ok());
  RedisSettings bad;
  bad.url = "nope";
  EXPECT_THROW(RedisClient{bad}, std::invalid_argument);
}

TEST(RedisClient, CommandsAndReplyTypes) {
  RedisClient c(Settings());
  const std::string k = UniqueRedisName("sw:test:cmd");
  std::string binary("a\0b\r\nc", 6);
  EXPECT_EQ(Must(c.Command({"SET", k, binary, "PX", "60000"})).type, Type::kStatus);
  RedisReply got = Must(c.Command({"GET", k}));
  EXPECT_EQ(got.type, Type::kString);
  EXPECT_EQ(got.str, binary);  // binary safe
  EXPECT_EQ(Must(c.Command({"GET", k + ":missing"})).type, Type::kNil);
  RedisReply n = Must(c.Command({"INCRBY", k + ":n", "41"}));
  EXPECT_EQ(n.type, Type::kInteger);
  EXPECT_EQ(n.integer, 41);
  RedisReply err = Must(c.Command({"INCR", k}));  // not an integer: an error reply, not an Error
  EXPECT_EQ(err.type, Type::kError);
  EXPECT_NE(err.str.find("not an integer"), std::string::npos);
  Must(c.Command({"RPUSH", k + ":l", "x", "y", "z"}));
  RedisReply l = Must(c.Command({"LRANGE", k + ":l", "0", "-1"}));
  ASSERT_EQ(l.type, Type::kArray);
  ASSERT_EQ(l.elements.size(), 3u);
  EXPECT_EQ(l.elements[2].str, "z");
  EXPECT_EQ(Must(c.Command({"DEL", k, k + ":n", k + ":l"})).integer, 3);
  EXPECT_EQ(c.Command({}).error().code, Errc::kInvalidArgument);
  EXPECT_TRUE(c.Healthy());
}

TEST(RedisClient, PipelineRepliesInOrder) {
  RedisClient c(Settings(1));
  const std::string k = UniqueRedisName("sw:test:pipe");
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < 100; ++i) cmds.push_back({"INCR", k});
  cmds.push_back({"HSET", k + ":h", "f", "v"});
  cmds.push_back({"INCR", k + ":h"});  // WRONGTYPE: an error reply in place, the rest still runs
  cmds.push_back({"GET", k});
  cmds.push_back({"DEL", k, k + ":h"});
  auto r = c.Pipeline(cmds);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), cmds.size());
  for (int i = 0; i < 100; ++i) EXPECT_EQ((*r)[i].integer, i + 1);
  EXPECT_EQ((*r)[101].type, Type::kError);
  EXPECT_EQ((*r)[102].str, "100");
  EXPECT_EQ((*r)[103].integer, 2);
  auto empty = c.Pipeline({});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  // The connection is still in a clean state afterwards.
  EXPECT_EQ(Must(c.Command({"PING"})).str, "PONG");
}

TEST(RedisClient, EvalLoadsTheScriptAgainAfterScriptFlush) {
  RedisClient c(Settings(2));
  RedisScript script(
      "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
      "redis.call('PEXPIRE', KEYS[1], 60000) "
      "return {v, ARGV[2], #KEYS}");
  EXPECT_EQ(script.sha1.size(), 40u);
  // The sha1 is the one Redis computes.
  auto loaded = Must(c.Command({"SCRIPT", "LOAD", script.source}));
  EXPECT_EQ(loaded.str, script.sha1);
  const std::string k = UniqueRedisName("sw:test:eval");
  auto r = Must(c.Eval(script, {k}, {"5", "hello"}));
  ASSERT_EQ(r.type, Type::kArray);
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[0].integer, 5);
  EXPECT_EQ(r.elements[1].str, "hello");
  EXPECT_EQ(r.elements[2].integer, 1);

  Must(c.Command({"SCRIPT", "FLUSH"}));
  EXPECT_EQ(Must(c.Command({"SCRIPT", "EXISTS", script.sha1})).elements.at(0).integer, 0);
  r = Must(c.Eval(script, {k}, {"2", "again"}));  // NOSCRIPT -> SCRIPT LOAD -> EVALSHA
  ASSERT_EQ(r.type, Type::kArray);
  EXPECT_EQ(r.elements[0].integer, 7);
  EXPECT_EQ(Must(c.Command({"SCRIPT", "EXISTS", script.sha1})).elements.at(0).integer, 1);

  // A script error is an error reply; a script that does not compile too.
  RedisScript failing("return redis.error_reply('BOOM nope')");
  EXPECT_EQ(Must(c.Eval(failing, {}, {})).type, Type::kError);
  RedisScript broken("this is not lua");
  auto b = Must(c.Eval(broken, {}, {}));
  EXPECT_EQ(b.type, Type::kError);
  EXPECT_EQ(Must(c.Command({"PING"})).str, "PONG");
  Must(c.Command({"DEL", k}));
}

TEST(RedisClient, PoolIsBoundedAndSharedByThreads) {
  RedisClient c(Settings(3));
  const std::string k = UniqueRedisName("sw:test:pool");
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 300; ++i) {
        auto r = c.Command({"INCR", k});
        if (!r.ok() || r->type != Type::kInteger) ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(Must(c.Command({"GET", k})).str, "2400");
  Must(c.Command({"DEL", k}));
}

TEST(RedisClient, SelectsTheDatabaseFromTheUrl) {
  RedisSettings s1 = Settings(1);
  s1.url = TestRedisUrl() + "/5";
  RedisClient db5(s1);
  RedisClient db0(Settings(1));
  const std::string k = UniqueRedisName("sw:test:db");
  Must(db5.Command({"SET", k, "five", "PX", "60000"}));
  EXPECT_EQ(Must(db5.Command({"GET", k})).str, "five");
  EXPECT_EQ(Must(db0.Command({"GET", k})).type, Type::kNil);
  Must(db5.Command({"DEL", k}));
}

TEST(RedisClient, SendsAuthFromTheUrl) {
  // The test Redis has no password: AUTH with one is refused, which shows it was sent; the
  // connection is not used and the client reports unavailable.
  RedisSettings s = Settings(1);
  s.url = "redis://:wrong@" + TestRedisUrl().substr(std::string("redis://").size());
  RedisClient c(s);
  auto r = c.Command({"PING"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  EXPECT_NE(r.error().message.find("AUTH"), std::string::npos) << r.error().message;
}

TEST(RedisClient, BrokenConnectionIsDiscardedAndReplaced) {
  RedisClient c(Settings(1));
  RedisClient admin(Settings(1));
  auto id = Must(c.Command({"CLIENT", "ID"}));
  ASSERT_EQ(id.type, Type::kInteger);
  Must(admin.Command({"CLIENT", "KILL", "ID", std::to_string(id.integer)}));
  auto r = c.Command({"PING"});  // the pooled connection is dead
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  // The dead connection was dropped: the next command reconnects (no connect failed, so no
  // backoff) and works; Healthy() notices.
  auto again = c.Command({"CLIENT", "ID"});
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_NE(again->integer, id.integer);
  EXPECT_TRUE(c.Healthy());
}

TEST(RedisClient, CommandTimeoutDiscardsTheConnection) {
  RedisSettings s = Settings(1);
  s.command_timeout = std::chrono::milliseconds{100};
  RedisClient c(s);
  const std::string k = UniqueRedisName("sw:test:blpop");
  auto r = c.Command({"BLPOP", k, "2"});  // blocks 2 s server-side: the client gives up first
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  // The timed-out connection (its reply still pending) is not reused.
  auto p = c.Command({"PING"});
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->str, "PONG");
}

TEST(RedisClient, UnreachableServerFailsFastAndReportsUnhealthy) {
  RedisSettings s;
  s.url = "redis://127.0.0.1:" + std::to_string(ClosedPort());
  s.reconnect_backoff = std::chrono::seconds{30};
  RedisClient c(s);
  auto r = c.Command({"PING"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  EXPECT_FALSE(c.Healthy());
  // Within the backoff: no new connect attempt at all.
  for (int i = 0; i < 100; ++i) {
    auto again = c.Command({"PING"});
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, Errc::kUnavailable);
    EXPECT_NE(again.error().message.find("backoff"), std::string::npos);
  }
  EXPECT_EQ(c.Pipeline({{"PING"}}).error().code, Errc::kUnavailable);
  EXPECT_EQ(c.Eval(RedisScript("return 1"), {}, {}).error().code, Errc::kUnavailable);
  EXPECT_FALSE(c.Healthy());
}

TEST(RedisClient, HealthyProbesWhenNothingWasTriedYet) {
  RedisClient up(Settings(1));
  EXPECT_TRUE(up.Healthy());
  RedisSettings s;
  s.url = "redis://127.0.0.1:" + std::to_string(ClosedPort());
  RedisClient down(s);
  EXPECT_FALSE(down.Healthy());
}

}  // namespace
}  // namespace syncwell::redis
