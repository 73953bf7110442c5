// syncwell_http_client_bench: CPU per call of net::HttpClient (what every provider request costs
// a worker) against a bare HTTP server, next to a baseline in the same run: the same requests
// written and read with blocking socket calls and no framework (the floor for one keep-alive
// request/response on this machine).
//
//   syncwell_http_client_bench --url http://127.0.0.1:PORT/ [--calls N] [--threads T]
//
// Prints calls/s and CPU µs per call (process CPU / calls, client side only) for both. Start
// `syncwell_baseline_server --port 0 --threads 1` first (bench/README.md).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.hpp"

namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct Figures {
  double per_s = 0;
  double cpu_us = 0;
  long failures = 0;
};

template <class Body>
Figures Run(int threads, long calls, Body body) {
  std::atomic<long> failures{0};
  const double cpu0 = CpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      for (long i = 0; i < calls / threads; ++i)
        if (!body()) failures.fetch_add(1);
    });
  }
  for (auto& t : ts) t.join();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  return {static_cast<double>(calls) / wall, cpu * 1e6 / static_cast<double>(calls),
          failures.load()};
}

// One keep-alive connection per thread, raw send/recv: the request bytes the client would send,
// reading until the fixed-length response is complete.
bool RawCall(int fd, const std::string& request, std::string& buf) {
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size()))
    return false;
  buf.clear();
  char chunk[4096];
  for (;;) {
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
    const size_t end = buf.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    const size_t cl = buf.find("Content-Length: ");
    const size_t len =
        cl == std::string::npos ? 0 : std::strtoul(buf.c_str() + cl + 16, nullptr, 10);
    if (buf.size() >= end + 4 + len) return true;
  }
}

// The raw baseline's connection and buffer, per thread.
thread_local int tl_fd = -1;
thread_local std::string tl_buf;

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  long calls = 20000;
  int threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--url") url = argv[i + 1];
    if (a == "--calls") calls = std::atol(argv[i + 1]);
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
  }
  unsigned port = 0;
  if (url.empty() || std::sscanf(url.c_str(), "http://127.0.0.1:%u/", &port) != 1) {
    std::fprintf(stderr,
                 "usage: syncwell_http_client_bench --url http://127.0.0.1:PORT/ "
                 "[--calls N] [--threads T]\n");
    return 2;
  }
  auto client = syncwell::net::MakeHttpClient();
  syncwell::net::HttpCall call;
  call.url = url;
  const Figures ours = Run(threads, calls, [&] {
    auto r = client->Send(call);
    return r.ok() && r->status == 200;
  });

  const std::string request = "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                              "\r\nUser-Agent: SyncWell-Engine/0.1\r\n\r\n";
  std::vector<int> fds;
  std::atomic<int> next{0};
  for (int t = 0; t < threads; ++t) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 1;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fds.push_back(fd);
  }
  const Figures raw = Run(threads, calls, [&] {
    if (tl_fd < 0) tl_fd = fds[static_cast<size_t>(next.fetch_add(1))];
    return RawCall(tl_fd, request, tl_buf);
  });
  for (int fd : fds) close(fd);

  std::printf("net::HttpClient  %9.0f calls/s  %6.1f us CPU/call  failures %ld\n", ours.per_s,
              ours.cpu_us, ours.failures);
  std::printf("raw send/recv    %9.0f calls/s  %6.1f us CPU/call  failures %ld\n", raw.per_s,
              raw.cpu_us, raw.failures);
  std::printf("ratio            %9.2f calls/s  %6.2f CPU per call (client / raw)\n",
              ours.per_s / raw.per_s, ours.cpu_us / raw.cpu_us);
  return ours.failures == 0 && raw.failures == 0 ? 0 : 1;
}
