// Handlers that reach the providers through the ProviderGateway: OAuth connections and re-consent,
// provider webhooks, device uploads (SPEC S2, S4, S7, S13).
#include <boost/json.hpp>

#include "api/api_service.hpp"
#include "api/json_util.hpp"
#include "api/problem.hpp"
#include "api/provider_gateway.hpp"
#include "api/service_ctx.hpp"
#include "core/log.hpp"
#include "providers/capabilities.hpp"

namespace syncwell::api {

namespace json = boost::json;

namespace {

constexpr size_t kMaxDeviceRecords = 5000;

HttpResponse GatewayFailure(const HttpRequest& req, const Error& e) {
  switch (e.code) {
    case Errc::kInvalidArgument:
      return Problem(422, code::kValidationFailed, e.message);
    case Errc::kNotFound:
      return Problem(404, code::kNotFound, e.message);
    case Errc::kAuthRevoked:
      return Problem(400, code::kOAuthCodeRejected, e.message);
    case Errc::kPermanent:
      return Problem(502, code::kProviderError, e.message);
    case Errc::kUnavailable: {
      auto r = Problem(503, code::kProviderNotConfigured, e.message);
      return r;
    }
    case Errc::kRateLimited:
    case Errc::kRetryable: {
      auto r = Problem(503, code::kProviderUnavailable, e.message);
      const auto secs = std::max<int64_t>(
          1, std::chrono::duration_cast<std::chrono::seconds>(e.retry_after).count());
      r.headers.emplace_back("Retry-After", std::to_string(secs));
      return r;
    }
    default:
      log::Warn("provider gateway failed",
                {{"request_id", req.request_id}, {"code", ErrcName(e.code)}, {"error", e.message}});
      return Problem(500, code::kInternal, "internal error; request id " + req.request_id);
  }
}

std::optional<OAuthCode> ParseCode(Validator& v, bool required) {
  auto code_v = v.Str("code", required, 2048);
  auto verifier = v.Str("codeVerifier", false, 256);
  auto redirect = v.Str("redirectUri", false, 2048);
  if (!v.ok()) return std::nullopt;
  return OAuthCode{code_v.value_or(""), verifier.value_or(""), redirect.value_or("")};
}

// One uploaded record in the canonical JSON shape (docs/api: DeviceRecord).
// Returns the problem for the first bad field, or nullopt with *out filled.
std::optional<HttpResponse> ParseDeviceRecord(const json::object& o, providers::DataType type,
                                              const std::string& path, providers::Record* out) {
  Validator v(o, path);
  v.OnlyFields({"id", "startTime", "endTime", "utcOffsetMinutes", "modifiedTime", "activityType",
                "workout", "steps", "sleep", "weight"});
  auto id = v.Str("id", true, 128);
  auto start = v.Str("startTime", true, 64);
  auto end = v.Str("endTime", type != providers::DataType::kWeight, 64);
  auto offset = v.Int("utcOffsetMinutes", false, -14 * 60, 14 * 60);
  auto modified = v.Str("modifiedTime", false, 64);
  auto activity = v.Str("activityType", type == providers::DataType::kWorkout, 64);
  if (!v.ok()) return v.Problem();
  auto start_s = ParseDateOrDateTime(*start);
  auto end_s = end ? ParseDateOrDateTime(*end) : start_s;
  auto mod_s = modified ? ParseDateOrDateTime(*modified) : start_s;
  if (!start_s) v.Fail("startTime", "must be an RFC 3339 date-time");
  if (!end_s) v.Fail("endTime", "must be an RFC 3339 date-time");
  if (!mod_s) v.Fail("modifiedTime", "must be an RFC 3339 date-time");
  if (v.ok() && *end_s < *start_s) v.Fail("endTime", "must not be before startTime");
  if (!v.ok()) return v.Problem();
  out->meta.id = *id;
  out->meta.type = type;
  out->meta.start_ms = *start_s * 1000;
  out->meta.end_ms = *end_s * 1000;
  out->meta.utc_offset_min = static_cast<int32_t>(offset.value_or(0));
  out->meta.modified_ms = *mod_s * 1000;
  out->meta.activity = activity.value_or("");
  auto number = [&](const json::object& p, Validator& pv, std::string_view name, double min,
                    double max, bool required) -> double {
    const json::value* x = p.if_contains(name);
    if (!x) {
      if (required) pv.Fail(name, "is required");
      return 0;
    }
    if (!x->is_number()) {
      pv.Fail(name, "must be a number");
      return 0;
    }
    const double d = x->to_number<double>();
    if (!(d >= min && d <= max)) pv.Fail(name, "is out of range");
    return d;
  };
  const char* field = type == providers::DataType::kWorkout        ? "workout"
                      : type == providers::DataType::kSteps        ? "steps"
                      : type == providers::DataType::kSleepSession ? "sleep"
                                                                   : "weight";
  const json::object* p = v.Obj(field, true);
  if (!v.ok() || !p) return v.Problem();
  Validator pv(*p, path + "." + field);
  switch (type) {
    case providers::DataType::kWorkout: {
      pv.OnlyFields({"name", "distanceMeters", "energyKcal", "avgHeartRateBpm"});
      auto name = pv.Str("name", false, 256);
      providers::WorkoutData w;
      w.name = name.value_or("");
      w.distance_m = number(*p, pv, "distanceMeters", 0, 1e7, false);
      w.energy_kcal = number(*p, pv, "energyKcal", 0, 1e5, false);
      w.avg_heart_rate_bpm = static_cast<int>(number(*p, pv, "avgHeartRateBpm", 0, 300, false));
      out->data = w;
      break;
    }
    case providers::DataType::kSteps: {
      pv.OnlyFields({"count"});
      providers::StepsData s;
      s.count = static_cast<int64_t>(number(*p, pv, "count", 0, 1e6, true));
      out->data = s;
      break;
    }
    case providers::DataType::kSleepSession: {
      pv.OnlyFields({"deepMinutes", "lightMinutes", "remMinutes", "awakeMinutes"});
      providers::SleepData s;
      s.deep_min = static_cast<int>(number(*p, pv, "deepMinutes", 0, 1440, false));
      s.light_min = static_cast<int>(number(*p, pv, "lightMinutes", 0, 1440, false));
      s.rem_min = static_cast<int>(number(*p, pv, "remMinutes", 0, 1440, false));
      s.awake_min = static_cast<int>(number(*p, pv, "awakeMinutes", 0, 1440, false));
      out->data = s;
      break;
    }
    case providers::DataType::kWeight: {
      pv.OnlyFields({"kg", "fatRatio"});
      providers::WeightData w;
      w.kg = number(*p, pv, "kg", 1, 700, true);
      if (p->contains("fatRatio")) w.fat_ratio = number(*p, pv, "fatRatio", 0, 1, false);
      out->data = w;
      break;
    }
  }
  if (!pv.ok()) return pv.Problem();
  return std::nullopt;
}

}  // namespace

HttpResponse ApiService::CreateConnection(Ctx& ctx) {
  if (auto p = ParseJsonObject(ctx.req, &ctx.body)) return *p;
  Validator v(ctx.body);
  v.OnlyFields({"provider", "code", "codeVerifier", "redirectUri"});
  std::vector<std::string_view> names;
  for (const auto& p : providers::AllProviders()) names.push_back(p.name);
  auto provider = v.Enum("provider", true, names);
  const auto* info = provider ? providers::FindProvider(*provider) : nullptr;
  auto code_v = ParseCode(v, info && info->cloud);
  if (!v.ok()) return v.Problem();
  if (!gateway_) return Problem(503, code::kProviderNotConfigured, "no provider connectors");
  auto conn = gateway_->Connect(ctx.caller.user, *provider, *code_v);
  if (!conn) return GatewayFailure(ctx.req, conn.error());
  HttpResponse resp = JsonResponse(201, ConnectionJson(*conn));
  resp.headers.emplace_back("Location", "/v1/connections/" + conn->id.str());
  if (auto st = store_.CreateConnection(*conn, ctx.Record(resp)); !st)
    return StoreFailure(ctx, st.error());
  return resp;
}

HttpResponse ApiService::ReauthConnection(Ctx& ctx) {
  if (auto p = ParseJsonObject(ctx.req, &ctx.body)) return *p;
  Validator v(ctx.body);
  v.OnlyFields({"code", "codeVerifier", "redirectUri"});
  auto code_v = ParseCode(v, true);
  if (!v.ok()) return v.Problem();
  auto existing = store_.GetConnection(ctx.caller.user, ConnectionId(ctx.Param("connectionId")));
  if (!existing) {
    if (existing.error().code == Errc::kNotFound)
      return Problem(404, code::kNotFound, "no such connection");
    return StoreFailure(ctx, existing.error());
  }
  if (!gateway_) return Problem(503, code::kProviderNotConfigured, "no provider connectors");
  auto fresh = gateway_->Reauthorize(*existing, *code_v);
  if (!fresh) return GatewayFailure(ctx.req, fresh.error());
  fresh->status = store::ConnectionStatus::kActive;
  HttpResponse resp = JsonResponse(200, ConnectionJson(*fresh));
  if (auto st = store_.ReplaceConnectionGrant(*fresh, ctx.Record(resp)); !st)
    return StoreFailure(ctx, st.error());
  return resp;
}

HttpResponse ApiService::Webhook(const HttpRequest& req, const RouteMatch& m) {
  const std::string& provider = m.params.at("provider");
  if (!providers::FindProvider(provider))
    return Problem(404, code::kNotFound, "no webhooks for this provider");
  if (!gateway_) return Problem(503, code::kProviderNotConfigured, "no provider connectors");
  providers::WebhookRequest wr{req.method, req.query, req.headers, req.body};
  auto reply = gateway_->Webhook(provider, wr);
  if (!reply) {
    if (reply.error().code == Errc::kInvalidArgument) {
      webhooks_rejected_->Inc();
      return Problem(400, code::kWebhookRejected, reply.error().message);
    }
    return GatewayFailure(req, reply.error());
  }
  webhooks_accepted_->Inc();
  HttpResponse r;
  r.status = reply->status;
  r.content_type = reply->content_type;
  r.body = reply->body;
  return r;
}

HttpResponse ApiService::DeviceUpload(Ctx& ctx) {
  if (auto p = ParseJsonObject(ctx.req, &ctx.body)) return *p;
  Validator v(ctx.body);
  v.OnlyFields({"connectionId", "dataType", "records"});
  auto conn = v.Str("connectionId", true, 128);
  std::vector<std::string_view> types(std::begin(providers::kDataTypes),
                                      std::end(providers::kDataTypes));
  auto type_name = v.Enum("dataType", true, types);
  const json::value* recs = ctx.body.if_contains("records");
  if (v.ok() && (!recs || !recs->is_array())) v.Fail("records", "must be an array");
  if (v.ok() && recs->as_array().size() > kMaxDeviceRecords)
    v.Fail("records", "at most " + std::to_string(kMaxDeviceRecords) + " records per upload");
  if (!v.ok()) return v.Problem();
  DeviceBatch batch;
  batch.connection = ConnectionId(*conn);
  providers::ParseDataType(*type_name, &batch.type);
  const auto& arr = recs->as_array();
  batch.records.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string path = "records[" + std::to_string(i) + "]";
    if (!arr[i].is_object()) {
      v.Fail(path, "must be an object");
      return v.Problem();
    }
    providers::Record r;
    if (auto problem = ParseDeviceRecord(arr[i].as_object(), batch.type, path, &r)) return *problem;
    batch.records.push_back(std::move(r));
  }
  // The connection must be the caller's device connection.
  auto c = store_.GetConnection(ctx.caller.user, batch.connection);
  if (!c) {
    if (c.error().code == Errc::kNotFound)
      return Problem(404, code::kNotFound, "no such connection");
    return StoreFailure(ctx, c.error());
  }
  const auto* info = providers::FindProvider(c->provider);
  if (!info || info->cloud)
    return Problem(422, code::kValidationFailed,
                   "connectionId: uploads are for device connections (apple_health, "
                   "health_connect)");
  if (!gateway_) return Problem(503, code::kProviderNotConfigured, "no provider connectors");
  auto out = gateway_->DeviceUpload(ctx.caller.user, batch);
  if (!out) return GatewayFailure(ctx.req, out.error());
  json::array dests;
  for (const auto& d : out->destinations) {
    json::object o{{"destinationConnectionId", d.destination.str()},
                   {"written", d.written},
                   {"skipped", d.skipped},
                   {"failed", d.failed}};
    if (!d.error.empty()) o["error"] = d.error;
    dests.push_back(std::move(o));
  }
  return JsonResponse(
      200, json::object{{"received", out->received}, {"destinations", std::move(dests)}});
}

}  // namespace syncwell::api
