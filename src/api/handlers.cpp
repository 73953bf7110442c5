// The endpoint handlers of ApiService (SPEC S2). Each validates fully before touching the store,
// so bad input changes nothing.
#include <cmath>

#include "api/json_util.hpp"
#include "api/problem.hpp"
#include "api/service_ctx.hpp"
#include "core/log.hpp"
#include "core/random.hpp"
#include "providers/capabilities.hpp"
#include "store/job_message.hpp"

namespace syncwell::api {

namespace json = boost::json;
using store::IdempotencyRecord;

HttpResponse StoreFailure(ApiService::Ctx& ctx, const Error& e) {
  if (e.code == Errc::kAlreadyExists && ctx.has_idem) ctx.idem_collision = true;
  return StoreFailure(ctx.req.request_id, e);
}

HttpResponse StoreFailure(const std::string& request_id, const Error& e) {
  if (e.code != Errc::kNotFound && e.code != Errc::kConflict && e.code != Errc::kAlreadyExists) {
    log::Warn("store call failed",
              {{"request_id", request_id}, {"code", ErrcName(e.code)}, {"error", e.message}});
  }
  switch (e.code) {
    case Errc::kNotFound:
      return Problem(404, code::kNotFound, e.message);
    case Errc::kConflict:
      return Problem(409, code::kVersionConflict, e.message);
    case Errc::kAlreadyExists:
      return Problem(409, code::kConflict, e.message);
    case Errc::kRetryable:
    case Errc::kUnavailable: {
      auto r = Problem(503, code::kUnavailable, "storage temporarily unavailable");
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    default:
      return Problem(500, code::kInternal, "storage error; request id " + request_id);
  }
}

boost::json::object ConnectionJson(const store::Connection& c) {
  const auto* info = providers::FindProvider(c.provider);
  return json::object{
      {"connectionId", c.id.str()},
      {"provider", c.provider},
      {"displayName", info ? std::string(info->display_name) : c.provider},
      {"providerIconUrl", "/static/providers/" + c.provider + ".svg"},
      {"status", store::ConnectionStatusName(c.status)},
  };
}

namespace {

const std::vector<std::string_view> kDataTypes = {"workout", "sleep_session", "steps", "weight"};
const std::vector<std::string_view> kStrategies = {"source_wins", "dest_wins", "newest_wins"};

json::object ConfigJson(const store::SyncConfig& c) {
  return json::object{
      {"configId", c.id.str()},
      {"sourceConnectionId", c.source.str()},
      {"destinationConnectionId", c.destination.str()},
      {"dataType", c.data_type},
      {"conflictStrategy", c.conflict_strategy},
      {"enabled", c.enabled},
      {"version", c.version},
      {"createdAt", FormatRfc3339(c.created_at)},
      {"updatedAt", FormatRfc3339(c.updated_at)},
  };
}

HttpResponse WithETag(HttpResponse r, int64_t version) {
  r.headers.emplace_back("ETag", "\"" + std::to_string(version) + "\"");
  return r;
}

// If-Match: "3" or 3 (weak validators not accepted: versions are exact).
std::optional<int64_t> ParseIfMatch(const std::string& v) {
  std::string s = v;
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  if (s.empty() || s.size() > 18) return std::nullopt;
  int64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

// Loads both connections of a sync (owned by the caller) and checks capabilities.
std::optional<HttpResponse> CheckPair(store::Store& st, ApiService::Ctx& ctx,
                                      const std::string& src_id, const std::string& dst_id,
                                      const std::string& data_type, std::string* src_provider,
                                      std::string* dst_provider) {
  if (src_id == dst_id)
    return ValidationProblem("destinationConnectionId", "must differ from sourceConnectionId");
  // Both in one read (one round trip on PostgreSQL); another user's connection is absent.
  auto conns = st.GetConnections(ctx.caller.user, {ConnectionId(src_id), ConnectionId(dst_id)});
  if (!conns) return StoreFailure(ctx, conns.error());
  const auto find = [&](const std::string& id) -> const store::Connection* {
    for (const auto& c : *conns) {
      if (c.id.str() == id) return &c;
    }
    return nullptr;
  };
  const store::Connection* src = find(src_id);
  if (src == nullptr)
    return Problem(404, code::kNotFound, "sourceConnectionId: no such connection");
  const store::Connection* dst = find(dst_id);
  if (dst == nullptr)
    return Problem(404, code::kNotFound, "destinationConnectionId: no such connection");
  if (!providers::CanRead(src->provider, data_type)) {
    return Problem(422, code::kCapabilityMismatch, src->provider + " cannot provide " + data_type);
  }
  if (!providers::CanWrite(dst->provider, data_type)) {
    return Problem(422, code::kCapabilityMismatch, dst->provider + " cannot store " + data_type);
  }
  *src_provider = src->provider;
  *dst_provider = dst->provider;
  return std::nullopt;
}

store::Tier EffectiveTier(store::Store& st, const Caller& caller) {
  auto u = st.GetUser(caller.user);
  if (u) return u->tier;
  return caller.tier_claim == "PRO" ? store::Tier::kPro : store::Tier::kFree;
}

}  // namespace

HttpResponse ApiService::CreateJob(Ctx& ctx) {
  if (auto p = ParseJsonObject(ctx.req, &ctx.body)) return *p;
  Validator v(ctx.body);
  v.OnlyFields({"sourceConnectionId", "destinationConnectionId", "dataType", "mode", "priority",
                "dateRange"});
  auto src = v.Str("sourceConnectionId", true, 128);
  auto dst = v.Str("destinationConnectionId", true, 128);
  auto data_type = v.Enum("dataType", true, kDataTypes);
  auto mode = v.Enum("mode", true, {"manual", "historical"});
  auto priority = v.Enum("priority", false, {"high", "medium", "low"});
  const json::object* range = v.Obj("dateRange", false);
  if (!v.ok()) return v.Problem();
  std::string start, end;
  if (*mode == "historical") {
    if (!range) return ValidationProblem("dateRange", "is required when mode is historical");
    Validator rv(*range, "dateRange");
    rv.OnlyFields({"startDate", "endDate"});
    auto s = rv.Str("startDate", true, 40);
    auto e = rv.Str("endDate", true, 40);
    if (!rv.ok()) return rv.Problem();
    auto st = ParseDateOrDateTime(*s);
    auto et = ParseDateOrDateTime(*e);
    if (!st)
      return ValidationProblem("dateRange.startDate",
                               "must be YYYY-MM-DD or an RFC 3339 date-time");
    if (!et)
      return ValidationProblem("dateRange.endDate", "must be YYYY-MM-DD or an RFC 3339 date-time");
    if (*st > *et) return ValidationProblem("dateRange", "startDate must not be after endDate");
    start = *s;
    end = *e;
  } else if (range) {
    return ValidationProblem("dateRange", "is only allowed when mode is historical");
  }
  std::string src_provider, dst_provider;
  if (auto p = CheckPair(store_, ctx, *src, *dst, *data_type, &src_provider, &dst_provider))
    return *p;
  if (*mode == "historical" && EffectiveTier(store_, ctx.caller) != store::Tier::kPro) {
    return Problem(403, code::kProRequired, "historical sync needs a PRO subscription");
  }

  const TimePoint now = clock_.Now();
  store::Job job;
  job.id = JobId("job_" + NewUuidV7(now));  // time-ordered: the jobs table grows at its end
  job.user = ctx.caller.user;
  job.source = ConnectionId(*src);
  job.destination = ConnectionId(*dst);
  job.data_type = *data_type;
  job.mode = *mode;
  job.priority = priority.value_or(*mode == "historical" ? "low" : "medium");
  job.start_date = start;
  job.end_date = end;
  job.status = store::JobStatus::kQueued;
  job.created_at = job.updated_at = now;

  // No queue dedup row: CreateJob claims the idempotency key (kept 24 h, the queue's dedup
  // window is 5 min) in the same transaction as the send, so a retried intake can never reach
  // the send twice; a dedup row would only be one more random index leaf written per job.
  const queue::OutgoingMessage msg = store::JobMessage(job, "");

  HttpResponse resp =
      JsonResponse(202, json::object{{"jobId", job.id.str()}, {"status", "QUEUED"}});
  resp.headers.emplace_back("Location", "/v1/sync-jobs/" + job.id.str());
  if (ctx.deferral != nullptr) {
    // Inline intake: start the write; its completion answers (the caller holds no thread).
    std::optional<IdempotencyRecord> idem;
    if (const IdempotencyRecord* rec = ctx.Record(resp)) idem = *rec;
    ctx.deferral->start = [this, job = std::move(job), msg = msg, idem = std::move(idem), resp,
                           request_id = ctx.req.request_id,
                           d = ctx.deferral](std::function<void(HttpResponse)> done) mutable {
      const bool has_idem = idem.has_value();
      store_.CreateJobAsync(std::move(job), std::move(msg), std::move(idem),
                            [this, resp = std::move(resp), request_id = std::move(request_id), d,
                             has_idem, done = std::move(done)](const Status& st) mutable {
                              if (st) {
                                jobs_accepted_->Inc();
                                done(std::move(resp));
                                return;
                              }
                              if (st.error().code == Errc::kAlreadyExists && has_idem)
                                d->idem_collision = true;
                              done(StoreFailure(request_id, st.error()));
                            });
    };
    return resp;
  }
  if (auto st = store_.CreateJob(job, msg, ctx.Record(resp)); !st)
    return StoreFailure(ctx, st.error());
  jobs_accepted_->Inc();
  return resp;
}

HttpResponse ApiService::GetJob(Ctx& ctx) {
  auto job = store_.GetJob(ctx.caller.user, JobId(ctx.Param("jobId")));
  if (!job) {
    if (job.error().code == Errc::kNotFound)
      return Problem(404, code::kNotFound, "no such sync job");
    return StoreFailure(ctx, job.error());
  }
  json::object o{
      {"jobId", job->id.str()},
      {"status", store::JobStatusName(job->status)},
      {"createdAt", FormatRfc3339(job->created_at)},
      {"updatedAt", FormatRfc3339(job->updated_at)},
      {"sourceConnectionId", job->source.str()},
      {"destinationConnectionId", job->destination.str()},
      {"dataType", job->data_type},
      {"mode", job->mode},
      {"priority", job->priority},
  };
  if (!job->error.empty()) o["error"] = job->error;
  // The sync engine's outcome: counts and skip reasons by class, never record values.
  if (!job->summary.empty()) o["result"] = job->summary;
  if (job->mode == "historical")
    o["dateRange"] = json::object{{"startDate", job->start_date}, {"endDate", job->end_date}};
  return JsonResponse(200, o);
}

HttpResponse ApiService::ListConnections(Ctx& ctx) {
  auto list = store_.ListConnections(ctx.caller.user);
  if (!list) return StoreFailure(ctx, list.error());
  json::array arr;
  for (const auto& c : *list) arr.push_back(ConnectionJson(c));
  return JsonResponse(200, json::object{{"connections", std::move(arr)}});
}

HttpResponse ApiService::DeleteConnection(Ctx& ctx) {
  HttpResponse resp;
  resp.status = 204;
  resp.content_type.clear();
  // The grant is revoked at the provider first (best effort: a provider that is down must not
  // keep the user from deleting the connection); then the tokens, every sync config using the
  // connection, its cursors and ledger rows are deleted in one transaction.
  if (gateway_) {
    if (auto c = store_.GetConnection(ctx.caller.user, ConnectionId(ctx.Param("connectionId"))))
      gateway_->Revoke(*c);
  }
  auto st = store_.DeleteConnection(ctx.caller.user, ConnectionId(ctx.Param("connectionId")),
                                    ctx.Record(resp));
  if (!st) {
    if (st.error().code == Errc::kNotFound)
      return Problem(404, code::kNotFound, "no such connection");
    return StoreFailure(ctx, st.error());
  }
  return resp;
}

HttpResponse ApiService::ListSyncConfigs(Ctx& ctx) {
  auto list = store_.ListSyncConfigs(ctx.caller.user);
  if (!list) return StoreFailure(ctx, list.error());
  json::array arr;
  for (const auto& c : *list) arr.push_back(ConfigJson(c));
  return JsonResponse(200, json::object{{"syncConfigs", std::move(arr)}});
}

HttpResponse ApiService::CreateSyncConfig(Ctx& ctx) {
  if (auto p = ParseJsonObject(ctx.req, &ctx.body)) return *p;
  Validator v(ctx.body);
  v.OnlyFields(
      {"sourceConnectionId", "destinationConnectionId", "dataType", "conflictStrategy", "enabled"});
  auto src = v.Str("sourceConnectionId", true, 128);
  auto dst = v.Str("destinationConnectionId", true, 128);
  auto data_type = v.Enum("dataType", true, kDataTypes);
  auto strategy = v.Enum("conflictStrategy", false, kStrategies);
  auto enabled = v.Bool("enabled", false);
  if (!v.ok()) return v.Problem();
  std::string sp, dp;
  if (auto p = CheckPair(store_, ctx, *src, *dst, *data_type, &sp, &dp)) return *p;
  if (!strategy) {
    // The user's default strategy (settings), else source_wins.
    strategy = "source_wins";
    if (auto u = store_.GetUser(ctx.caller.user)) {
      boost::system::error_code ec;
      auto sv = json::parse(u->settings_json, ec);
      if (!ec && sv.is_object()) {
        if (auto* s = sv.as_object().if_contains("conflictResolutionStrategy");
            s && s->is_string()) {
          strategy = std::string(s->as_string());
        }
      }
    }
  }
  store::SyncConfig c;
  c.id = SyncConfigId("cfg_" + NewUuidV4());
  c.user = ctx.caller.user;
  c.source = ConnectionId(*src);
  c.destination = ConnectionId(*dst);
  c.data_type = *data_type;
  c.conflict_strategy = *strategy;
  c.enabled = enabled.value_or(true);
  c.version = 1;
  c.created_at = c.updated_at = clock_.Now();
  HttpResponse resp = WithETag(JsonResponse(201, ConfigJson(c)), c.version);
  resp.headers.emplace_back("Location", "/v1/sync-configs/" + c.id.str());
  if (auto st = store_.CreateSyncConfig(c, ctx.Record(resp)); !st)
    return StoreFailure(ctx, st.error());
  return resp;
}

HttpResponse ApiService::GetSyncConfig(Ctx& ctx) {
  auto c = store_.GetSyncConfig(ctx.caller.user, SyncConfigId(ctx.Param("configId")));
  if (!c) {
    if (c.error().code == Errc::kNotFound)
      return Problem(404, code::kNotFound, "no such sync config");
    return StoreFailure(ctx, c.error());
  }
  return WithETag(JsonResponse(200, ConfigJson(*c)), c->version);
}

HttpResponse ApiService::UpdateSyncConfig(Ctx& ctx) {
  if (auto p = ParseJsonObject(ctx.req, &ctx.body)) return *p;
  Validator v(ctx.body);
  v.OnlyFields({"conflictStrategy", "enabled", "version"});
  auto strategy = v.Enum("conflictStrategy", true, kStrategies);
  auto enabled = v.Bool("enabled", true);
  auto body_version = v.Int("version", false, 1, INT64_MAX);
  if (!v.ok()) return v.Problem();
  std::optional<int64_t> expected = body_version;
  if (const std::string* im = ctx.req.Header("if-match")) {
    auto hv = ParseIfMatch(*im);
    if (!hv) return Problem(400, code::kBadRequest, "If-Match must be a version such as \"3\"");
    if (expected && *expected != *hv)
      return ValidationProblem("version", "disagrees with If-Match");
    expected = hv;
  }
  if (!expected)
    return Problem(428, code::kPreconditionRequired,
                   "send If-Match (or version) with the version you read");
  auto cur = store_.GetSyncConfig(ctx.caller.user, SyncConfigId(ctx.Param("configId")));
  if (!cur) {
    if (cur.error().code == Errc::kNotFound)
      return Problem(404, code::kNotFound, "no such sync config");
    return StoreFailure(ctx, cur.error());
  }
  if (cur->version != *expected) {
    return Problem(409, code::kVersionConflict,
                   "stale version " + std::to_string(*expected) + "; current is " +
                       std::to_string(cur->version));
  }
  store::SyncConfig next = *cur;
  next.conflict_strategy = *strategy;
  next.enabled = *enabled;
  next.version = *expected + 1;
  next.updated_at = clock_.Now();
  HttpResponse resp = WithETag(JsonResponse(200, ConfigJson(next)), next.version);
  if (auto st = store_.UpdateSyncConfig(next, *expected, ctx.Record(resp)); !st)
    return StoreFailure(ctx, st.error());
  return resp;
}

HttpResponse ApiService::DeleteSyncConfig(Ctx& ctx) {
  std::optional<int64_t> expected;
  if (const std::string* im = ctx.req.Header("if-match")) {
    expected = ParseIfMatch(*im);
    if (!expected)
      return Problem(400, code::kBadRequest, "If-Match must be a version such as \"3\"");
  }
  HttpResponse resp;
  resp.status = 204;
  resp.content_type.clear();
  auto st = store_.DeleteSyncConfig(ctx.caller.user, SyncConfigId(ctx.Param("configId")), expected,
                                    ctx.Record(resp));
  if (!st) {
    if (st.error().code == Errc::kNotFound)
      return Problem(404, code::kNotFound, "no such sync config");
    return StoreFailure(ctx, st.error());
  }
  return resp;
}

HttpResponse ApiService::GetMe(Ctx& ctx) {
  auto u = store_.GetUser(ctx.caller.user);
  json::object settings;
  store::Tier tier = ctx.caller.tier_claim == "PRO" ? store::Tier::kPro : store::Tier::kFree;
  if (u) {
    tier = u->tier;
    boost::system::error_code ec;
    auto sv = json::parse(u->settings_json, ec);
    if (!ec && sv.is_object()) settings = sv.as_object();
  } else if (u.error().code != Errc::kNotFound) {
    return StoreFailure(ctx, u.error());
  }
  return JsonResponse(200, json::object{{"userId", ctx.caller.user.str()},
                                        {"tier", store::TierName(tier)},
                                        {"settings", settings}});
}

HttpResponse ApiService::PutSettings(Ctx& ctx) {
  if (auto p = ParseJsonObject(ctx.req, &ctx.body)) return *p;
  Validator v(ctx.body);
  v.OnlyFields({"settings"});
  const json::object* s = v.Obj("settings", true);
  if (!v.ok()) return v.Problem();
  Validator sv(*s, "settings");
  sv.OnlyFields({"conflictResolutionStrategy", "notificationsEnabled"});
  auto strategy = sv.Enum("conflictResolutionStrategy", true, kStrategies);
  auto notify = sv.Bool("notificationsEnabled", true);
  if (!sv.ok()) return sv.Problem();
  json::object settings{{"conflictResolutionStrategy", *strategy},
                        {"notificationsEnabled", *notify}};
  // Make sure the user row exists (users arrive from the identity provider on first use).
  auto tier = ctx.caller.tier_claim == "PRO" ? store::Tier::kPro : store::Tier::kFree;
  if (auto u = store_.EnsureUser(ctx.caller.user, tier); !u) return StoreFailure(ctx, u.error());
  HttpResponse resp = JsonResponse(200, json::object{{"settings", settings}});
  if (auto st =
          store_.UpdateUserSettings(ctx.caller.user, json::serialize(settings), ctx.Record(resp));
      !st) {
    return StoreFailure(ctx, st.error());
  }
  return resp;
}

HttpResponse ApiService::DeleteMe(Ctx& ctx) {
  HttpResponse resp = JsonResponse(
      202, json::object{{"status", "pending"}, {"statusUrl", "/v1/users/me/deletion"}});
  resp.headers.emplace_back("Location", "/v1/users/me/deletion");
  if (auto st = store_.RequestUserDeletion(ctx.caller.user, ctx.Record(resp)); !st)
    return StoreFailure(ctx, st.error());
  return resp;
}

HttpResponse ApiService::GetDeletion(Ctx& ctx) {
  auto d = store_.GetUserDeletion(ctx.caller.user);
  if (!d) return StoreFailure(ctx, d.error());
  if (d->state == store::DeletionState::kNone)
    return Problem(404, code::kNotFound, "no deletion was requested");
  json::object o{{"status", d->state == store::DeletionState::kPending ? "pending" : "completed"},
                 {"requestedAt", FormatRfc3339(d->requested_at)}};
  if (d->completed_at) o["completedAt"] = FormatRfc3339(*d->completed_at);
  return JsonResponse(200, o);
}

}  // namespace syncwell::api
