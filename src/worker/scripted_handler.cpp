#include "worker/scripted_handler.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <sstream>

namespace syncwell::worker {
namespace json = boost::json;

namespace {

int64_t NowMicros(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

bool ValidOutcome(const std::string& o) {
  return o == "ok" || o == "retryable" || o == "permanent" || o == "auth_revoked" ||
         o == "rate_limited" || o.rfind("rate_limited:", 0) == 0;
}

Result<ScriptedHandler::Behaviour> ParseBehaviour(const json::value& v, const std::string& where) {
  ScriptedHandler::Behaviour b;
  if (!v.is_object()) return MakeError(Errc::kInvalidArgument, where + ": must be an object");
  const auto& o = v.as_object();
  if (auto* outs = o.if_contains("outcomes")) {
    if (!outs->is_array() || outs->as_array().empty())
      return MakeError(Errc::kInvalidArgument, where + ".outcomes: must be a non-empty array");
    b.outcomes.clear();
    for (const auto& e : outs->as_array()) {
      if (!e.is_string() || !ValidOutcome(std::string(e.as_string())))
        return MakeError(Errc::kInvalidArgument,
                         where +
                             ".outcomes: each must be ok, retryable, permanent, auth_revoked, "
                             "rate_limited or rate_limited:<ms>");
      b.outcomes.emplace_back(e.as_string());
    }
  }
  if (auto* s = o.if_contains("sleep_ms")) {
    if (!s->is_int64() || s->as_int64() < 0)
      return MakeError(Errc::kInvalidArgument, where + ".sleep_ms: must be an integer >= 0");
    b.sleep_ms = static_cast<int>(s->as_int64());
  }
  b.sleep_ms_max = b.sleep_ms;
  if (auto* s = o.if_contains("sleep_ms_max")) {
    if (!s->is_int64() || s->as_int64() < b.sleep_ms)
      return MakeError(Errc::kInvalidArgument, where + ".sleep_ms_max: must be >= sleep_ms");
    b.sleep_ms_max = static_cast<int>(s->as_int64());
  }
  return b;
}

Status ParseMap(const json::object& root, const char* key,
                std::map<std::string, ScriptedHandler::Behaviour>* out) {
  auto* m = root.if_contains(key);
  if (!m) return {};
  if (!m->is_object())
    return MakeError(Errc::kInvalidArgument, std::string(key) + ": must be an object");
  for (const auto& [k, v] : m->as_object()) {
    auto b = ParseBehaviour(v, std::string(key) + "." + std::string(k));
    if (!b) return b.error();
    out->emplace(std::string(k), *b);
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<ScriptedHandler>> ScriptedHandler::Load(const std::string& script_path,
                                                               const std::string& log_path) {
  std::ifstream in(script_path);
  if (!in) return MakeError(Errc::kInvalidArgument, "cannot read handler script " + script_path);
  std::stringstream ss;
  ss << in.rdbuf();
  boost::system::error_code ec;
  json::value root = json::parse(ss.str(), ec);
  if (ec || !root.is_object())
    return MakeError(Errc::kInvalidArgument, script_path + ": not a JSON object");
  Behaviour def;
  if (auto* d = root.as_object().if_contains("default")) {
    auto b = ParseBehaviour(*d, "default");
    if (!b) return MakeError(Errc::kInvalidArgument, script_path + ": " + b.error().message);
    def = *b;
  }
  const int fd = ::open(log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return MakeError(Errc::kUnavailable, "cannot open " + log_path);
  std::unique_ptr<ScriptedHandler> h(new ScriptedHandler(fd, def));
  for (const char* key : {"jobs", "users", "priorities"}) {
    auto* target = std::string(key) == "jobs"    ? &h->jobs_
                   : std::string(key) == "users" ? &h->users_
                                                 : &h->priorities_;
    if (auto st = ParseMap(root.as_object(), key, target); !st)
      return MakeError(Errc::kInvalidArgument, script_path + ": " + st.error().message);
  }
  return h;
}

ScriptedHandler::~ScriptedHandler() {
  if (log_fd_ >= 0) ::close(log_fd_);
}

const ScriptedHandler::Behaviour& ScriptedHandler::BehaviourFor(const store::Job& job) const {
  if (auto it = jobs_.find(job.id.str()); it != jobs_.end()) return it->second;
  if (auto it = users_.find(job.user.str()); it != users_.end()) return it->second;
  if (auto it = priorities_.find(job.priority); it != priorities_.end()) return it->second;
  return default_;
}

void ScriptedHandler::Append(const std::string& line) {
  const std::string l = line + "\n";
  size_t off = 0;
  while (off < l.size()) {
    ssize_t n = ::write(log_fd_, l.data() + off, l.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
  ::fdatasync(log_fd_);
}

Result<void> ScriptedHandler::Handle(const store::Job& job, JobContext& ctx) {
  const Behaviour& b = BehaviourFor(job);
  int n = 0, sleep_ms = b.sleep_ms;
  {
    std::lock_guard lock(mu_);
    n = executions_[job.id.str()]++;
    if (b.sleep_ms_max > b.sleep_ms)
      sleep_ms = std::uniform_int_distribution<int>(b.sleep_ms, b.sleep_ms_max)(rng_);
  }
  const std::string& outcome = b.outcomes[std::min<size_t>(n, b.outcomes.size() - 1)];
  const std::string common = "\"job\":" + json::serialize(json::string(job.id.str())) +
                             ",\"attempt\":" + std::to_string(ctx.attempt) +
                             ",\"pid\":" + std::to_string(::getpid());
  Append("{\"ev\":\"start\"," + common +
         ",\"t_us\":" + std::to_string(NowMicros(std::chrono::system_clock::now())) +
         ",\"granted_us\":" + std::to_string(NowMicros(ctx.granted_at)) + ",\"priority\":\"" +
         job.priority + "\",\"provider\":" + json::serialize(json::string(ctx.provider)) + "}");
  const bool finished = ctx.SleepFor(std::chrono::milliseconds(sleep_ms));
  Append("{\"ev\":\"end\"," + common +
         ",\"t_us\":" + std::to_string(NowMicros(std::chrono::system_clock::now())) +
         ",\"outcome\":\"" + (finished ? outcome : std::string("cancelled")) + "\"}");
  if (!finished) return MakeError(Errc::kRetryable, "cancelled");
  if (outcome == "ok") return {};
  if (outcome == "retryable") return MakeError(Errc::kRetryable, "scripted retryable failure");
  if (outcome == "permanent") return MakeError(Errc::kPermanent, "scripted permanent failure");
  if (outcome == "auth_revoked") return MakeError(Errc::kAuthRevoked, "scripted revoked grant");
  Error e = MakeError(Errc::kRateLimited, "scripted 429");
  if (auto colon = outcome.find(':'); colon != std::string::npos)
    e.retry_after = std::chrono::milliseconds(std::stoll(outcome.substr(colon + 1)));
  return e;
}

void ScriptedHandler::OnSucceededCommitted(const store::Job& job, const JobContext& ctx) {
  Append("{\"ev\":\"committed\",\"job\":" + json::serialize(json::string(job.id.str())) +
         ",\"attempt\":" + std::to_string(ctx.attempt) + ",\"pid\":" + std::to_string(::getpid()) +
         ",\"t_us\":" + std::to_string(NowMicros(std::chrono::system_clock::now())) + "}");
}

}  // namespace syncwell::worker
