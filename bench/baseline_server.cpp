// syncwell_baseline_server: the "practical HTTP ceiling" that benchmarks compare against in the
// same run. A bare Boost.Beast C++20-coroutine server answering every request with a fixed 200 and
// a small JSON body, keep-alive, N threads on one io_context, listening on 127.0.0.1.
//
//   syncwell_baseline_server [--port P] [--threads N] [--address A]
//
// Port 0 picks a free port. Prints "listening 127.0.0.1:PORT" on stdout once accepting. Stops on
// SIGINT/SIGTERM.
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/asio.hpp"
#include "core/log.hpp"

namespace {

namespace asio = syncwell::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kBody = R"({"status":"ok","service":"baseline"})";

struct SpawnDone {
  const char* what;
  void operator()(std::exception_ptr e) const {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      syncwell::log::Error("baseline coroutine failed",
                           {{"coroutine", what}, {"error", ex.what()}});
    }
  }
};

asio::awaitable<void> Session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  stream.socket().set_option(tcp::no_delay(true));
  beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> req;
    stream.expires_after(std::chrono::seconds(60));  // idle keep-alive limit
    auto [ec, n] = co_await http::async_read(stream, buffer, req, kUseTuple);
    if (ec) break;
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "syncwell-baseline");
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = kBody;
    res.prepare_payload();
    auto [wec, wn] = co_await http::async_write(stream, res, kUseTuple);
    if (wec || !res.keep_alive()) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> Listen(tcp::acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kUseTuple);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) continue;  // e.g. EMFILE: keep serving the connections we have
    asio::co_spawn(acceptor.get_executor(), Session(std::move(socket)), SpawnDone{"session"});
  }
}

bool ParseInt(std::string_view s, int* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  int threads = 1;
  std::string address = "127.0.0.1";
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--port" && has_value && ParseInt(argv[i + 1], &port)) {
      ++i;
    } else if (a == "--threads" && has_value && ParseInt(argv[i + 1], &threads)) {
      ++i;
    } else if (a == "--address" && has_value) {
      address = argv[++i];
    } else {
      std::cerr << "usage: syncwell_baseline_server [--port P] [--threads N] [--address A]\n";
      return 2;
    }
  }
  if (threads < 1 || threads > 64 || port < 0 || port > 65535) {
    std::cerr << "bad --threads or --port\n";
    return 2;
  }

  asio::io_context ioc(threads);
  tcp::acceptor acceptor(ioc);
  try {
    const tcp::endpoint ep(asio::ip::make_address(address), static_cast<unsigned short>(port));
    acceptor.open(ep.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(asio::socket_base::max_listen_connections);
  } catch (const std::exception& e) {
    std::cerr << "cannot listen on " << address << ':' << port << ": " << e.what() << '\n';
    return 1;
  }
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    ioc.stop();
  });
  asio::co_spawn(ioc, Listen(acceptor), SpawnDone{"listen"});
  std::cout << "listening " << address << ':' << acceptor.local_endpoint().port() << std::endl;

  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : pool) t.join();
  return 0;
}
