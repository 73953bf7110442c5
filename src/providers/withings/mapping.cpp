#include "providers/withings/mapping.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cmath>
#include <limits>

#include "providers/withings/timezones.hpp"

namespace syncwell::providers::withings {

namespace json = boost::json;

namespace {

constexpr size_t kMaxWebhookBody = 16 * 1024;
constexpr int64_t kMsPerDay = 86'400'000;

// --- JSON helpers ----------------------------------------------------------------------------
const json::value* Get(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() || it->value().is_null() ? nullptr : &it->value();
}

std::optional<int64_t> AsInt(const json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) {
    auto u = v->get_uint64();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v->is_double()) {
    double d = v->get_double();
    if (!std::isfinite(d) || std::fabs(d) > 9.0e18) return std::nullopt;
    return static_cast<int64_t>(std::llround(d));
  }
  if (v->is_bool()) return v->get_bool() ? 1 : 0;
  if (v->is_string()) {
    const auto& s = v->get_string();
    if (s.empty() || s.size() > 18) return std::nullopt;
    int64_t out = 0;
    for (char c : s) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      out = out * 10 + (c - '0');
    }
    return out;
  }
  return std::nullopt;
}

std::optional<double> AsNumber(const json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_double()) {
    double d = v->get_double();
    return std::isfinite(d) ? std::optional<double>(d) : std::nullopt;
  }
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  return std::nullopt;
}

std::string AsString(const json::value* v) {
  if (!v || !v->is_string()) return {};
  return std::string(v->get_string());
}

std::optional<std::string> IdOf(const json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_string()) {
    std::string s(v->get_string());
    if (s.empty() || s.size() > 64 || s.find('@') != std::string::npos) return std::nullopt;
    return s;
  }
  auto i = AsInt(v);
  if (!i) return std::nullopt;
  return std::to_string(*i);
}

Error Malformed(std::string_view what) {
  return MakeError(Errc::kPermanent, "withings: malformed " + std::string(what));
}

// Parses the envelope; on status 0 returns the body object (empty when absent).
Result<json::object> Envelope(std::string_view body, std::string_view what, bool token_endpoint) {
  json::error_code ec;
  json::parse_options opt;
  opt.max_depth = 32;
  // One arena for the whole tree (see the Fitbit connector's ParseObject); the body is moved
  // out, not copied, and keeps the arena alive.
  json::value v =
      json::parse(body, ec, json::make_shared_resource<json::monotonic_resource>(), opt);
  if (ec || !v.is_object()) return Malformed(what);
  auto status = AsInt(Get(v.get_object(), "status"));
  if (!status) return Malformed(what);
  if (*status != 0) return StatusError(*status, what, token_endpoint);
  json::value* b = v.get_object().if_contains("body");
  if (!b) return json::object{};
  if (!b->is_object()) return Malformed(what);
  return std::move(b->get_object());
}

int32_t OffsetAt(std::string_view tz, int64_t utc_ms) {
  return UtcOffsetMinutes(tz, utc_ms).value_or(0);
}

const json::array* ArrayField(const json::object& o, std::string_view key) {
  const auto* v = Get(o, key);
  return v && v->is_array() ? &v->get_array() : nullptr;
}

void ReadCursor(const json::object& body, Page* page) {
  page->more = AsInt(Get(body, "more")).value_or(0) != 0;
  page->offset = AsInt(Get(body, "offset")).value_or(0);
}

int64_t ModifiedOr(const json::object& o, int64_t fallback_s) {
  if (auto m = AsInt(Get(o, "modified")); m && *m > 0) return *m;
  if (auto c = AsInt(Get(o, "created")); c && *c > 0) return *c;
  return fallback_s;
}

int MinutesOf(const json::object* data, std::string_view key) {
  if (!data) return 0;
  auto s = AsNumber(Get(*data, key));
  if (!s || *s < 0 || *s > 7 * 86400) return 0;
  return static_cast<int>(std::lround(*s / 60.0));
}

Result<Page> ParseMeasures(const json::object& body) {
  Page page;
  ReadCursor(body, &page);
  const auto* grps = ArrayField(body, "measuregrps");
  if (!grps) return page;
  const std::string body_tz = AsString(Get(body, "timezone"));
  for (const auto& g : *grps) {
    if (!g.is_object()) return Malformed("measure group");
    const auto& o = g.get_object();
    if (auto cat = AsInt(Get(o, "category")); cat && *cat != 1) continue;  // 2 = user objective
    auto grpid = IdOf(Get(o, "grpid"));
    auto date = AsInt(Get(o, "date"));
    if (!grpid || !date || *date <= 0) return Malformed("measure group (grpid/date)");
    const auto* measures = ArrayField(o, "measures");
    if (!measures) return Malformed("measure group (measures)");
    std::optional<double> kg, fat_pct;
    for (const auto& m : *measures) {
      if (!m.is_object()) return Malformed("measure");
      auto type = AsInt(Get(m.get_object(), "type"));
      auto value = AsInt(Get(m.get_object(), "value"));
      auto unit = AsInt(Get(m.get_object(), "unit"));
      if (!type || !value || !unit || *unit < -12 || *unit > 12) return Malformed("measure");
      double real = static_cast<double>(*value) * std::pow(10.0, static_cast<double>(*unit));
      if (*type == kMeasWeight) kg = real;
      if (*type == kMeasFatRatio) fat_pct = real;
    }
    if (!kg) continue;  // a group without a weight (blood pressure, a lone fat ratio, ...)
    if (*kg <= 0 || *kg > 1000) return Malformed("weight value");
    std::string tz = AsString(Get(o, "timezone"));
    if (tz.empty()) tz = body_tz;
    Record r;
    r.meta.id = MakeId(*grpid, *date);
    r.meta.type = DataType::kWeight;
    r.meta.start_ms = r.meta.end_ms = *date * 1000;
    r.meta.utc_offset_min = OffsetAt(tz, r.meta.start_ms);
    r.meta.modified_ms = ModifiedOr(o, *date) * 1000;
    std::string comment = AsString(Get(o, "comment"));
    if (IsOurOrigin(comment) && comment.size() <= 128) r.meta.origin = comment;
    WeightData w;
    w.kg = *kg;
    if (fat_pct && *fat_pct >= 0 && *fat_pct <= 100) w.fat_ratio = *fat_pct / 100.0;
    r.data = w;
    page.records.push_back(std::move(r));
  }
  return page;
}

Result<Page> ParseSleep(const json::object& body) {
  Page page;
  ReadCursor(body, &page);
  const auto* series = ArrayField(body, "series");
  if (!series) return page;
  for (const auto& s : *series) {
    if (!s.is_object()) return Malformed("sleep series");
    const auto& o = s.get_object();
    auto start = AsInt(Get(o, "startdate"));
    auto end = AsInt(Get(o, "enddate"));
    if (!start || !end || *start <= 0 || *end < *start) return Malformed("sleep series (dates)");
    auto native = IdOf(Get(o, "id"));
    Record r;
    r.meta.id = MakeId(native ? *native : std::to_string(*start), *start);
    r.meta.type = DataType::kSleepSession;
    r.meta.start_ms = *start * 1000;
    r.meta.end_ms = *end * 1000;
    r.meta.utc_offset_min = OffsetAt(AsString(Get(o, "timezone")), r.meta.start_ms);
    r.meta.modified_ms = ModifiedOr(o, *end) * 1000;
    const auto* dv = Get(o, "data");
    const json::object* data = dv && dv->is_object() ? &dv->get_object() : nullptr;
    SleepData d;
    d.deep_min = MinutesOf(data, "deepsleepduration");
    d.light_min = MinutesOf(data, "lightsleepduration");
    d.rem_min = MinutesOf(data, "remsleepduration");
    d.awake_min = MinutesOf(data, "wakeupduration");
    r.data = d;
    page.records.push_back(std::move(r));
  }
  return page;
}

Result<Page> ParseWorkouts(const json::object& body) {
  Page page;
  ReadCursor(body, &page);
  const auto* series = ArrayField(body, "series");
  if (!series) return page;
  for (const auto& s : *series) {
    if (!s.is_object()) return Malformed("workout");
    const auto& o = s.get_object();
    auto start = AsInt(Get(o, "startdate"));
    auto end = AsInt(Get(o, "enddate"));
    auto native = IdOf(Get(o, "id"));
    if (!start || !end || *start <= 0 || *end < *start) return Malformed("workout (dates)");
    Record r;
    r.meta.id = MakeId(native ? *native : std::to_string(*start), *start);
    r.meta.type = DataType::kWorkout;
    r.meta.start_ms = *start * 1000;
    r.meta.end_ms = *end * 1000;
    r.meta.utc_offset_min = OffsetAt(AsString(Get(o, "timezone")), r.meta.start_ms);
    r.meta.modified_ms = ModifiedOr(o, *end) * 1000;
    r.meta.activity = CanonicalWorkout(AsInt(Get(o, "category")).value_or(36));
    const auto* dv = Get(o, "data");
    WorkoutData w;
    if (dv && dv->is_object()) {
      const auto& d = dv->get_object();
      double dist = AsNumber(Get(d, "distance")).value_or(0);
      if (dist <= 0) dist = AsNumber(Get(d, "manual_distance")).value_or(0);
      double kcal = AsNumber(Get(d, "calories")).value_or(0);
      if (kcal <= 0) kcal = AsNumber(Get(d, "manual_calories")).value_or(0);
      w.distance_m = std::max(0.0, dist);
      w.energy_kcal = std::max(0.0, kcal);
      if (auto hr = AsNumber(Get(d, "hr_average")); hr && *hr > 0 && *hr < 400)
        w.avg_heart_rate_bpm = static_cast<int>(std::lround(*hr));
    }
    r.data = w;
    page.records.push_back(std::move(r));
  }
  return page;
}

Result<Page> ParseActivities(const json::object& body) {
  Page page;
  ReadCursor(body, &page);
  const auto* acts = ArrayField(body, "activities");
  if (!acts) return page;
  for (const auto& a : *acts) {
    if (!a.is_object()) return Malformed("activity");
    const auto& o = a.get_object();
    std::string date = AsString(Get(o, "date"));
    auto days = ParseYmd(date);
    if (!days) return Malformed("activity (date)");
    std::string tz = AsString(Get(o, "timezone"));
    Record r;
    r.meta.id = date;
    r.meta.type = DataType::kSteps;
    r.meta.start_ms = LocalMidnightUtcMs(tz, *days);
    r.meta.end_ms = LocalMidnightUtcMs(tz, *days + 1);
    r.meta.utc_offset_min = OffsetAt(tz, r.meta.start_ms);
    // getactivity documents no modification time for every object: fall back to the end of the
    // day (README).
    r.meta.modified_ms = ModifiedOr(o, r.meta.end_ms / 1000) * 1000;
    auto steps = AsInt(Get(o, "steps"));
    if (steps && (*steps < 0 || *steps > 1'000'000)) return Malformed("activity (steps)");
    r.data = StepsData{steps.value_or(0)};
    page.records.push_back(std::move(r));
  }
  return page;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

int HexVal(char c) {
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
    } else if (s[i] == '%' && i + 2 < s.size() && HexVal(s[i + 1]) >= 0 && HexVal(s[i + 2]) >= 0) {
      out += static_cast<char>(HexVal(s[i + 1]) * 16 + HexVal(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

const std::string* FormValue(const Fields& f, std::string_view key) {
  for (const auto& [k, v] : f) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::optional<int64_t> FormInt(const Fields& f, std::string_view key) {
  const auto* v = FormValue(f, key);
  if (!v || v->empty() || v->size() > 18) return std::nullopt;
  int64_t out = 0;
  for (char c : *v) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    out = out * 10 + (c - '0');
  }
  return out;
}

// "Invalid params" family of the documented response-status table.
bool IsInvalidParams(int64_t s) {
  static constexpr std::pair<int64_t, int64_t> kRanges[] = {
      {201, 213}, {216, 218}, {220, 221}, {223, 223}, {225, 225},  {227, 230}, {234, 236},
      {238, 238}, {240, 252}, {254, 254}, {260, 267}, {271, 272},  {275, 276}, {283, 288},
      {290, 290}, {293, 295}, {297, 297}, {300, 304}, {321, 321},  {323, 353}, {380, 382},
      {400, 400}, {501, 511}, {523, 523}, {532, 532}, {3017, 3019}};
  for (auto [lo, hi] : kRanges) {
    if (s >= lo && s <= hi) return true;
  }
  return false;
}

// Known notification categories (appli) of the notification documentation.
bool IsKnownAppli(int64_t a) {
  switch (a) {
    case 1:
    case 2:
    case 4:
    case 16:
    case 44:
    case 46:
    case 50:
    case 51:
    case 52:
    case 53:
    case 54:
    case 55:
    case 58:
      return true;
    default:
      return false;
  }
}

}  // namespace

Error StatusError(int64_t status, std::string_view what, bool token_endpoint) {
  std::string msg = "withings: status " + std::to_string(status) + " on " + std::string(what);
  if ((status >= 100 && status <= 102) || status == 200 || status == 401)
    return MakeError(token_endpoint ? Errc::kAuthRevoked : Errc::kUnauthenticated, msg);
  if (status == 601) {
    Error e = MakeError(Errc::kRateLimited, msg);
    e.retry_after = kStatus601RetryAfter;
    return e;
  }
  if (status == 522) return MakeError(Errc::kRetryable, msg);  // "Timeout"
  if (status == 2554 || status == 214 || status == 277 || status == 2553 || status == 2555 ||
      status == 524)  // not implemented / not allowed to call this service / bad state
    return MakeError(Errc::kPermanent, msg);
  if (IsInvalidParams(status))  // on the token endpoint: invalid/expired code or refresh token
    return MakeError(token_endpoint ? Errc::kAuthRevoked : Errc::kPermanent, msg);
  return MakeError(Errc::kRetryable, msg);  // "An error occurred": transient, bounded retries
}

Result<TokenGrant> ParseTokenResponse(std::string_view body, TimePoint now) {
  auto b = Envelope(body, "oauth2 requesttoken", true);
  if (!b.ok()) return b.error();
  TokenGrant g;
  g.access_token = AsString(Get(*b, "access_token"));
  g.refresh_token = AsString(Get(*b, "refresh_token"));
  if (g.access_token.empty()) return Malformed("token answer (access_token)");
  if (auto uid = IdOf(Get(*b, "userid"))) g.provider_user_id = *uid;
  if (auto exp = AsInt(Get(*b, "expires_in")); exp && *exp > 0)
    g.expires_at = now + std::chrono::seconds{*exp};
  g.scope = AsString(Get(*b, "scope"));
  return g;
}

Result<Page> ParsePage(DataType type, std::string_view body) {
  std::string_view what = type == DataType::kWeight         ? "measure getmeas"
                          : type == DataType::kSleepSession ? "sleep getsummary"
                          : type == DataType::kWorkout      ? "measure getworkouts"
                                                            : "measure getactivity";
  auto b = Envelope(body, what, false);
  if (!b.ok()) return b.error();
  switch (type) {
    case DataType::kWeight:
      return ParseMeasures(*b);
    case DataType::kSleepSession:
      return ParseSleep(*b);
    case DataType::kWorkout:
      return ParseWorkouts(*b);
    case DataType::kSteps:
      return ParseActivities(*b);
  }
  return Malformed("data type");
}

std::string CanonicalWorkout(int64_t c) {
  switch (c) {
    case 1:    // Walk
    case 306:  // Indoor walk
      return "walk";
    case 2:
      return "run";
    case 307:  // Indoor running
      return "treadmill_run";
    case 498:
      return "trail_run";
    case 3:
      return "hike";
    case 6:    // Bicycling
    case 308:  // Indoor cycling
      return "ride";
    case 7:
      return "swim";
    case 16:  // Lift weights
      return "strength";
    case 18:
      return "elliptical";
    case 28:
      return "yoga";
    case 187:
      return "rowing";
    default:
      return "other";
  }
}

std::string MakeId(std::string_view native, int64_t start_s) {
  return std::string(native) + "@" + std::to_string(start_s);
}

std::optional<int64_t> IdStartSeconds(DataType type, std::string_view id) {
  if (type == DataType::kSteps) {
    auto days = ParseYmd(id);
    if (!days) return std::nullopt;
    return *days * 86400;
  }
  auto at = id.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= id.size() || id.size() - at > 19)
    return std::nullopt;
  int64_t s = 0;
  for (char c : id.substr(at + 1)) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    s = s * 10 + (c - '0');
  }
  return s;
}

Fields SetMeasFields(const Record& r) {
  const auto* w = std::get_if<WeightData>(&r.data);
  json::array measures;
  if (w) {
    measures.push_back(
        json::object{{"value", std::llround(w->kg * 1000.0)}, {"unit", -3}, {"type", kMeasWeight}});
    if (w->fat_ratio) {
      measures.push_back(json::object{{"value", std::llround(*w->fat_ratio * 100.0 * 100.0)},
                                      {"unit", -2},
                                      {"type", kMeasFatRatio}});
    }
  }
  Fields f;
  f.emplace_back("action", "setmeas");
  f.emplace_back("category", "1");
  f.emplace_back("date", std::to_string(r.meta.start_ms / 1000));
  std::string tz = ZoneNameForOffset(r.meta.utc_offset_min);
  if (!tz.empty()) f.emplace_back("timezone", tz);
  f.emplace_back("measures", json::serialize(measures));
  if (!r.meta.origin.empty()) f.emplace_back("comment", r.meta.origin);
  return f;
}

Result<std::string> ParseSetMeasAnswer(std::string_view body, int64_t date_s) {
  auto b = Envelope(body, "measure setmeas", false);
  if (!b.ok()) return b.error();
  auto grpid = IdOf(Get(*b, "grpid"));
  if (!grpid) return Malformed("setmeas answer (grpid)");
  return MakeId(*grpid, date_s);
}

std::string Signature(std::string_view client_secret, std::string_view action,
                      std::string_view client_id, std::string_view nonce_or_timestamp) {
  std::string data =
      std::string(action) + "," + std::string(client_id) + "," + std::string(nonce_or_timestamp);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), client_secret.data(), static_cast<int>(client_secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

Result<std::string> ParseNonce(std::string_view body) {
  auto b = Envelope(body, "signature getnonce", false);
  if (!b.ok()) return b.error();
  std::string nonce = AsString(Get(*b, "nonce"));
  if (nonce.empty() || nonce.size() > 128) return Malformed("getnonce answer");
  return nonce;
}

Status CheckStatus(std::string_view body, std::string_view what, bool token_endpoint) {
  auto b = Envelope(body, what, token_endpoint);
  if (!b.ok()) return b.error();
  return {};
}

Fields ParseForm(std::string_view s) {
  Fields out;
  size_t i = 0;
  while (i < s.size()) {
    size_t amp = s.find('&', i);
    if (amp == std::string_view::npos) amp = s.size();
    std::string_view part = s.substr(i, amp - i);
    if (!part.empty()) {
      size_t eq = part.find('=');
      if (eq == std::string_view::npos) {
        out.emplace_back(PercentDecode(part), "");
      } else {
        out.emplace_back(PercentDecode(part.substr(0, eq)), PercentDecode(part.substr(eq + 1)));
      }
    }
    i = amp + 1;
  }
  return out;
}

Result<WebhookOutcome> ParseWebhook(const WebhookRequest& req, std::string_view secret) {
  auto bad = [](std::string m) {
    return MakeError(Errc::kInvalidArgument, "withings notification: " + m);
  };
  if (req.method == "HEAD" || (req.method == "GET" && req.body.empty())) {
    // Withings checks that the callback URL answers (HEAD) before accepting a subscription.
    WebhookOutcome out;
    out.challenge_response = std::make_pair(200, std::string());
    return out;
  }
  if (req.method != "POST") return bad("unexpected method");
  const auto q = ParseForm(req.query);
  const auto* token = FormValue(q, "token");
  if (secret.empty() || !token || !ConstantTimeEquals(*token, secret))
    return bad("callback token mismatch");
  if (req.body.size() > kMaxWebhookBody) return bad("body too large");
  const auto f = ParseForm(req.body);
  auto userid = FormInt(f, "userid");
  auto appli = FormInt(f, "appli");
  if (!userid || *userid <= 0) return bad("userid missing or not a number");
  if (!appli || !IsKnownAppli(*appli)) return bad("appli missing or unknown");
  auto start = FormInt(f, "startdate");
  auto end = FormInt(f, "enddate");

  WebhookOutcome out;
  auto add = [&](DataType t) {
    WebhookEvent e;
    e.provider_user_id = std::to_string(*userid);
    e.type = t;
    e.kind = "update";
    if (start && end && *start <= *end) e.range = TimeRange{*start * 1000, *end * 1000 + 1000};
    out.events.push_back(std::move(e));
  };
  switch (*appli) {
    case 1:
      add(DataType::kWeight);
      break;
    case 16:
      add(DataType::kWorkout);
      add(DataType::kSteps);
      break;
    case 44:
      add(DataType::kSleepSession);
      break;
    default:  // categories we do not sync (temperature, blood pressure, bed in/out, ECG, ...)
      break;
  }
  return out;
}

}  // namespace syncwell::providers::withings
