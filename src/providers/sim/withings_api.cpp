// The simulated Withings Public Health Data API: OAuth 2.0 requesttoken (authorization_code,
// refresh_token) and signed revoke with Signature v2 getnonce, Measure getmeas (weight, fat
// ratio) and our documented setmeas write, Sleep v2 getsummary, Measure v2 getworkouts and
// getactivity, Notify subscribe/list/revoke, and the data-update notification Withings POSTs.
// Paths are the real ones under "/withings": the connector's base_url "http://host:port/withings"
// stands in for https://wbsapi.withings.net. Written independently of the connector
// (src/providers/withings) from the public documentation; that folder's README.md lists the
// shapes and the simplifications.
//
// Like the real API every answer is an envelope {"status": N, "body": {...}}; the SimServer
// itself answers unauthorized (401) and rate-limited (429) requests with those HTTP statuses,
// carrying the Withings envelope (status 401 / 601) as the body.
//
// Times: per-record local time is sent as a fixed-offset zone name ("Etc/GMT-1" = UTC+1) on each
// measure group, sleep series and workout (records hold an offset, not a zone).
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "core/civil_time.hpp"
#include "providers/sim/synthetic.hpp"
#include "providers/sim/world.hpp"

namespace syncwell::sim {

namespace {

namespace json = boost::json;
using api::HttpRequest;
using api::HttpResponse;
using providers::DataType;
using providers::Record;

const std::string kWithings = "withings";
constexpr int64_t kAllTime = std::numeric_limits<int64_t>::max() / 4;
constexpr int64_t kDayMs = 86'400'000;
constexpr size_t kPageSize = 50;  // rows per answer before "more" (offset pagination)

// Status codes of the documented response-status table.
constexpr int kOk = 0;
constexpr int kInvalidParams = 503;
constexpr int kAuthFailed = 401;
constexpr int kNotImplemented = 2554;

HttpResponse Envelope(int status, json::object body = {}, std::string_view error = {}) {
  json::object o{{"status", status}, {"body", std::move(body)}};
  if (!error.empty()) o["error"] = error;
  HttpResponse r;
  r.status = 200;  // Withings answers errors in the body, over HTTP 200
  r.body = json::serialize(o);
  return r;
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && HexVal(s[i + 1]) >= 0 && HexVal(s[i + 2]) >= 0) {
      out += static_cast<char>(HexVal(s[i + 1]) * 16 + HexVal(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

void ParseFormInto(std::string_view s, std::map<std::string, std::string>* out) {
  while (!s.empty()) {
    size_t amp = s.find('&');
    std::string_view kv = s.substr(0, amp);
    size_t eq = kv.find('=');
    if (!kv.empty())
      (*out)[PercentDecode(kv.substr(0, eq))] =
          eq == std::string_view::npos ? std::string() : PercentDecode(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    s.remove_prefix(amp + 1);
  }
}

// Withings reads parameters from the query string or the form body.
std::map<std::string, std::string> Params(const HttpRequest& req) {
  std::map<std::string, std::string> p;
  ParseFormInto(req.query, &p);
  ParseFormInto(req.body, &p);
  return p;
}

std::optional<int64_t> ParseInt(const std::string& s) {
  if (s.empty() || s.size() > 15) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

std::string Ymd(int64_t days) {
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(y), m % 100u, d % 100u);
  return buf;
}

std::optional<int64_t> ParseYmd(const std::string& s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  auto y = ParseInt(s.substr(0, 4)), m = ParseInt(s.substr(5, 2)), d = ParseInt(s.substr(8, 2));
  if (!y || !m || !d || *m < 1 || *m > 12 || *d < 1 || *d > 31) return std::nullopt;
  return DaysFromCivil(*y, static_cast<unsigned>(*m), static_cast<unsigned>(*d));
}

// Local calendar day (days since epoch) of an instant.
int64_t LocalDay(int64_t utc_ms, int32_t offset_min) {
  return FloorDiv(utc_ms + offset_min * 60'000LL, kDayMs);
}

// Fixed-offset IANA names: "Etc/GMT-1" is UTC+1 (POSIX sign); the usual half/quarter-hour
// offsets by a zone that has no daylight saving; anything else is named UTC.
constexpr std::pair<int32_t, std::string_view> kOddZones[] = {
    {210, "Asia/Tehran"},    {270, "Asia/Kabul"},  {330, "Asia/Kolkata"},
    {345, "Asia/Kathmandu"}, {390, "Asia/Yangon"}, {570, "Australia/Darwin"},
};

std::string ZoneName(int32_t offset_min) {
  if (offset_min == 0) return "UTC";
  if (offset_min % 60 == 0 && std::abs(offset_min) <= 14 * 60) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "Etc/GMT%c%d", offset_min > 0 ? '-' : '+',
                  std::abs(offset_min) / 60);
    return buf;
  }
  for (const auto& [off, name] : kOddZones) {
    if (off == offset_min) return std::string(name);
  }
  return "UTC";
}

std::optional<int32_t> ZoneOffset(const std::string& tz) {
  if (tz == "UTC" || tz == "Etc/UTC" || tz == "Etc/GMT" || tz == "GMT") return 0;
  if (tz.size() >= 9 && tz.compare(0, 7, "Etc/GMT") == 0 && (tz[7] == '+' || tz[7] == '-')) {
    auto h = ParseInt(tz.substr(8));
    if (!h || *h > 14) return std::nullopt;
    return static_cast<int32_t>((tz[7] == '+' ? -1 : 1) * *h * 60);
  }
  for (const auto& [off, name] : kOddZones) {
    if (name == tz) return off;
  }
  return std::nullopt;
}

json::value IdValue(const std::string& id) {
  if (!id.empty() && id.size() <= 18 &&
      std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return json::value(std::stoll(id));
  return json::value(id);
}

std::string Hmac(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 15];
  }
  return out;
}

bool SameSecret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Signature v2: HMAC-SHA256(client_secret, "<action>,<client_id>,<nonce|timestamp>").
bool SignatureOk(const ProviderProfile& prof, std::map<std::string, std::string>& p,
                 const std::string& third) {
  if (p["client_id"] != prof.client_id) return false;
  return SameSecret(p["signature"],
                    Hmac(prof.client_secret, p["action"] + "," + p["client_id"] + "," + third));
}

int64_t Seconds(int64_t ms) { return FloorDiv(ms, 1000); }

// Pagination over an ordered list: the page at `offset`, and the cursor.
template <class F>
json::object Paged(const std::vector<Record>& recs, size_t offset, const char* list_name,
                   F encode) {
  json::array items;
  const size_t end = std::min(recs.size(), offset + kPageSize);
  for (size_t i = offset; i < end; ++i) items.push_back(encode(recs[i]));
  json::object body;
  body[list_name] = std::move(items);
  body["more"] = end < recs.size();
  body["offset"] = static_cast<int64_t>(end < recs.size() ? end : 0);
  return body;
}

// Records selected by lastupdate (modified since) or by a date window on start, oldest first.
std::vector<Record> Select(World& world, const std::string& user, DataType type,
                           std::map<std::string, std::string>& p, bool ymd_window) {
  std::vector<Record> out;
  if (auto lu = ParseInt(p["lastupdate"])) {
    for (auto& r : world.Records(kWithings, user, type, -kAllTime, kAllTime)) {
      if (r.meta.modified_ms >= *lu * 1000) out.push_back(std::move(r));
    }
    return out;
  }
  if (ymd_window) {
    auto from = ParseYmd(p["startdateymd"]), to = ParseYmd(p["enddateymd"]);
    for (auto& r : world.Records(kWithings, user, type, -kAllTime, kAllTime)) {
      // Withings dates a night or a workout by the local day it ends on.
      const int64_t day =
          LocalDay(std::max(r.meta.start_ms, r.meta.end_ms - 1), r.meta.utc_offset_min);
      if ((!from || day >= *from) && (!to || day <= *to)) out.push_back(std::move(r));
    }
    return out;
  }
  auto from = ParseInt(p["startdate"]), to = ParseInt(p["enddate"]);
  return world.Records(kWithings, user, type, from ? *from * 1000 : -kAllTime,
                       to ? *to * 1000 + 1000 : kAllTime);
}

// ---- OAuth and signature -------------------------------------------------------------------

HttpResponse OAuth2(const SimRequest& req, World& world) {
  auto p = Params(req.http);
  const ProviderProfile prof = world.Profile(kWithings);
  const std::string& action = p["action"];
  if (action == "requesttoken") {
    if (p["client_id"] != prof.client_id || !SameSecret(p["client_secret"], prof.client_secret))
      return Envelope(kInvalidParams, {}, "Invalid Params: invalid client_id or client_secret");
    Result<providers::TokenGrant> g = MakeError(Errc::kInvalidArgument, "");
    if (p["grant_type"] == "authorization_code") {
      g = world.ExchangeCode(kWithings, p["code"]);
      if (!g) return Envelope(kInvalidParams, {}, "Invalid Params: invalid code");
    } else if (p["grant_type"] == "refresh_token") {
      g = world.Refresh(kWithings, p["refresh_token"]);
      if (!g) return Envelope(kInvalidParams, {}, "Invalid Params: invalid refresh_token");
    } else {
      return Envelope(kInvalidParams, {}, "Invalid Params: grant_type");
    }
    return Envelope(
        kOk, json::object{
                 {"userid", IdValue(g->provider_user_id)},
                 {"access_token", g->access_token},
                 {"refresh_token", g->refresh_token},
                 {"expires_in", prof.token_ttl.count()},
                 {"scope", g->scope.empty() ? "user.info,user.metrics,user.activity" : g->scope},
                 {"csrf_token", "simulated"},
                 {"token_type", "Bearer"}});
  }
  if (action == "revoke") {
    const std::string nonce = p["nonce"];
    // Our nonces are "<timestamp>.<hmac(secret, timestamp)>": verifiable without state.
    const size_t dot = nonce.find('.');
    if (dot == std::string::npos ||
        !SameSecret(nonce.substr(dot + 1), Hmac(prof.client_secret, nonce.substr(0, dot))))
      return Envelope(kInvalidParams, {}, "Invalid Params: nonce");
    if (!SignatureOk(prof, p, nonce))
      return Envelope(kInvalidParams, {}, "Invalid Params: signature");
    auto user = world.SimUserFor(kWithings, p["userid"]);
    if (!user) return Envelope(kInvalidParams, {}, "Invalid Params: userid");
    world.RevokeUser(kWithings, *user);
    return Envelope(kOk);
  }
  return Envelope(kNotImplemented, {}, "Not implemented");
}

HttpResponse SignatureV2(const SimRequest& req, World& world) {
  auto p = Params(req.http);
  const ProviderProfile prof = world.Profile(kWithings);
  if (p["action"] != "getnonce") return Envelope(kNotImplemented, {}, "Not implemented");
  const std::string ts = p["timestamp"];
  if (!ParseInt(ts)) return Envelope(kInvalidParams, {}, "Invalid Params: timestamp");
  if (!SignatureOk(prof, p, ts)) return Envelope(kInvalidParams, {}, "Invalid Params: signature");
  return Envelope(kOk, json::object{{"nonce", ts + "." + Hmac(prof.client_secret, ts)}});
}

// ---- Measures (weight) -----------------------------------------------------------------------

json::object EncodeGroup(const Record& r, const std::vector<int64_t>& types) {
  const auto* w = std::get_if<providers::WeightData>(&r.data);
  json::array measures;
  auto want = [&](int64_t t) {
    return types.empty() || std::find(types.begin(), types.end(), t) != types.end();
  };
  if (w && want(1))  // unit -5 keeps every digit the simulator's values carry
    measures.push_back(json::object{
        {"value", std::llround(w->kg * 1e5)}, {"type", 1}, {"unit", -5}, {"algo", 0}, {"fm", 3}});
  if (w && w->fat_ratio && want(6))  // fat ratio in %
    measures.push_back(json::object{{"value", std::llround(*w->fat_ratio * 1e7)},
                                    {"type", 6},
                                    {"unit", -5},
                                    {"algo", 0},
                                    {"fm", 3}});
  const bool written = !r.meta.origin.empty();
  return json::object{{"grpid", IdValue(r.meta.id)},
                      {"attrib", written ? 2 : 0},  // 2 = entered manually for this user
                      {"date", Seconds(r.meta.start_ms)},
                      {"created", Seconds(r.meta.modified_ms)},
                      {"modified", Seconds(r.meta.modified_ms)},
                      {"category", 1},
                      {"deviceid", written ? json::value(nullptr) : json::value("sim-scale-01")},
                      {"measures", std::move(measures)},
                      {"model", written ? "" : "Body Cardio"},
                      {"model_id", written ? 0 : 6},
                      {"comment", written ? json::value(r.meta.origin) : json::value(nullptr)},
                      {"timezone", ZoneName(r.meta.utc_offset_min)}};
}

HttpResponse GetMeas(const SimRequest& req, World& world, std::map<std::string, std::string>& p) {
  if (!p["category"].empty() && p["category"] != "1") {
    // The simulator holds no user objectives.
    return Envelope(kOk, json::object{{"updatetime", 0}, {"measuregrps", json::array{}}});
  }
  std::vector<int64_t> types;
  std::string list = p["meastypes"].empty() ? p["meastype"] : p["meastypes"];
  for (size_t pos = 0; !list.empty() && pos <= list.size();) {
    size_t comma = list.find(',', pos);
    auto t =
        ParseInt(list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (!t) return Envelope(kInvalidParams, {}, "Invalid Params: meastypes");
    types.push_back(*t);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  auto recs = Select(world, req.sim_user, DataType::kWeight, p, false);
  // Groups without any requested type are not returned.
  std::erase_if(recs, [&](const Record& r) {
    const auto* w = std::get_if<providers::WeightData>(&r.data);
    bool has1 = types.empty() || std::count(types.begin(), types.end(), 1);
    bool has6 = w && w->fat_ratio && std::count(types.begin(), types.end(), 6);
    return !has1 && !has6;
  });
  const size_t offset = static_cast<size_t>(ParseInt(p["offset"]).value_or(0));
  json::object body =
      Paged(recs, offset, "measuregrps", [&](const Record& r) { return EncodeGroup(r, types); });
  int64_t updated = 0;
  for (const auto& r : recs) updated = std::max(updated, Seconds(r.meta.modified_ms));
  body["updatetime"] = updated;
  body["timezone"] = ZoneName(synth::UtcOffsetMin(world.settings().seed, req.sim_user));
  body["more"] = body["more"].as_bool() ? 1 : 0;  // getmeas answers more as 0/1
  return Envelope(kOk, std::move(body));
}

// Our documented write (src/providers/withings/README.md "Writing weight"): date, measures as
// the JSON list of {value, unit, type} of the Measures model, optional timezone and comment.
HttpResponse SetMeas(const SimRequest& req, World& world, std::map<std::string, std::string>& p) {
  auto date = ParseInt(p["date"]);
  if (!date || *date <= 0) return Envelope(kInvalidParams, {}, "Invalid Params: date");
  if (!p["category"].empty() && p["category"] != "1")
    return Envelope(kInvalidParams, {}, "Invalid Params: category");
  json::error_code ec;
  json::value mv = json::parse(p["measures"], ec);
  if (ec || !mv.is_array()) return Envelope(kInvalidParams, {}, "Invalid Params: measures");
  std::optional<double> kg, fat_pct;
  for (const auto& m : mv.get_array()) {
    if (!m.is_object()) return Envelope(kInvalidParams, {}, "Invalid Params: measures");
    const auto& o = m.get_object();
    const auto* v = o.if_contains("value");
    const auto* u = o.if_contains("unit");
    const auto* t = o.if_contains("type");
    if (!v || !u || !t || !v->is_int64() || !u->is_int64() || !t->is_int64() ||
        u->get_int64() < -10 || u->get_int64() > 10)
      return Envelope(kInvalidParams, {}, "Invalid Params: measures");
    double real =
        static_cast<double>(v->get_int64()) * std::pow(10.0, static_cast<double>(u->get_int64()));
    if (t->get_int64() == 1) kg = real;
    if (t->get_int64() == 6) fat_pct = real;
  }
  // The documented range of the Measures model: 1..600 kg.
  if (!kg || *kg < 1 || *kg > 600) return Envelope(kInvalidParams, {}, "Invalid Params: weight");
  if (fat_pct && (*fat_pct < 0 || *fat_pct > 100))
    return Envelope(kInvalidParams, {}, "Invalid Params: fat ratio");
  std::optional<int32_t> offset;
  if (!p["timezone"].empty()) {
    offset = ZoneOffset(p["timezone"]);
    if (!offset) return Envelope(kInvalidParams, {}, "Invalid Params: timezone");
  }
  Record rec;
  rec.meta.type = DataType::kWeight;
  rec.meta.start_ms = rec.meta.end_ms = *date * 1000;
  rec.meta.utc_offset_min =
      offset.value_or(synth::UtcOffsetMin(world.settings().seed, req.sim_user));
  if (providers::IsOurOrigin(p["comment"])) rec.meta.origin = p["comment"];
  providers::WeightData w;
  w.kg = *kg;
  if (fat_pct) w.fat_ratio = *fat_pct / 100.0;
  rec.data = w;
  const std::string id = world.Write(kWithings, req.sim_user, std::move(rec));
  return Envelope(kOk, json::object{{"grpid", IdValue(id)}});
}

HttpResponse Measure(const SimRequest& req, World& world) {
  auto p = Params(req.http);
  if (p["action"] == "getmeas") return GetMeas(req, world, p);
  if (p["action"] == "setmeas") return SetMeas(req, world, p);
  return Envelope(kNotImplemented, {}, "Not implemented");
}

// ---- Sleep, workouts, daily activity ---------------------------------------------------------

json::object EncodeSleep(const Record& r) {
  const auto* s = std::get_if<providers::SleepData>(&r.data);
  providers::SleepData d = s ? *s : providers::SleepData{};
  return json::object{
      {"id", IdValue(r.meta.id)},
      {"timezone", ZoneName(r.meta.utc_offset_min)},
      {"model", 32},
      {"model_id", 63},
      {"startdate", Seconds(r.meta.start_ms)},
      {"enddate", Seconds(r.meta.end_ms)},
      {"date", Ymd(LocalDay(std::max(r.meta.start_ms, r.meta.end_ms - 1), r.meta.utc_offset_min))},
      {"created", Seconds(r.meta.modified_ms)},
      {"modified", Seconds(r.meta.modified_ms)},
      {"data", json::object{{"deepsleepduration", d.deep_min * 60},
                            {"lightsleepduration", d.light_min * 60},
                            {"remsleepduration", d.rem_min * 60},
                            {"wakeupduration", d.awake_min * 60},
                            {"total_sleep_time", (d.deep_min + d.light_min + d.rem_min) * 60},
                            {"total_timeinbed", Seconds(r.meta.end_ms - r.meta.start_ms)}}}};
}

int WorkoutCategory(std::string_view a) {
  static constexpr std::pair<std::string_view, int> kMap[] = {
      {"walk", 1},
      {"run", 2},
      {"hike", 3},
      {"ride", 6},
      {"swim", 7},
      {"strength", 16},
      {"elliptical", 18},
      {"yoga", 28},
      {"rowing", 187},
      {"treadmill_run", 307},
      {"virtual_ride", 308},
      {"trail_run", 498},
      {"mountain_bike_ride", 6},
      {"e_bike_ride", 6},
      {"open_water_swim", 7},
      {"virtual_run", 307},
  };
  for (const auto& [c, v] : kMap) {
    if (c == a) return v;
  }
  return 36;  // Other
}

json::object EncodeWorkout(const Record& r) {
  const auto* w = std::get_if<providers::WorkoutData>(&r.data);
  json::object data{{"calories", w ? w->energy_kcal : 0.0},
                    {"distance", w ? w->distance_m : 0.0},
                    {"manual_distance", 0},
                    {"manual_calories", 0}};
  if (w && w->avg_heart_rate_bpm > 0) data["hr_average"] = w->avg_heart_rate_bpm;
  return json::object{{"id", IdValue(r.meta.id)},
                      {"category", WorkoutCategory(r.meta.activity)},
                      {"timezone", ZoneName(r.meta.utc_offset_min)},
                      {"model", 93},
                      {"attrib", 7},
                      {"startdate", Seconds(r.meta.start_ms)},
                      {"enddate", Seconds(r.meta.end_ms)},
                      {"date", Ymd(LocalDay(r.meta.start_ms, r.meta.utc_offset_min))},
                      {"modified", Seconds(r.meta.modified_ms)},
                      {"data", std::move(data)}};
}

json::object EncodeActivity(const Record& r) {
  const auto* s = std::get_if<providers::StepsData>(&r.data);
  return json::object{{"date", Ymd(LocalDay(r.meta.start_ms, r.meta.utc_offset_min))},
                      {"timezone", ZoneName(r.meta.utc_offset_min)},
                      {"deviceid", "sim-tracker-01"},
                      {"brand", 18},
                      {"is_tracker", true},
                      {"steps", s ? s->count : 0},
                      {"modified", Seconds(r.meta.modified_ms)}};
}

HttpResponse Sleep(const SimRequest& req, World& world) {
  auto p = Params(req.http);
  if (p["action"] != "getsummary") return Envelope(kNotImplemented, {}, "Not implemented");
  auto recs = Select(world, req.sim_user, DataType::kSleepSession, p, true);
  const size_t offset = static_cast<size_t>(ParseInt(p["offset"]).value_or(0));
  return Envelope(kOk, Paged(recs, offset, "series", EncodeSleep));
}

HttpResponse MeasureV2(const SimRequest& req, World& world) {
  auto p = Params(req.http);
  const size_t offset = static_cast<size_t>(ParseInt(p["offset"]).value_or(0));
  if (p["action"] == "getworkouts") {
    auto recs = Select(world, req.sim_user, DataType::kWorkout, p, true);
    return Envelope(kOk, Paged(recs, offset, "series", EncodeWorkout));
  }
  if (p["action"] == "getactivity") {
    auto recs = Select(world, req.sim_user, DataType::kSteps, p, true);
    return Envelope(kOk, Paged(recs, offset, "activities", EncodeActivity));
  }
  return Envelope(kNotImplemented, {}, "Not implemented");
}

// Subscriptions are accepted and not stored: the simulator sends notifications to the one
// configured webhook target (POST /_sim/webhooks/withings).
HttpResponse Notify(const SimRequest& req, World&) {
  auto p = Params(req.http);
  const std::string& action = p["action"];
  if (action == "subscribe" || action == "revoke" || action == "update") {
    if (action != "revoke" && p["callbackurl"].empty())
      return Envelope(kInvalidParams, {}, "Invalid Params: callbackurl");
    return Envelope(kOk);
  }
  if (action == "list") return Envelope(kOk, json::object{{"profiles", json::array{}}});
  if (action == "get") return Envelope(kOk, json::object{{"appli", 1}});
  return Envelope(kNotImplemented, {}, "Not implemented");
}

int AppliOf(DataType t) {
  switch (t) {
    case DataType::kWeight:
      return 1;
    case DataType::kSleepSession:
      return 44;
    case DataType::kWorkout:
    case DataType::kSteps:
      return 16;
  }
  return 1;
}

// The notification Withings POSTs (form-encoded) for new data of `type`; the callback URL we
// subscribed carries SyncWell's shared secret as `token` (Withings does not sign notifications).
HttpRequest MakeWebhook(const std::string& user, DataType type, World& world) {
  const ProviderProfile prof = world.Profile(kWithings);
  std::string body = "userid=" + UrlEncode(world.ProviderUserId(kWithings, user)) +
                     "&appli=" + std::to_string(AppliOf(type));
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
  const Record* latest = nullptr;
  auto recs = world.Records(kWithings, user, type, -kAllTime, kAllTime);
  for (const auto& r : recs) {
    if (!latest || r.meta.modified_ms > latest->meta.modified_ms) latest = &r;
  }
  if (latest) {
    lo = Seconds(latest->meta.start_ms);
    hi = Seconds(std::max(latest->meta.end_ms, latest->meta.start_ms));
    body += "&startdate=" + std::to_string(lo) + "&enddate=" + std::to_string(hi);
  }
  HttpRequest h;
  h.method = "POST";
  h.path = "/v1/webhooks/withings";
  h.query = "token=" + UrlEncode(prof.webhook_secret);
  h.headers = {{"content-type", "application/x-www-form-urlencoded"}};
  h.body = std::move(body);
  return h;
}

}  // namespace

ModuleSpec WithingsModule() {
  ModuleSpec spec;
  spec.provider = kWithings;
  using R = ModuleSpec::Route;
  spec.routes = {
      R{"POST", "/v2/oauth2", SimAuth::kNone, false, OAuth2},
      R{"POST", "/v2/signature", SimAuth::kNone, false, SignatureV2},
      // getmeas and setmeas share the path (the action is a parameter), so this route cannot be
      // marked as a write: fail_next_writes does not apply to Withings (README).
      R{"POST", "/measure", SimAuth::kBearer, false, Measure},
      R{"POST", "/v2/measure", SimAuth::kBearer, false, MeasureV2},
      R{"POST", "/v2/sleep", SimAuth::kBearer, false, Sleep},
      R{"POST", "/notify", SimAuth::kBearer, false, Notify},
  };
  spec.unauthorized = [] {
    HttpResponse r = Envelope(kAuthFailed, {},
                              "XRequestID: Not provided invalid_token: The access token "
                              "provided is invalid");
    return r;
  };
  spec.rate_limited = [](const Admission&) { return Envelope(601, {}, "Too Many Requests"); };
  spec.make_webhook = MakeWebhook;
  return spec;
}

}  // namespace syncwell::sim
