#include "redis/redis_client.hpp"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace syncwell::redis {
namespace {

using SteadyClock = std::chrono::steady_clock;

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

timeval ToTimeval(std::chrono::milliseconds d) {
  timeval tv{};
  const int64_t ms = std::max<int64_t>(d.count(), 1);
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

std::string Sha1Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr) != 1) {
    throw std::runtime_error("redis: SHA-1 failed");
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(static_cast<size_t>(len) * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  if (r == nullptr) return out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    case REDIS_REPLY_NIL:
    default:
      out.type = RedisReply::Type::kNil;
      break;
  }
  return out;
}

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

}  // namespace

RedisScript::RedisScript(std::string src) : source(std::move(src)), sha1(Sha1Hex(source)) {}

Result<RedisUrl> ParseRedisUrl(std::string_view url) {
  auto bad = [&](const char* why) {
    return MakeError(Errc::kInvalidArgument, std::string("redis url: ") + why);
  };
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) return bad("must start with redis://");
  std::string_view rest = url.substr(kScheme.size());
  RedisUrl out;
  // Path: /db
  std::string_view authority = rest;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    authority = rest.substr(0, slash);
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      int v = 0;
      for (char c : db) {
        if (c < '0' || c > '9' || v > 100000) return bad("database must be a number");
        v = v * 10 + (c - '0');
      }
      out.db = v;
    }
  }
  // Userinfo: [user]:password@ (the last '@': passwords may contain '@')
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
      out.user = std::string(userinfo.substr(0, colon));
      out.password = std::string(userinfo.substr(colon + 1));
    } else {
      out.password = std::string(userinfo);  // redis://secret@host
    }
  }
  // Host[:port], [v6]:port
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated [");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("garbage after ]");
      port = after.substr(1);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return bad("missing host");
  out.host = std::string(host);
  if (!port.empty()) {
    int v = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || v > 65535) return bad("bad port");
      v = v * 10 + (c - '0');
    }
    if (v <= 0 || v > 65535) return bad("bad port");
    out.port = v;
  }
  return out;
}

struct RedisClient::Impl {
  RedisSettings settings;
  RedisUrl url;

  std::mutex mu;
  std::condition_variable cv;
  std::vector<redisContext*> idle;   // guarded by mu
  size_t open = 0;                   // guarded by mu: idle + leased
  int64_t no_connect_before_ns = 0;  // guarded by mu: fail-fast window after a connect failure

  // 1 healthy, 0 unhealthy, -1 unknown (nothing tried yet)
  std::atomic<int> health{-1};
  std::atomic<int64_t> unhealthy_until_ns{0};  // mirror of no_connect_before_ns for Healthy()
  std::mutex probe_mu;

  ~Impl() {
    for (redisContext* c : idle) redisFree(c);
  }

  void MarkHealthy() { health.store(1, std::memory_order_relaxed); }
  void MarkUnhealthy() { health.store(0, std::memory_order_relaxed); }

  // Opens and prepares one connection (AUTH, SELECT). nullptr + *err on failure.
  redisContext* Connect(std::string* err) {
    redisContext* c =
        redisConnectWithTimeout(url.host.c_str(), url.port, ToTimeval(settings.connect_timeout));
    if (c == nullptr) {
      *err = "cannot allocate redis context";
      return nullptr;
    }
    if (c->err != 0) {
      *err = std::string("connect ") + url.host + ":" + std::to_string(url.port) + ": " + c->errstr;
      redisFree(c);
      return nullptr;
    }
    if (redisSetTimeout(c, ToTimeval(settings.command_timeout)) != REDIS_OK) {
      *err = "cannot set timeout";
      redisFree(c);
      return nullptr;
    }
    redisEnableKeepAlive(c);
    auto run = [&](std::vector<std::string> argv) -> bool {
      std::vector<const char*> ptrs;
      std::vector<size_t> lens;
      for (auto& a : argv) {
        ptrs.push_back(a.data());
        lens.push_back(a.size());
      }
      ReplyPtr r(static_cast<redisReply*>(
          redisCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data())));
      if (!r) {
        *err = std::string(argv[0]) + ": " + c->errstr;
        return false;
      }
      if (r->type == REDIS_REPLY_ERROR) {
        *err = argv[0] + ": " + std::string(r->str, r->len);
        return false;
      }
      return true;
    };
    bool ok = true;
    if (!url.password.empty()) {
      ok = url.user.empty() ? run({"AUTH", url.password}) : run({"AUTH", url.user, url.password});
    }
    if (ok && url.db != 0) ok = run({"SELECT", std::to_string(url.db)});
    if (!ok) {
      redisFree(c);
      return nullptr;
    }
    return c;
  }

  // A connection for one caller: an idle one, a new one (unless inside the fail-fast window), or
  // waits (up to command_timeout) for one to be returned when the pool is at pool_size.
  Result<redisContext*> Acquire() {
    std::unique_lock lock(mu);
    const auto deadline = SteadyClock::now() + settings.command_timeout;
    for (;;) {
      if (!idle.empty()) {
        redisContext* c = idle.back();
        idle.pop_back();
        return c;
      }
      if (open < std::max<size_t>(settings.pool_size, 1)) {
        if (SteadyNowNs() < no_connect_before_ns) {
          return MakeError(Errc::kUnavailable, "redis unavailable (reconnect backoff)");
        }
        ++open;
        lock.unlock();
        std::string err;
        redisContext* c = Connect(&err);
        if (c != nullptr) {
          MarkHealthy();
          return c;
        }
        lock.lock();
        --open;
        no_connect_before_ns = SteadyNowNs() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                   settings.reconnect_backoff)
                                                   .count();
        unhealthy_until_ns.store(no_connect_before_ns, std::memory_order_relaxed);
        MarkUnhealthy();
        cv.notify_one();
        return MakeError(Errc::kUnavailable, "redis: " + err);
      }
      if (cv.wait_until(lock, deadline) == std::cv_status::timeout && idle.empty() &&
          open >= settings.pool_size) {
        return MakeError(Errc::kUnavailable, "redis: connection pool exhausted");
      }
    }
  }

  // Returns a connection to the pool; a broken one (transport error) is closed instead. A
  // connection that saw EOF (the server closed it, e.g. a restart) makes the idle ones suspect
  // too: they are closed as well so the next callers reconnect instead of failing one by one.
  void Release(redisContext* c) {
    std::vector<redisContext*> to_free;
    {
      std::lock_guard lock(mu);
      if (c->err == 0) {
        idle.push_back(c);
      } else {
        if (c->err == REDIS_ERR_EOF) {
          to_free.swap(idle);
          open -= to_free.size();
        }
        to_free.push_back(c);
        --open;
      }
    }
    cv.notify_all();
    for (redisContext* x : to_free) redisFree(x);
  }

  Error Broken(redisContext* c) {
    MarkUnhealthy();
    std::string msg = std::string("redis: ") + (c->errstr[0] != '\0' ? c->errstr : "I/O error");
    if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      msg = "redis: command timed out";
    }
    return MakeError(Errc::kUnavailable, std::move(msg));
  }

  // One command on a leased connection.
  Result<RedisReply> Run(redisContext* c, const std::vector<std::string>& argv) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    ptrs.reserve(argv.size());
    lens.reserve(argv.size());
    for (const auto& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    ReplyPtr r(static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data())));
    if (!r) {
      if (c->err == 0) c->err = REDIS_ERR_OTHER;  // never reuse a context without a reply
      return Broken(c);
    }
    MarkHealthy();
    return Convert(r.get());
  }

  Result<std::vector<RedisReply>> RunPipeline(redisContext* c,
                                              const std::vector<std::vector<std::string>>& cmds) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const auto& argv : cmds) {
      ptrs.clear();
      lens.clear();
      for (const auto& a : argv) {
        ptrs.push_back(a.data());
        lens.push_back(a.size());
      }
      if (redisAppendCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data()) !=
          REDIS_OK) {
        if (c->err == 0) c->err = REDIS_ERR_OTHER;
        return Broken(c);
      }
    }
    std::vector<RedisReply> out;
    out.reserve(cmds.size());
    for (size_t i = 0; i < cmds.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
        if (raw != nullptr) freeReplyObject(raw);
        if (c->err == 0) c->err = REDIS_ERR_OTHER;  // unread replies: the context is unusable
        return Broken(c);
      }
      ReplyPtr r(static_cast<redisReply*>(raw));
      out.push_back(Convert(r.get()));
    }
    MarkHealthy();
    return out;
  }
};

RedisClient::RedisClient(RedisSettings settings)
    : settings_(std::move(settings)), impl_(std::make_unique<Impl>()) {
  auto url = ParseRedisUrl(settings_.url);
  if (!url) throw std::invalid_argument(url.error().message);
  if (settings_.pool_size == 0) throw std::invalid_argument("redis: pool_size must be positive");
  impl_->settings = settings_;
  impl_->url = std::move(*url);
}

RedisClient::~RedisClient() = default;

Result<RedisReply> RedisClient::Command(const std::vector<std::string>& argv) {
  if (argv.empty()) return MakeError(Errc::kInvalidArgument, "redis: empty command");
  auto c = impl_->Acquire();
  if (!c) return c.error();
  auto r = impl_->Run(*c, argv);
  impl_->Release(*c);
  return r;
}

Result<std::vector<RedisReply>> RedisClient::Pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  if (commands.empty()) return std::vector<RedisReply>{};
  for (const auto& argv : commands) {
    if (argv.empty()) return MakeError(Errc::kInvalidArgument, "redis: empty command");
  }
  auto c = impl_->Acquire();
  if (!c) return c.error();
  auto r = impl_->RunPipeline(*c, commands);
  impl_->Release(*c);
  return r;
}

Result<RedisReply> RedisClient::Eval(const RedisScript& script,
                                     const std::vector<std::string>& keys,
                                     const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.emplace_back("EVALSHA");
  argv.push_back(script.sha1);
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());

  auto c = impl_->Acquire();
  if (!c) return c.error();
  auto r = impl_->Run(*c, argv);
  if (r && r->type == RedisReply::Type::kError && r->str.rfind("NOSCRIPT", 0) == 0) {
    // Not in the server's script cache (first use, restart, SCRIPT FLUSH): load it, then retry.
    auto load = impl_->Run(*c, {"SCRIPT", "LOAD", script.source});
    if (!load) {
      r = load.error();
    } else if (load->type == RedisReply::Type::kError) {
      r = std::move(load);  // e.g. a compile error: returned as the script's error reply
    } else {
      r = impl_->Run(*c, argv);
    }
  }
  impl_->Release(*c);
  return r;
}

bool RedisClient::Healthy() const {
  Impl& im = *impl_;
  const int h = im.health.load(std::memory_order_relaxed);
  if (h == 1) return true;
  if (h == 0 && SteadyNowNs() < im.unhealthy_until_ns.load(std::memory_order_relaxed)) {
    return false;
  }
  // Unknown, or unhealthy and the backoff has passed: probe with a PING (one prober at a time;
  // the others report the last outcome), so a recovered Redis is noticed even by callers that
  // check Healthy() before sending anything.
  std::unique_lock probe(im.probe_mu, std::try_to_lock);
  if (!probe.owns_lock()) return h == 1;
  auto c = im.Acquire();
  if (!c) return false;
  auto r = im.Run(*c, {"PING"});
  im.Release(*c);
  return r.ok() && r->type != RedisReply::Type::kError;
}

}  // namespace syncwell::redis
