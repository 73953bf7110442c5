// `syncwell demo`: one command that shows SyncWell doing its job and proves the invariants.
//
// 1. starts `syncwell provider-sim` and `syncwell serve` (embedded) as child processes on
//    loopback (logs in <data-dir>/sim.log and server.log);
// 2. seeds N users through the public API: four OAuth connections each (codes from the
//    simulator's consent endpoint), four sync configs with varied conflict strategies:
//      strava -> fitbit workout, fitbit -> strava workout (both directions: loop suppression),
//      garmin -> fitbit sleep_session, withings -> fitbit weight;
// 3. triggers a manual job per config, then new data + provider webhooks for a third of users;
// 4. shows live progress from /metrics until every job has finished;
// 5. checks the simulator's final state against what the conflict rules say must have been
//    written (the same sync::Resolve the engine uses, on the simulator's own records): records
//    written = records expected, duplicates = 0, lost jobs = 0. Exit code 0 only if all hold.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "app/child_process.hpp"
#include "app/commands.hpp"
#include "app/provider_gateway.hpp"
#include "auth/dev_issuer.hpp"
#include "core/random.hpp"
#include "loadgen/plan.hpp"
#include "net/http_client.hpp"
#include "providers/records.hpp"
#include "sync/conflict.hpp"

namespace syncwell::app {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kMarker = ".syncwell-demo";

struct DemoConfig {
  const char* source;
  const char* destination;
  const char* type;
};
constexpr DemoConfig kConfigs[] = {
    {"strava", "fitbit", "workout"},
    {"fitbit", "strava", "workout"},
    {"garmin", "fitbit", "sleep_session"},
    {"withings", "fitbit", "weight"},
};
constexpr const char* kStrategies[] = {"source_wins", "dest_wins", "newest_wins"};

class Http {
 public:
  explicit Http(std::string base) : base_(std::move(base)), client_(net::MakeHttpClient()) {}

  Result<net::HttpResult> Call(const std::string& method, const std::string& path,
                               const std::string& body = "", const std::string& token = "",
                               bool idempotent = false) {
    net::HttpCall c;
    c.method = method;
    c.url = base_ + path;
    c.body = body;
    c.timeout = std::chrono::seconds(30);
    if (!body.empty()) c.headers.emplace_back("Content-Type", "application/json");
    if (!token.empty()) c.headers.emplace_back("Authorization", "Bearer " + token);
    if (idempotent) c.headers.emplace_back("Idempotency-Key", "demo-" + NewUuidV4());
    return client_->Send(c);
  }
  // JSON call that must answer 2xx.
  Result<json::value> Json(const std::string& method, const std::string& path,
                           const json::object& body = {}, const std::string& token = "") {
    const bool has_body = method != "GET";
    auto r = Call(method, path, has_body ? json::serialize(body) : "", token, has_body);
    if (!r) return r.error();
    if (r->status < 200 || r->status > 299) {
      return MakeError(Errc::kPermanent, method + " " + path + " -> " + std::to_string(r->status) +
                                             ": " + r->body.substr(0, 300));
    }
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    if (ec) return MakeError(Errc::kPermanent, method + " " + path + ": not JSON");
    return v;
  }
  const std::string& base() const { return base_; }

 private:
  std::string base_;
  std::unique_ptr<net::HttpClient> client_;
};

// The simulator's /_sim/stats -> data requests it answered ("<provider>.ok" counters): the HTTP
// requests the server's connectors made, however many a connector makes per provider call.
double SimAnswered(const Result<json::value>& stats) {
  if (!stats || !stats->is_object()) return 0;
  const json::value* counters = stats->get_object().if_contains("counters");
  if (counters == nullptr || !counters->is_object()) return 0;
  double sum = 0;
  for (const auto& [k, v] : counters->get_object()) {
    if (k.ends_with(".ok") && v.is_int64()) sum += static_cast<double>(v.get_int64());
  }
  return sum;
}

// Prometheus text -> sum of every sample of `name` whose labels contain `label_filter`.
double MetricSum(const std::string& text, const std::string& name,
                 const std::string& label_filter = "") {
  double sum = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.compare(0, name.size(), name) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : ' ';
    if (next != ' ' && next != '{') continue;
    if (!label_filter.empty() && line.find(label_filter) == std::string::npos) continue;
    const auto sp = line.rfind(' ');
    try {
      sum += std::stod(line.substr(sp + 1));
    } catch (const std::exception&) {
    }
  }
  return sum;
}

// utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15).
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// (VmRSS, VmHWM) in KiB.
std::pair<int64_t, int64_t> ProcessMemoryKb(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  int64_t rss = 0, hwm = 0;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stoll(line.substr(6));
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::stoll(line.substr(6));
  }
  return {rss, hwm};
}

bool WaitReady(Http& http, const std::string& path, ChildProcess& child,
               std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!child.Running()) return false;
    auto r = http.Call("GET", path);
    if (r && r->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

struct UserPlan {
  std::string sim_user;
  std::string user;
  std::string token;
  std::map<std::string, std::string> connections;  // provider -> connection id
  std::vector<std::string> strategies;             // per kConfigs entry
  std::vector<std::string> jobs;                   // manual job ids
};

// `n` clients of `base`, one per thread of a ParallelFor (each keeps its keep-alive connection).
std::vector<std::unique_ptr<Http>> Clients(const std::string& base, int n) {
  std::vector<std::unique_ptr<Http>> out;
  out.reserve(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) out.push_back(std::make_unique<Http>(base));
  return out;
}

// Runs fn(i, t) for i in [0, n) on `threads` threads; t is the thread's index, so a caller can
// keep one client (one keep-alive connection) per thread. Stops at the first error.
Status ParallelFor(int n, int threads, const std::function<Status(int, int)>& fn) {
  std::atomic<int> next{0};
  std::mutex mu;
  std::optional<Error> first;
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = next++; i < n; i = next++) {
        {
          std::lock_guard lock(mu);
          if (first) return;
        }
        if (auto st = fn(i, t); !st) {
          std::lock_guard lock(mu);
          if (!first) first = st.error();
          return;
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  if (first) return *first;
  return {};
}
// Runs fn(i) for i in [0, n) on `threads` threads; returns the first error.
Status ParallelFor(int n, int threads, const std::function<Status(int)>& fn) {
  return ParallelFor(n, threads, [&](int i, int) { return fn(i); });
}

// The jobs' finish times (Unix ms) -> the rate at which the middle 80% of them finished,
// (0.8 n) / (t90 - t10): the sustained rate, without the start of a burst (the first jobs are
// still being posted) and its tail (a user's jobs run one after another, so the last ones posted
// wait for the user's earlier ones). nullopt under 20 jobs.
std::optional<double> SustainedRate(std::vector<int64_t> finished_ms) {
  if (finished_ms.size() < 20) return std::nullopt;
  std::sort(finished_ms.begin(), finished_ms.end());
  const size_t lo = finished_ms.size() / 10, hi = finished_ms.size() - 1 - finished_ms.size() / 10;
  if (finished_ms[hi] <= finished_ms[lo]) return std::nullopt;
  return static_cast<double>(hi - lo) * 1000 /
         static_cast<double>(finished_ms[hi] - finished_ms[lo]);
}

providers::RecordMeta MetaFromSim(const json::object& o) {
  providers::RecordMeta m;
  m.id = json::value_to<std::string>(o.at("id"));
  providers::ParseDataType(json::value_to<std::string>(o.at("type")), &m.type);
  m.start_ms = o.at("start_ms").to_number<int64_t>();
  m.end_ms = o.at("end_ms").to_number<int64_t>();
  m.utc_offset_min = static_cast<int32_t>(o.at("utc_offset_min").to_number<int64_t>());
  m.modified_ms = o.at("modified_ms").to_number<int64_t>();
  m.activity = json::value_to<std::string>(o.at("activity"));
  m.origin = json::value_to<std::string>(o.at("origin"));
  return m;
}

struct Verification {
  int64_t expected = 0;
  int64_t written = 0;
  int64_t missing = 0;
  int64_t unexpected = 0;
  int64_t duplicates = 0;
  int64_t identical_at_destination = 0;  // source_wins: satisfied by an identical native record
  std::vector<std::string> details;      // the first mismatches, for the summary
};

// Sees a simulated user's data the way the engine does: through the connectors, with a grant
// of its own (a second OAuth consent at the simulator).
class ProviderView {
 public:
  ProviderView(const std::string& sim_url, int days) : days_(days), http_(net::MakeHttpClient()) {
    config::Settings s;
    s.providers.sim_url = sim_url;
    registry_ = BuildProviderRegistry(s, *http_, clock_);
  }

  Result<std::vector<providers::RecordMeta>> Metadata(Http& sim, const std::string& sim_user,
                                                      const std::string& provider,
                                                      providers::DataType type) {
    providers::Provider* p = registry_.Find(provider);
    if (!p) return MakeError(Errc::kInternal, "no connector for " + provider);
    auto code = sim.Json("GET", "/_sim/authorize?provider=" + provider + "&user=" + sim_user);
    if (!code) return code.error();
    auto grant = p->Authenticate(json::value_to<std::string>(code->at("code")), "", "");
    if (!grant) return grant.error();
    providers::CallContext ctx;
    ctx.access_token = grant->access_token;
    ctx.provider_user_id = grant->provider_user_id;
    ctx.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    const int64_t now = ToUnixMillis(clock_.Now());
    return p->FetchMetadata(ctx, type, {now - (days_ + 2) * 86'400'000LL, now + 3'600'000LL});
  }

 private:
  int days_;
  SystemClock clock_;
  std::unique_ptr<net::HttpClient> http_;
  providers::ProviderRegistry registry_;
};

using TimeKey = std::pair<int64_t, int64_t>;  // (start, end) in whole seconds

TimeKey KeyOf(const providers::RecordMeta& m) { return {m.start_ms / 1000, m.end_ms / 1000}; }

// When each of a user's records became visible at a provider (its upload time), as the
// simulator knows it. Connectors cannot always tell: Garmin summaries and Strava activities
// carry no modification time, so their connectors report the record's end instead.
Result<std::map<TimeKey, int64_t>> UploadTimes(Http& sim, const std::string& sim_user,
                                               const std::string& provider,
                                               const std::string& type) {
  auto got = sim.Json("GET", "/_sim/users/" + sim_user + "/" + provider + "/records?type=" + type);
  if (!got) return got.error();
  std::map<TimeKey, int64_t> out;
  for (const auto& r : got->at("records").as_array()) {
    const auto m = MetaFromSim(r.as_object());
    int64_t& t = out[KeyOf(m)];
    t = std::max(t, m.modified_ms);
  }
  return out;
}

// What the conflict rules say config c of this user must have written, against what the
// destination received from us. Expectations come from the providers' data as the connectors
// show it; writes from the simulator's record of them (with how often each was written).
// Records are matched by their time range (a provider's wire format may round values).
//
// The simulator's data moves with real time (a record becomes visible at its upload time, and
// the history window slides), so only what was settled when the jobs were posted (t0) is
// judged: source records uploaded before t0 (and still inside the history window), plus the
// records the demo appended itself (webhook new data, ids 8000000000000+). A source record whose
// decision changes when destination records uploaded after t0 are counted is skipped from both
// sides, as is anything written from outside the judged set.
Result<Verification> VerifyUser(Http& sim, ProviderView& view, const UserPlan& u, int64_t t0_ms,
                                int days) {
  Verification v;
  // Records slide out of the simulator's history window ([now - days, now]); only the last
  // minute before the edge is left out.
  const int64_t oldest =
      ToUnixMillis(std::chrono::system_clock::now()) - days * 86'400'000LL + 60'000;
  auto appended = [](const providers::RecordMeta& m) {
    return m.id.size() >= 13 && m.id.rfind("80000000", 0) == 0;
  };
  for (size_t c = 0; c < std::size(kConfigs); ++c) {
    const auto& cfg = kConfigs[c];
    providers::DataType type;
    providers::ParseDataType(cfg.type, &type);
    auto src = view.Metadata(sim, u.sim_user, cfg.source, type);
    if (!src) return src.error();
    auto written =
        sim.Json("GET", "/_sim/users/" + u.sim_user + "/" + cfg.destination + "/written");
    if (!written) return written.error();
    // Upload times decide what was settled at t0 (a connector's modified_ms may be the end).
    auto src_uploads = UploadTimes(sim, u.sim_user, cfg.source, cfg.type);
    if (!src_uploads) return src_uploads.error();
    auto uploaded = [](const std::map<TimeKey, int64_t>& times, const providers::RecordMeta& m) {
      auto it = times.find(KeyOf(m));
      return it == times.end() ? m.modified_ms : std::max(m.modified_ms, it->second);
    };
    std::vector<providers::RecordMeta> source, dest, dest_early;
    std::multiset<TimeKey> unsure;  // source keys not judged
    for (auto& m : *src) {
      if (providers::IsOurOrigin(m.origin)) continue;
      if (appended(m) || (uploaded(*src_uploads, m) < t0_ms && m.start_ms >= oldest))
        source.push_back(std::move(m));
      else
        unsure.insert(KeyOf(m));
    }
    sync::ConflictSettings cs;
    sync::ParseStrategy(u.strategies[c], &cs.strategy);
    // The destination's own records: neither tagged by us nor in the simulator's list of our
    // writes (some destinations drop the origin tag).
    std::set<std::string> written_ids;
    for (const auto& r : written->at("records").as_array())
      written_ids.insert(json::value_to<std::string>(r.as_object().at("id")));
    auto dst = view.Metadata(sim, u.sim_user, cfg.destination, type);
    if (!dst) return dst.error();
    std::vector<providers::RecordMeta> native;
    for (auto& m : *dst) {
      if (!providers::IsOurOrigin(m.origin) && !written_ids.contains(m.id))
        native.push_back(std::move(m));
    }
    std::map<std::string, const providers::RecordMeta*> by_id;
    for (const auto& m : source) by_id[m.id] = &m;
    // source_wins skips the destination read (SPEC S4 step 4): everything is written. Except
    // after an interrupted push: the retry reads the destination, and a pending record that is
    // identical to a destination record is taken as already there (the engine cannot tell an
    // untagged copy of its own timed-out write from the user's own identical record, and
    // writing again could write it twice). Such records are counted apart, not as missing.
    std::set<TimeKey> identical_at_dest;
    if (cs.strategy == sync::Strategy::kSourceWins) {
      for (const auto& d : sync::Resolve(source, native, cs)) {
        if (d.action == sync::Decision::Action::kSkip && d.reason.rfind("identical", 0) == 0)
          identical_at_dest.insert(KeyOf(*by_id[d.source_id]));
      }
    } else {
      // The destination's upload times matter only here (source_wins never reads it).
      auto dst_uploads = UploadTimes(sim, u.sim_user, cfg.destination, cfg.type);
      if (!dst_uploads) return dst_uploads.error();
      for (auto& m : native) {
        if (uploaded(*dst_uploads, m) < t0_ms) dest_early.push_back(m);
        dest.push_back(std::move(m));
      }
    }
    std::multiset<TimeKey> expected;
    const auto late = sync::Resolve(source, dest, cs);
    const auto early = sync::Resolve(source, dest_early, cs);
    for (size_t i = 0; i < late.size(); ++i) {
      const auto* m = by_id[late[i].source_id];
      const TimeKey key = KeyOf(*m);
      if (late[i].action != early[i].action) {
        unsure.insert(key);
        continue;
      }
      if (late[i].action == sync::Decision::Action::kWrite) expected.insert(key);
    }
    std::multiset<TimeKey> got;
    for (const auto& r : written->at("records").as_array()) {
      const auto& o = r.as_object();
      auto m = MetaFromSim(o);
      if (providers::DataTypeName(m.type) != cfg.type || !providers::IsOurOrigin(m.origin))
        continue;
      v.duplicates += std::max<int64_t>(0, o.at("write_count").to_number<int64_t>() - 1);
      const TimeKey key = KeyOf(m);
      if (auto it = unsure.find(key); it != unsure.end()) {
        unsure.erase(it);
        continue;
      }
      if (m.start_ms < oldest) continue;
      got.insert(key);
    }
    v.expected += static_cast<int64_t>(expected.size());
    v.written += static_cast<int64_t>(got.size());
    for (const auto& k : got) {
      if (got.count(k) > 1 && expected.count(k) < got.count(k)) ++v.duplicates;
    }
    std::vector<TimeKey> diff;
    std::set_difference(expected.begin(), expected.end(), got.begin(), got.end(),
                        std::back_inserter(diff));
    std::erase_if(diff, [&](const TimeKey& k) {
      if (!identical_at_dest.contains(k)) return false;
      ++v.identical_at_destination;
      return true;
    });
    v.missing += static_cast<int64_t>(diff.size());
    for (const auto& [st, en] : diff) {
      if (v.details.size() < 20)
        v.details.push_back(u.sim_user + " " + cfg.source + "->" + cfg.destination + " " +
                            cfg.type + " " + u.strategies[c] + ": missing " + std::to_string(st) +
                            ".." + std::to_string(en));
    }
    diff.clear();
    std::set_difference(got.begin(), got.end(), expected.begin(), expected.end(),
                        std::back_inserter(diff));
    v.unexpected += static_cast<int64_t>(diff.size());
    for (const auto& [st, en] : diff) {
      if (v.details.size() < 20)
        v.details.push_back(u.sim_user + " " + cfg.source + "->" + cfg.destination + " " +
                            cfg.type + " " + u.strategies[c] + ": unexpected " +
                            std::to_string(st) + ".." + std::to_string(en));
    }
  }
  return v;
}

void PrintProgress(Http& server, std::chrono::steady_clock::time_point started, int done,
                   int total) {
  // Only the families printed: a full scrape reads /proc (every open descriptor, every thread).
  auto m = server.Call("GET",
                       "/metrics?name=syncwell_worker_jobs_total"
                       "&name=syncwell_sync_records_written_total"
                       "&name=syncwell_sync_records_skipped_total"
                       "&name=syncwell_webhook_jobs_total&name=syncwell_webhook_coalesced_total");
  if (!m || m->status != 200) return;
  const std::string& t = m->body;
  const auto secs =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started)
          .count();
  std::printf(
      "[%4llds] manual jobs %d/%d finished | deliveries: succeeded %.0f, retried %.0f, "
      "dead-lettered %.0f, rate-limit deferrals %.0f, settle waits %.0f | records written %.0f, "
      "skipped %.0f | "
      "webhook jobs %.0f (coalesced %.0f)\n",
      static_cast<long long>(secs), done, total,
      MetricSum(t, "syncwell_worker_jobs_total", "outcome=\"succeeded\""),
      MetricSum(t, "syncwell_worker_jobs_total", "outcome=\"retried\""),
      MetricSum(t, "syncwell_worker_jobs_total", "outcome=\"dead_lettered\""),
      MetricSum(t, "syncwell_worker_jobs_total", "outcome=\"deferred_rate_limited\"") +
          MetricSum(t, "syncwell_worker_jobs_total", "outcome=\"deferred_provider_rate_limited\""),
      MetricSum(t, "syncwell_worker_jobs_total", "outcome=\"deferred_not_settled\""),
      MetricSum(t, "syncwell_sync_records_written_total"),
      MetricSum(t, "syncwell_sync_records_skipped_total"),
      MetricSum(t, "syncwell_webhook_jobs_total"),
      MetricSum(t, "syncwell_webhook_coalesced_total"));
  std::fflush(stdout);
}

}  // namespace

int RunDemo(const DemoOptions& o) {
  std::optional<std::pair<std::chrono::milliseconds, std::chrono::milliseconds>>
      incremental_latency;
  if (!o.incremental_latency.empty()) {
    incremental_latency = ParseLatencyRange(o.incremental_latency);
    if (!incremental_latency) {
      std::cerr << "syncwell demo: --incremental-latency '" << o.incremental_latency
                << "': expected MIN-MAX such as 50ms-300ms\n";
      return 2;
    }
  }
  // A fresh data directory every run (only one this command created is ever removed).
  std::error_code ec;
  if (fs::exists(o.data_dir, ec)) {
    if (!fs::exists(fs::path(o.data_dir) / kMarker, ec)) {
      std::cerr << "syncwell demo: " << o.data_dir
                << " exists and was not made by the demo; choose another --data-dir\n";
      return 2;
    }
    fs::remove_all(o.data_dir, ec);
  }
  fs::create_directories(o.data_dir, ec);
  std::ofstream(fs::path(o.data_dir) / kMarker) << "created by syncwell demo\n";
  const std::string data_dir = fs::absolute(o.data_dir).string();

  auto sim_port = FreeLoopbackPort();
  auto api_port = FreeLoopbackPort();
  if (!sim_port || !api_port) {
    std::cerr << "syncwell demo: no free loopback port\n";
    return 1;
  }
  const std::string sim_url = "http://127.0.0.1:" + std::to_string(*sim_port);
  const std::string api_url = "http://127.0.0.1:" + std::to_string(*api_port);
  const std::string exe = SelfExecutable();

  ChildProcess sim_proc, server_proc;
  std::vector<std::string> sim_argv = {exe,
                                       "provider-sim",
                                       "--listen",
                                       "127.0.0.1:" + std::to_string(*sim_port),
                                       "--webhook-target",
                                       api_url,
                                       "--days",
                                       std::to_string(o.days),
                                       "--latency",
                                       o.latency,
                                       "--no-rate-limits"};
  if (auto st = sim_proc.Start(sim_argv, data_dir + "/sim.log"); !st) {
    std::cerr << "syncwell demo: " << st.error().message << "\n";
    return 1;
  }
  std::vector<std::string> serve_argv = {
      exe, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:" + std::to_string(*api_port),
      "--providers-sim-url", sim_url, "--set", "server.access_log=false", "--set",
      "api.user_rate_per_second=0", "--set", "worker.max_workers=" + std::to_string(o.workers),
      "--set", "worker.min_workers=" + std::to_string(std::min(o.workers, 8)), "--set",
      "worker.retry_base=200ms", "--set", "worker.retry_cap=5s",
      // Quotas sized for a demo burst (the defaults are the providers' real SPEC S6 limits,
      // under which a few hundred users' first syncs take a quarter of an hour).
      "--set",
      "ratelimit.limits=strava:app:15m:1000000,garmin:app:1m:1000000,"
      "withings:app:1m:1000000,fitbit:user:1h:1000"};
  if (o.target_backlog > 0) {
    serve_argv.insert(serve_argv.end(), {"--set", "worker.target_backlog_per_worker=" +
                                                      std::to_string(o.target_backlog)});
  }
  if (auto st = server_proc.Start(serve_argv, data_dir + "/server.log"); !st) {
    std::cerr << "syncwell demo: " << st.error().message << "\n";
    return 1;
  }
  Http sim(sim_url), server(api_url);
  if (!WaitReady(sim, "/healthz", sim_proc, std::chrono::seconds(30)) ||
      !WaitReady(server, "/readyz", server_proc, std::chrono::seconds(60))) {
    std::cerr << "syncwell demo: the simulator or the server did not start; see " << data_dir
              << "/sim.log and server.log\n";
    return 1;
  }
  std::printf("provider simulator: %s   SyncWell API: %s   data: %s\n", sim_url.c_str(),
              api_url.c_str(), data_dir.c_str());

  auto issuer = auth::DevIssuer::LoadOrCreate(data_dir);
  if (!issuer) {
    std::cerr << "syncwell demo: dev issuer: " << issuer.error().message << "\n";
    return 1;
  }
  SystemClock clock;
  std::vector<UserPlan> users(static_cast<size_t>(o.users));
  for (int i = 0; i < o.users; ++i) {
    auto& u = users[static_cast<size_t>(i)];
    u.sim_user = "u" + std::to_string(i);
    u.user = "demo-user-" + std::to_string(i);
    u.token =
        issuer->Mint(u.user, i % 4 == 0 ? "PRO" : "FREE", std::chrono::hours(24), clock.Now());
    for (size_t c = 0; c < std::size(kConfigs); ++c)
      u.strategies.push_back(kStrategies[(static_cast<size_t>(i) + c) % 3]);
  }

  const auto started = std::chrono::steady_clock::now();
  const int64_t seeding_t0_ms = ToUnixMillis(clock.Now()) - 1000;
  std::printf(
      "seeding %d users: 4 connections (OAuth through the simulator), 4 sync configs and "
      "a manual sync job per config...\n",
      o.users);
  std::fflush(stdout);
  // One manual job per config of a user.
  auto post_jobs = [](Http& api, UserPlan& u) -> Status {
    for (size_t c = 0; c < std::size(kConfigs); ++c) {
      const auto& cfg = kConfigs[c];
      auto job = api.Json("POST", "/v1/sync-jobs",
                          json::object{{"sourceConnectionId", u.connections[cfg.source]},
                                       {"destinationConnectionId", u.connections[cfg.destination]},
                                       {"dataType", cfg.type},
                                       {"mode", "manual"},
                                       {"priority", "high"}},
                          u.token);
      if (!job) return job.error();
      u.jobs.push_back(json::value_to<std::string>(job->at("jobId")));
    }
    return {};
  };
  // Every user's jobs, 32 clients at a time (--bench rounds; with 8 the posting itself bounded
  // an incremental round at ~800 jobs/s). Each client keeps its connection across users and
  // rounds: a connection per user made connect/accept/close ~10% of the driver's CPU and some of
  // the server's in an incremental round (session 14 profile).
  constexpr int kPosters = 32;
  const auto posters = Clients(api_url, kPosters);
  double post_seconds = 0;  // how long the last post_all took
  auto post_all = [&] {
    const auto t = std::chrono::steady_clock::now();
    Status st = ParallelFor(o.users, kPosters, [&](int i, int thread) -> Status {
      return post_jobs(*posters[static_cast<size_t>(thread)], users[static_cast<size_t>(i)]);
    });
    post_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    return st;
  };
  auto seeded = ParallelFor(o.users, 8, [&](int i) -> Status {
    Http s(sim_url), api(api_url);
    auto& u = users[static_cast<size_t>(i)];
    for (const char* p : {"strava", "fitbit", "garmin", "withings"}) {
      auto code =
          s.Json("GET", "/_sim/authorize?provider=" + std::string(p) + "&user=" + u.sim_user);
      if (!code) return code.error();
      auto conn = api.Json("POST", "/v1/connections",
                           json::object{{"provider", p}, {"code", code->at("code")}}, u.token);
      if (!conn) return conn.error();
      u.connections[p] = json::value_to<std::string>(conn->at("connectionId"));
    }
    for (size_t c = 0; c < std::size(kConfigs); ++c) {
      const auto& cfg = kConfigs[c];
      auto created =
          api.Json("POST", "/v1/sync-configs",
                   json::object{{"sourceConnectionId", u.connections[cfg.source]},
                                {"destinationConnectionId", u.connections[cfg.destination]},
                                {"dataType", cfg.type},
                                {"conflictStrategy", u.strategies[c]}},
                   u.token);
      if (!created) return created.error();
    }
    return o.bench ? Status{} : post_jobs(api, u);
  });
  if (!seeded) {
    std::cerr << "syncwell demo: seeding failed: " << seeded.error().message << "\n";
    return 1;
  }

  // --bench: every user is seeded first; the jobs are then posted in one burst and timed from
  // the first 202 to the last job finished, with the server's CPU time over the same span.
  //
  // How the driver sees the jobs finish: it does not read any job while they run (a status read
  // per job cost the server a request per job, and a serial pass over thousands of finished jobs
  // delayed seeing the last one). It waits until the worker's counters show as many more finished
  // deliveries as jobs were posted, takes the server's CPU time then, and only then reads every
  // job: each must be SUCCEEDED, and the span ends at the latest one's updatedAt (the server's
  // clock at the job's final write).
  const auto finished_deliveries = [&]() -> double {
    // Polled every 50 ms: one family, not the full scrape (whose /proc reads cost the server
    // ~13 ms of CPU each with 3,000 threads and descriptors: ~20% of its CPU in a first round).
    auto m = server.Call("GET", "/metrics?name=syncwell_worker_jobs_total");
    if (!m || m->status != 200) return -1;
    return MetricSum(m->body, "syncwell_worker_jobs_total", "outcome=\"succeeded\"") +
           MetricSum(m->body, "syncwell_worker_jobs_total", "outcome=\"dead_lettered\"");
  };
  const auto await_finished = [&](double finished0, int total,
                                  std::chrono::steady_clock::time_point deadline) {
    if (finished0 < 0) return;  // no baseline (the scrape failed): wait_jobs polls instead
    auto next_print = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (std::chrono::steady_clock::now() < deadline) {
      const double finished = finished_deliveries() - finished0;
      if (finished >= total) return;
      if (std::chrono::steady_clock::now() >= next_print) {
        PrintProgress(server, started, std::max(0, static_cast<int>(finished)), total);
        next_print += std::chrono::seconds(1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  // The span of a round: from `start` to the latest updatedAt under --bench, else to `done_at`.
  const auto span_seconds = [&](std::chrono::steady_clock::time_point start, int64_t start_ms,
                                const std::vector<int64_t>& finished_ms,
                                std::optional<std::chrono::steady_clock::time_point> done_at) {
    const int64_t last_ms =
        finished_ms.empty() ? 0 : *std::max_element(finished_ms.begin(), finished_ms.end());
    if (o.bench && done_at && last_ms > 0) return static_cast<double>(last_ms - start_ms) / 1000;
    return std::chrono::duration<double>(done_at.value_or(std::chrono::steady_clock::now()) - start)
        .count();
  };
  const auto jobs_started = std::chrono::steady_clock::now();
  const int64_t jobs_started_ms = ToUnixMillis(clock.Now());
  // Without --bench the first jobs are posted while seeding.
  const int64_t t0_ms = o.bench ? jobs_started_ms - 1000 : seeding_t0_ms;
  const double cpu_before = ProcessCpuSeconds(server_proc.pid());
  const double sim_cpu_before = ProcessCpuSeconds(sim_proc.pid());
  const double finished_before = o.bench ? finished_deliveries() : 0;
  if (o.bench) {
    auto posted = post_all();
    if (!posted) {
      std::cerr << "syncwell demo: posting jobs failed: " << posted.error().message << "\n";
      return 1;
    }
  }

  // New data at the providers, announced by their webhooks (a third of the users).
  std::atomic<int> webhooks_sent{0};
  auto announced = ParallelFor(o.users, 4, [&](int i) -> Status {
    if (i % 3 != 0 || o.bench) return {};
    Http s(sim_url);
    const auto& u = users[static_cast<size_t>(i)];
    for (const auto& [p, type] :
         {std::pair{"strava", "workout"}, std::pair{"withings", "weight"}}) {
      auto r = s.Json("POST", "/_sim/users/" + u.sim_user + "/" + p + "/new-data?type=" + type);
      if (!r) return r.error();
      ++webhooks_sent;
    }
    return {};
  });
  if (!announced) {
    std::cerr << "syncwell demo: webhooks failed: " << announced.error().message << "\n";
    return 1;
  }
  std::printf("sent %d provider webhooks for new data\n", webhooks_sent.load());

  // Progress until every job in `open` finished and the queue is empty; returns the FAILED
  // count and sets `done_at` when the last job finished. Polls every `poll`.
  std::vector<std::string> failed_details;  // the first FAILED jobs and their errors
  // `finished_ms`: gets the updatedAt (Unix ms, the server's clock at the job's final write) of
  // each job seen finished.
  const auto wait_jobs = [&](std::set<std::pair<size_t, size_t>>& open, int total,
                             std::chrono::steady_clock::time_point deadline,
                             std::chrono::milliseconds poll,
                             std::optional<std::chrono::steady_clock::time_point>& done_at,
                             std::vector<int64_t>& finished_ms) {
    int failed = 0;
    // At least one pass, even past the deadline (await_finished may have used it up).
    for (bool first = true; first || std::chrono::steady_clock::now() < deadline; first = false) {
      int still_open = 0;
      for (auto it = open.begin(); it != open.end() && still_open < 64;) {
        const auto& u = users[it->first];
        auto r = server.Json("GET", "/v1/sync-jobs/" + u.jobs[it->second], {}, u.token);
        if (r) {
          const auto status = json::value_to<std::string>(r->at("status"));
          if (status == "SUCCEEDED" || status == "FAILED") {
            if (const auto* at = r->as_object().if_contains("updatedAt"); at && at->is_string()) {
              if (const int64_t ms = loadgen::ParseRfc3339Millis(at->get_string()); ms >= 0)
                finished_ms.push_back(ms);
            }
            if (status == "FAILED") {
              ++failed;
              if (failed_details.size() < 5) {
                const auto* err = r->as_object().if_contains("error");
                failed_details.push_back(
                    u.user + " job " + u.jobs[it->second] + ": " +
                    (err && err->is_string() ? std::string(err->get_string()) : "(no error)"));
              }
            }
            it = open.erase(it);
            continue;
          }
        }
        ++still_open;
        ++it;
      }
      if (open.empty() && !done_at) done_at = std::chrono::steady_clock::now();
      PrintProgress(server, started, total - static_cast<int>(open.size()), total);
      if (open.empty()) {
        auto m = server.Call("GET",
                             "/metrics?name=syncwell_queue_visible_messages"
                             "&name=syncwell_queue_delayed_messages"
                             "&name=syncwell_queue_in_flight_messages");
        if (m && m->status == 200 &&
            MetricSum(m->body, "syncwell_queue_visible_messages") +
                    MetricSum(m->body, "syncwell_queue_delayed_messages") +
                    MetricSum(m->body, "syncwell_queue_in_flight_messages") ==
                0)
          break;
      }
      std::this_thread::sleep_for(poll);
    }
    return failed;
  };
  std::set<std::pair<size_t, size_t>> open;  // (user, job)
  for (size_t i = 0; i < users.size(); ++i)
    for (size_t j = 0; j < users[i].jobs.size(); ++j) open.insert({i, j});
  const int total = static_cast<int>(open.size());
  std::optional<std::chrono::steady_clock::time_point> jobs_done_at;
  const auto deadline = std::chrono::steady_clock::now() + o.timeout;
  std::optional<double> cpu_at_finish, sim_cpu_at_finish;
  if (o.bench) {
    await_finished(finished_before, total, deadline);
    cpu_at_finish = ProcessCpuSeconds(server_proc.pid());
    sim_cpu_at_finish = ProcessCpuSeconds(sim_proc.pid());
  }
  std::vector<int64_t> finished_ms;
  const int failed =
      wait_jobs(open, total, deadline,
                o.bench ? std::chrono::milliseconds(200) : std::chrono::milliseconds(1000),
                jobs_done_at, finished_ms);
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const double cpu_after = cpu_at_finish.value_or(ProcessCpuSeconds(server_proc.pid()));
  const double sim_cpu_after = sim_cpu_at_finish.value_or(ProcessCpuSeconds(sim_proc.pid()));
  const double jobs_span = span_seconds(jobs_started, jobs_started_ms, finished_ms, jobs_done_at);
  const auto rss = ProcessMemoryKb(server_proc.pid());

  // The simulator's latency at 0 while checking (its answers do not change; a 50-300 ms latency
  // made checking 1,000 users take ~10 minutes); the incremental round sets it again.
  using Latency = std::pair<std::chrono::milliseconds, std::chrono::milliseconds>;
  const auto set_latency = [&](const Latency& l) -> bool {
    auto set = sim.Json("POST", "/_sim/config",
                        json::object{{"provider", "*"},
                                     {"latency_min_ms", l.first.count()},
                                     {"latency_max_ms", l.second.count()}});
    if (!set) {
      std::cerr << "syncwell demo: setting the simulator's latency failed: " << set.error().message
                << "\n";
    }
    return set.ok();
  };
  const std::optional<Latency> base_latency = ParseLatencyRange(o.latency);
  if (base_latency && base_latency->second.count() > 0 && !set_latency({})) return 1;

  // The invariants, from the simulator's point of view.
  Verification total_v;
  std::mutex vmu;
  ProviderView view(sim_url, o.days);  // thread-safe: one connection pool for every check
  auto verified = ParallelFor(o.users, 8, [&](int i) -> Status {
    Http s(sim_url);
    auto v = VerifyUser(s, view, users[static_cast<size_t>(i)], t0_ms, o.days);
    if (!v) return v.error();
    std::lock_guard lock(vmu);
    total_v.expected += v->expected;
    total_v.written += v->written;
    total_v.missing += v->missing;
    total_v.unexpected += v->unexpected;
    total_v.duplicates += v->duplicates;
    total_v.identical_at_destination += v->identical_at_destination;
    for (auto& d : v->details)
      if (total_v.details.size() < 20) total_v.details.push_back(std::move(d));
    return {};
  });
  auto stats = sim.Json("GET", "/_sim/stats");
  const int64_t sim_duplicates =
      stats ? stats->at("totals").at("duplicates").to_number<int64_t>() : -1;
  const int lost = static_cast<int>(open.size());
  const bool ok = verified &&
                  total_v.written + total_v.identical_at_destination == total_v.expected &&
                  total_v.missing == 0 && total_v.unexpected == 0 && total_v.duplicates == 0 &&
                  sim_duplicates == 0 && lost == 0 && failed == 0;
  std::printf("\n=== SyncWell demo summary (%d users, %.1f s) ===\n", o.users, elapsed);
  std::printf("manual jobs:        %d accepted, %d succeeded, %d failed, %d lost (not finished)\n",
              total, total - failed - lost, failed, lost);
  if (verified) {
    std::printf("records expected:   %lld (conflict rules applied to the simulator's data)\n",
                static_cast<long long>(total_v.expected));
    std::printf("records written:    %lld (missing %lld, unexpected %lld)\n",
                static_cast<long long>(total_v.written), static_cast<long long>(total_v.missing),
                static_cast<long long>(total_v.unexpected));
    if (total_v.identical_at_destination > 0) {
      std::printf(
          "already there:      %lld (source_wins, after an interrupted push: an identical record "
          "was at the destination)\n",
          static_cast<long long>(total_v.identical_at_destination));
    }
    std::printf("duplicates:         %lld (simulator-wide: %lld)\n",
                static_cast<long long>(total_v.duplicates), static_cast<long long>(sim_duplicates));
  } else {
    std::printf("verification failed: %s\n", verified.error().message.c_str());
  }
  for (const auto& d : total_v.details) std::printf("  mismatch: %s\n", d.c_str());
  for (const auto& d : failed_details) std::printf("  failed: %s\n", d.c_str());
  std::printf("invariants:         %s\n", ok ? "HOLD" : "VIOLATED");
  if (o.bench) {
    auto m = server.Call("GET", "/metrics");
    const double written = m ? MetricSum(m->body, "syncwell_sync_records_written_total") : 0;
    const double calls = m ? MetricSum(m->body, "syncwell_provider_calls_total") : 0;
    std::printf(
        "bench: %d jobs in %.2f s = %.1f jobs/s end to end (202 -> finished); %.0f records "
        "written (%.1f/s); %.0f provider calls (%.0f HTTP requests answered by the simulator); "
        "server CPU %.2f s = %.2f ms/job; server RSS "
        "%lld KiB (peak %lld KiB); latency %s, %d workers; posting took %.2f s; sustained %.1f "
        "jobs/s (middle 80%% of finish times); simulator CPU %.2f ms/job\n",
        total, jobs_span, total / jobs_span, written, written / jobs_span, calls,
        SimAnswered(stats), cpu_after - cpu_before, 1000 * (cpu_after - cpu_before) / total,
        static_cast<long long>(rss.first), static_cast<long long>(rss.second), o.latency.c_str(),
        o.workers, post_seconds, SustainedRate(finished_ms).value_or(0),
        1000 * (sim_cpu_after - sim_cpu_before) / total);
  }
  // --bench, second round: the same jobs again. Every cursor is set now and the simulator has
  // no new data, so these are incremental syncs — the steady state of the S7 schedule (PRO users
  // every 15 minutes): metadata reads, cursor and ledger checks, nothing to write.
  bool incremental_ok = true;
  if (o.bench && ok) {
    const std::optional<Latency> round2 = incremental_latency ? incremental_latency : base_latency;
    if (round2 && !set_latency(*round2)) return 1;
    std::vector<size_t> first(users.size());
    for (size_t i = 0; i < users.size(); ++i) first[i] = users[i].jobs.size();
    const double answered0 = SimAnswered(sim.Json("GET", "/_sim/stats"));
    auto m0 = server.Call("GET", "/metrics");
    const double written0 = m0 ? MetricSum(m0->body, "syncwell_sync_records_written_total") : 0;
    const double calls0 = m0 ? MetricSum(m0->body, "syncwell_provider_calls_total") : 0;
    const double cpu0 = ProcessCpuSeconds(server_proc.pid());
    const double sim_cpu0 = ProcessCpuSeconds(sim_proc.pid());
    const double finished0 = finished_deliveries();
    const auto t = std::chrono::steady_clock::now();
    const int64_t t_ms = ToUnixMillis(clock.Now());
    // --incremental-new-data: before each round, the chosen users get one new record at the
    // source of each config (no webhook: the round's job finds it, as a scheduled sync would).
    std::atomic<int> appended{0};
    constexpr int kAppenders = 8;
    const auto sim_clients = Clients(sim_url, o.incremental_new_data > 0 ? kAppenders : 0);
    const auto add_new_data = [&]() -> Status {
      if (o.incremental_new_data <= 0) return {};
      return ParallelFor(o.users, kAppenders, [&](int i, int thread) -> Status {
        if ((i * 37) % 100 >= o.incremental_new_data) return {};  // spread over the users
        for (const auto& cfg : kConfigs) {
          auto r = sim_clients[static_cast<size_t>(thread)]->Json(
              "POST", "/_sim/users/" + users[static_cast<size_t>(i)].sim_user + "/" + cfg.source +
                          "/new-data?type=" + cfg.type + "&webhook=0");
          if (!r) return r.error();
          ++appended;
        }
        return {};
      });
    };
    Status posted;
    double posting = 0;
    for (int round = 0; round < o.incremental_rounds && posted; ++round) {
      posted = add_new_data();
      if (posted) posted = post_all();
      posting += post_seconds;
    }
    std::set<std::pair<size_t, size_t>> open2;
    for (size_t i = 0; i < users.size(); ++i)
      for (size_t j = first[i]; j < users[i].jobs.size(); ++j) open2.insert({i, j});
    const int total2 = static_cast<int>(open2.size());
    std::optional<std::chrono::steady_clock::time_point> done2;
    const auto deadline2 = std::chrono::steady_clock::now() + o.timeout;
    await_finished(finished0, total2, deadline2);
    const double cpu1 = ProcessCpuSeconds(server_proc.pid());
    const double sim_cpu1 = ProcessCpuSeconds(sim_proc.pid());
    std::vector<int64_t> finished2_ms;
    const int failed2 =
        wait_jobs(open2, total2, deadline2, std::chrono::milliseconds(200), done2, finished2_ms);
    const double span = span_seconds(t, t_ms, finished2_ms, done2);
    auto m1 = server.Call("GET", "/metrics");
    const double written1 = m1 ? MetricSum(m1->body, "syncwell_sync_records_written_total") : 0;
    const double calls1 = m1 ? MetricSum(m1->body, "syncwell_provider_calls_total") : 0;
    auto stats2 = sim.Json("GET", "/_sim/stats");
    const int64_t dups2 = stats2 ? stats2->at("totals").at("duplicates").to_number<int64_t>() : -1;
    const int lost2 = static_cast<int>(open2.size());
    incremental_ok = posted && failed2 == 0 && lost2 == 0 && dups2 == 0;
    std::printf(
        "bench incremental: %d jobs in %.2f s = %.1f jobs/s end to end (202 -> finished); %.0f "
        "records written; %.0f provider calls (%.1f/job; %.0f HTTP requests answered by the "
        "simulator); server CPU %.2f s = %.2f ms/job; "
        "failed %d, lost %d, simulator duplicates %lld: %s; latency %s; %d round(s) posted in "
        "%.2f s; sustained %.1f jobs/s (middle 80%% of finish times); new source records %d; "
        "simulator CPU %.2f ms/job (with the new records' appends)\n",
        total2, span, total2 / span, written1 - written0, calls1 - calls0,
        total2 > 0 ? (calls1 - calls0) / total2 : 0.0, SimAnswered(stats2) - answered0, cpu1 - cpu0,
        total2 > 0 ? 1000 * (cpu1 - cpu0) / total2 : 0.0, failed2, lost2,
        static_cast<long long>(dups2), incremental_ok ? "HOLD" : "VIOLATED",
        o.incremental_latency.empty() ? o.latency.c_str() : o.incremental_latency.c_str(),
        o.incremental_rounds, posting, SustainedRate(finished2_ms).value_or(0), appended.load(),
        total2 > 0 ? 1000 * (sim_cpu1 - sim_cpu0) / total2 : 0.0);
  }
  const auto& u0 = users.front();
  std::printf(
      "\ntry the API (token of %s, valid 24 h):\n  curl -H 'Authorization: Bearer %s' "
      "%s/v1/connections\n  %s/metrics   %s/v1/openapi.json   simulator: %s/_sim/stats\n",
      u0.user.c_str(), u0.token.c_str(), api_url.c_str(), api_url.c_str(), api_url.c_str(),
      sim_url.c_str());
  std::fflush(stdout);
  if (o.follow) {
    std::printf("--follow: servers keep running; Ctrl-C to stop.\n");
    std::fflush(stdout);
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::atomic<bool> stop{false};
    std::thread waiter([&] {
      int sig = 0;
      sigwait(&signals, &sig);
      stop = true;
    });
    while (!stop) {
      PrintProgress(server, started, total - lost, total);
      for (int i = 0; i < 50 && !stop; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    waiter.join();
  }
  const int server_rc = server_proc.Stop(std::chrono::seconds(30));
  sim_proc.Stop(std::chrono::seconds(10));
  if (server_rc != 0) {
    std::printf("server exited with %d; see %s/server.log\n", server_rc, data_dir.c_str());
    return 1;
  }
  return ok && incremental_ok ? 0 : 1;
}

}  // namespace syncwell::app
