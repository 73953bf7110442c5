// BeastHttpClient: net's only Beast translation unit (each costs seconds to compile).
//
// Design: every pooled Connection owns a private io_context next to its socket, so a calling
// thread drives exactly the I/O of the connection it holds and connections move freely between
// threads through the pool (one owner at a time, the pool mutex hands them over). Connect, the
// TLS handshake and TLS exchanges run as coroutines on that io_context; beast::tcp_stream's
// expiry (one absolute deadline per call) bounds them, and run_one_until() bounds the loop as a
// safety net. A plain-HTTP exchange is a blocking one: Beast's synchronous write and read on a
// DeadlineStream, whose every wait is one poll(2) bounded by what is left of the deadline (the
// calling thread waits anyway; the coroutine, its frame, the reactor and the stream's timer
// cost 15-30% of the client's CPU per call, see docs/BENCHMARKS.md, session 15). DNS
// has no cancellation, so names are resolved on a detached helper thread and the caller only
// waits until its deadline (IP literals skip the resolver entirely).
//
// Error messages name scheme://host:port only: paths and queries may carry tokens.
#include "net/http_client.hpp"

#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "core/asio.hpp"  // the project's Asio configuration (STYLE §7)
#include "core/http_syntax.hpp"
#include "core/log.hpp"

namespace syncwell::net {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;
// A request on the wire: the request line and headers, then the caller's body (not copied).
struct Request {
  std::string head;
  const std::string* body = nullptr;
  std::array<asio::const_buffer, 2> Buffers() const {
    return {asio::buffer(head), asio::buffer(*body)};
  }
};

constexpr uint32_t kMaxHeaderBytes = 64 << 10;
// Idle connections older than this are dropped instead of reused: servers commonly close idle
// keep-alive connections after 60 s and a connection closed in flight costs a retry.
constexpr std::chrono::seconds kMaxIdleAge{50};
// After the deadline the stream's own timer has already fired; this only guards the loop.
constexpr std::chrono::milliseconds kRunGrace{50};

// ---------------------------------------------------------------------------------------------
// URL parsing and request validation

struct Target {
  bool tls = false;
  std::string host;  // without brackets for IPv6
  std::string port;
  std::string host_header;  // host[:port] as sent in Host
  std::string target;       // path + query
  std::string key;          // scheme://host:port, the pool key and the name used in messages
};

Error BadUrl(std::string what) { return MakeError(Errc::kInvalidArgument, "bad URL: " + what); }

// Visible ASCII only: no spaces, controls or bytes >= 0x80 in a request target.
bool IsTargetText(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
  }
  return true;
}

Result<Target> ParseUrl(std::string_view url) {
  Target out;
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return BadUrl("no scheme");
  std::string scheme(url.substr(0, sep));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme == "https") {
    out.tls = true;
  } else if (scheme != "http") {
    return BadUrl("scheme must be http or https");
  }
  std::string_view rest = url.substr(sep + 3);
  const size_t path_at = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, path_at);
  std::string_view target = path_at == std::string_view::npos ? "/" : rest.substr(path_at);
  if (const size_t hash = target.find('#'); hash != std::string_view::npos)
    target = target.substr(0, hash);
  out.target =
      (target.empty() || target[0] != '/') ? "/" + std::string(target) : std::string(target);
  if (!IsTargetText(out.target)) return BadUrl("path or query has invalid characters");
  if (authority.empty()) return BadUrl("no host");
  if (authority.find('@') != std::string_view::npos) return BadUrl("user info not supported");
  std::string_view host = authority, port;
  if (authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return BadUrl("unterminated IPv6 literal");
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return BadUrl("bad host");
      port = after.substr(1);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return BadUrl("no host");
  for (char c : host) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '/' || c == '\\') return BadUrl("bad host");
  }
  if (port.size() > 5) return BadUrl("bad port");
  unsigned port_num = 0;
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return BadUrl("bad port");
    port_num = port_num * 10 + static_cast<unsigned>(c - '0');
  }
  if (!port.empty() && (port_num == 0 || port_num > 65535)) return BadUrl("bad port");
  out.host = std::string(host);
  out.port = port.empty() ? (out.tls ? "443" : "80") : std::to_string(port_num);
  out.host_header = std::string(authority);
  std::string lower_host = out.host;
  for (char& c : lower_host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool v6 = authority.front() == '[';
  out.key = scheme + "://" + (v6 ? "[" + lower_host + "]" : lower_host) + ":" + out.port;
  return out;
}

bool IsReservedHeader(std::string_view name) {
  return beast::iequals(name, "host") || beast::iequals(name, "content-length") ||
         beast::iequals(name, "connection") || beast::iequals(name, "transfer-encoding");
}

// Methods that may be replayed after the request was (possibly) delivered (RFC 9110 §9.2.2),
// and requests that carry an idempotency key.
bool IsReplayable(const HttpCall& call) {
  static constexpr std::string_view kIdempotent[] = {"GET",   "HEAD", "OPTIONS",
                                                     "TRACE", "PUT",  "DELETE"};
  for (auto m : kIdempotent) {
    if (call.method == m) return true;
  }
  for (const auto& [k, v] : call.headers) {
    if (beast::iequals(k, "idempotency-key")) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Connections

class Connection {
 public:
  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  beast::tcp_stream& Lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

  // Declared first: destroyed last, after the streams that use it.
  asio::io_context ioc{1};
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  SteadyTime idle_since{};
};

// An idle connection is worth reusing only if the peer has not closed it meanwhile. A peek that
// never blocks tells: 0 = orderly close, EAGAIN = nothing pending (alive). Pending bytes on a
// plain connection are unsolicited (the previous response was complete) -> unusable; on TLS they
// may be post-handshake records (session tickets), which the next read consumes.
bool LooksAlive(Connection& c) {
  auto& sock = c.Lowest().socket();
  if (!sock.is_open() || c.buffer.size() > 0) return false;
  char byte;
  const ssize_t n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;
  if (n > 0) return c.tls.has_value();
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

struct StepState {
  bool done = false;
  boost::system::error_code ec;
};

struct ExchangeState {
  bool done = false;
  bool wrote = false;      // the whole request was written
  bool got_bytes = false;  // any byte of a response arrived
  bool body_too_large = false;
  bool keep_alive = false;
  boost::system::error_code ec;
  HttpResult result;
};

asio::awaitable<void> ConnectTcp(beast::tcp_stream* stream, std::vector<tcp::endpoint> endpoints,
                                 StepState* st) {
  auto [ec, ep] = co_await stream->async_connect(endpoints, asio::as_tuple(asio::use_awaitable));
  (void)ep;
  if (!ec) {
    boost::system::error_code ignored;
    stream->socket().set_option(tcp::no_delay(true), ignored);
  }
  st->ec = ec;
  st->done = true;
}

asio::awaitable<void> Handshake(beast::ssl_stream<beast::tcp_stream>* stream, StepState* st) {
  auto [ec] = co_await stream->async_handshake(ssl::stream_base::client,
                                               asio::as_tuple(asio::use_awaitable));
  st->ec = ec;
  st->done = true;
}

using ResponseParser = http::response_parser<http::string_body>;

void Prepare(ResponseParser& parser, size_t body_limit, bool head) {
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(body_limit);
  if (head) parser.skip(true);
}

// After one response was read (or failed): records it in `st`. Returns true when it was an
// interim (1xx) response, so the caller reads the final one.
bool TakeResponse(ResponseParser& parser, const boost::system::error_code& ec,
                  const beast::flat_buffer& buffer, ExchangeState* st) {
  if (parser.got_some()) st->got_bytes = true;
  if (ec) {
    st->body_too_large = ec == http::error::body_limit;
    st->ec = ec;
    return false;
  }
  auto msg = parser.release();
  const int status = static_cast<int>(msg.result_int());
  if (status >= 100 && status < 200 && status != 101) return true;
  st->result.status = status;
  st->result.headers.reserve(16);
  for (const auto& f : msg) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    st->result.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  st->result.body = std::move(msg.body());
  st->keep_alive = msg.keep_alive() && status != 101 && buffer.size() == 0;
  return false;
}

// After the request was written (or failed): false when the exchange ends here.
bool TakeWrite(const boost::system::error_code& ec, ExchangeState* st) {
  if (ec) {
    st->ec = ec;
    st->done = true;
    return false;
  }
  st->wrote = true;
  return true;
}

template <class Stream>
asio::awaitable<void> Exchange(Stream* stream, beast::flat_buffer* buffer, const Request* req,
                               size_t body_limit, bool head, ExchangeState* st) {
  auto [wec, wn] =
      co_await asio::async_write(*stream, req->Buffers(), asio::as_tuple(asio::use_awaitable));
  (void)wn;
  if (!TakeWrite(wec, st)) co_return;
  for (;;) {
    ResponseParser parser;
    Prepare(parser, body_limit, head);
    auto [rec, rn] =
        co_await http::async_read(*stream, *buffer, parser, asio::as_tuple(asio::use_awaitable));
    (void)rn;
    if (!TakeResponse(parser, rec, *buffer, st)) break;
  }
  st->done = true;
}

// A connected non-blocking socket seen as a blocking Beast SyncReadStream/SyncWriteStream with
// one absolute deadline: each call tries the system call first and waits in poll(2) only when
// it would block, for at most what is left until the deadline (then beast::error::timeout).
class DeadlineStream {
 public:
  DeadlineStream(int fd, SteadyTime deadline) : fd_(fd), deadline_(deadline) {}

  template <class Buffers>
  size_t read_some(const Buffers& buffers, boost::system::error_code& ec) {
    return Io(buffers, POLLIN, ec, [this](msghdr* m) { return ::recvmsg(fd_, m, 0); });
  }
  template <class Buffers>
  size_t write_some(const Buffers& buffers, boost::system::error_code& ec) {
    return Io(buffers, POLLOUT, ec, [this](msghdr* m) { return ::sendmsg(fd_, m, MSG_NOSIGNAL); });
  }
  template <class Buffers>
  size_t read_some(const Buffers& buffers) {
    boost::system::error_code ec;
    const size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  template <class Buffers>
  size_t write_some(const Buffers& buffers) {
    boost::system::error_code ec;
    const size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  template <class Buffers, class Call>
  size_t Io(const Buffers& buffers, short events, boost::system::error_code& ec, Call call) {
    std::array<iovec, 16> iov{};
    size_t count = 0;
    for (auto it = asio::buffer_sequence_begin(buffers);
         it != asio::buffer_sequence_end(buffers) && count < iov.size(); ++it) {
      asio::const_buffer b(*it);
      if (b.size() == 0) continue;
      iov[count++] = iovec{const_cast<void*>(b.data()), b.size()};
    }
    ec = {};
    if (count == 0) return 0;
    msghdr m{};
    m.msg_iov = iov.data();
    m.msg_iovlen = count;
    for (;;) {
      const ssize_t n = call(&m);
      if (n > 0) return static_cast<size_t>(n);
      if (n == 0) {  // the peer closed (a write of a non-empty buffer never returns 0)
        ec = asio::error::eof;
        return 0;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        ec.assign(errno, boost::system::system_category());
        return 0;
      }
      if (!Wait(events, ec)) return 0;
    }
  }

  bool Wait(short events, boost::system::error_code& ec) {
    for (;;) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(
          deadline_ - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        ec = beast::error::timeout;
        return false;
      }
      pollfd p{fd_, events, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 60'000)));
      if (r > 0) return true;  // ready, or an error the next system call reports
      if (r < 0 && errno != EINTR) {
        ec.assign(errno, boost::system::system_category());
        return false;
      }
    }
  }

  int fd_;
  SteadyTime deadline_;
};

// The plain-HTTP exchange, blocking on the calling thread (see the file comment).
void ExchangeBlocking(DeadlineStream& stream, beast::flat_buffer* buffer, const Request& req,
                      size_t body_limit, bool head, ExchangeState* st) {
  boost::system::error_code ec;
  asio::write(stream, req.Buffers(), ec);
  if (!TakeWrite(ec, st)) return;
  for (;;) {
    ResponseParser parser;
    Prepare(parser, body_limit, head);
    http::read(stream, *buffer, parser, ec);
    if (!TakeResponse(parser, ec, *buffer, st)) break;
  }
  st->done = true;
}

// Runs the connection's io_context until `done` or the deadline. On the deadline the socket is
// closed (cancelling the pending operation) and the coroutine is left to unwind, so no frame
// outlives the call. Returns false when the deadline cut the step short.
bool RunUntil(Connection& c, SteadyTime deadline, const bool& done) {
  c.ioc.restart();
  while (!done) {
    if (c.ioc.run_one_until(deadline + kRunGrace) == 0) break;
  }
  if (done) return true;
  beast::error_code ignored;
  c.Lowest().socket().close(ignored);
  c.ioc.restart();
  while (!done && c.ioc.run_one_for(std::chrono::seconds(1)) > 0) {
  }
  return false;
}

bool IsTimeout(const boost::system::error_code& ec) {
  return ec == beast::error::timeout || ec == asio::error::timed_out;
}

// The peer closed or reset the connection (what a server closing an idle connection looks like).
bool IsPeerClosed(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated;
}

struct ResolveShared {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  boost::system::error_code ec;
  std::vector<tcp::endpoint> endpoints;
};

// ---------------------------------------------------------------------------------------------

class BeastHttpClient final : public HttpClient {
 public:
  explicit BeastHttpClient(HttpClientSettings settings) : settings_(std::move(settings)) {}

  Result<HttpResult> Send(const HttpCall& call) override {
    auto target = ParseUrl(call.url);
    if (!target.ok()) return target.error();
    if (!http_syntax::IsToken(call.method))
      return MakeError(Errc::kInvalidArgument, "bad HTTP method");
    for (const auto& [k, v] : call.headers) {
      if (!http_syntax::IsToken(k) || !http_syntax::IsFieldValue(v))
        return MakeError(Errc::kInvalidArgument, "bad request header");
    }
    if (call.timeout.count() <= 0) return MakeError(Errc::kInvalidArgument, "timeout must be > 0");
    if (target->tls && !Tls()) return Fail(*target, tls_error_);

    const SteadyTime deadline = std::chrono::steady_clock::now() + call.timeout;
    const Request req = BuildRequest(call, *target);
    const bool head = call.method == "HEAD";

    for (int attempt = 0;; ++attempt) {
      std::unique_ptr<Connection> conn = TakeIdle(target->key);
      const bool reused = conn != nullptr;
      if (!conn) {
        auto opened = Open(*target, deadline);
        if (!opened.ok()) return opened.error();
        conn = std::move(opened.value());
      }
      ExchangeState st;
      conn->buffer.clear();
      bool in_time = true;
      if (!conn->tls) {
        DeadlineStream stream(conn->plain->socket().native_handle(), deadline);
        ExchangeBlocking(stream, &conn->buffer, req, settings_.max_response_bytes, head, &st);
        in_time = !IsTimeout(st.ec);
      } else {
        asio::co_spawn(
            conn->ioc,
            Exchange(&*conn->tls, &conn->buffer, &req, settings_.max_response_bytes, head, &st),
            [&st](std::exception_ptr e) { OnEscaped(e, &st.done); });
        conn->Lowest().expires_at(deadline);
        in_time = RunUntil(*conn, deadline, st.done);
      }
      if (in_time && !st.ec && st.result.status != 0) {
        if (st.keep_alive) {
          if (conn->tls) conn->Lowest().expires_never();
          Release(target->key, std::move(conn));
        }
        return std::move(st.result);
      }
      conn.reset();  // never reuse a connection after an error
      if (!in_time || IsTimeout(st.ec)) return Fail(*target, "timeout");
      if (st.body_too_large) {
        return Fail(*target, "response body larger than " +
                                 std::to_string(settings_.max_response_bytes) + " bytes");
      }
      // A reused connection that the server closed while it sat idle: retry once on a fresh
      // one, but only if the request cannot have been processed (not fully written) or may be
      // replayed safely.
      if (attempt == 0 && reused && !st.got_bytes && IsPeerClosed(st.ec) &&
          (!st.wrote || IsReplayable(call)) && std::chrono::steady_clock::now() < deadline) {
        continue;
      }
      if (st.ec)
        return Fail(*target,
                    st.got_bytes ? "truncated response: " + st.ec.message() : st.ec.message());
      return Fail(*target, "no response");
    }
  }

 private:
  // Completion of every co_spawn: the steps report errors through their state, so an exception
  // here is a bug (or bad_alloc); it is logged and the call fails as "no response".
  static void OnEscaped(const std::exception_ptr& e, bool* done) {
    if (!e) return;
    *done = true;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      log::Error("net: exception escaped an HTTP call", {{"what", ex.what()}});
    } catch (...) {
      log::Error("net: exception escaped an HTTP call");
    }
  }

  static Error Fail(const Target& t, const std::string& what) {
    return MakeError(Errc::kRetryable, "HTTP " + t.key + ": " + what);
  }

  // Written by hand, not through Beast's request serializer (a field allocation per header):
  // Send() already refused methods and header names that are not tokens and values with CR, LF
  // or NUL. Framing headers are the client's; Content-Length as Beast's prepare_payload() sets
  // it (always with a body; on an empty POST, PUT or OPTIONS as 0; else none).
  Request BuildRequest(const HttpCall& call, const Target& t) const {
    Request req;
    req.body = &call.body;
    std::string& h = req.head;
    h.reserve(128 + t.target.size() + call.headers.size() * 48);
    h += call.method;
    h += ' ';
    h += t.target;
    h += " HTTP/1.1\r\nHost: ";
    h += t.host_header;
    h += "\r\n";
    bool has_agent = false;
    for (const auto& [k, v] : call.headers) {
      if (IsReservedHeader(k)) continue;
      if (beast::iequals(k, "user-agent")) has_agent = true;
      h += k;
      h += ": ";
      h += v;
      h += "\r\n";
    }
    if (!has_agent && !settings_.user_agent.empty() &&
        http_syntax::IsFieldValue(settings_.user_agent)) {
      h += "User-Agent: ";
      h += settings_.user_agent;
      h += "\r\n";
    }
    if (!call.body.empty() || call.method == "POST" || call.method == "PUT" ||
        call.method == "OPTIONS") {
      h += "Content-Length: ";
      h += std::to_string(call.body.size());
      h += "\r\n";
    }
    h += "\r\n";
    return req;
  }

  std::unique_ptr<Connection> TakeIdle(const std::string& key) {
    std::vector<std::unique_ptr<Connection>> dead;  // destroyed outside the lock
    std::unique_ptr<Connection> found;
    const SteadyTime now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mu_);
      auto it = idle_.find(key);
      if (it == idle_.end()) return nullptr;
      auto& list = it->second;
      while (!list.empty()) {
        std::unique_ptr<Connection> c = std::move(list.back());  // most recently used first
        list.pop_back();
        if (now - c->idle_since < kMaxIdleAge && LooksAlive(*c)) {
          found = std::move(c);
          break;
        }
        dead.push_back(std::move(c));
      }
    }
    return found;
  }

  void Release(const std::string& key, std::unique_ptr<Connection> c) {
    c->idle_since = std::chrono::steady_clock::now();
    std::lock_guard lock(mu_);
    auto& list = idle_[key];
    if (list.size() < settings_.max_idle_per_host) list.push_back(std::move(c));
    // else the surplus connection is closed when `c` goes out of scope
  }

  Result<std::vector<tcp::endpoint>> Resolve(const Target& t, SteadyTime deadline) {
    const auto port = static_cast<uint16_t>(std::stoul(t.port));
    boost::system::error_code ec;
    const auto addr = asio::ip::make_address(t.host, ec);
    if (!ec) return std::vector<tcp::endpoint>{tcp::endpoint(addr, port)};

    auto shared = std::make_shared<ResolveShared>();
    try {
      std::thread([shared, host = t.host, service = t.port] {
        asio::io_context ioc(1);
        tcp::resolver resolver(ioc);
        boost::system::error_code rec;
        auto results = resolver.resolve(host, service, rec);
        std::lock_guard lock(shared->mu);
        shared->ec = rec;
        for (const auto& r : results) shared->endpoints.push_back(r.endpoint());
        shared->done = true;
        shared->cv.notify_all();
      }).detach();
    } catch (const std::system_error&) {
      return Fail(t, "cannot start the resolver");
    }
    std::unique_lock lock(shared->mu);
    if (!shared->cv.wait_until(lock, deadline, [&] { return shared->done; }))
      return Fail(t, "timeout (DNS)");
    if (shared->ec) return Fail(t, "DNS: " + shared->ec.message());
    if (shared->endpoints.empty()) return Fail(t, "DNS: no addresses");
    return std::move(shared->endpoints);
  }

  Result<std::unique_ptr<Connection>> Open(const Target& t, SteadyTime deadline) {
    auto endpoints = Resolve(t, deadline);
    if (!endpoints.ok()) return endpoints.error();
    auto c = std::make_unique<Connection>();
    beast::tcp_stream* tcp_stream = nullptr;
    if (t.tls) {
      c->tls.emplace(c->ioc, *tls_ctx_);
      tcp_stream = &beast::get_lowest_layer(*c->tls);
    } else {
      c->plain.emplace(c->ioc);
      tcp_stream = &*c->plain;
    }
    tcp_stream->expires_at(deadline);
    StepState st;
    asio::co_spawn(c->ioc, ConnectTcp(tcp_stream, std::move(endpoints.value()), &st),
                   [&st](std::exception_ptr e) { OnEscaped(e, &st.done); });
    if (!RunUntil(*c, deadline, st.done) || IsTimeout(st.ec)) return Fail(t, "timeout (connect)");
    if (st.ec) return Fail(t, "connect: " + st.ec.message());
    if (!st.done) return Fail(t, "connect failed");
    if (!t.tls) {
      boost::system::error_code nb_ec;  // DeadlineStream waits in poll(2), never in a call
      tcp_stream->socket().non_blocking(true, nb_ec);
      if (nb_ec) return Fail(t, "connect: " + nb_ec.message());
    } else {
      boost::system::error_code ip_ec;
      (void)asio::ip::make_address(t.host, ip_ec);
      // SNI only for names (RFC 6066 forbids IP literals); the identity check covers both.
      if (ip_ec && SSL_set_tlsext_host_name(c->tls->native_handle(), t.host.c_str()) != 1)
        return Fail(t, "cannot set SNI");
      c->tls->set_verify_callback(ssl::host_name_verification(t.host));
      StepState hs;
      asio::co_spawn(c->ioc, Handshake(&*c->tls, &hs),
                     [&hs](std::exception_ptr e) { OnEscaped(e, &hs.done); });
      if (!RunUntil(*c, deadline, hs.done) || IsTimeout(hs.ec))
        return Fail(t, "timeout (TLS handshake)");
      if (hs.ec) return Fail(t, "TLS handshake: " + hs.ec.message());
      if (!hs.done) return Fail(t, "TLS handshake failed");
    }
    return c;
  }

  // The TLS context, made on the first https:// call: loading the system CA store costs tens
  // of milliseconds (~190 ms per client with 8 threads making clients at once, measured), which
  // a client that only speaks plain HTTP (the demo, the simulator, tests) should not pay.
  // nullptr when the CA store cannot be loaded (tls_error_ says why).
  ssl::context* Tls() {
    std::call_once(tls_once_, [this] {
      tls_ctx_.emplace(ssl::context::tls_client);
      boost::system::error_code ec;
      tls_ctx_->set_default_verify_paths(ec);
      if (ec) tls_error_ = "cannot load the system CA certificates: " + ec.message();
      tls_ctx_->set_verify_mode(ssl::verify_peer);
      SSL_CTX_set_min_proto_version(tls_ctx_->native_handle(), TLS1_2_VERSION);
    });
    return tls_error_.empty() ? &*tls_ctx_ : nullptr;
  }

  const HttpClientSettings settings_;
  std::once_flag tls_once_;
  std::optional<ssl::context> tls_ctx_;  // set once by Tls(), then read-only
  std::string tls_error_;                // set once by Tls(), then read-only
  std::mutex mu_;
  std::map<std::string, std::deque<std::unique_ptr<Connection>>> idle_;
};

}  // namespace

std::unique_ptr<HttpClient> MakeHttpClient(HttpClientSettings settings) {
  return std::make_unique<BeastHttpClient>(std::move(settings));
}

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out += '&';
    out += UrlEncode(k);
    out += '=';
    out += UrlEncode(v);
  }
  return out;
}

}  // namespace syncwell::net
