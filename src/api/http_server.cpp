// The server's only Beast translation unit (compile time: see MEASURED.md).
#include "api/http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "api/problem.hpp"
#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/http_syntax.hpp"
#include "core/log.hpp"
#include "core/random.hpp"

namespace syncwell::api {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;

Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 >= s.size()) {
    return MakeError(Errc::kInvalidArgument, "'" + s + "': expected HOST:PORT");
  }
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) return MakeError(Errc::kInvalidArgument, "'" + s + "': empty host");
  unsigned long port = 0;
  for (size_t i = colon + 1; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9')
      return MakeError(Errc::kInvalidArgument, "'" + s + "': port is not a number");
    port = port * 10 + static_cast<unsigned long>(s[i] - '0');
    if (port > 65535) return MakeError(Errc::kInvalidArgument, "'" + s + "': port above 65535");
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

std::string SerializeResponse(const HttpResponse& resp, unsigned version, bool keep_alive,
                              std::string_view request_id) {
  const auto status = static_cast<http::status>(resp.status);
  const bool bodiless =
      (resp.status >= 100 && resp.status < 200) || resp.status == 204 || resp.status == 304;
  const auto named = [&](std::string_view name) {
    return std::any_of(resp.headers.begin(), resp.headers.end(),
                       [&](const auto& h) { return beast::iequals(h.first, name); });
  };
  std::string out;
  out.reserve(160 + resp.body.size());
  out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out += std::to_string(resp.status);
  out += ' ';
  out += http::obsolete_reason(status);
  out += "\r\n";
  const auto add = [&](std::string_view name, std::string_view value) {
    if (!http_syntax::IsToken(name) || !http_syntax::IsFieldValue(value)) return;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  };
  if (!named("Server")) add("Server", "syncwell");
  if (!named("X-Request-Id")) add("X-Request-Id", request_id);
  if (!resp.content_type.empty() && !named("Content-Type")) add("Content-Type", resp.content_type);
  for (const auto& [k, v] : resp.headers) {
    if (beast::iequals(k, "content-length") || beast::iequals(k, "connection") ||
        beast::iequals(k, "transfer-encoding"))
      continue;  // framing is the server's
    add(k, v);
  }
  if (!bodiless) add("Content-Length", std::to_string(resp.body.size()));
  if (version >= 11 && !keep_alive) add("Connection", "close");
  if (version < 11 && keep_alive) add("Connection", "keep-alive");
  out += "\r\n";
  if (!bodiless) out += resp.body;
  return out;
}

namespace {

bool ValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  }
  return true;
}

awaitable<HttpResponse> RunHandler(const HttpServer::Handler* handler, HttpRequest req) {
  try {
    co_return (*handler)(req);
  } catch (const std::exception& e) {
    log::Error("handler exception", {{"request_id", req.request_id}, {"what", e.what()}});
    co_return Problem(500, code::kInternal, "internal error");
  }
}

void LogEscaped(const std::exception_ptr& e, const char* where) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log::Error("coroutine ended with an exception", {{"where", where}, {"what", ex.what()}});
  } catch (...) {
    log::Error("coroutine ended with an unknown exception", {{"where", where}});
  }
}

}  // namespace

class HttpServer::Impl {
 public:
  Impl(HttpServerSettings s, Handler h, obs::Registry& m)
      : settings_(std::move(s)),
        handler_(std::move(h)),
        metrics_(m),
        iocs_(MakeContexts(settings_.io_threads)),
        pool_(static_cast<size_t>(settings_.handler_threads)),
        acceptor_(*iocs_.front()) {
    connections_total_ =
        &m.GetCounter("syncwell_http_connections_total", "Accepted TCP connections");
    rejected_ = &m.GetCounter("syncwell_http_overload_rejections_total",
                              "Requests or connections refused with 503 because of overload");
    m.AddGauge("syncwell_http_open_connections", "Open client connections",
               [this] { return static_cast<double>(open_.load()); });
    m.AddGauge("syncwell_http_requests_in_flight", "Requests being handled",
               [this] { return static_cast<double>(queued_.load()); });
  }

  Status Start() {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(settings_.host, ec);
    if (ec)
      return MakeError(Errc::kInvalidArgument,
                       "listen address '" + settings_.host + "': " + ec.message());
    tcp::endpoint ep(addr, settings_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return MakeError(Errc::kUnavailable, "cannot listen on " + settings_.host + ":" +
                                               std::to_string(settings_.port) + ": " +
                                               ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(*iocs_.front(), Accept(), [](std::exception_ptr e) { LogEscaped(e, "accept"); });
    for (auto& ioc : iocs_) {
      guards_.push_back(asio::make_work_guard(*ioc));  // run() until Stop(), even with no socket
      threads_.emplace_back([ctx = ioc.get()] { ctx->run(); });
    }
    return {};
  }

  uint16_t port() const { return port_; }

  void Drain(std::chrono::milliseconds timeout) {
    draining_ = true;
    asio::post(*iocs_.front(), [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    {
      std::lock_guard lock(sessions_mu_);
      for (const auto& st : sessions_) CloseIfIdle(st);
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (open_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      std::lock_guard lock(sessions_mu_);
      for (const auto& st : sessions_) CloseIfIdle(st);
    }
    if (open_.load() > 0) log::Warn("drain timeout: closing connections with requests in flight");
  }

  void Stop() {
    if (stopped_.exchange(true)) return;
    for (auto& ioc : iocs_) ioc->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    guards_.clear();
    // No deferred response can start now (they start on I/O threads), but those started may
    // still complete: they post to their connection's io_context, which must outlive them. Their
    // work (a store write) always completes, even when the store stops.
    for (int waited_ms = 0; deferred_.load() > 0; ++waited_ms) {
      if (waited_ms % 5000 == 4999)
        log::Warn("stop: waiting for deferred responses",
                  {{"count", std::to_string(deferred_.load())}});
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    pool_.join();
  }

  void SetInlineHandler(InlineHandler h) { inline_handler_ = std::move(h); }

  ~Impl() { Stop(); }

 private:
  // One io_context per I/O thread, each run by that thread alone: a connection lives on one of
  // them (round robin at accept), so its handlers never run concurrently without a strand, and
  // the scheduler never wakes a second thread for a handler (with two threads on one io_context
  // those futex wake-ups were ~6% of the server's CPU in the end-to-end bench, session 11).
  static std::vector<std::unique_ptr<asio::io_context>> MakeContexts(int n) {
    std::vector<std::unique_ptr<asio::io_context>> v;
    for (int i = 0; i < std::max(1, n); ++i) v.push_back(std::make_unique<asio::io_context>(1));
    return v;
  }

  struct SessionState {
    asio::any_io_executor executor;       // the connection's io_context (one thread)
    beast::tcp_stream* stream = nullptr;  // null once the session has ended; on executor only
    bool busy = false;                    // executor only
  };

  void CloseIfIdle(const std::shared_ptr<SessionState>& st) {
    asio::post(st->executor, [st] {
      if (st->stream && !st->busy) {
        boost::system::error_code ec;
        st->stream->socket().shutdown(tcp::socket::shutdown_both, ec);
        st->stream->socket().close(ec);
      }
    });
  }

  awaitable<void> Accept() {
    for (;;) {
      asio::io_context& home = *iocs_[next_context_++ % iocs_.size()];
      auto [ec, sock] = co_await acceptor_.async_accept(home, asio::as_tuple(use_awaitable));
      if (ec) {
        if (draining_ || ec == asio::error::operation_aborted) co_return;
        log::Warn("accept failed", {{"error", ec.message()}});
        // EMFILE and friends: back off instead of spinning.
        asio::steady_timer t(*iocs_.front(), std::chrono::milliseconds(50));
        co_await t.async_wait(asio::as_tuple(use_awaitable));
        continue;
      }
      connections_total_->Inc();
      boost::system::error_code opt_ec;
      sock.set_option(tcp::no_delay(true), opt_ec);
      auto exec = sock.get_executor();
      asio::co_spawn(exec, Session(this, std::move(sock)),
                     [](std::exception_ptr e) { LogEscaped(e, "session"); });
    }
  }

  static awaitable<void> Session(Impl* self, tcp::socket sock) {
    auto state = std::make_shared<SessionState>();
    state->executor = sock.get_executor();
    beast::tcp_stream stream(std::move(sock));
    state->stream = &stream;
    self->open_++;
    {
      std::lock_guard lock(self->sessions_mu_);
      self->sessions_.insert(state);
    }
    if (self->open_.load() > self->settings_.max_connections) {
      self->rejected_->Inc();
      HttpResponse r = Problem(503, code::kUnavailable, "too many connections");
      r.headers.emplace_back("Retry-After", "1");
      co_await self->Write(stream, std::move(r), 11, false, "-", "-",
                           std::chrono::steady_clock::now(), 0);
    } else {
      co_await self->Serve(stream, *state);
    }
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    state->stream = nullptr;
    {
      std::lock_guard lock(self->sessions_mu_);
      self->sessions_.erase(state);
    }
    self->open_--;
  }

  awaitable<void> Serve(beast::tcp_stream& stream, SessionState& state) {
    beast::flat_buffer buffer;
    bool first = true;
    while (!draining_) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<uint32_t>(settings_.max_header_bytes));
      parser.body_limit(settings_.max_upload_bytes);
      stream.expires_after(first ? settings_.read_timeout : settings_.idle_timeout);
      first = false;
      auto [ec, n] =
          co_await http::async_read_header(stream, buffer, parser, asio::as_tuple(use_awaitable));
      const auto started = std::chrono::steady_clock::now();
      if (ec) {
        if (ec == http::error::header_limit) {
          co_await Write(stream, Problem(431, code::kHeadersTooLarge, "request headers too large"),
                         11, false, "-", "-", started, 0);
        } else if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
                   ec != asio::error::operation_aborted && ec != asio::error::connection_reset &&
                   ec != asio::error::eof && buffer.size() > 0) {
          co_await Write(stream,
                         Problem(400, code::kBadRequest, "malformed HTTP request: " + ec.message()),
                         11, false, "-", "-", started, 0);
        }
        co_return;
      }
      state.busy = true;
      auto& hdr = parser.get();
      const unsigned version = hdr.version();
      const std::string target(hdr.target());
      const bool upload = target.rfind("/v1/device-upload", 0) == 0;
      const size_t limit = upload ? settings_.max_upload_bytes : settings_.max_body_bytes;
      std::string request_id;
      if (auto it = hdr.find("x-request-id"); it != hdr.end() && ValidRequestId(it->value())) {
        request_id = std::string(it->value());
      } else {
        request_id = RandomToken(8);
      }
      if (hdr.has_content_length() && parser.content_length().value_or(0) > limit) {
        co_await RejectTooLarge(stream, limit, version, request_id,
                                std::string(hdr.method_string()), started);
        co_return;
      }
      parser.body_limit(limit);
      if (!parser.is_done()) {
        if (auto it = hdr.find(http::field::expect);
            it != hdr.end() && beast::iequals(it->value(), "100-continue")) {
          http::response<http::empty_body> cont{http::status::continue_, version};
          auto [wec, wn] = co_await http::async_write(stream, cont, asio::as_tuple(use_awaitable));
          if (wec) co_return;
        }
        stream.expires_after(settings_.read_timeout);
        auto [bec, bn] =
            co_await http::async_read(stream, buffer, parser, asio::as_tuple(use_awaitable));
        if (bec == http::error::body_limit) {
          co_await RejectTooLarge(stream, limit, version, request_id,
                                  std::string(hdr.method_string()), started);
          co_return;
        }
        if (bec) {
          if (bec != beast::error::timeout && bec != asio::error::eof &&
              bec != http::error::end_of_stream && bec != asio::error::connection_reset) {
            co_await Write(
                stream, Problem(400, code::kBadRequest, "malformed HTTP request: " + bec.message()),
                version, false, request_id, std::string(hdr.method_string()), started, 0);
          }
          co_return;
        }
      }
      stream.expires_never();
      auto msg = parser.release();
      const bool keep_alive = msg.keep_alive();
      HttpRequest req;
      req.method = std::string(msg.method_string());
      auto q = target.find('?');
      req.path = target.substr(0, q);
      if (q != std::string::npos) req.query = target.substr(q + 1);
      req.request_id = request_id;
      req.headers.reserve(16);
      for (const auto& f : msg) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        req.headers.emplace_back(std::move(name), std::string(f.value()));
      }
      const size_t bytes_in = msg.body().size();
      req.body = std::move(msg.body());

      HttpResponse resp;
      if (queued_.fetch_add(1) >= settings_.max_queued_requests) {
        rejected_->Inc();
        resp = Problem(503, code::kUnavailable, "server overloaded, retry shortly");
        resp.headers.emplace_back("Retry-After", "1");
      } else {
        HttpResponse now;
        DeferredResponse later;
        bool taken = false;
        if (inline_handler_) {
          try {
            taken = inline_handler_(req, now, later);
          } catch (const std::exception& e) {
            log::Error("inline handler exception",
                       {{"request_id", request_id}, {"what", e.what()}});
            taken = true;
            later = nullptr;
            now = Problem(500, code::kInternal, "internal error");
          }
        }
        if (!taken) {
          resp = co_await asio::co_spawn(pool_.get_executor(),
                                         RunHandler(&handler_, std::move(req)), use_awaitable);
        } else if (later) {
          resp = co_await AwaitDeferred(std::move(later));
        } else {
          resp = std::move(now);
        }
      }
      queued_--;
      const bool keep = keep_alive && !draining_;
      bool ok = co_await Write(stream, std::move(resp), version, keep, request_id,
                               std::string(msg.method_string()), started, bytes_in);
      state.busy = false;
      if (!ok || !keep) co_return;
    }
  }

  // Suspends the session until `later` completes; its completion (on whatever thread finished
  // the work) posts the response back to the session's thread. No thread waits meanwhile.
  awaitable<HttpResponse> AwaitDeferred(DeferredResponse later) {
    // Named locals only: GCC 12 mis-destroys non-trivial temporaries inside a co_await
    // expression (a lambda owning `later` there was destroyed twice).
    const asio::any_io_executor ex = co_await asio::this_coro::executor;
    DeferredResponse* const work = &later;  // the frame owns it until the response is back
    auto initiate = [this, &ex, work](auto handler) {
      deferred_.fetch_add(1);
      struct Pending {
        explicit Pending(decltype(handler) h) : resume(std::move(h)) {}
        decltype(handler) resume;
        std::atomic<bool> done{false};
      };
      auto p = std::make_shared<Pending>(std::move(handler));
      auto finish = [this, ex, p](HttpResponse r) {
        if (p->done.exchange(true)) return;  // a second call is a bug; ignore it
        asio::post(ex, [p, r = std::move(r)]() mutable { p->resume(std::move(r)); });
        deferred_.fetch_sub(1);
      };
      try {
        (*work)(finish);
      } catch (const std::exception& e) {
        log::Error("deferred response threw", {{"what", e.what()}});
        finish(Problem(500, code::kInternal, "internal error"));
      }
    };
    HttpResponse resp = co_await asio::async_initiate<decltype(use_awaitable), void(HttpResponse)>(
        initiate, use_awaitable);
    co_return resp;
  }

  awaitable<void> RejectTooLarge(beast::tcp_stream& stream, size_t limit, unsigned version,
                                 const std::string& request_id, const std::string& method,
                                 std::chrono::steady_clock::time_point started) {
    co_await Write(stream,
                   Problem(413, code::kPayloadTooLarge,
                           "body larger than " + std::to_string(limit) + " bytes"),
                   version, false, request_id, method, started, 0);
    co_await LingeringClose(stream);
  }

  // After an early error response (413) the client may still be sending its body; closing at once
  // would reset the connection before it reads our answer. Half-close, then discard what arrives
  // for a bounded time and volume (RFC 9112 §9.6 "lingering close").
  awaitable<void> LingeringClose(beast::tcp_stream& stream) {
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.expires_after(std::chrono::seconds(2));
    std::array<char, 16384> sink;
    size_t total = 0;
    while (total < (64u << 20)) {
      auto [rec, n] =
          co_await stream.async_read_some(asio::buffer(sink), asio::as_tuple(use_awaitable));
      if (rec) break;
      total += n;
    }
  }

  awaitable<bool> Write(beast::tcp_stream& stream, HttpResponse resp, unsigned version,
                        bool keep_alive, const std::string& request_id, const std::string& method,
                        std::chrono::steady_clock::time_point started, size_t bytes_in) {
    // One buffer, one send: Beast's response serializer (a field allocation per header, a
    // buffer sequence walked per write) cost more CPU than the bytes (see docs/BENCHMARKS.md).
    const size_t bytes_out = resp.body.size();
    const std::string wire = SerializeResponse(resp, version, keep_alive, request_id);
    stream.expires_after(settings_.read_timeout);
    auto [ec, n] =
        co_await asio::async_write(stream, asio::buffer(wire), asio::as_tuple(use_awaitable));
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    Record(resp.route, resp.status, secs);
    if (settings_.access_log && log::GetLevel() <= log::Level::kInfo) {
      std::string line = "{\"ts\":\"" + FormatRfc3339(std::chrono::system_clock::now()) +
                         "\",\"level\":\"info\",\"msg\":\"access\",\"request_id\":\"" + request_id +
                         "\",\"method\":\"";
      log::AppendJsonEscaped(line, method.substr(0, 16));
      line += "\",\"route\":\"" + resp.route + "\",\"status\":" + std::to_string(resp.status) +
              ",\"duration_ms\":" + std::to_string(secs * 1000.0) +
              ",\"bytes_in\":" + std::to_string(bytes_in) +
              ",\"bytes_out\":" + std::to_string(bytes_out);
      if (!resp.user_hash.empty()) line += ",\"user\":\"" + resp.user_hash + "\"";
      line += "}";
      log::WriteRaw(line);
    }
    co_return !ec;
  }

  // Per-thread cache of metric handles: the registry's map is only locked on first use.
  void Record(const std::string& route, int status, double secs) {
    thread_local std::unordered_map<std::string, obs::Counter*> counters;
    thread_local std::unordered_map<std::string, obs::Histogram*> hists;
    std::string key = route + "|" + std::to_string(status);
    auto it = counters.find(key);
    if (it == counters.end()) {
      std::string labels = "route=\"" + route + "\",status=\"" + std::to_string(status) + "\"";
      it = counters
               .emplace(key, &metrics_.GetCounter("syncwell_http_requests_total",
                                                  "HTTP requests by route and status", labels))
               .first;
    }
    it->second->Inc();
    auto hit = hists.find(route);
    if (hit == hists.end()) {
      hit = hists
                .emplace(route,
                         &metrics_.GetHistogram("syncwell_http_request_duration_seconds",
                                                "HTTP request latency (read end to write end)",
                                                "route=\"" + route + "\"", obs::LatencyBuckets()))
                .first;
    }
    hit->second->Observe(secs);
  }

  HttpServerSettings settings_;
  Handler handler_;
  InlineHandler inline_handler_;
  std::atomic<int> deferred_{0};  // deferred responses started and not yet completed
  obs::Registry& metrics_;
  std::vector<std::unique_ptr<asio::io_context>> iocs_;  // one per I/O thread
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  size_t next_context_ = 0;  // Accept() only
  asio::thread_pool pool_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<int> open_{0};
  std::atomic<int> queued_{0};
  std::mutex sessions_mu_;
  std::unordered_set<std::shared_ptr<SessionState>> sessions_;
  obs::Counter* connections_total_;
  obs::Counter* rejected_;
};

HttpServer::HttpServer(HttpServerSettings settings, Handler handler, obs::Registry& metrics)
    : impl_(std::make_unique<Impl>(std::move(settings), std::move(handler), metrics)) {}
HttpServer::~HttpServer() = default;
void HttpServer::SetInlineHandler(InlineHandler handler) {
  impl_->SetInlineHandler(std::move(handler));
}
Status HttpServer::Start() { return impl_->Start(); }
uint16_t HttpServer::port() const { return impl_->port(); }
void HttpServer::Drain(std::chrono::milliseconds timeout) { impl_->Drain(timeout); }
void HttpServer::Stop() { impl_->Stop(); }

}  // namespace syncwell::api
