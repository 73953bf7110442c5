#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "config/settings.hpp"

namespace syncwell::config {
namespace {

std::string WriteFile(const std::string& text) {
  char path[] = "/tmp/syncwell-config-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(ConfigTest, DefaultsAreEmbeddedAndDevMode) {
  auto s = Load({});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->server.listen, "127.0.0.1:8080");
  EXPECT_TRUE(s->DevModeEnabled());
  EXPECT_EQ(s->storage.synchronous, "FULL");
  EXPECT_TRUE(s->storage.embedded_cache);
  EXPECT_EQ(s->storage.embedded_cache_mb, 64);
}

TEST(ConfigTest, EmbeddedCacheSettings) {
  auto s = Load(
      {"", {{"SYNCWELL_STORAGE_EMBEDDED_CACHE_MB", "16"}}, {{"storage.embedded_cache", "false"}}});
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_FALSE(s->storage.embedded_cache);
  EXPECT_EQ(s->storage.embedded_cache_mb, 16);
  EXPECT_FALSE(Load({"", {}, {{"storage.embedded_cache_mb", "0"}}}).ok());
  EXPECT_FALSE(Load({"", {}, {{"storage.embedded_cache", "maybe"}}}).ok());
}

TEST(ConfigTest, PrecedenceFileEnvFlags) {
  auto f = WriteFile(
      "[server]\nlisten = \"127.0.0.1:9000\"\nhandler_threads = 8\n[log]\nlevel = \"warn\"\n");
  auto s = Load({f, {{"SYNCWELL_SERVER_HANDLER_THREADS", "16"}}, {{"log.level", "debug"}}});
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->server.listen, "127.0.0.1:9000");
  EXPECT_EQ(s->server.handler_threads, 16);
  EXPECT_EQ(s->log.level, "debug");
  std::remove(f.c_str());
}

TEST(ConfigTest, ErrorsNameTheKeyAndSource) {
  auto f = WriteFile("[server]\nlisen = \"x\"\n");
  auto s = Load({f, {}, {}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("unknown setting 'server.lisen'"), std::string::npos);
  std::remove(f.c_str());
  auto e = Load({"", {{"SYNCWELL_SERVER_HANDLER_THREADS", "lots"}}, {}});
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("SYNCWELL_SERVER_HANDLER_THREADS"), std::string::npos);
  auto d = Load({"", {}, {{"server.read_timeout", "5 parsecs"}}});
  ASSERT_FALSE(d.ok());
  auto bad = WriteFile("[server\nlisten=");
  auto p = Load({bad, {}, {}});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find(bad), std::string::npos);
  std::remove(bad.c_str());
  EXPECT_FALSE(Load({"", {}, {{"storage.synchronous", "OFF"}}}).ok());
  EXPECT_FALSE(Load({"", {}, {{"auth.issuer", "https://idp"}}}).ok());  // needs audience + jwks
  EXPECT_FALSE(Load({"", {}, {{"auth.algorithms", "none"}}}).ok());
}

TEST(ConfigTest, DurationsRoundTrip) {
  EXPECT_EQ(ParseDuration("250ms")->count(), 250);
  EXPECT_EQ(ParseDuration("5m")->count(), 300000);
  EXPECT_EQ(ParseDuration("24h")->count(), 86400000);
  EXPECT_FALSE(ParseDuration("h").ok());
  EXPECT_FALSE(ParseDuration("1y").ok());
  EXPECT_EQ(FormatDuration(std::chrono::milliseconds(90000)), "90s");
  auto s = Load({});
  auto printed = WriteFile(ToToml(*s));
  auto again = Load({printed, {}, {}});
  ASSERT_TRUE(again.ok()) << again.error().message;  // --print output is a valid config file
  EXPECT_EQ(ToToml(*again), ToToml(*s));
  std::remove(printed.c_str());
}

}  // namespace
}  // namespace syncwell::config

namespace syncwell::config {
namespace {

TEST(ConfigTest, WorkerAndRateLimitSettings) {
  auto s = Load(
      {"",
       {{"SYNCWELL_WORKER_MAX_WORKERS", "4"}},
       {{"worker.handler", "noop"}, {"ratelimit.limits", "garmin:app:2s:4,fitbit:user:1h:150"}}});
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->worker.max_workers, 4);
  ASSERT_EQ(s->ratelimit.limits.size(), 2u);
  EXPECT_EQ(s->ratelimit.limits[0], "garmin:app:2s:4");
  // Cross-field checks and bad values name the key.
  auto minmax = Load({"", {}, {{"worker.min_workers", "8"}, {"worker.max_workers", "2"}}});
  ASSERT_FALSE(minmax.ok());
  EXPECT_NE(minmax.error().message.find("worker.min_workers"), std::string::npos);
  auto retry = Load({"", {}, {{"worker.retry_base", "1h"}, {"worker.retry_cap", "1m"}}});
  ASSERT_FALSE(retry.ok());
  EXPECT_NE(retry.error().message.find("worker.retry_base"), std::string::npos);
  auto handler = Load({"", {}, {{"worker.handler", "python"}}});
  ASSERT_FALSE(handler.ok());
  EXPECT_NE(handler.error().message.find("worker.handler"), std::string::npos);
  auto limits = Load({"", {}, {{"ratelimit.limits", "garmin:galaxy:1m:100"}}});
  ASSERT_FALSE(limits.ok());
  EXPECT_NE(limits.error().message.find("ratelimit.limits"), std::string::npos);
}

TEST(ConfigTest, ProviderConnectorsFromNestedTomlEnvAndSimUrl) {
  auto f = WriteFile(
      "[providers.strava]\nbase_url = \"https://www.strava.com\"\nclient_id = \"abc\"\n"
      "[providers]\ngarmin.timeout = \"3s\"\nsim_url = \"http://127.0.0.1:9100/\"\n");
  auto s = Load({f, {{"SYNCWELL_PROVIDERS_STRAVA_CLIENT_SECRET", "s3cret"}}, {}});
  ASSERT_TRUE(s.ok()) << s.error().message;
  auto strava = EffectiveConnector(*s, "strava");
  EXPECT_EQ(strava.base_url, "https://www.strava.com");  // its own base_url wins over sim_url
  EXPECT_EQ(strava.client_id, "abc");
  EXPECT_EQ(strava.client_secret, "s3cret");
  auto garmin = EffectiveConnector(*s, "garmin");
  EXPECT_EQ(garmin.base_url, "http://127.0.0.1:9100/garmin");
  EXPECT_EQ(garmin.client_id, "syncwell");
  EXPECT_EQ(garmin.timeout, std::chrono::seconds(3));
  // Secrets are never printed; the printed TOML loads again.
  const std::string toml = ToToml(*s);
  EXPECT_EQ(toml.find("s3cret"), std::string::npos);
  EXPECT_NE(toml.find("strava.client_secret = \"[redacted]\""), std::string::npos);
  auto printed = WriteFile(toml);
  EXPECT_TRUE(Load({printed, {}, {}}).ok());
  auto bad = Load({f, {}, {{"providers.strava.timeout", "0ms"}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("providers.strava.timeout"), std::string::npos);
  std::remove(f.c_str());
  std::remove(printed.c_str());
}

}  // namespace
}  // namespace syncwell::config
