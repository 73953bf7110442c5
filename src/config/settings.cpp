#include "config/settings.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <sstream>

extern char** environ;

namespace syncwell::config {
namespace {

// One table of every key: name, how to set it from a string, how to print it. Adding a setting
// means adding one line here; TOML, env and flags all go through it.
struct Key {
  std::string name;  // "section.key"
  std::function<Status(Settings&, const std::string&)> set;
  std::function<std::string(const Settings&)> get;  // TOML literal
};

Status BadValue(const std::string& key, const std::string& value, const std::string& why) {
  return MakeError(Errc::kInvalidArgument, key + " = '" + value + "': " + why);
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

Key Str(std::string name, std::function<std::string&(Settings&)> ref,
        std::vector<std::string> allowed = {}) {
  auto set = [name, ref, allowed](Settings& s, const std::string& v) -> Status {
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      std::string list;
      for (auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return BadValue(name, v, "must be one of: " + list);
    }
    ref(s) = v;
    return {};
  };
  auto get = [ref](const Settings& s) { return Quote(ref(const_cast<Settings&>(s))); };
  return Key{std::move(name), set, get};
}

Key Int(std::string name, std::function<int64_t(const Settings&)> get,
        std::function<void(Settings&, int64_t)> put, int64_t min, int64_t max) {
  auto set = [name, put, min, max](Settings& s, const std::string& v) -> Status {
    int64_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size()) return BadValue(name, v, "not an integer");
    if (n < min || n > max) {
      return BadValue(name, v,
                      "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    put(s, n);
    return {};
  };
  return Key{std::move(name), set, [get](const Settings& s) { return std::to_string(get(s)); }};
}

Key Bool(std::string name, std::function<bool&(Settings&)> ref) {
  auto set = [name, ref](Settings& s, const std::string& v) -> Status {
    if (v == "true" || v == "1" || v == "on")
      ref(s) = true;
    else if (v == "false" || v == "0" || v == "off")
      ref(s) = false;
    else
      return BadValue(name, v, "must be true or false");
    return {};
  };
  return Key{std::move(name), set,
             [ref](const Settings& s) { return ref(const_cast<Settings&>(s)) ? "true" : "false"; }};
}

Key Dur(std::string name, std::function<std::chrono::milliseconds&(Settings&)> ref,
        std::chrono::milliseconds min, std::chrono::milliseconds max) {
  auto set = [name, ref, min, max](Settings& s, const std::string& v) -> Status {
    auto d = ParseDuration(v);
    if (!d) return BadValue(name, v, d.error().message);
    if (*d < min || *d > max) {
      return BadValue(name, v,
                      "must be between " + FormatDuration(min) + " and " + FormatDuration(max));
    }
    ref(s) = *d;
    return {};
  };
  return Key{std::move(name), set, [ref](const Settings& s) {
               return Quote(FormatDuration(ref(const_cast<Settings&>(s))));
             }};
}

Key List(std::string name, std::function<std::vector<std::string>&(Settings&)> ref,
         std::vector<std::string> allowed) {
  auto set = [name, ref, allowed](Settings& s, const std::string& v) -> Status {
    std::vector<std::string> out;
    std::stringstream ss(v);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (std::find(allowed.begin(), allowed.end(), item) == allowed.end()) {
        return BadValue(name, v, "'" + item + "' is not supported");
      }
      out.push_back(item);
    }
    if (out.empty()) return BadValue(name, v, "must not be empty");
    ref(s) = out;
    return {};
  };
  auto get = [ref](const Settings& s) {
    std::string out = "[";
    for (auto& a : ref(const_cast<Settings&>(s))) out += (out.size() > 1 ? ", " : "") + Quote(a);
    return out + "]";
  };
  return Key{std::move(name), set, get};
}

using std::chrono::milliseconds;
Key Secret(std::string name, std::function<std::string&(Settings&)> ref) {
  Key k = Str(std::move(name), std::move(ref));
  auto ref_copy = k.get;
  k.get = [ref_copy](const Settings& s) {
    return ref_copy(s) == "\"\"" ? std::string("\"\"") : std::string("\"[redacted]\"");
  };
  return k;
}

void AddProviderKeys(std::vector<Key>& keys) {
  for (const std::string& p : ConnectorNames()) {
    const std::string pre = "providers." + p + ".";
    auto conn = [p](Settings& s) -> ProviderConnectorSettings& {
      return s.providers.connectors[p];
    };
    keys.push_back(
        Str(pre + "base_url", [conn](Settings& s) -> std::string& { return conn(s).base_url; }));
    keys.push_back(
        Str(pre + "token_url", [conn](Settings& s) -> std::string& { return conn(s).token_url; }));
    keys.push_back(
        Str(pre + "client_id", [conn](Settings& s) -> std::string& { return conn(s).client_id; }));
    keys.push_back(Secret(pre + "client_secret",
                          [conn](Settings& s) -> std::string& { return conn(s).client_secret; }));
    keys.push_back(Secret(pre + "webhook_secret",
                          [conn](Settings& s) -> std::string& { return conn(s).webhook_secret; }));
    keys.push_back(Dur(
        pre + "timeout", [conn](Settings& s) -> milliseconds& { return conn(s).timeout; },
        milliseconds(100), milliseconds(300'000)));
  }
}

const std::vector<Key>& Keys() {
  static const std::vector<Key> keys = [] {
    std::vector<Key> keys = {
        Str("server.listen", [](Settings& s) -> std::string& { return s.server.listen; }),
        Int(
            "server.io_threads", [](const Settings& s) { return s.server.io_threads; },
            [](Settings& s, int64_t v) { s.server.io_threads = static_cast<int>(v); }, 0, 64),
        Int(
            "server.handler_threads", [](const Settings& s) { return s.server.handler_threads; },
            [](Settings& s, int64_t v) { s.server.handler_threads = static_cast<int>(v); }, 1,
            1024),
        Int(
            "server.max_body_bytes",
            [](const Settings& s) { return static_cast<int64_t>(s.server.max_body_bytes); },
            [](Settings& s, int64_t v) { s.server.max_body_bytes = static_cast<size_t>(v); }, 1024,
            64 << 20),
        Int(
            "server.max_upload_bytes",
            [](const Settings& s) { return static_cast<int64_t>(s.server.max_upload_bytes); },
            [](Settings& s, int64_t v) { s.server.max_upload_bytes = static_cast<size_t>(v); },
            1024, 256 << 20),
        Int(
            "server.max_header_bytes",
            [](const Settings& s) { return static_cast<int64_t>(s.server.max_header_bytes); },
            [](Settings& s, int64_t v) { s.server.max_header_bytes = static_cast<size_t>(v); },
            1024, 1 << 20),
        Int(
            "server.max_connections", [](const Settings& s) { return s.server.max_connections; },
            [](Settings& s, int64_t v) { s.server.max_connections = static_cast<int>(v); }, 1,
            1'000'000),
        Dur(
            "server.read_timeout",
            [](Settings& s) -> milliseconds& { return s.server.read_timeout; }, milliseconds(100),
            milliseconds(600'000)),
        Dur(
            "server.idle_timeout",
            [](Settings& s) -> milliseconds& { return s.server.idle_timeout; }, milliseconds(100),
            milliseconds(3'600'000)),
        Dur(
            "server.drain_timeout",
            [](Settings& s) -> milliseconds& { return s.server.drain_timeout; }, milliseconds(0),
            milliseconds(600'000)),
        Bool("server.access_log", [](Settings& s) -> bool& { return s.server.access_log; }),
        Bool("server.inline_intake", [](Settings& s) -> bool& { return s.server.inline_intake; }),
        Str("server.role", [](Settings& s) -> std::string& { return s.server.role; },
            {"all", "api", "worker", "scheduler"}),
        Str("storage.data_dir", [](Settings& s) -> std::string& { return s.storage.data_dir; }),
        Str("storage.synchronous",
            [](Settings& s) -> std::string& { return s.storage.synchronous; }, {"FULL", "NORMAL"}),
        Bool("storage.embedded_cache",
             [](Settings& s) -> bool& { return s.storage.embedded_cache; }),
        Int(
            "storage.embedded_cache_mb",
            [](const Settings& s) { return static_cast<int64_t>(s.storage.embedded_cache_mb); },
            [](Settings& s, int64_t v) { s.storage.embedded_cache_mb = static_cast<int>(v); }, 1,
            65536),
        // URLs may hold passwords: printed redacted.
        Secret("storage.postgres_url",
               [](Settings& s) -> std::string& { return s.storage.postgres_url; }),
        Secret("storage.redis_url",
               [](Settings& s) -> std::string& { return s.storage.redis_url; }),
        Str("storage.postgres_schema",
            [](Settings& s) -> std::string& { return s.storage.postgres_schema; }),
        Int(
            "storage.postgres_pool_size",
            [](const Settings& s) { return static_cast<int64_t>(s.storage.postgres_pool_size); },
            [](Settings& s, int64_t v) { s.storage.postgres_pool_size = static_cast<int>(v); }, 1,
            1000),
        Dur(
            "storage.job_retention",
            [](Settings& s) -> milliseconds& { return s.storage.job_retention; },
            milliseconds(3'600'000), milliseconds(365 * 86'400'000LL)),
        Str("auth.issuer", [](Settings& s) -> std::string& { return s.auth.issuer; }),
        Str("auth.audience", [](Settings& s) -> std::string& { return s.auth.audience; }),
        Str("auth.jwks", [](Settings& s) -> std::string& { return s.auth.jwks; }),
        Str("auth.dev_mode", [](Settings& s) -> std::string& { return s.auth.dev_mode; },
            {"auto", "on", "off"}),
        List("auth.algorithms",
             [](Settings& s) -> std::vector<std::string>& { return s.auth.algorithms; }, {"RS256"}),
        Dur(
            "auth.leeway", [](Settings& s) -> milliseconds& { return s.auth.leeway; },
            milliseconds(0), milliseconds(300'000)),
        Dur(
            "auth.decision_ttl", [](Settings& s) -> milliseconds& { return s.auth.decision_ttl; },
            milliseconds(0), milliseconds(3'600'000)),
        Dur(
            "auth.jwks_ttl", [](Settings& s) -> milliseconds& { return s.auth.jwks_ttl; },
            milliseconds(1'000), milliseconds(7 * 86'400'000LL)),
        Dur(
            "api.idempotency_retention",
            [](Settings& s) -> milliseconds& { return s.api.idempotency_retention; },
            milliseconds(86'400'000), milliseconds(30 * 86'400'000LL)),
        Dur(
            "api.dedup_window", [](Settings& s) -> milliseconds& { return s.api.dedup_window; },
            milliseconds(1'000), milliseconds(86'400'000)),
        Int(
            "api.user_rate_per_second",
            [](const Settings& s) { return s.api.user_rate_per_second; },
            [](Settings& s, int64_t v) { s.api.user_rate_per_second = static_cast<int>(v); }, 0,
            1'000'000),
        Int(
            "api.user_burst", [](const Settings& s) { return s.api.user_burst; },
            [](Settings& s, int64_t v) { s.api.user_burst = static_cast<int>(v); }, 1, 1'000'000),
        Int(
            "worker.min_workers", [](const Settings& s) { return s.worker.min_workers; },
            [](Settings& s, int64_t v) { s.worker.min_workers = static_cast<int>(v); }, 0, 1024),
        Int(
            "worker.max_workers", [](const Settings& s) { return s.worker.max_workers; },
            [](Settings& s, int64_t v) { s.worker.max_workers = static_cast<int>(v); }, 1, 1024),
        Int(
            "worker.target_backlog_per_worker",
            [](const Settings& s) { return s.worker.target_backlog_per_worker; },
            [](Settings& s, int64_t v) {
              s.worker.target_backlog_per_worker = static_cast<int>(v);
            },
            1, 1'000'000),
        Int(
            "worker.receivers", [](const Settings& s) { return s.worker.receivers; },
            [](Settings& s, int64_t v) { s.worker.receivers = static_cast<int>(v); }, 0, 64),
        Dur(
            "worker.visibility_timeout",
            [](Settings& s) -> milliseconds& { return s.worker.visibility_timeout; },
            milliseconds(1'000), milliseconds(12 * 3'600'000)),
        Dur(
            "worker.drain_timeout",
            [](Settings& s) -> milliseconds& { return s.worker.drain_timeout; }, milliseconds(0),
            milliseconds(600'000)),
        Dur(
            "worker.retry_base", [](Settings& s) -> milliseconds& { return s.worker.retry_base; },
            milliseconds(1), milliseconds(3'600'000)),
        Dur(
            "worker.retry_cap", [](Settings& s) -> milliseconds& { return s.worker.retry_cap; },
            milliseconds(1), milliseconds(86'400'000)),
        Key{"worker.handler",
            [](Settings& s, const std::string& v) -> Status {
              if (v != "sync" && v != "noop" && (v.rfind("script:", 0) != 0 || v.size() <= 7))
                return BadValue("worker.handler", v, "must be sync, noop or script:<path>");
              s.worker.handler = v;
              return {};
            },
            [](const Settings& s) { return Quote(s.worker.handler); }},
        Bool("scheduler.enabled", [](Settings& s) -> bool& { return s.scheduler.enabled; }),
        Dur(
            "scheduler.tick", [](Settings& s) -> milliseconds& { return s.scheduler.tick; },
            milliseconds(100), milliseconds(600'000)),
        Dur(
            "scheduler.pro_interval",
            [](Settings& s) -> milliseconds& { return s.scheduler.pro_interval; },
            milliseconds(1'000), milliseconds(7LL * 86'400'000)),
        Dur(
            "scheduler.free_interval",
            [](Settings& s) -> milliseconds& { return s.scheduler.free_interval; },
            milliseconds(1'000), milliseconds(30LL * 86'400'000)),
        Int(
            "scheduler.batch_size", [](const Settings& s) { return s.scheduler.batch_size; },
            [](Settings& s, int64_t v) { s.scheduler.batch_size = static_cast<int>(v); }, 1,
            100'000),
        Int(
            "scheduler.concurrency", [](const Settings& s) { return s.scheduler.concurrency; },
            [](Settings& s, int64_t v) { s.scheduler.concurrency = static_cast<int>(v); }, 1, 256),
        Key{"ratelimit.limits",
            [](Settings& s, const std::string& v) -> Status {
              std::vector<std::string> out;
              std::stringstream ss(v);
              std::string item;
              while (std::getline(ss, item, ',')) {
                if (item.empty()) continue;
                if (auto p = ParseLimitSpec(item); !p)
                  return BadValue("ratelimit.limits", v, p.error().message);
                out.push_back(item);
              }
              s.ratelimit.limits = out;
              return {};
            },
            [](const Settings& s) {
              std::string out = "[";
              for (auto& a : s.ratelimit.limits) out += (out.size() > 1 ? ", " : "") + Quote(a);
              return out + "]";
            }},
        Dur(
            "sync.initial_lookback",
            [](Settings& s) -> milliseconds& { return s.sync.initial_lookback; },
            milliseconds(3'600'000), milliseconds(3650LL * 86'400'000)),
        Int(
            "sync.max_records_per_job",
            [](const Settings& s) { return s.sync.max_records_per_job; },
            [](Settings& s, int64_t v) { s.sync.max_records_per_job = static_cast<int>(v); }, 1,
            1'000'000),
        Int(
            "sync.parallel_requests", [](const Settings& s) { return s.sync.parallel_requests; },
            [](Settings& s, int64_t v) { s.sync.parallel_requests = static_cast<int>(v); }, 1, 64),
        Int(
            "sync.fan_out_threads", [](const Settings& s) { return s.sync.fan_out_threads; },
            [](Settings& s, int64_t v) { s.sync.fan_out_threads = static_cast<int>(v); }, 0,
            65'536),
        Str("providers.sim_url", [](Settings& s) -> std::string& { return s.providers.sim_url; }),
        Str("log.level", [](Settings& s) -> std::string& { return s.log.level; },
            {"debug", "info", "warn", "error"}),
    };
    // Provider keys go before [log] so ToToml prints one [providers] table.
    Key log_level = keys.back();
    keys.pop_back();
    AddProviderKeys(keys);
    keys.push_back(std::move(log_level));
    return keys;
  }();
  return keys;
}

const Key* FindKey(const std::string& name) {
  for (const auto& k : Keys()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

std::string EnvName(const std::string& key) {
  std::string out = "SYNCWELL_";
  for (char c : key)
    out += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

Status ApplyToml(Settings& s, const std::string& path) {
  toml::table tbl;
  try {
    tbl = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
       << e.description();
    return MakeError(Errc::kInvalidArgument, os.str());
  }
  // Tables nest ([providers] strava.base_url = ... or [providers.strava]); keys are flattened to
  // "section.sub.key" and looked up in the key table.
  std::function<Status(const toml::table&, const std::string&)> apply =
      [&](const toml::table& t, const std::string& prefix) -> Status {
    for (auto& [key, value] : t) {
      std::string name =
          prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
      if (auto* sub = value.as_table()) {
        if (auto st = apply(*sub, name); !st) return st;
        continue;
      }
      if (prefix.empty())
        return MakeError(Errc::kInvalidArgument, path + ": '" + name + "' must be a [section]");
      const Key* k = FindKey(name);
      if (!k) return MakeError(Errc::kInvalidArgument, path + ": unknown setting '" + name + "'");
      std::string text;
      if (auto v = value.value<std::string>(); v && value.is_string())
        text = *v;
      else if (value.is_integer())
        text = std::to_string(*value.value<int64_t>());
      else if (value.is_boolean())
        text = *value.value<bool>() ? "true" : "false";
      else if (auto* arr = value.as_array()) {
        for (auto& el : *arr) {
          auto sv = el.value<std::string>();
          if (!sv)
            return MakeError(Errc::kInvalidArgument,
                             path + ": " + name + " must be a list of strings");
          text += (text.empty() ? "" : ",") + *sv;
        }
      } else {
        return MakeError(Errc::kInvalidArgument, path + ": " + name + " has an unsupported type");
      }
      if (auto st = k->set(s, text); !st) {
        return MakeError(Errc::kInvalidArgument, path + ": " + st.error().message);
      }
    }
    return {};
  };
  if (auto st = apply(tbl, ""); !st) return st;
  return {};
}

}  // namespace

Result<std::chrono::milliseconds> ParseDuration(std::string_view s) {
  if (s.empty()) return MakeError(Errc::kInvalidArgument, "empty duration");
  size_t i = 0;
  int64_t n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (n > (int64_t{1} << 40)) return MakeError(Errc::kInvalidArgument, "duration too large");
    n = n * 10 + (s[i] - '0');
    ++i;
  }
  if (i == 0)
    return MakeError(Errc::kInvalidArgument,
                     "duration must start with a number (e.g. 30s, 5m, 1h)");
  std::string_view unit = s.substr(i);
  int64_t mult = 0;
  if (unit.empty() || unit == "s")
    mult = 1000;
  else if (unit == "ms")
    mult = 1;
  else if (unit == "m")
    mult = 60'000;
  else if (unit == "h")
    mult = 3'600'000;
  else if (unit == "d")
    mult = 86'400'000;
  else
    return MakeError(Errc::kInvalidArgument, "unknown duration unit (use ms, s, m, h or d)");
  return std::chrono::milliseconds(n * mult);
}

std::string FormatDuration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::map<std::string, std::string> ProcessEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    if (kv.substr(0, 9) != "SYNCWELL_") continue;
    env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return env;
}

Result<LimitSpec> ParseLimitSpec(std::string_view spec) {
  auto bad = [&](const std::string& why) {
    return MakeError(Errc::kInvalidArgument, "'" + std::string(spec) + "': " + why +
                                                 " (expected provider:app|user:WINDOW:LIMIT)");
  };
  std::vector<std::string> parts;
  std::string cur;
  for (char c : spec) {
    if (c == ':') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  if (parts.size() != 4) return bad("four fields needed");
  LimitSpec out;
  out.provider = parts[0];
  if (out.provider.empty()) return bad("empty provider");
  if (parts[1] != "app" && parts[1] != "user") return bad("scope must be app or user");
  out.user_scope = parts[1] == "user";
  auto w = ParseDuration(parts[2]);
  if (!w || w->count() <= 0) return bad("window must be a positive duration");
  out.window = *w;
  int64_t n = 0;
  auto [p, ec] = std::from_chars(parts[3].data(), parts[3].data() + parts[3].size(), n);
  if (ec != std::errc() || p != parts[3].data() + parts[3].size() || n <= 0)
    return bad("limit must be a positive integer");
  out.limit = n;
  return out;
}

Result<Settings> Load(const Sources& sources) {
  Settings s;
  if (!sources.config_file.empty()) {
    if (auto st = ApplyToml(s, sources.config_file); !st) return st.error();
  }
  for (const auto& k : Keys()) {
    auto it = sources.env.find(EnvName(k.name));
    if (it == sources.env.end()) continue;
    if (auto st = k.set(s, it->second); !st) {
      return MakeError(Errc::kInvalidArgument,
                       "environment " + it->first + ": " + st.error().message);
    }
  }
  for (const auto& [name, value] : sources.flags) {
    const Key* k = FindKey(name);
    if (!k) return MakeError(Errc::kInvalidArgument, "unknown setting '" + name + "'");
    if (auto st = k->set(s, value); !st) {
      return MakeError(Errc::kInvalidArgument, "flag: " + st.error().message);
    }
  }
  // Cross-field validation.
  if (s.storage.data_dir.empty())
    return MakeError(Errc::kInvalidArgument, "storage.data_dir must not be empty");
  if (s.storage.postgres_url.empty() != s.storage.redis_url.empty()) {
    return MakeError(Errc::kInvalidArgument,
                     "scale-out needs both storage.postgres_url and storage.redis_url (a fleet "
                     "shares state in PostgreSQL and quotas in Redis); set both or neither");
  }
  if (s.storage.postgres_schema.empty())
    return MakeError(Errc::kInvalidArgument, "storage.postgres_schema must not be empty");
  if (s.server.listen.rfind(':') == std::string::npos) {
    return MakeError(Errc::kInvalidArgument,
                     "server.listen = '" + s.server.listen + "': expected HOST:PORT");
  }
  if (!s.auth.issuer.empty() && (s.auth.audience.empty() || s.auth.jwks.empty())) {
    return MakeError(Errc::kInvalidArgument,
                     "auth.issuer is set: auth.audience and auth.jwks must be set too");
  }
  if (s.worker.min_workers > s.worker.max_workers) {
    return MakeError(Errc::kInvalidArgument, "worker.min_workers (" +
                                                 std::to_string(s.worker.min_workers) +
                                                 ") must not exceed worker.max_workers (" +
                                                 std::to_string(s.worker.max_workers) + ")");
  }
  if (s.worker.retry_base > s.worker.retry_cap) {
    return MakeError(Errc::kInvalidArgument, "worker.retry_base must not exceed worker.retry_cap");
  }
  if (s.scheduler.tick > std::min(s.scheduler.pro_interval, s.scheduler.free_interval)) {
    return MakeError(Errc::kInvalidArgument,
                     "scheduler.tick (" + FormatDuration(s.scheduler.tick) +
                         ") must not exceed scheduler.pro_interval / free_interval: users would "
                         "be synced less often than their tier promises");
  }
  if (s.auth.dev_mode == "off" && s.auth.issuer.empty()) {
    return MakeError(Errc::kInvalidArgument,
                     "auth.dev_mode = off needs an identity provider: set auth.issuer, "
                     "auth.audience, auth.jwks");
  }
  return s;
}

ProviderConnectorSettings EffectiveConnector(const Settings& s, const std::string& provider) {
  ProviderConnectorSettings c;
  if (auto it = s.providers.connectors.find(provider); it != s.providers.connectors.end())
    c = it->second;
  if (c.base_url.empty() && !s.providers.sim_url.empty()) {
    std::string base = s.providers.sim_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    c.base_url = base + "/" + provider;
    // The simulator's built-in credentials (src/providers/sim/world.hpp ProviderProfile).
    if (c.client_id.empty()) c.client_id = "syncwell";
    if (c.client_secret.empty()) c.client_secret = "sim-client-secret";
    if (c.webhook_secret.empty()) c.webhook_secret = "sim-webhook-secret";
  }
  return c;
}

std::string ToToml(const Settings& s) {
  std::string out;
  std::string section;
  for (const auto& k : Keys()) {
    auto dot = k.name.find('.');
    std::string sec = k.name.substr(0, dot);
    if (sec != section) {
      out += (section.empty() ? "" : "\n") + std::string("[") + sec + "]\n";
      section = sec;
    }
    out += k.name.substr(dot + 1) + " = " + k.get(s) + "   # env " + EnvName(k.name) + "\n";
  }
  return out;
}

}  // namespace syncwell::config
