// HttpClient against a real api::HttpServer on loopback (port 0): keep-alive reuse (counted by the
// server's connection counter), deadlines, connection errors, limits and concurrency. Handlers
// that "hang" wait on a condition variable that the fixture releases, so teardown never waits.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "api/http_server.hpp"
#include "core/asio.hpp"
#include "net/http_client.hpp"
#include "obs/metrics.hpp"

namespace syncwell::net {
namespace {

using std::chrono::milliseconds;

// Runs call(t, i) for i < calls on each of `threads` threads at once; returns how many returned
// true.
int CountOkCalls(int threads, int calls, const std::function<bool(int, int)>& call) {
  std::atomic<int> ok{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < calls; ++i) {
        if (call(t, i)) ++ok;
      }
    });
  }
  for (auto& w : workers) w.join();
  return ok.load();
}

class NetHttpClientTest : public ::testing::Test {
 protected:
  void StartServer(std::chrono::milliseconds idle_timeout = milliseconds{60'000}) {
    api::HttpServerSettings s;
    s.host = "127.0.0.1";
    s.port = 0;
    s.handler_threads = 16;
    s.access_log = false;
    s.idle_timeout = idle_timeout;
    server_ = std::make_unique<api::HttpServer>(
        s, [this](const api::HttpRequest& r) { return Handle(r); }, metrics_);
    ASSERT_TRUE(server_->Start().ok());
  }

  void TearDown() override {
    {
      std::lock_guard lock(mu_);
      release_ = true;
    }
    cv_.notify_all();
    if (server_) server_->Stop();
  }

  api::HttpResponse Handle(const api::HttpRequest& r) {
    ++requests_;
    api::HttpResponse resp;
    if (r.path == "/echo") {
      resp.content_type = "text/plain";
      std::string body = r.method + " " + r.path + "?" + r.query + "\n";
      for (const auto& [k, v] : r.headers) {
        if (k == "x-test" || k == "content-type" || k == "user-agent") body += k + "=" + v + "\n";
      }
      body += r.body;
      resp.body = std::move(body);
      resp.headers.emplace_back("X-Reply", "Yes");
    } else if (r.path == "/status/503") {
      resp.status = 503;
      resp.body = R"({"error":"unavailable"})";
    } else if (r.path == "/nocontent") {
      resp.status = 204;
      resp.headers.emplace_back("X-Injected", "a\r\nX-Smuggled: yes");  // dropped, not sent
    } else if (r.path == "/big") {
      resp.content_type = "text/plain";
      resp.body.assign(5000, 'x');
    } else if (r.path == "/hang") {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(20), [this] { return release_; });
      resp.body = "{}";
    } else {
      resp.status = 404;
      resp.body = "{}";
    }
    return resp;
  }

  uint64_t Connections() {
    return metrics_.GetCounter("syncwell_http_connections_total", "Accepted TCP connections")
        .Value();
  }

  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
  }

  obs::Registry metrics_;
  std::unique_ptr<api::HttpServer> server_;
  std::atomic<int> requests_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool release_ = false;
};

TEST_F(NetHttpClientTest, GetAndPostRoundTrip) {
  StartServer();
  auto client = MakeHttpClient();
  HttpCall get;
  get.url = Url("/echo?a=1&b=two");
  get.headers = {{"X-Test", "hello"}};
  auto r = client->Send(get);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("GET /echo?a=1&b=two"), std::string::npos);
  EXPECT_NE(r->body.find("x-test=hello"), std::string::npos);
  EXPECT_NE(r->body.find("user-agent=SyncWell-Engine/0.1"), std::string::npos);
  ASSERT_NE(r->Header("x-reply"), nullptr);  // names lower-cased
  EXPECT_EQ(*r->Header("x-reply"), "Yes");

  HttpCall post;
  post.method = "POST";
  post.url = Url("/echo");
  post.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  post.body = FormEncode({{"grant_type", "authorization_code"}, {"code", "a b&c"}});
  r = client->Send(post);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NE(r->body.find("grant_type=authorization_code&code=a%20b%26c"), std::string::npos);
  EXPECT_NE(r->body.find("content-type=application/x-www-form-urlencoded"), std::string::npos);
}

TEST_F(NetHttpClientTest, HttpErrorStatusesAreSuccessfulSends) {
  StartServer();
  auto client = MakeHttpClient();
  auto r = client->Send({.url = Url("/status/503")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 503);
  r = client->Send({.url = Url("/nope")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
}

TEST_F(NetHttpClientTest, KeepAliveReusesOneConnection) {
  StartServer();
  auto client = MakeHttpClient();
  for (int i = 0; i < 50; ++i) {
    auto r = client->Send({.url = Url("/echo")});
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->status, 200);
  }
  EXPECT_EQ(requests_.load(), 50);
  EXPECT_EQ(Connections(), 1u);
}

TEST_F(NetHttpClientTest, PoolIsPerHostPort) {
  StartServer();
  auto client = MakeHttpClient();
  ASSERT_TRUE(client->Send({.url = Url("/echo")}).ok());
  // Same server under another authority: a different pool key, so a second connection.
  ASSERT_TRUE(
      client->Send({.url = "http://localhost:" + std::to_string(server_->port()) + "/echo"}).ok());
  ASSERT_TRUE(client->Send({.url = Url("/echo")}).ok());
  EXPECT_EQ(Connections(), 2u);
}

TEST_F(NetHttpClientTest, ZeroIdleConnectionsMeansNoReuse) {
  StartServer();
  auto client = MakeHttpClient({.max_idle_per_host = 0});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Send({.url = Url("/echo")}).ok());
  EXPECT_EQ(Connections(), 3u);
}

TEST_F(NetHttpClientTest, ServerClosedIdleConnectionIsReplacedTransparently) {
  StartServer(milliseconds{100});  // the server closes idle keep-alive connections after 100 ms
  auto client = MakeHttpClient();
  ASSERT_TRUE(client->Send({.url = Url("/echo")}).ok());
  std::this_thread::sleep_for(milliseconds{400});
  for (const char* method : {"GET", "POST"}) {
    auto r = client->Send({.method = method, .url = Url("/echo"), .body = "x"});
    ASSERT_TRUE(r.ok()) << method << ": " << r.error().message;
    EXPECT_EQ(r->status, 200);
    std::this_thread::sleep_for(milliseconds{400});
  }
  EXPECT_EQ(Connections(), 3u);
  EXPECT_EQ(requests_.load(), 3);
}

TEST_F(NetHttpClientTest, DeadlineCoversTheWholeCall) {
  StartServer();
  auto client = MakeHttpClient();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = client->Send({.url = Url("/hang"), .timeout = milliseconds{300}});
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kRetryable);
  EXPECT_NE(r.error().message.find("timeout"), std::string::npos) << r.error().message;
  EXPECT_GE(took, milliseconds{290});
  EXPECT_LT(took, milliseconds{3000});  // far below the handler's 20 s hang
  // The timed-out connection is not reused: the next call works on a fresh one.
  auto ok = client->Send({.url = Url("/echo")});
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(Connections(), 2u);
}

TEST_F(NetHttpClientTest, ConnectionRefusedIsRetryable) {
  uint16_t port = 0;
  {
    asio::io_context ioc;
    asio::ip::tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }  // closed: nothing listens on `port` now
  auto client = MakeHttpClient();
  auto r = client->Send({.url = "http://127.0.0.1:" + std::to_string(port) + "/x?token=SECRET",
                         .timeout = milliseconds{2000}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kRetryable);
  EXPECT_EQ(r.error().message.find("SECRET"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find("/x"), std::string::npos) << r.error().message;
}

TEST_F(NetHttpClientTest, TlsToAPlainServerFailsFast) {
  StartServer();
  auto client = MakeHttpClient();
  auto r = client->Send({.url = "https://127.0.0.1:" + std::to_string(server_->port()) + "/echo",
                         .timeout = milliseconds{2000}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kRetryable);
}

TEST_F(NetHttpClientTest, BadUrlsAreInvalidArguments) {
  auto client = MakeHttpClient();
  for (const char* url :
       {"", "not a url", "ftp://example.com/", "http://", "http:///path", "http://host:abc/",
        "http://host:70000/", "http://user@host/", "http://[::1/", "http://host/a b"}) {
    auto r = client->Send({.url = url});
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument) << url;
  }
  auto r = client->Send({.method = "GE T", .url = "http://127.0.0.1:1/"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  r = client->Send({.url = "http://127.0.0.1:1/", .headers = {{"X-Bad", "a\r\nInjected: 1"}}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
}

TEST_F(NetHttpClientTest, ResponseBodyLimit) {
  StartServer();
  auto client = MakeHttpClient({.max_response_bytes = 1000});
  auto r = client->Send({.url = Url("/big")});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kRetryable);
  EXPECT_NE(r.error().message.find("larger than 1000"), std::string::npos) << r.error().message;
  auto small = client->Send({.url = Url("/echo")});
  ASSERT_TRUE(small.ok()) << small.error().message;
}

TEST_F(NetHttpClientTest, ConcurrentCallsFromEightThreads) {
  StartServer();
  auto client = MakeHttpClient();
  constexpr int kThreads = 8, kCalls = 40;
  const int ok = CountOkCalls(kThreads, kCalls, [&](int t, int i) {
    HttpCall c;
    c.method = "POST";
    c.url = Url("/echo");
    c.body = "t" + std::to_string(t) + "i" + std::to_string(i);
    auto r = client->Send(c);
    return r.ok() && r->status == 200 && r->body.ends_with(c.body);
  });
  EXPECT_EQ(ok, kThreads * kCalls);
  // Connections are pooled: never more than one per concurrent caller.
  EXPECT_LE(Connections(), static_cast<uint64_t>(kThreads));
}

// ---- api::HttpServer's inline handler and deferred responses (the inline job intake) ----
// The inline handler answers /inline/now at once, throws on /inline/throw, defers
// /inline/later/<tag> to a completer thread of the test (which can be held), and leaves every
// other path to the pool handler above.
class HttpServerInlineTest : public NetHttpClientTest {
 protected:
  void StartInline() {
    api::HttpServerSettings s;
    s.host = "127.0.0.1";
    s.port = 0;
    s.io_threads = 2;
    s.handler_threads = 4;
    s.access_log = false;
    server_ = std::make_unique<api::HttpServer>(
        s, [this](const api::HttpRequest& r) { return Handle(r); }, metrics_);
    server_->SetInlineHandler(
        [this](const api::HttpRequest& r, api::HttpResponse& now, api::DeferredResponse& later) {
          if (r.path == "/inline/now") {
            now.content_type = "text/plain";
            now.body = "now";
            return true;
          }
          if (r.path == "/inline/throw") throw std::runtime_error("boom");
          if (r.path.rfind("/inline/later/", 0) != 0) return false;
          later = [this, tag = r.path.substr(14)](std::function<void(api::HttpResponse)> done) {
            std::lock_guard lock(q_mu_);
            pending_.push_back([tag, done = std::move(done)] {
              api::HttpResponse resp;
              resp.content_type = "text/plain";
              resp.body = "later " + tag;
              done(std::move(resp));
            });
            q_cv_.notify_all();
          };
          return true;
        });
    ASSERT_TRUE(server_->Start().ok());
    completer_ = std::thread([this] {
      std::unique_lock lock(q_mu_);
      for (;;) {
        q_cv_.wait(lock, [this] { return stop_completer_ || (!hold_ && !pending_.empty()); });
        if (pending_.empty() || hold_) return;  // stopping
        auto work = std::move(pending_.front());
        pending_.pop_front();
        lock.unlock();
        work();  // from this thread, as the SQLite completer would
        lock.lock();
      }
    });
  }
  void SetHold(bool hold) {
    {
      std::lock_guard lock(q_mu_);
      hold_ = hold;
    }
    q_cv_.notify_all();
  }
  size_t Pending() {
    std::lock_guard lock(q_mu_);
    return pending_.size();
  }
  void TearDown() override {
    SetHold(false);
    NetHttpClientTest::TearDown();  // Stop() waits for every deferred response to complete
    {
      std::lock_guard lock(q_mu_);
      stop_completer_ = true;
    }
    q_cv_.notify_all();
    if (completer_.joinable()) completer_.join();
  }

  std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<std::function<void()>> pending_;
  bool hold_ = false;
  bool stop_completer_ = false;
  std::thread completer_;
};

TEST_F(HttpServerInlineTest, DeferredResponsesReachTheirOwnRequestsUnderConcurrency) {
  StartInline();
  auto client = MakeHttpClient();
  constexpr int kThreads = 8, kCalls = 30;
  const int ok = CountOkCalls(kThreads, kCalls, [&](int t, int i) {
    HttpCall c;
    const std::string tag = std::to_string(t) + "-" + std::to_string(i);
    c.method = "POST";
    c.url = Url("/inline/later/" + tag);
    auto r = client->Send(c);
    return r.ok() && r->status == 200 && r->body == "later " + tag;
  });
  EXPECT_EQ(ok, kThreads * kCalls);
  EXPECT_EQ(requests_.load(), 0);  // the pool handler never ran
}

TEST_F(HttpServerInlineTest, ImmediateAnswersFallThroughAndExceptions) {
  StartInline();
  auto client = MakeHttpClient();
  HttpCall c;
  c.url = Url("/inline/now");
  auto r = client->Send(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, "now");
  c.url = Url("/echo");  // not taken inline: the pool handler answers
  r = client->Send(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(requests_.load(), 1);
  c.url = Url("/inline/throw");
  r = client->Send(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 500);
  // The connection still serves deferred requests afterwards.
  c.url = Url("/inline/later/x");
  r = client->Send(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, "later x");
}

TEST_F(HttpServerInlineTest, StopWaitsForADeferredResponseStillPending) {
  StartInline();
  SetHold(true);
  auto client = MakeHttpClient();
  std::thread caller([&] {
    HttpCall c;
    c.method = "POST";
    c.url = Url("/inline/later/held");
    c.timeout = std::chrono::seconds(10);
    (void)client->Send(c);  // answered or cut off by Stop(): either is fine here
  });
  for (int i = 0; i < 500 && Pending() == 0; ++i) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_EQ(Pending(), 1u);
  std::atomic<bool> completed{false};
  std::thread releaser([&] {
    std::this_thread::sleep_for(milliseconds(200));
    completed = true;
    SetHold(false);
  });
  server_->Stop();  // must not return before the held completion ran (it posts to the server)
  EXPECT_TRUE(completed.load());
  EXPECT_EQ(Pending(), 0u);
  releaser.join();
  server_.reset();  // closes the sockets: the caller's call ends now, not at its timeout
  caller.join();
}

// A raw HTTP/1.1 server for the keep-alive race: on its first connection it answers the first
// request, then reads the second one and closes without answering (as a server closing an idle
// connection at the moment the request arrives). Later connections answer everything.
class FlakyServer {
 public:
  FlakyServer() : acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Run(); });
  }
  ~FlakyServer() {
    stop_ = true;
    asio::ip::tcp::socket poke(ioc_);  // unblocks accept()
    boost::system::error_code ec;
    poke.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
    thread_.join();
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/x"; }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }

 private:
  // Reads one request (headers + Content-Length body); false on EOF/error.
  bool ReadRequest(asio::ip::tcp::socket& s, std::string& buf) {
    boost::system::error_code ec;
    char chunk[4096];
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      const size_t n = s.read_some(asio::buffer(chunk), ec);
      if (ec) return false;
      buf.append(chunk, n);
    }
    std::string head = buf.substr(0, end);
    for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t length = 0;
    if (auto at = head.find("content-length:"); at != std::string::npos)
      length = std::stoul(head.substr(at + 15));
    while (buf.size() < end + 4 + length) {
      const size_t n = s.read_some(asio::buffer(chunk), ec);
      if (ec) return false;
      buf.append(chunk, n);
    }
    buf.erase(0, end + 4 + length);
    ++requests_;
    return true;
  }

  void Run() {
    for (int conn = 0;; ++conn) {
      asio::ip::tcp::socket s(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (ec || stop_) return;
      ++connections_;
      std::string buf;
      for (int req = 0; ReadRequest(s, buf); ++req) {
        if (conn == 0 && req == 1) break;  // close without answering
        static constexpr std::string_view kOk =
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
        asio::write(s, asio::buffer(kOk), ec);
        if (ec) break;
      }
      s.close(ec);
    }
  }

  asio::io_context ioc_;
  asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

TEST(NetHttpClientRetryTest, ReplayableRequestIsRetriedOnceOnAFreshConnection) {
  FlakyServer server;
  auto client = MakeHttpClient();
  ASSERT_TRUE(client->Send({.url = server.Url()}).ok());
  auto r = client->Send({.url = server.Url()});  // written, then the connection is closed
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, "ok");
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(server.requests(), 3);
  client.reset();
}

TEST(NetHttpClientRetryTest, PostIsNotReplayedUnlessItHasAnIdempotencyKey) {
  {
    FlakyServer server;
    auto client = MakeHttpClient();
    ASSERT_TRUE(client->Send({.method = "POST", .url = server.Url(), .body = "a"}).ok());
    auto r = client->Send({.method = "POST", .url = server.Url(), .body = "b"});
    ASSERT_FALSE(r.ok());  // the server may have acted on it: the caller decides
    EXPECT_EQ(r.error().code, Errc::kRetryable);
    EXPECT_EQ(server.requests(), 2);
    auto next = client->Send({.method = "POST", .url = server.Url(), .body = "c"});
    ASSERT_TRUE(next.ok()) << next.error().message;
    client.reset();
  }
  {
    FlakyServer server;
    auto client = MakeHttpClient();
    ASSERT_TRUE(client->Send({.method = "POST", .url = server.Url(), .body = "a"}).ok());
    auto r = client->Send({.method = "POST",
                           .url = server.Url(),
                           .headers = {{"Idempotency-Key", "k1"}},
                           .body = "b"});
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(server.requests(), 3);
    client.reset();
  }
}

// The server writes each response as one buffer (api::SerializeResponse); the client's Beast
// parser must read it back, and a 204 (no Content-Length, no body) must leave the connection
// reusable.
TEST_F(NetHttpClientTest, ServerResponsesParseAndNoContentKeepsTheConnection) {
  StartServer();
  auto client = MakeHttpClient();
  for (int i = 0; i < 3; ++i) {
    auto r = client->Send({.url = Url("/nocontent")});
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 204);
    EXPECT_EQ(r->body, "");
    EXPECT_EQ(r->Header("x-injected"), nullptr);
    EXPECT_EQ(r->Header("x-smuggled"), nullptr);
    ASSERT_NE(r->Header("x-request-id"), nullptr);
    ASSERT_NE(r->Header("server"), nullptr);
    EXPECT_EQ(*r->Header("server"), "syncwell");
  }
  auto r = client->Send({.url = Url("/big")});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, std::string(5000, 'x'));
  ASSERT_NE(r->Header("content-type"), nullptr);
  EXPECT_EQ(*r->Header("content-type"), "text/plain");
  EXPECT_EQ(Connections(), 1u);
}

TEST(HttpServerSerializeTest, FramingIsTheServersAndBadHeadersAreDropped) {
  api::HttpResponse resp;
  resp.body = "{}";
  EXPECT_EQ(api::SerializeResponse(resp, 11, true, "rid"),
            "HTTP/1.1 200 OK\r\nServer: syncwell\r\nX-Request-Id: rid\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(api::SerializeResponse(resp, 11, false, "rid"),
            "HTTP/1.1 200 OK\r\nServer: syncwell\r\nX-Request-Id: rid\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n"
            "\r\n{}");
  EXPECT_EQ(api::SerializeResponse(resp, 10, true, "rid"),
            "HTTP/1.0 200 OK\r\nServer: syncwell\r\nX-Request-Id: rid\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\n"
            "Connection: keep-alive\r\n\r\n{}");

  api::HttpResponse none;
  none.status = 204;
  none.content_type.clear();
  none.body = "ignored";  // a 204 has no body on the wire
  EXPECT_EQ(api::SerializeResponse(none, 11, true, "r"),
            "HTTP/1.1 204 No Content\r\nServer: syncwell\r\nX-Request-Id: r\r\n\r\n");

  api::HttpResponse odd;
  odd.status = 429;
  odd.body = "x";
  odd.headers = {{"Retry-After", "3"},
                 {"Server", "sim"},                   // replaces the default
                 {"Content-Length", "999"},           // framing is the server's
                 {"Transfer-Encoding", "chunked"},    // likewise
                 {"X-Evil", "a\r\nSet-Cookie: s=1"},  // would split the header block
                 {"Bad Name", "v"},                   // not a token
                 {"X-Nul", std::string("a\0b", 3)}};
  EXPECT_EQ(api::SerializeResponse(odd, 11, true, "r"),
            "HTTP/1.1 429 Too Many Requests\r\nX-Request-Id: r\r\n"
            "Content-Type: application/json\r\nRetry-After: 3\r\nServer: sim\r\n"
            "Content-Length: 1\r\n\r\nx");
}

TEST(NetUrlEncodeTest, KeepsUnreservedOnly) {
  EXPECT_EQ(UrlEncode("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(UrlEncode("a b/c?d=e&f+\xC3\xA9"), "a%20b%2Fc%3Fd%3De%26f%2B%C3%A9");
  EXPECT_EQ(FormEncode({{"a", "1"}, {"b c", "x=y"}}), "a=1&b%20c=x%3Dy");
  EXPECT_EQ(FormEncode({}), "");
}

}  // namespace
}  // namespace syncwell::net
