#pragma once
// HttpServer: Boost.Beast HTTP/1.1 server on C++20 coroutines (the only Beast TU of the server).
//
// Threads: `io_threads` threads, each running an io_context of its own (all socket I/O); each
// accepted connection is given to one of them in turn and stays there, so its handlers run one
// at a time on that thread (an implicit strand). Each request is handed to a separate blocking
// pool of `handler_threads` threads that runs the Handler (which may call the store), and the
// coroutine resumes on the connection's thread to write. An InlineHandler, if
// set, sees each request first on the I/O thread: it may take it (answering at once or with a
// DeferredResponse whose completion resumes the coroutine on its thread: no pool thread, no
// blocked thread at all) or leave it to the pool. It must do only short, non-blocking work.
// Limits: header and body sizes (431/413), read and idle timeouts (slow clients are closed),
// max connections and max queued requests (503 + Retry-After when exceeded).
// Lifecycle: Start() binds and starts threads; Drain() stops accepting, closes idle keep-alive
// connections and waits (bounded) for in-flight requests; Stop() waits for every deferred
// response to have completed (they own the coroutines), then joins everything.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "api/http_types.hpp"
#include "core/result.hpp"
#include "obs/metrics.hpp"

namespace syncwell::api {

struct HttpServerSettings {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 = any free port (see port())
  int io_threads = 1;
  int handler_threads = 64;
  size_t max_body_bytes = 1 << 20;
  size_t max_upload_bytes = 10 << 20;  // for /v1/device-upload
  size_t max_header_bytes = 16 << 10;
  std::chrono::milliseconds read_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
  bool access_log = true;
  int max_connections = 10'000;
  int max_queued_requests = 4096;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Returns false to leave the request to the Handler pool. When it returns true, `later` set
  // means "answer with what it completes with", otherwise `now` is the answer.
  using InlineHandler =
      std::function<bool(const HttpRequest& req, HttpResponse& now, DeferredResponse& later)>;

  HttpServer(HttpServerSettings settings, Handler handler, obs::Registry& metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Before Start().
  void SetInlineHandler(InlineHandler handler);
  Status Start();
  uint16_t port() const;
  // Stops accepting and waits up to `timeout` for in-flight requests; then closes everything.
  void Drain(std::chrono::milliseconds timeout);
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "host:port" (IPv6 as "[::1]:8080"). Port must be 0-65535.
Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& s);

// The bytes of `resp` on the wire (status line, headers, body), as the server writes them in one
// send: `Server`, `X-Request-Id` and `Content-Type` unless `resp.headers` names them itself;
// `Content-Length` except on 1xx/204/304 (which carry no body); `Connection: close` when an
// HTTP/1.1 connection ends, `Connection: keep-alive` when an HTTP/1.0 one stays. A header name or
// value that would break the framing (CR, LF, NUL, or a name that is not a token) is dropped.
std::string SerializeResponse(const HttpResponse& resp, unsigned version, bool keep_alive,
                              std::string_view request_id);

}  // namespace syncwell::api
