#include "providers/sim/sim_server.hpp"

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <sstream>
#include <thread>

#include "api/http_server.hpp"
#include "net/http_client.hpp"

namespace syncwell::sim {

namespace json = boost::json;
using providers::DataType;
using providers::Record;

// ---------------------------------------------------------------------------------------------
// Settings

namespace {

const std::vector<std::string>& BuiltinProviders() {
  static const std::vector<std::string> kAll = {"strava", "withings", "garmin", "fitbit"};
  return kAll;
}

bool AsNumber(const json::value& v, double* out) {
  if (v.is_int64()) {
    *out = static_cast<double>(v.get_int64());
  } else if (v.is_uint64()) {
    *out = static_cast<double>(v.get_uint64());
  } else if (v.is_double()) {
    *out = v.get_double();
  } else {
    return false;
  }
  return true;
}

Error BadField(std::string_view field, std::string_view what) {
  return MakeError(Errc::kInvalidArgument, std::string(field) + ": " + std::string(what));
}

Status ApplyProfile(const json::object& o, const ProviderProfile& defaults, ProviderProfile* p) {
  ProviderProfile n = *p;
  for (const auto& kv : o) {
    const std::string_view k = kv.key();
    const json::value& v = kv.value();
    if (k == "client_id" || k == "client_secret" || k == "webhook_secret") {
      if (!v.is_string()) return BadField(k, "must be a string");
      std::string s(v.get_string());
      (k == "client_id"       ? n.client_id
       : k == "client_secret" ? n.client_secret
                              : n.webhook_secret) = std::move(s);
      continue;
    }
    if (k == "fail_after_apply" || k == "rate_limits") {
      if (!v.is_bool()) return BadField(k, "must be true or false");
      if (k == "fail_after_apply") {
        n.fail_after_apply = v.get_bool();
      } else {
        const ProviderProfile& src = v.get_bool() ? defaults : ProviderProfile{};
        n.app_limit = v.get_bool() ? src.app_limit : 0;
        n.user_limit = v.get_bool() ? src.user_limit : 0;
        if (v.get_bool()) {
          n.app_window = defaults.app_window;
          n.user_window = defaults.user_window;
        }
      }
      continue;
    }
    double d = 0;
    if (!AsNumber(v, &d)) return BadField(k, "must be a number");
    auto integer = [&](double lo, double hi) -> std::optional<int64_t> {
      if (d != std::floor(d) || d < lo || d > hi) return std::nullopt;
      return static_cast<int64_t>(d);
    };
    constexpr double kMax = 1e12;
    if (k == "error_rate" || k == "timeout_rate") {
      if (!(d >= 0 && d <= 1)) return BadField(k, "must be in [0, 1]");
      (k == "error_rate" ? n.error_rate : n.timeout_rate) = d;
    } else if (k == "latency_min_ms" || k == "latency_max_ms" || k == "timeout_hang_ms") {
      auto i = integer(0, 3'600'000);
      if (!i) return BadField(k, "must be an integer in [0, 3600000]");
      (k == "latency_min_ms"   ? n.latency_min
       : k == "latency_max_ms" ? n.latency_max
                               : n.timeout_hang) = std::chrono::milliseconds(*i);
    } else if (k == "app_limit" || k == "user_limit") {
      auto i = integer(0, kMax);
      if (!i) return BadField(k, "must be a non-negative integer (0 = unlimited)");
      (k == "app_limit" ? n.app_limit : n.user_limit) = *i;
    } else if (k == "app_window_s" || k == "user_window_s" || k == "token_ttl_s") {
      auto i = integer(1, kMax);
      if (!i) return BadField(k, "must be a positive integer");
      (k == "app_window_s"    ? n.app_window
       : k == "user_window_s" ? n.user_window
                              : n.token_ttl) = std::chrono::seconds(*i);
    } else if (k == "fail_next_writes") {
      auto i = integer(0, 1e9);
      if (!i) return BadField(k, "must be a non-negative integer");
      n.fail_next_writes = static_cast<int>(*i);
    } else {
      return BadField(k, "unknown profile field");
    }
  }
  if (n.latency_max < n.latency_min) return BadField("latency_max_ms", "below latency_min_ms");
  if (n.error_rate + n.timeout_rate > 1) return BadField("timeout_rate", "error + timeout > 1");
  *p = std::move(n);
  return {};
}

json::object ProfileJson(const ProviderProfile& p) {
  json::object o;
  o["latency_min_ms"] = p.latency_min.count();
  o["latency_max_ms"] = p.latency_max.count();
  o["error_rate"] = p.error_rate;
  o["timeout_rate"] = p.timeout_rate;
  o["timeout_hang_ms"] = p.timeout_hang.count();
  o["app_limit"] = p.app_limit;
  o["app_window_s"] = p.app_window.count();
  o["user_limit"] = p.user_limit;
  o["user_window_s"] = p.user_window.count();
  o["token_ttl_s"] = p.token_ttl.count();
  o["fail_next_writes"] = p.fail_next_writes;
  o["fail_after_apply"] = p.fail_after_apply;
  o["client_id"] = p.client_id;
  return o;
}

Result<json::object> ParseObject(std::string_view text) {
  boost::system::error_code ec;
  json::parse_options opt;
  opt.max_depth = 16;
  json::value v = json::parse(text, ec, {}, opt);
  if (ec) return MakeError(Errc::kInvalidArgument, "invalid JSON: " + ec.message());
  if (!v.is_object()) return MakeError(Errc::kInvalidArgument, "expected a JSON object");
  return std::move(v.as_object());
}

}  // namespace

SimSettings DefaultSimSettings(bool rate_limits) {
  SimSettings s;
  ProviderProfile strava;
  strava.app_limit = 600;
  strava.app_window = std::chrono::seconds(900);
  strava.token_ttl = std::chrono::seconds(6 * 3600);
  ProviderProfile fitbit;
  fitbit.user_limit = 150;
  fitbit.user_window = std::chrono::seconds(3600);
  fitbit.token_ttl = std::chrono::seconds(8 * 3600);
  ProviderProfile garmin;
  garmin.app_limit = 100;
  garmin.app_window = std::chrono::seconds(60);
  garmin.token_ttl = std::chrono::seconds(24 * 3600);
  ProviderProfile withings;
  withings.app_limit = 120;
  withings.app_window = std::chrono::seconds(60);
  withings.token_ttl = std::chrono::seconds(3 * 3600);
  s.profiles = {{"strava", strava}, {"fitbit", fitbit}, {"garmin", garmin}, {"withings", withings}};
  if (!rate_limits) DisableRateLimits(&s);
  return s;
}

void DisableRateLimits(SimSettings* settings) {
  for (auto& [name, p] : settings->profiles) {
    p.app_limit = 0;
    p.user_limit = 0;
  }
}

Status ApplyProfileJson(std::string_view json_object, const ProviderProfile& defaults,
                        ProviderProfile* profile) {
  auto o = ParseObject(json_object);
  if (!o.ok()) return o.error();
  return ApplyProfile(*o, defaults, profile);
}

std::string ProfileToJson(const ProviderProfile& profile) {
  return json::serialize(ProfileJson(profile));
}

Result<SimSettings> ParseSimSettingsJson(std::string_view text) {
  auto doc = ParseObject(text);
  if (!doc.ok()) return doc.error();
  SimSettings s = DefaultSimSettings();
  const SimSettings defaults = DefaultSimSettings();
  const json::object* profiles = nullptr;
  for (const auto& kv : *doc) {
    const std::string_view k = kv.key();
    const json::value& v = kv.value();
    if (k == "seed") {
      if (v.is_uint64()) {
        s.seed = v.get_uint64();
      } else if (v.is_int64() && v.get_int64() >= 0) {
        s.seed = static_cast<uint64_t>(v.get_int64());
      } else {
        return BadField(k, "must be a non-negative integer");
      }
    } else if (k == "days_of_history") {
      if (!v.is_int64() || v.get_int64() < 1 || v.get_int64() > 3650)
        return BadField(k, "must be an integer in [1, 3650]");
      s.days_of_history = static_cast<int>(v.get_int64());
    } else if (k == "webhook_target") {
      if (!v.is_string()) return BadField(k, "must be a string");
      s.webhook_target = std::string(v.get_string());
    } else if (k == "rate_limits") {
      if (!v.is_bool()) return BadField(k, "must be true or false");
      if (!v.get_bool()) DisableRateLimits(&s);
    } else if (k == "profiles") {
      if (!v.is_object()) return BadField(k, "must be an object");
      profiles = &v.get_object();
    } else {
      return BadField(k, "unknown field");
    }
  }
  if (profiles) {
    // "*" first: it applies to every built-in provider, then named profiles refine.
    if (const auto* all = profiles->if_contains("*")) {
      if (!all->is_object()) return BadField("profiles.*", "must be an object");
      for (const auto& name : BuiltinProviders()) {
        auto st = ApplyProfile(all->get_object(), defaults.profiles.at(name), &s.profiles[name]);
        if (!st.ok()) return BadField("profiles.*", st.error().message);
      }
    }
    for (const auto& kv : *profiles) {
      if (kv.key() == "*") continue;
      const std::string name(kv.key());
      if (!kv.value().is_object()) return BadField("profiles." + name, "must be an object");
      auto it = defaults.profiles.find(name);
      const ProviderProfile d = it == defaults.profiles.end() ? ProviderProfile{} : it->second;
      auto st = ApplyProfile(kv.value().get_object(), d, &s.profiles[name]);
      if (!st.ok()) return BadField("profiles." + name, st.error().message);
    }
  }
  return s;
}

Result<SimSettings> LoadSimSettings(const std::string& json_path) {
  std::ifstream in(json_path, std::ios::binary);
  if (!in) return MakeError(Errc::kInvalidArgument, "cannot read " + json_path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto s = ParseSimSettingsJson(ss.str());
  if (!s.ok()) return MakeError(Errc::kInvalidArgument, json_path + ": " + s.error().message);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Request helpers

namespace {

std::vector<std::string> Segments(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

bool MatchSegments(const std::vector<std::string>& pattern, const std::vector<std::string>& path,
                   std::map<std::string, std::string>* params) {
  if (pattern.size() != path.size()) return false;
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < path.size(); ++i) {
    const auto& p = pattern[i];
    if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
      if (path[i].empty()) return false;
      out[p.substr(1, p.size() - 2)] = path[i];
    } else if (p != path[i]) {
      return false;
    }
  }
  *params = std::move(out);
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 &&
               HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(std::string_view q) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  while (i <= q.size() && !q.empty()) {
    size_t amp = q.find('&', i);
    if (amp == std::string_view::npos) amp = q.size();
    const std::string_view part = q.substr(i, amp - i);
    if (!part.empty()) {
      const size_t eq = part.find('=');
      std::string key = PercentDecode(part.substr(0, eq));
      std::string value = eq == std::string_view::npos ? "" : PercentDecode(part.substr(eq + 1));
      out.emplace(std::move(key), std::move(value));
    }
    if (amp == q.size()) break;
    i = amp + 1;
  }
  return out;
}

api::HttpResponse Json(int status, const json::value& v) {
  api::HttpResponse r;
  r.status = status;
  r.body = json::serialize(v);
  return r;
}

api::HttpResponse JsonError(int status, std::string_view error, std::string_view message) {
  return Json(status, json::object{{"error", error}, {"message", message}});
}

json::object RecordJson(const Record& r) {
  json::object o;
  o["id"] = r.meta.id;
  o["type"] = providers::DataTypeName(r.meta.type);
  o["start_ms"] = r.meta.start_ms;
  o["end_ms"] = r.meta.end_ms;
  o["utc_offset_min"] = r.meta.utc_offset_min;
  o["modified_ms"] = r.meta.modified_ms;
  o["activity"] = r.meta.activity;
  o["origin"] = r.meta.origin;
  o["fingerprint"] = providers::Fingerprint(r);
  json::object d;
  if (const auto* w = std::get_if<providers::WorkoutData>(&r.data)) {
    d["name"] = w->name;
    d["distance_m"] = w->distance_m;
    d["energy_kcal"] = w->energy_kcal;
    d["avg_heart_rate_bpm"] = w->avg_heart_rate_bpm;
  } else if (const auto* s = std::get_if<providers::StepsData>(&r.data)) {
    d["count"] = s->count;
  } else if (const auto* z = std::get_if<providers::SleepData>(&r.data)) {
    d["deep_min"] = z->deep_min;
    d["light_min"] = z->light_min;
    d["rem_min"] = z->rem_min;
    d["awake_min"] = z->awake_min;
  } else if (const auto* k = std::get_if<providers::WeightData>(&r.data)) {
    d["kg"] = k->kg;
    if (k->fat_ratio) d["fat_ratio"] = *k->fat_ratio;
  }
  o["data"] = std::move(d);
  return o;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::optional<int64_t> ParseInt64(const std::string& s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  int64_t v = 0;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '-') {
    neg = true;
    i = 1;
    if (s.size() == 1) return std::nullopt;
  }
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  return neg ? -v : v;
}

// Runs functions at a given time on a few threads (lanes), none of them held while waiting:
// what lets the simulator keep thousands of requests in their injected latency at once.
// Each lane has a min-heap by due time; At() spreads work over the lanes in turn.
class Delayer {
 public:
  using Fn = std::function<void()>;
  using Time = std::chrono::steady_clock::time_point;

  Delayer() = default;
  ~Delayer() { Stop(); }
  Delayer(const Delayer&) = delete;
  Delayer& operator=(const Delayer&) = delete;

  void Start(int lanes) {
    for (int i = 0; i < std::max(1, lanes); ++i) {
      auto lane = std::make_unique<Lane>();
      lane->thread = std::thread([l = lane.get()] { Run(*l); });
      lanes_.push_back(std::move(lane));
    }
  }

  // Runs `fn` at `due` (at once when `due` has passed). Not started or stopped: on the caller.
  void At(Time due, Fn fn) {
    if (!lanes_.empty()) {
      Lane& lane = *lanes_[next_.fetch_add(1, std::memory_order_relaxed) % lanes_.size()];
      std::unique_lock lock(lane.mu);
      if (!lane.stop) {
        const bool earliest = lane.heap.empty() || due < lane.heap.top().due;
        lane.heap.push(Item{due, lane.seq++, std::move(fn)});
        lock.unlock();
        if (earliest) lane.cv.notify_one();
        return;
      }
    }
    fn();
  }

  // Runs everything still waiting at once (each function sees its caller stopping), then joins.
  void Stop() {
    for (auto& lane : lanes_) {
      {
        std::lock_guard lock(lane->mu);
        lane->stop = true;
      }
      lane->cv.notify_one();
    }
    for (auto& lane : lanes_) {
      if (lane->thread.joinable()) lane->thread.join();
    }
  }

 private:
  struct Item {
    Time due;
    uint64_t seq;  // FIFO among equal due times
    Fn fn;
    bool operator>(const Item& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };
  struct Lane {
    std::mutex mu;
    std::condition_variable cv;
    std::priority_queue<Item, std::vector<Item>, std::greater<>> heap;
    uint64_t seq = 0;
    bool stop = false;
    std::thread thread;
  };

  static void Run(Lane& lane) {
    std::unique_lock lock(lane.mu);
    while (true) {
      if (lane.heap.empty()) {
        if (lane.stop) return;
        lane.cv.wait(lock);
        continue;
      }
      const Time due = lane.heap.top().due;
      if (!lane.stop && std::chrono::steady_clock::now() < due) {
        lane.cv.wait_until(lock, due);
        continue;
      }
      Fn fn = std::move(const_cast<Item&>(lane.heap.top()).fn);
      lane.heap.pop();
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  std::vector<std::unique_ptr<Lane>> lanes_;
  std::atomic<size_t> next_{0};
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// SimServer

class SimServer::Impl {
 public:
  Impl(SimSettings settings, SimServerOptions options, const Clock& clock)
      : options_(std::move(options)),
        defaults_(DefaultSimSettings()),
        webhook_target_(settings.webhook_target),
        world_(std::move(settings), clock),
        client_(net::MakeHttpClient()) {
    std::vector<ModuleSpec> all;
    if (options_.builtin_modules) {
      all = {StravaModule(), WithingsModule(), GarminModule(), FitbitModule()};
    }
    for (auto& m : options_.modules) {
      auto same = std::find_if(all.begin(), all.end(),
                               [&](const ModuleSpec& x) { return x.provider == m.provider; });
      if (same != all.end()) {
        *same = std::move(m);
      } else {
        all.push_back(std::move(m));
      }
    }
    options_.modules.clear();
    for (auto& m : all) {
      Module mod;
      for (const auto& r : m.routes) mod.route_segments.push_back(Segments(r.pattern));
      mod.spec = std::move(m);
      modules_.emplace(mod.spec.provider, std::move(mod));
    }
  }

  ~Impl() { Stop(); }

  Status Start() {
    api::HttpServerSettings hs;
    hs.host = options_.host;
    hs.port = options_.port;
    hs.io_threads = options_.io_threads;
    hs.handler_threads = options_.handler_threads;
    hs.access_log = options_.access_log;
    // Requests in their injected wait count as queued but hold no thread: bound them by
    // connections (one request each), not by a thread pool's queue.
    hs.max_queued_requests = std::max(hs.max_connections, options_.handler_threads * 4);
    server_ = std::make_unique<api::HttpServer>(
        hs, [this](const api::HttpRequest& r) { return Handle(r); }, metrics_);
    server_->SetInlineHandler(
        [this](const api::HttpRequest& r, api::HttpResponse& now, api::DeferredResponse& later) {
          return TryInline(r, now, later);
        });
    delayer_.Start(options_.response_threads);
    auto st = server_->Start();
    if (!st.ok()) {
      delayer_.Stop();
      server_.reset();
    }
    return st;
  }

  void Stop() {
    {
      std::lock_guard lock(stop_mu_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    // Requests in their injected wait are answered 503 at once (later ones too: At() runs them
    // on the caller once stopped), so the drain below never waits for a latency or a hang.
    delayer_.Stop();
    if (server_) {
      server_->Drain(options_.stop_grace);
      server_->Stop();
      server_.reset();
    }
  }

  uint16_t port() const { return server_ ? server_->port() : 0; }
  std::string base_url() const {
    const bool v6 = options_.host.find(':') != std::string::npos;
    return "http://" + (v6 ? "[" + options_.host + "]" : options_.host) + ":" +
           std::to_string(port());
  }
  World& world() { return world_; }
  obs::Registry& metrics() { return metrics_; }

  api::HttpResponse Handle(const api::HttpRequest& req) {
    return Guarded([&] {
      const auto segs = Segments(req.path);
      if (req.path == "/healthz") return Route(Json(200, {{"status", "ok"}}), "healthz");
      if (!IsProviderPath(req.path, segs)) return HandleSim(req, segs);
      return HandleProvider(req, segs);
    });
  }

 private:
  // `f()`, or a 500 if it throws. Never echo the exception text: a module's message could contain
  // request data.
  template <class F>
  static api::HttpResponse Guarded(F&& f) {
    try {
      return f();
    } catch (const std::exception&) {
      return JsonError(500, "internal", "simulator error");
    }
  }

  // Everything but "/healthz" and "/_sim/...".
  static bool IsProviderPath(const std::string& path, const std::vector<std::string>& segs) {
    return path != "/healthz" && (segs.empty() || segs[0] != "_sim");
  }

  struct Module {
    ModuleSpec spec;
    std::vector<std::vector<std::string>> route_segments;  // parallel to spec.routes
  };

  static api::HttpResponse Route(api::HttpResponse r, std::string route) {
    r.route = std::move(route);
    return r;
  }

  // Sleeps for `d` unless Stop() is called first; false when stopping.
  bool Sleep(std::chrono::milliseconds d) {
    std::unique_lock lock(stop_mu_);
    if (d.count() <= 0) return !stopping_;
    return !stop_cv_.wait_for(lock, d, [this] { return stopping_; });
  }

  void Count(const std::string& name) {
    std::lock_guard lock(counters_mu_);
    ++counters_[name];
  }

  std::string WebhookTarget() const {
    std::lock_guard lock(counters_mu_);
    return webhook_target_;
  }

  // --- provider routes ---
  //
  // A provider request is split at its injected wait (World::Admit's latency, plus the hang of an
  // injected timeout): Prepare() routes, authorizes and admits it (short, in-memory work);
  // Finish() answers once the wait is over. Handle() sleeps in between (its caller's thread);
  // the running server instead waits on a Delayer, holding no thread (TryInline).

  struct Prepared {
    std::optional<api::HttpResponse> answer;  // final without waiting: 404, 405, 401
    const ModuleSpec* spec = nullptr;
    const ModuleSpec::Route* route = nullptr;
    std::map<std::string, std::string> params;
    std::string route_name;  // "<provider> <method> <pattern>" for metrics and the access log
    bool admitted = false;   // a kBearer route: `user` and `adm` are set
    std::string user;
    Admission adm;
    std::chrono::milliseconds wait{0};
  };

  Prepared Prepare(const api::HttpRequest& req, const std::vector<std::string>& segs) {
    Prepared p;
    if (segs.empty()) return Answer(std::move(p), JsonError(404, "not_found", "no such provider"));
    auto mit = modules_.find(segs[0]);
    if (mit == modules_.end()) {
      return Answer(std::move(p), JsonError(404, "not_found", "no such provider"));
    }
    const Module& mod = mit->second;
    const std::string& provider = mod.spec.provider;
    const std::vector<std::string> rest(segs.begin() + 1, segs.end());
    std::string allow;
    for (size_t i = 0; i < mod.spec.routes.size(); ++i) {
      std::map<std::string, std::string> params;
      if (!MatchSegments(mod.route_segments[i], rest, &params)) continue;
      const ModuleSpec::Route& route = mod.spec.routes[i];
      if (route.method != req.method) {
        allow += (allow.empty() ? "" : ", ") + route.method;
        continue;
      }
      p.spec = &mod.spec;
      p.route = &route;
      p.params = std::move(params);
      p.route_name = provider + " " + route.method + " " + route.pattern;
      if (route.auth == SimAuth::kNone) return p;
      std::string token;
      if (const std::string* h = req.Header("authorization");
          h && h->size() > 7 && EqualsIgnoreCase(std::string_view(*h).substr(0, 7), "bearer ")) {
        token = h->substr(7);
      }
      auto user = token.empty() ? Result<std::string>(MakeError(Errc::kUnauthenticated, "none"))
                                : world_.Authorize(provider, token);
      if (!user.ok()) {
        Count(provider + ".unauthorized");
        api::HttpResponse r;
        if (mod.spec.unauthorized) {
          r = mod.spec.unauthorized();
        } else {
          r = JsonError(401, "invalid_token", "missing, invalid or expired access token");
          r.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
        }
        r.status = 401;
        r.route = p.route_name;
        p.answer = std::move(r);
        return p;
      }
      p.admitted = true;
      p.user = std::move(*user);
      p.adm = world_.Admit(provider, p.user, route.is_write);
      p.wait = p.adm.latency;
      if (p.adm.kind == Admission::Kind::kTimeout) p.wait += world_.Profile(provider).timeout_hang;
      return p;
    }
    if (!allow.empty()) {
      auto r = JsonError(405, "method_not_allowed", "method not allowed");
      r.headers.emplace_back("Allow", allow);
      return Answer(std::move(p), Route(std::move(r), provider + " 405"));
    }
    return Answer(std::move(p),
                  Route(JsonError(404, "not_found", "no such endpoint"), provider + " 404"));
  }

  static Prepared Answer(Prepared p, api::HttpResponse r) {
    p.answer = std::move(r);
    return p;
  }

  // After the wait. `p.answer` is empty.
  api::HttpResponse Finish(const api::HttpRequest& req, Prepared& p) {
    api::HttpResponse resp = FinishInner(req, p);
    resp.route = p.route_name;
    return resp;
  }

  api::HttpResponse FinishInner(const api::HttpRequest& req, Prepared& p) {
    if (!p.admitted)
      return p.route->handler(SimRequest{req, std::move(p.params), "", nullptr}, world_);
    const Admission& adm = p.adm;
    switch (adm.kind) {
      case Admission::Kind::kError5xx:
        return JsonError(503, "unavailable", "simulated provider outage");
      case Admission::Kind::kTimeout:
        // The client is expected to give up first; the HttpServer API cannot drop a connection
        // without answering, so after the hang a 504 is sent.
        return JsonError(504, "timeout", "simulated provider timeout");
      case Admission::Kind::kRateLimited: {
        api::HttpResponse r;
        if (p.spec->rate_limited) {
          r = p.spec->rate_limited(adm);
        } else {
          r = Json(429, {{"error", "rate_limited"},
                         {"scope", adm.limit_scope},
                         {"limit", adm.limit},
                         {"usage", adm.used}});
        }
        r.status = 429;
        bool has_retry_after = false;
        for (const auto& [k, v] : r.headers) {
          if (EqualsIgnoreCase(k, "retry-after")) has_retry_after = true;
        }
        if (!has_retry_after)
          r.headers.emplace_back("Retry-After", std::to_string(adm.retry_after.count()));
        return r;
      }
      case Admission::Kind::kOk:
        break;
    }
    api::HttpResponse resp =
        p.route->handler(SimRequest{req, std::move(p.params), p.user, &adm}, world_);
    if (adm.fail_after_apply) return JsonError(503, "unavailable", "simulated failure after write");
    return resp;
  }

  api::HttpResponse HandleProvider(const api::HttpRequest& req,
                                   const std::vector<std::string>& segs) {
    Prepared p = Prepare(req, segs);
    if (p.answer) return std::move(*p.answer);
    if (!Sleep(p.wait)) return Stopping(p.route_name);
    return Finish(req, p);
  }

  static api::HttpResponse Stopping(const std::string& route_name) {
    return Route(JsonError(503, "unavailable", "simulator stopping"), route_name);
  }

  // The running server's InlineHandler (I/O thread): takes every provider request, prepares it
  // at once and finishes it on the Delayer when its wait is over. The request outlives the
  // deferred response (the HttpServer keeps it until `done`).
  bool TryInline(const api::HttpRequest& req, api::HttpResponse& now,
                 api::DeferredResponse& later) {
    const auto segs = Segments(req.path);
    if (!IsProviderPath(req.path, segs)) return false;
    auto p = std::make_shared<Prepared>();
    now = Guarded([&] {
      *p = Prepare(req, segs);
      return p->answer ? std::move(*p->answer) : api::HttpResponse{};
    });
    if (p->route == nullptr || p->answer) return true;  // answered now (404/405/401/500)
    const auto due = std::chrono::steady_clock::now() + p->wait;
    later = [this, p, due, req = &req](std::function<void(api::HttpResponse)> done) {
      waiting_.fetch_add(1);
      delayer_.At(due, [this, p, req, done = std::move(done)] {
        waiting_.fetch_sub(1);
        done(IsStopping() ? Stopping(p->route_name) : Guarded([&] { return Finish(*req, *p); }));
      });
    };
    return true;
  }

  bool IsStopping() {
    std::lock_guard lock(stop_mu_);
    return stopping_;
  }

  // --- /_sim ---

  api::HttpResponse HandleSim(const api::HttpRequest& req, const std::vector<std::string>& segs) {
    api::HttpResponse r = HandleSimInner(req, segs);
    r.route = "_sim";
    return r;
  }

  api::HttpResponse HandleSimInner(const api::HttpRequest& req,
                                   const std::vector<std::string>& segs) {
    const auto q = ParseQuery(req.query);
    auto param = [&](const char* name) {
      auto it = q.find(name);
      return it == q.end() ? std::string() : it->second;
    };
    const std::string& m = req.method;
    std::map<std::string, std::string> p;
    auto match = [&](const char* method, const char* pattern) {
      return m == method && MatchSegments(Segments(pattern), segs, &p);
    };

    if (match("GET", "/_sim/authorize")) return SimAuthorize(param("provider"), param("user"), q);
    if (match("GET", "/_sim/stats")) return Stats();
    if (match("GET", "/_sim/config")) return ConfigJson();
    if (match("POST", "/_sim/config")) return Config(req);
    if (match("POST", "/_sim/webhooks/{provider}")) {
      DataType type = DataType::kWorkout;
      if (!param("type").empty() && !providers::ParseDataType(param("type"), &type))
        return JsonError(400, "bad_request", "unknown type");
      if (param("user").empty()) return JsonError(400, "bad_request", "user is required");
      return SendWebhookResponse(PercentDecode(p["provider"]), param("user"), type);
    }
    if (segs.size() >= 4 && segs[1] == "users") {
      const std::string user = PercentDecode(segs[2]);
      const std::string provider = PercentDecode(segs[3]);
      if (match("GET", "/_sim/users/{u}/{p}/written")) return Written(provider, user);
      if (match("GET", "/_sim/users/{u}/{p}/records")) {
        return Records(provider, user, param("type"), param("from"), param("to"));
      }
      if (match("GET", "/_sim/users/{u}/{p}/id")) {
        return Json(200, {{"provider_user_id", world_.ProviderUserId(provider, user)}});
      }
      if (match("POST", "/_sim/users/{u}/{p}/expire-tokens")) {
        world_.ExpireTokens(provider, user);
        return Json(200, {{"ok", true}});
      }
      if (match("POST", "/_sim/users/{u}/{p}/revoke")) {
        world_.RevokeUser(provider, user);
        return Json(200, {{"ok", true}});
      }
      if (match("POST", "/_sim/users/{u}/{p}/new-data")) {
        return NewData(provider, user, param("type").empty() ? "workout" : param("type"),
                       param("webhook") != "0");
      }
    }
    return JsonError(404, "not_found", "no such simulator endpoint");
  }

  api::HttpResponse SimAuthorize(const std::string& provider, const std::string& user,
                                 const std::map<std::string, std::string>& q) {
    if (provider.empty() || user.empty())
      return JsonError(400, "bad_request", "provider and user are required");
    const std::string code = world_.IssueAuthCode(provider, user);
    auto redirect = q.find("redirect_uri");
    if (redirect != q.end() && !redirect->second.empty()) {
      // The "consent screen" approves at once and sends the browser back, as a provider would.
      std::string location = redirect->second;
      location += location.find('?') == std::string::npos ? '?' : '&';
      location += "code=" + net::UrlEncode(code);
      if (auto st = q.find("state"); st != q.end())
        location += "&state=" + net::UrlEncode(st->second);
      api::HttpResponse r;
      r.status = 302;
      r.content_type.clear();
      r.headers.emplace_back("Location", location);
      return r;
    }
    return Json(200, {{"code", code}, {"provider_user_id", world_.ProviderUserId(provider, user)}});
  }

  api::HttpResponse Stats() {
    const auto totals = world_.Totals();
    json::object counters;
    for (const auto& [k, v] : world_.Counters()) counters[k] = v;
    {
      std::lock_guard lock(counters_mu_);
      for (const auto& [k, v] : counters_) counters[k] = v;
    }
    return Json(200, {{"totals",
                       {{"records", totals.records},
                        {"writes", totals.writes},
                        {"duplicates", totals.duplicates}}},
                      {"counters", std::move(counters)},
                      {"waiting", waiting_.load()}});
  }

  api::HttpResponse ConfigJson() {
    json::object profiles;
    std::vector<std::string> names = BuiltinProviders();
    for (const auto& [name, mod] : modules_) {
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    for (const auto& name : names) profiles[name] = ProfileJson(world_.Profile(name));
    return Json(200, {{"seed", world_.settings().seed},
                      {"days_of_history", world_.settings().days_of_history},
                      {"webhook_target", WebhookTarget()},
                      {"profiles", std::move(profiles)}});
  }

  // Body: {"provider": "strava" | "*", <profile fields>...} and/or {"webhook_target": "..."}.
  api::HttpResponse Config(const api::HttpRequest& req) {
    auto doc = ParseObject(req.body);
    if (!doc.ok()) return JsonError(400, "bad_request", doc.error().message);
    json::object fields = std::move(doc.value());
    std::string provider;
    if (auto* v = fields.if_contains("provider")) {
      if (!v->is_string()) return JsonError(400, "bad_request", "provider must be a string");
      provider = std::string(v->get_string());
      fields.erase("provider");
    }
    std::optional<std::string> target;
    if (auto* v = fields.if_contains("webhook_target")) {
      if (!v->is_string()) return JsonError(400, "bad_request", "webhook_target must be a string");
      target = std::string(v->get_string());
      fields.erase("webhook_target");
    }
    if (provider.empty() && !fields.empty())
      return JsonError(400, "bad_request", "provider is required for profile fields");
    std::vector<std::string> names;
    if (provider == "*") {
      names = BuiltinProviders();
    } else if (!provider.empty()) {
      names.push_back(provider);
    }
    // Validate against every target first so a bad field changes nothing.
    std::vector<std::pair<std::string, ProviderProfile>> updated;
    for (const auto& name : names) {
      ProviderProfile prof = world_.Profile(name);
      auto it = defaults_.profiles.find(name);
      auto st = ApplyProfile(
          fields, it == defaults_.profiles.end() ? ProviderProfile{} : it->second, &prof);
      if (!st.ok()) return JsonError(400, "bad_request", st.error().message);
      updated.emplace_back(name, prof);
    }
    for (const auto& [name, prof] : updated) world_.SetProfile(name, prof);
    if (target) {
      std::lock_guard lock(counters_mu_);
      webhook_target_ = *target;
    }
    return ConfigJson();
  }

  api::HttpResponse Written(const std::string& provider, const std::string& user) {
    json::array records;
    for (const auto& w : world_.Written(provider, user)) {
      json::object o = RecordJson(w.record);
      o["write_count"] = w.write_count;
      o["written_at_ms"] = w.written_at_ms;
      records.push_back(std::move(o));
    }
    return Json(200, {{"provider", provider}, {"user", user}, {"records", std::move(records)}});
  }

  api::HttpResponse Records(const std::string& provider, const std::string& user,
                            const std::string& type_s, const std::string& from_s,
                            const std::string& to_s) {
    std::vector<DataType> types;
    if (type_s.empty()) {
      types = {DataType::kWorkout, DataType::kSleepSession, DataType::kSteps, DataType::kWeight};
    } else {
      DataType t;
      if (!providers::ParseDataType(type_s, &t)) return JsonError(400, "bad_request", "bad type");
      types.push_back(t);
    }
    auto from = from_s.empty() ? std::optional<int64_t>(0) : ParseInt64(from_s);
    auto to = to_s.empty() ? std::optional<int64_t>(std::numeric_limits<int64_t>::max())
                           : ParseInt64(to_s);
    if (!from || !to) return JsonError(400, "bad_request", "from/to must be epoch milliseconds");
    json::array records;
    for (DataType t : types) {
      for (const auto& r : world_.Records(provider, user, t, *from, *to))
        records.push_back(RecordJson(r));
    }
    return Json(200, {{"provider", provider}, {"user", user}, {"records", std::move(records)}});
  }

  // Sends the module's webhook for (user, type) to the configured target.
  Result<int> SendWebhook(const std::string& provider, const std::string& user, DataType type) {
    auto mit = modules_.find(provider);
    if (mit == modules_.end() || !mit->second.spec.make_webhook)
      return MakeError(Errc::kNotFound, provider + " has no webhooks in the simulator");
    std::string target = WebhookTarget();
    if (target.empty()) return MakeError(Errc::kConflict, "no webhook_target configured");
    while (!target.empty() && target.back() == '/') target.pop_back();
    const api::HttpRequest hook = mit->second.spec.make_webhook(user, type, world_);
    net::HttpCall call;
    call.method = hook.method.empty() ? "POST" : hook.method;
    call.url = target + hook.path + (hook.query.empty() ? "" : "?" + hook.query);
    call.headers = hook.headers;
    call.body = hook.body;
    call.timeout = options_.webhook_timeout;
    auto res = client_->Send(call);
    if (!res.ok()) {
      Count(provider + ".webhook_failed");
      return MakeError(Errc::kRetryable, res.error().message);
    }
    Count(provider + ".webhook_sent");
    return res->status;
  }

  api::HttpResponse SendWebhookResponse(const std::string& provider, const std::string& user,
                                        DataType type) {
    auto st = SendWebhook(provider, user, type);
    if (!st.ok()) {
      const int status = st.error().code == Errc::kNotFound   ? 404
                         : st.error().code == Errc::kConflict ? 409
                                                              : 502;
      return JsonError(status, "webhook_failed", st.error().message);
    }
    return Json(200, {{"status", *st}});
  }

  api::HttpResponse NewData(const std::string& provider, const std::string& user,
                            const std::string& type_s, bool webhook) {
    DataType type;
    if (!providers::ParseDataType(type_s, &type)) return JsonError(400, "bad_request", "bad type");
    auto rec = world_.AppendNative(provider, user, type);
    if (!rec.ok()) return JsonError(400, "bad_request", rec.error().message);
    json::object out{{"record", RecordJson(*rec)}, {"webhook_status", nullptr}};
    auto mit = modules_.find(provider);
    if (webhook && !WebhookTarget().empty() && mit != modules_.end() &&
        mit->second.spec.make_webhook) {
      auto st = SendWebhook(provider, user, type);
      if (st.ok()) {
        out["webhook_status"] = *st;
      } else {
        out["webhook_error"] = st.error().message;
      }
    }
    return Json(200, out);
  }

  SimServerOptions options_;
  const SimSettings defaults_;
  mutable std::mutex counters_mu_;  // counters_ and webhook_target_
  std::map<std::string, int64_t> counters_;
  std::string webhook_target_;
  World world_;
  std::map<std::string, Module> modules_;  // immutable after construction
  std::unique_ptr<net::HttpClient> client_;
  obs::Registry metrics_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  Delayer delayer_;                          // provider requests in their injected wait
  std::atomic<int64_t> waiting_{0};          // how many are in it now (/_sim/stats "waiting")
  std::unique_ptr<api::HttpServer> server_;  // last: destroyed (joined) first
};

SimServer::SimServer(SimSettings settings, SimServerOptions options, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(settings), std::move(options), clock)) {}
SimServer::~SimServer() = default;
Status SimServer::Start() { return impl_->Start(); }
void SimServer::Stop() { impl_->Stop(); }
uint16_t SimServer::port() const { return impl_->port(); }
std::string SimServer::base_url() const { return impl_->base_url(); }
World& SimServer::world() { return impl_->world(); }
obs::Registry& SimServer::metrics() { return impl_->metrics(); }
api::HttpResponse SimServer::Handle(const api::HttpRequest& req) { return impl_->Handle(req); }

}  // namespace syncwell::sim
