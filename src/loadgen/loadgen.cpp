// The load engine: the only loadgen translation unit that includes Asio (STYLE §18). Plain Asio
// sockets and the hand-written parser in response_parser.hpp; no Beast.
//
// Threading: RunLoadgen() starts `threads` Workers, each on its own thread with its own
// io_context, connection pool, share of the schedule and RunStats. A Worker's state is touched
// only by coroutines on its io_context, so nothing inside it is locked; stats are merged after
// join.
#include "loadgen/loadgen.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <deque>
#include <memory>
#include <ostream>
#include <random>
#include <thread>

#include "core/asio.hpp"
#include "core/log.hpp"
#include "loadgen/engine.hpp"
#include "loadgen/report.hpp"
#include "loadgen/request_plan.hpp"
#include "loadgen/response_parser.hpp"

namespace syncwell::loadgen {

namespace {

using tcp = asio::ip::tcp;
using asio::awaitable;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
using namespace std::chrono_literals;

constexpr size_t kMaxQueue = 1'000'000;  // pending requests per worker (bounded memory)
constexpr int64_t kSweepNs = 5'000'000;  // deadline sweep period: 5 ms
constexpr int64_t kMaxDrainNs = 10'000'000'000;
constexpr int64_t kConnectBackoffNs = 100'000'000;
constexpr size_t kReadBuf = 64 * 1024;  // also the response-head size limit

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
std::chrono::steady_clock::time_point ToTimePoint(int64_t ns) {
  return std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::nanoseconds(ns)));
}

struct WorkerConfig {
  int index = 0;  // this worker's position among `count`
  int count = 1;
  double rate = 0;  // whole run, requests/s; 0 = saturation
  int64_t duration_ns = 0;
  int64_t timeout_ns = 0;
  int connections = 1;  // this worker's share
  int max_connections = 1;
  bool head_request = false;
  tcp::resolver::results_type endpoints;
  const RequestPlan* plan = nullptr;
  RequestSource* source = nullptr;  // plan mode: requests come from here instead of `plan`
  int target = 0;                   // the source's index of this worker's target
};

// One keep-alive connection. Owned by its Worker (pointer-stable in a vector of unique_ptr),
// used by one ConnLoop coroutine; the sweeper may close its socket on a deadline.
struct Conn {
  explicit Conn(asio::io_context& ioc) : sock(ioc), rbuf(kReadBuf) {}
  tcp::socket sock;
  bool connected = false;
  bool timed_out = false;
  int64_t deadline_ns = INT64_MAX;  // set while connecting or while a request is in flight
  uint64_t served = 0;              // responses on the current socket
  std::vector<char> rbuf;
  std::array<char, 64> idem{};
  Outgoing out;      // source mode: the request in flight
  std::string body;  // source mode: captured response body
};

// Runs one share of the load on its own io_context. Lifecycle: construct, Run() (blocks until
// the schedule is done and drained, at most duration + drain + a few ms), then read stats().
class Worker {
 public:
  explicit Worker(WorkerConfig cfg)
      : cfg_(std::move(cfg)),
        saturation_(cfg_.rate <= 0),
        wake_(ioc_, std::chrono::steady_clock::time_point::max()),
        warm_timer_(ioc_),
        pick_(static_cast<size_t>(cfg_.index)),
        rng_(std::random_device{}()) {}

  void Run() {
    asio::co_spawn(ioc_, Start(), SpawnDone{this, "start"});
    for (int i = 0; i < cfg_.connections; ++i) SpawnConn(/*warm=*/true);
    asio::co_spawn(ioc_, Sweep(), SpawnDone{this, "sweep"});
    ioc_.run();
    stats_.elapsed_ns = std::max(last_done_ns_, end_ns_) - start_ns_;
  }
  const RunStats& stats() const { return stats_; }

 private:
  enum class Outcome { kOk, kTimeout, kIo, kStale };

  // co_spawn completion: log and count an escaped exception (never a silent `detached`).
  struct SpawnDone {
    Worker* w;
    const char* what;
    void operator()(std::exception_ptr e) const {
      if (!e) return;
      ++w->stats_.internal_errors;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::Error("loadgen coroutine failed", {{"coroutine", what}, {"error", ex.what()}});
      } catch (...) {
        log::Error("loadgen coroutine failed", {{"coroutine", what}});
      }
    }
  };

  void SpawnConn(bool warm) {
    conns_.push_back(std::make_unique<Conn>(ioc_));
    ++live_conns_;
    if (warm) ++warm_pending_;
    asio::co_spawn(ioc_, ConnLoop(conns_.back().get(), warm), SpawnDone{this, "connection"});
  }

  void Close(Conn* c) {
    boost::system::error_code ignored;
    c->sock.shutdown(tcp::socket::shutdown_both, ignored);
    c->sock.close(ignored);
    c->connected = false;
  }

  awaitable<void> Start() {
    warm_timer_.expires_after(std::chrono::nanoseconds(cfg_.timeout_ns));
    if (warm_pending_ > 0) co_await warm_timer_.async_wait(kUseTuple);
    start_ns_ = NowNs();
    end_ns_ = start_ns_ + cfg_.duration_ns;
    drain_deadline_ns_ = end_ns_ + std::min(cfg_.timeout_ns, kMaxDrainNs);
    started_ = true;
    wake_.cancel();  // connections waiting for the start
    if (!saturation_) co_await Produce();
  }

  // Fixed rate: request k of this worker is due at start + (k*count + index)/rate.
  awaitable<void> Produce() {
    asio::steady_timer timer(ioc_);
    const double interval_ns = 1e9 * cfg_.count / cfg_.rate;
    const double offset_ns = 1e9 * cfg_.index / cfg_.rate;
    uint64_t k = 0;
    auto due = [&] {
      return start_ns_ + static_cast<int64_t>(offset_ns + interval_ns * double(k));
    };
    for (int64_t next = due(); next < end_ns_ && !stopped_;) {
      if (next > NowNs()) {
        timer.expires_at(ToTimePoint(next));
        co_await timer.async_wait(kUseTuple);
      }
      const int64_t now = NowNs();
      while (next <= now && next < end_ns_) {
        Push(next);
        ++k;
        next = due();
      }
    }
    producing_done_ = true;
    wake_.cancel();  // idle connections re-check and exit once the queue is empty
  }

  void Push(int64_t sched) {
    ++stats_.scheduled;
    if (pending_.size() >= kMaxQueue) {
      NotSent(1);
      return;
    }
    pending_.push_back(sched);
    stats_.max_queue = std::max<uint64_t>(stats_.max_queue, pending_.size());
    if (wake_.cancel_one() > 0) return;  // an idle connection takes it
    if (live_conns_ < cfg_.max_connections && pending_.size() > static_cast<size_t>(connecting_))
      SpawnConn(/*warm=*/false);
  }

  // Next request's scheduled time, waiting while the queue is empty; false when the run is over.
  awaitable<bool> NextRequest(int64_t* sched) {
    for (;;) {
      if (stopped_) co_return false;
      if (started_) {
        const int64_t now = NowNs();
        if (saturation_) {
          if (now >= end_ns_) co_return false;
          ++stats_.scheduled;
          *sched = now;
          co_return true;
        }
        while (!pending_.empty()) {
          const int64_t s = pending_.front();
          pending_.pop_front();
          if (now - s >= cfg_.timeout_ns) {
            NotSent(1);
            continue;
          }
          *sched = s;
          co_return true;
        }
        if (producing_done_) co_return false;
      }
      co_await wake_.async_wait(kUseTuple);  // woken by cancel_one()/cancel()
    }
  }

  awaitable<bool> Connect(Conn* c) {
    ++connecting_;
    c->timed_out = false;
    c->deadline_ns = NowNs() + cfg_.timeout_ns;
    auto [ec, ep] = co_await asio::async_connect(c->sock, cfg_.endpoints, kUseTuple);
    c->deadline_ns = INT64_MAX;
    --connecting_;
    if (ec || c->timed_out) {
      ++stats_.connect_failures;
      Close(c);
      co_return false;
    }
    boost::system::error_code ignored;
    c->sock.set_option(tcp::no_delay(true), ignored);
    c->connected = true;
    c->served = 0;
    ++stats_.connections_opened;
    co_return true;
  }

  awaitable<void> Backoff() {
    asio::steady_timer t(ioc_, std::chrono::nanoseconds(kConnectBackoffNs));
    co_await t.async_wait(kUseTuple);
  }

  awaitable<void> ConnLoop(Conn* c, bool warm) {
    if (warm) {
      co_await Connect(c);  // a failure is retried lazily by the first request
      if (--warm_pending_ == 0) warm_timer_.cancel();
    }
    for (;;) {
      int64_t sched = 0;
      if (!co_await NextRequest(&sched)) break;
      if (!c->connected && !co_await Connect(c)) {
        if (stopped_) {
          NotSent(1);
          break;
        }
        ++stats_.err_connect;
        stats_.timeline.RecordError(NowNs() - start_ns_);
        co_await Backoff();
        continue;
      }
      int status = 0;
      int64_t sent_at = 0;
      Outcome r = co_await Exchange(c, sched, &status, &sent_at);
      if (r == Outcome::kStale) {  // keep-alive socket closed by the server while idle: retry once
        Close(c);
        if (!co_await Connect(c)) {
          ++stats_.err_connect;
          stats_.timeline.RecordError(NowNs() - start_ns_);
          continue;
        }
        r = co_await Exchange(c, sched, &status, &sent_at);
        if (r == Outcome::kStale) r = Outcome::kIo;
      }
      const int64_t done = NowNs();
      last_done_ns_ = std::max(last_done_ns_, done);
      switch (r) {
        case Outcome::kOk:
          Record(status, done - sched, done - sent_at);
          if (done <= end_ns_) ++stats_.completed_in_window;
          stats_.timeline.RecordResponse(done - start_ns_, status >= 500,
                                         static_cast<uint64_t>(std::max<int64_t>(0, done - sched)));
          break;
        case Outcome::kTimeout:
          ++stats_.err_timeout;
          stats_.timeline.RecordError(done - start_ns_);
          break;
        default:
          ++stats_.err_io;
          stats_.timeline.RecordError(done - start_ns_);
          break;
      }
    }
    Close(c);
    --live_conns_;
  }

  // Requests never written (expired while queued, queue full, or the run ended first).
  void NotSent(uint64_t n) {
    if (n == 0) return;
    stats_.not_sent += n;
    const int64_t at = NowNs() - start_ns_;
    for (uint64_t i = 0; i < n; ++i) stats_.timeline.RecordError(at);
  }

  void Record(int status, int64_t latency_ns, int64_t service_ns) {
    ++stats_.completed;
    stats_.latency.Record(static_cast<uint64_t>(std::max<int64_t>(0, latency_ns)));
    stats_.service.Record(static_cast<uint64_t>(std::max<int64_t>(0, service_ns)));
    switch (status / 100) {
      case 1:
        ++stats_.status_1xx;
        break;
      case 2:
        ++stats_.status_2xx;
        break;
      case 3:
        ++stats_.status_3xx;
        break;
      case 4:
        ++stats_.status_4xx;
        break;
      case 5:
        ++stats_.status_5xx;
        break;
      default:
        ++stats_.status_other;
        break;
    }
  }

  static inline const RequestPlan::Entry kNoEntry{};

  const RequestPlan::Entry& PickEntry() {
    const auto& entries = cfg_.plan->entries;
    if (entries.size() == 1) return entries[0];
    if (cfg_.plan->random_pick)
      return entries[std::uniform_int_distribution<size_t>(0, entries.size() - 1)(rng_)];
    return entries[pick_++ % entries.size()];
  }

  Outcome Failed(Conn* c, const boost::system::error_code& ec, bool nothing_read) {
    const bool timed_out = c->timed_out;
    Close(c);
    if (timed_out) return Outcome::kTimeout;
    const bool peer_closed = ec == asio::error::eof || ec == asio::error::connection_reset ||
                             ec == asio::error::broken_pipe;
    if (nothing_read && peer_closed && c->served > 0) return Outcome::kStale;
    return Outcome::kIo;
  }

  // Writes one request and reads its response; the sweeper enforces sched + timeout.
  awaitable<Outcome> Exchange(Conn* c, int64_t sched, int* status, int64_t* sent_at) {
    struct InFlight {
      Worker* w;
      Conn* c;
      ~InFlight() {
        --w->in_flight_;
        c->deadline_ns = INT64_MAX;
      }
    };
    ++in_flight_;
    InFlight guard{this, c};
    c->timed_out = false;
    c->deadline_ns = sched + cfg_.timeout_ns;

    if (cfg_.source != nullptr) {
      cfg_.source->Next(cfg_.index, cfg_.target, &c->out);
      c->body.clear();
    }
    const auto& e = cfg_.source != nullptr ? kNoEntry : PickEntry();
    size_t idem_len = 0;
    if (cfg_.source == nullptr && cfg_.plan->idempotency_key) {
      constexpr std::string_view kName = "Idempotency-Key: ";
      std::copy(kName.begin(), kName.end(), c->idem.begin());
      uuid_.Write(c->idem.data() + kName.size());
      idem_len = kName.size() + UuidGenerator::kLength;
      c->idem[idem_len++] = '\r';
      c->idem[idem_len++] = '\n';
    }
    c->idem[idem_len++] = '\r';
    c->idem[idem_len++] = '\n';
    std::array<asio::const_buffer, 3> bufs{
        asio::buffer(e.head), asio::buffer(c->idem.data(), idem_len), asio::buffer(e.body)};
    if (cfg_.source != nullptr)
      bufs = {asio::buffer(c->out.bytes), asio::const_buffer(), asio::const_buffer()};
    ++stats_.sent;
    *sent_at = NowNs();
    {
      auto [ec, n] = co_await asio::async_write(c->sock, bufs, kUseTuple);
      if (ec) co_return Failed(c, ec, true);
    }

    size_t used = 0;
    ResponseHead head;
    for (;;) {
      const auto ps = ParseResponseHead(std::string_view(c->rbuf.data(), used), &head);
      if (ps == ParseStatus::kComplete) break;
      if (ps == ParseStatus::kError || used == c->rbuf.size()) {
        Close(c);
        co_return Outcome::kIo;
      }
      auto [ec, n] = co_await c->sock.async_read_some(
          asio::buffer(c->rbuf.data() + used, c->rbuf.size() - used), kUseTuple);
      if (ec) co_return Failed(c, ec, used == 0);
      used += n;
    }
    const int64_t body = head.BodyLength(cfg_.head_request);
    if (body < 0 && head.chunked) {  // chunked bodies are not supported
      Close(c);
      co_return Outcome::kIo;
    }
    const size_t have = used - head.head_bytes;
    const bool capture = cfg_.source != nullptr && c->out.capture_body;
    if (capture) c->body.assign(c->rbuf.data() + head.head_bytes, std::min(have, kMaxCapturedBody));
    if (body >= 0) {
      if (have > static_cast<size_t>(body)) {  // bytes beyond the response: we never pipeline
        Close(c);
        co_return Outcome::kIo;
      }
      int64_t remaining = body - static_cast<int64_t>(have);
      while (remaining > 0) {
        const size_t want = std::min<size_t>(c->rbuf.size(), static_cast<size_t>(remaining));
        auto [ec, n] =
            co_await c->sock.async_read_some(asio::buffer(c->rbuf.data(), want), kUseTuple);
        if (ec) co_return Failed(c, ec, false);
        if (capture && c->body.size() < kMaxCapturedBody)
          c->body.append(c->rbuf.data(), std::min(n, kMaxCapturedBody - c->body.size()));
        remaining -= static_cast<int64_t>(n);
      }
    } else {  // body delimited by EOF
      for (;;) {
        auto [ec, n] = co_await c->sock.async_read_some(asio::buffer(c->rbuf), kUseTuple);
        if (ec == asio::error::eof) break;
        if (ec) co_return Failed(c, ec, false);
      }
      head.keep_alive = false;
    }
    if (c->timed_out) {  // the sweeper closed the socket as the last bytes arrived
      co_return Outcome::kTimeout;
    }
    ++c->served;
    if (!head.keep_alive) Close(c);
    *status = head.status;
    if (cfg_.source != nullptr) cfg_.source->OnResponse(cfg_.index, c->out, head.status, c->body);
    co_return Outcome::kOk;
  }

  // Every 5 ms: closes sockets past their deadline, expires queued requests, ends the run.
  awaitable<void> Sweep() {
    asio::steady_timer timer(ioc_);
    for (;;) {
      timer.expires_after(std::chrono::nanoseconds(kSweepNs));
      co_await timer.async_wait(kUseTuple);
      const int64_t now = NowNs();
      for (auto& c : conns_) {
        if (c->deadline_ns <= now && c->sock.is_open()) {
          c->timed_out = true;
          Close(c.get());
        }
      }
      if (!started_) continue;
      while (!pending_.empty() && now - pending_.front() >= cfg_.timeout_ns) {
        pending_.pop_front();
        NotSent(1);
      }
      if (saturation_ && now >= end_ns_) producing_done_ = true;
      if (!producing_done_) continue;
      const bool idle = pending_.empty() && in_flight_ == 0 && connecting_ == 0;
      if (idle || now >= drain_deadline_ns_) {
        stopped_ = true;
        NotSent(pending_.size());
        pending_.clear();
        for (auto& c : conns_) {
          if (c->deadline_ns != INT64_MAX) c->timed_out = true;
          Close(c.get());
        }
        wake_.cancel();
        warm_timer_.cancel();
        co_return;
      }
    }
  }

  WorkerConfig cfg_;
  const bool saturation_;
  asio::io_context ioc_{1};
  asio::steady_timer wake_;  // never expires: idle connections wait on it, cancel_one() wakes one
  asio::steady_timer warm_timer_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::deque<int64_t> pending_;  // scheduled times of queued requests, oldest first
  RunStats stats_;
  UuidGenerator uuid_;
  size_t pick_;
  std::mt19937_64 rng_;
  int live_conns_ = 0;
  int connecting_ = 0;
  int warm_pending_ = 0;
  int in_flight_ = 0;
  bool started_ = false;
  bool producing_done_ = false;
  bool stopped_ = false;
  int64_t start_ns_ = 0;
  int64_t end_ns_ = 0;
  int64_t drain_deadline_ns_ = 0;
  int64_t last_done_ns_ = 0;
};

// HttpGet's exchange on a private io_context; the caller bounds it with run_for().
awaitable<void> GetOnce(tcp::resolver::results_type endpoints, std::string request,
                        Result<SimpleResponse>* result) {
  auto ex = co_await asio::this_coro::executor;
  tcp::socket sock(ex);
  auto [cec, ep] = co_await asio::async_connect(sock, endpoints, kUseTuple);
  if (cec) {
    *result = MakeError(Errc::kUnavailable, "connect: " + cec.message());
    co_return;
  }
  auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(request), kUseTuple);
  if (wec) {
    *result = MakeError(Errc::kUnavailable, "write: " + wec.message());
    co_return;
  }
  std::string buf;
  std::array<char, 16384> chunk{};
  for (;;) {
    auto [rec, n] = co_await sock.async_read_some(asio::buffer(chunk), kUseTuple);
    buf.append(chunk.data(), n);
    if (rec == asio::error::eof) break;
    if (rec) {
      *result = MakeError(Errc::kUnavailable, "read: " + rec.message());
      co_return;
    }
    if (buf.size() > size_t{64} * 1024 * 1024) break;
  }
  ResponseHead head;
  if (ParseResponseHead(buf, &head) != ParseStatus::kComplete || head.chunked) {
    *result = MakeError(Errc::kUnavailable, "malformed or chunked response");
    co_return;
  }
  SimpleResponse r;
  r.status = head.status;
  r.body = buf.substr(head.head_bytes);
  if (head.content_length >= 0 && r.body.size() > static_cast<size_t>(head.content_length))
    r.body.resize(static_cast<size_t>(head.content_length));
  *result = std::move(r);
}

}  // namespace

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  double value = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || value < 0)
    return MakeError(Errc::kInvalidArgument, "bad duration '" + std::string(text) + "'");
  const std::string_view unit(ptr, static_cast<size_t>(last - ptr));
  double ms = 0;
  if (unit.empty() || unit == "s")
    ms = value * 1e3;
  else if (unit == "ms")
    ms = value;
  else if (unit == "m" || unit == "min")
    ms = value * 60e3;
  else if (unit == "h")
    ms = value * 3600e3;
  else
    return MakeError(Errc::kInvalidArgument, "bad duration unit in '" + std::string(text) + "'");
  return std::chrono::milliseconds(static_cast<int64_t>(ms + 0.5));
}

int RunLoadgen(const LoadgenOptions& o, std::ostream& out) {
  auto fail = [&out](std::string_view m) {
    out << "loadgen: " << m << '\n';
    return 2;
  };
  if (o.rate < 0 || o.rate > 10'000'000) return fail("--rate must be in [0, 1e7]");
  if (o.duration <= 0ms || o.duration > 24h) return fail("--duration must be in (0, 24h]");
  if (o.timeout <= 0ms || o.timeout > 1h) return fail("--timeout must be in (0, 1h]");
  if (o.threads < 1 || o.threads > 16) return fail("--threads must be in [1, 16]");
  if (o.connections < o.threads || o.connections > 100'000)
    return fail("--connections must be in [threads, 100000]");
  if (o.max_connections != 0 && (o.max_connections < o.connections || o.max_connections > 100'000))
    return fail("--max-connections must be 0 or in [connections, 100000]");

  auto target = ParseTarget(o.target);
  if (!target) return fail(target.error().message);
  auto plan = BuildRequestPlan(o, *target);
  if (!plan) return fail(plan.error().message);

  tcp::resolver::results_type endpoints;
  {
    asio::io_context ioc;
    tcp::resolver resolver(ioc);
    boost::system::error_code ec;
    endpoints = resolver.resolve(target->host, target->port, ec);
    if (ec || endpoints.empty())
      return fail("cannot resolve " + target->host + ": " + ec.message());
  }

  const int max_conns = o.max_connections == 0 ? o.connections : o.max_connections;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < o.threads; ++i) {
    WorkerConfig cfg;
    cfg.index = i;
    cfg.count = o.threads;
    cfg.rate = o.rate;
    cfg.duration_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(o.duration).count();
    cfg.timeout_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(o.timeout).count();
    cfg.connections = o.connections / o.threads + (i < o.connections % o.threads ? 1 : 0);
    cfg.max_connections =
        std::max(cfg.connections, max_conns / o.threads + (i < max_conns % o.threads ? 1 : 0));
    cfg.head_request = o.method == "HEAD";
    cfg.endpoints = endpoints;
    cfg.plan = &*plan;
    workers.push_back(std::make_unique<Worker>(std::move(cfg)));
  }
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers.size(); ++i)
    threads.emplace_back([w = workers[i].get()] { w->Run(); });
  workers[0]->Run();
  for (auto& t : threads) t.join();

  RunStats total;
  for (const auto& w : workers) total.Merge(w->stats());
  LoadgenOptions effective = o;
  effective.path = plan->path;
  effective.max_connections = max_conns;
  WriteReport(effective, total, out);
  return total.status_2xx > 0 ? 0 : 1;
}

}  // namespace syncwell::loadgen

namespace syncwell::loadgen {

Result<RunStats> RunEngine(const EngineRun& run, RequestSource& source) {
  if (run.targets.empty()) return MakeError(Errc::kInvalidArgument, "no targets");
  if (run.rate <= 0 || run.rate > 10'000'000)
    return MakeError(Errc::kInvalidArgument, "rate must be in (0, 1e7]");
  if (run.threads_per_target < 1 || run.threads_per_target > 16 ||
      run.connections_per_target < run.threads_per_target ||
      run.max_connections_per_target < run.connections_per_target)
    return MakeError(Errc::kInvalidArgument, "bad thread or connection counts");
  const int n_targets = static_cast<int>(run.targets.size());
  std::vector<tcp::resolver::results_type> endpoints;
  for (const auto& url : run.targets) {
    auto target = ParseTarget(url);
    if (!target) return target.error();
    asio::io_context ioc;
    tcp::resolver resolver(ioc);
    boost::system::error_code ec;
    auto eps = resolver.resolve(target->host, target->port, ec);
    if (ec || eps.empty())
      return MakeError(Errc::kInvalidArgument,
                       "cannot resolve " + target->host + ": " + ec.message());
    endpoints.push_back(std::move(eps));
  }
  const int per = run.threads_per_target;
  const int count = n_targets * per;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < count; ++i) {
    const int t = i % n_targets;  // request k goes to worker k % count, so target k % n_targets
    const int th = i / n_targets;
    WorkerConfig cfg;
    cfg.index = i;
    cfg.count = count;
    cfg.rate = run.rate;
    cfg.duration_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(run.duration).count();
    cfg.timeout_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(run.timeout).count();
    cfg.connections = run.connections_per_target / per + (th < run.connections_per_target % per);
    cfg.max_connections = std::max(cfg.connections, run.max_connections_per_target / per);
    cfg.endpoints = endpoints[static_cast<size_t>(t)];
    cfg.source = &source;
    cfg.target = t;
    workers.push_back(std::make_unique<Worker>(std::move(cfg)));
  }
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers.size(); ++i)
    threads.emplace_back([w = workers[i].get()] { w->Run(); });
  workers[0]->Run();
  for (auto& t : threads) t.join();
  RunStats total;
  for (const auto& w : workers) total.Merge(w->stats());
  return total;
}

Result<SimpleResponse> HttpGet(const std::string& base_url, const std::string& path,
                               const std::vector<std::string>& headers,
                               std::chrono::milliseconds timeout) {
  auto target = ParseTarget(base_url);
  if (!target) return target.error();
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  boost::system::error_code ec;
  auto eps = resolver.resolve(target->host, target->port, ec);
  if (ec || eps.empty())
    return MakeError(Errc::kUnavailable, "cannot resolve " + target->host + ": " + ec.message());
  std::string req = "GET " + target->path + path + " HTTP/1.1\r\nHost: " + target->host + ":" +
                    target->port + "\r\nUser-Agent: syncwell-loadgen\r\nConnection: close\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  req += "\r\n";
  Result<SimpleResponse> result = MakeError(Errc::kUnavailable, "timed out");
  asio::co_spawn(ioc, GetOnce(std::move(eps), std::move(req), &result),
                 [](const std::exception_ptr& e) {
                   if (e) log::Error("loadgen http get failed", {{"error", "exception"}});
                 });
  ioc.run_for(timeout);
  if (!ioc.stopped()) {
    ioc.stop();
    return MakeError(Errc::kUnavailable, "timed out");
  }
  return result;
}

}  // namespace syncwell::loadgen
