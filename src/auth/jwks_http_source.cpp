// HttpJwksSource: the only translation unit in auth that includes Beast (each costs seconds to
// compile). The fetch runs as a coroutine on a private io_context that lives for one call, so
// callers stay synchronous; tcp_stream's expiry bounds connect/handshake/write/read and
// run_until() bounds the whole call (including DNS, which has no cancellation of its own).
#include <openssl/ssl.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <optional>

#include "auth/jwks.hpp"
#include "core/asio.hpp"  // first: the project's Asio configuration (STYLE §7)

namespace syncwell::auth {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using SteadyTime = std::chrono::steady_clock::time_point;

constexpr size_t kMaxBodyBytes = 1 << 20;

struct ParsedUrl {
  bool tls = false;
  std::string host;  // without brackets for IPv6
  std::string port;
  std::string host_header;  // host[:port] as sent in Host
  std::string target;       // path + query
};

Result<ParsedUrl> ParseUrl(std::string_view url) {
  ParsedUrl out;
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos)
    return MakeError(Errc::kInvalidArgument, "JWKS URL has no scheme");
  std::string scheme(url.substr(0, sep));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme == "https") {
    out.tls = true;
  } else if (scheme != "http") {
    return MakeError(Errc::kInvalidArgument, "JWKS URL must be http:// or https://");
  }
  std::string_view rest = url.substr(sep + 3);
  const size_t path_at = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path_at);
  std::string_view target = path_at == std::string_view::npos ? "/" : rest.substr(path_at);
  if (const size_t hash = target.find('#'); hash != std::string_view::npos)
    target = target.substr(0, hash);
  if (target.empty() || target[0] != '/')
    out.target = "/" + std::string(target);
  else
    out.target = std::string(target);
  if (authority.empty() || authority.find('@') != std::string_view::npos) {
    return MakeError(Errc::kInvalidArgument, "JWKS URL has a bad host");
  }
  std::string_view host = authority, port;
  if (authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return MakeError(Errc::kInvalidArgument, "JWKS URL has a bad host");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return MakeError(Errc::kInvalidArgument, "JWKS URL has a bad host");
      port = after.substr(1);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return MakeError(Errc::kInvalidArgument, "JWKS URL has a bad host");
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c)))
      return MakeError(Errc::kInvalidArgument, "JWKS URL has a bad port");
  }
  out.host = std::string(host);
  out.port = port.empty() ? (out.tls ? "443" : "80") : std::string(port);
  out.host_header = std::string(authority);
  return out;
}

struct FetchState {
  bool done = false;
  std::string body;
  std::optional<Error> error;
};

Error Unavailable(std::string what) { return MakeError(Errc::kUnavailable, "JWKS fetch: " + what); }

// Sends the GET and reads the response on an already connected (and handshaken) stream.
template <class Stream>
asio::awaitable<void> Exchange(Stream* stream, ParsedUrl url, FetchState* st) {
  http::request<http::empty_body> req{http::verb::get, url.target, 11};
  req.set(http::field::host, url.host_header);
  req.set(http::field::user_agent, "syncwell-jwks/1");
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");
  co_await http::async_write(*stream, req, asio::use_awaitable);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBodyBytes);
  co_await http::async_read(*stream, buffer, parser, asio::use_awaitable);
  auto& res = parser.get();
  if (res.result() != http::status::ok) {
    st->error = Unavailable("HTTP status " + std::to_string(res.result_int()));
  } else {
    st->body = std::move(res.body());
  }
}

asio::awaitable<void> DoFetch(ParsedUrl url, asio::ssl::context* tls, SteadyTime deadline,
                              FetchState* st) {
  try {
    auto ex = co_await asio::this_coro::executor;
    asio::ip::tcp::resolver resolver(ex);
    auto endpoints = co_await resolver.async_resolve(url.host, url.port, asio::use_awaitable);
    beast::tcp_stream tcp(ex);
    tcp.expires_at(deadline);  // one deadline for every following operation
    co_await tcp.async_connect(endpoints, asio::use_awaitable);
    if (!url.tls) {
      co_await Exchange(&tcp, url, st);
      beast::error_code ignored;
      tcp.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    } else {
      beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp), *tls);
      beast::get_lowest_layer(stream).expires_at(deadline);
      boost::system::error_code ip_ec;
      (void)asio::ip::make_address(url.host, ip_ec);
      // SNI only for names (RFC 6066 forbids IP literals); the identity check covers both.
      if (ip_ec && SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str()) != 1) {
        st->error = Unavailable("cannot set SNI");
        st->done = true;
        co_return;
      }
      stream.set_verify_callback(asio::ssl::host_name_verification(url.host));
      co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
      co_await Exchange(&stream, url, st);
      // No TLS shutdown: the whole body has been read (Content-Length/chunked framing), and a
      // close_notify round trip would only spend the deadline.
    }
  } catch (const boost::system::system_error& e) {
    st->error = Unavailable(e.code() == beast::error::timeout ? std::string("timeout")
                                                              : e.code().message());
  } catch (const std::exception& e) {
    st->error = Unavailable(e.what());
  }
  st->done = true;
}

}  // namespace

Result<std::string> HttpJwksSource::Fetch() {
  auto url = ParseUrl(url_);
  if (!url.ok()) return url.error();
  const SteadyTime deadline = std::chrono::steady_clock::now() + timeout_;

  FetchState st;
  std::optional<asio::ssl::context> tls;
  if (url->tls) {
    tls.emplace(asio::ssl::context::tls_client);
    boost::system::error_code ec;
    tls->set_default_verify_paths(ec);
    if (ec) return Unavailable("cannot load system CA certificates: " + ec.message());
    tls->set_verify_mode(asio::ssl::verify_peer);
  }
  {
    // Declared after st and tls so it is destroyed first, together with any unfinished
    // coroutine frame that still points at them.
    asio::io_context ioc(1);
    asio::co_spawn(ioc, DoFetch(*url, tls ? &*tls : nullptr, deadline, &st),
                   [&st](std::exception_ptr e) {
                     if (e && !st.done) {
                       st.error = Unavailable("unexpected exception");
                       st.done = true;
                     }
                   });
    ioc.run_until(deadline + std::chrono::milliseconds{100});
    if (!st.done) {
      ioc.stop();
      return Unavailable("timeout");
    }
  }
  if (st.error) return *st.error;
  return std::move(st.body);
}

}  // namespace syncwell::auth
