// Request plan rendering (tokens, body placeholders, headers), target URLs, durations and the
// minimal response parser — the Asio-free parts of loadgen.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include "loadgen/loadgen.hpp"
#include "loadgen/request_plan.hpp"
#include "loadgen/response_parser.hpp"

namespace syncwell::loadgen {
namespace {

std::string TempFile(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << content;
  return path;
}

TEST(LoadgenTarget, ParsesHostPortPath) {
  auto t = ParseTarget("http://127.0.0.1:8080/v1/x");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->host, "127.0.0.1");
  EXPECT_EQ(t->port, "8080");
  EXPECT_EQ(t->path, "/v1/x");
  auto d = ParseTarget("http://localhost");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, "80");
  EXPECT_EQ(d->path, "");
  EXPECT_FALSE(ParseTarget("https://x").ok());
  EXPECT_FALSE(ParseTarget("127.0.0.1:80").ok());
  EXPECT_FALSE(ParseTarget("http://h:abc/").ok());
}

TEST(LoadgenDuration, ParsesUnits) {
  EXPECT_EQ(ParseDuration("10s")->count(), 10'000);
  EXPECT_EQ(ParseDuration("10")->count(), 10'000);
  EXPECT_EQ(ParseDuration("250ms")->count(), 250);
  EXPECT_EQ(ParseDuration("1.5s")->count(), 1'500);
  EXPECT_EQ(ParseDuration("2m")->count(), 120'000);
  EXPECT_FALSE(ParseDuration("ten").ok());
  EXPECT_FALSE(ParseDuration("5parsecs").ok());
}

TEST(LoadgenPlan, RendersSyncJobBodyPerTokenLine) {
  LoadgenOptions o;
  o.target = "http://127.0.0.1:9000";
  o.method = "POST";
  o.path = "/v1/sync-jobs";
  o.body = R"({"sourceConnectionId":"{{conn_src}}","destinationConnectionId":"{{conn_dst}}"})";
  o.tokens_file = TempFile("tokens.txt", "tokA srcA dstA\n\n# comment\ntokB srcB dstB\n");
  auto plan = BuildRequestPlan(o, *ParseTarget(o.target));
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  ASSERT_EQ(plan->entries.size(), 2u);
  EXPECT_TRUE(plan->idempotency_key);
  const auto& e = plan->entries[1];
  EXPECT_EQ(e.body, R"({"sourceConnectionId":"srcB","destinationConnectionId":"dstB"})");
  EXPECT_TRUE(e.head.starts_with("POST /v1/sync-jobs HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"));
  EXPECT_NE(e.head.find("Authorization: Bearer tokB\r\n"), std::string::npos);
  EXPECT_NE(e.head.find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(e.head.find("Content-Length: " + std::to_string(e.body.size()) + "\r\n"),
            std::string::npos);
  EXPECT_FALSE(e.head.ends_with("\r\n\r\n"));  // Idempotency-Key and the blank line come later
}

TEST(LoadgenPlan, PlaceholdersNeedConnectionIds) {
  LoadgenOptions o;
  o.target = "http://h";
  o.method = "POST";
  o.body = "{{conn_src}}";
  EXPECT_FALSE(BuildRequestPlan(o, *ParseTarget(o.target)).ok());  // no --tokens
  o.tokens_file = TempFile("tokens_only.txt", "tokA\n");
  EXPECT_FALSE(BuildRequestPlan(o, *ParseTarget(o.target)).ok());  // line lacks ids
}

TEST(LoadgenPlan, PlainGetHasNoBodyHeadersOrIdempotencyKey) {
  LoadgenOptions o;
  o.target = "http://127.0.0.1:80/healthz";
  o.headers = {"X-Test: 1"};
  auto plan = BuildRequestPlan(o, *ParseTarget(o.target));
  ASSERT_TRUE(plan.ok());
  EXPECT_FALSE(plan->idempotency_key);
  EXPECT_EQ(plan->entries[0].head,
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: syncwell-loadgen\r\n"
            "X-Test: 1\r\n");
  o.headers = {"bad header"};
  EXPECT_FALSE(BuildRequestPlan(o, *ParseTarget(o.target)).ok());
}

TEST(LoadgenPlan, UuidsAreV4AndDistinct) {
  UuidGenerator g;
  std::set<std::string> seen;
  for (int i = 0; i < 10'000; ++i) {
    char buf[UuidGenerator::kLength];
    g.Write(buf);
    std::string s(buf, sizeof buf);
    ASSERT_EQ(s[8], '-');
    ASSERT_EQ(s[14], '4');
    ASSERT_TRUE(s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b');
    seen.insert(s);
  }
  EXPECT_EQ(seen.size(), 10'000u);
}

TEST(LoadgenResponseParser, ParsesHeadAndLength) {
  ResponseHead h;
  const std::string r = "HTTP/1.1 201 Created\r\nContent-Length: 5\r\ncontent-type: x\r\n\r\nhello";
  EXPECT_EQ(ParseResponseHead(r.substr(0, 20), &h), ParseStatus::kIncomplete);
  ASSERT_EQ(ParseResponseHead(r, &h), ParseStatus::kComplete);
  EXPECT_EQ(h.status, 201);
  EXPECT_EQ(h.content_length, 5);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_EQ(h.head_bytes, r.size() - 5);
  EXPECT_EQ(h.BodyLength(false), 5);
  EXPECT_EQ(h.BodyLength(true), 0);
}

TEST(LoadgenResponseParser, ConnectionSemantics) {
  ResponseHead h;
  ASSERT_EQ(ParseResponseHead("HTTP/1.1 503 X\r\nConnection: Close\r\n\r\n", &h),
            ParseStatus::kComplete);
  EXPECT_FALSE(h.keep_alive);
  EXPECT_EQ(h.BodyLength(false), -1);  // until EOF
  ASSERT_EQ(ParseResponseHead("HTTP/1.0 204 No\r\n\r\n", &h), ParseStatus::kComplete);
  EXPECT_FALSE(h.keep_alive);
  EXPECT_EQ(h.BodyLength(false), 0);
  ASSERT_EQ(ParseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &h),
            ParseStatus::kComplete);
  EXPECT_TRUE(h.chunked);
}

TEST(LoadgenResponseParser, RejectsGarbage) {
  ResponseHead h;
  EXPECT_EQ(ParseResponseHead("SSH-2.0-OpenSSH\r\n\r\n", &h), ParseStatus::kError);
  EXPECT_EQ(ParseResponseHead("HTTP/1.1 2x0 OK\r\n\r\n", &h), ParseStatus::kError);
  EXPECT_EQ(ParseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", &h),
            ParseStatus::kError);
  EXPECT_EQ(ParseResponseHead("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", &h), ParseStatus::kError);
}

}  // namespace
}  // namespace syncwell::loadgen
