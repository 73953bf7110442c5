#include "api/json_util.hpp"

#include <algorithm>

#include "api/problem.hpp"
#include "core/civil_time.hpp"

namespace syncwell::api {

namespace json = boost::json;

bool IsJsonContentType(const std::string* ct) {
  if (!ct) return false;
  std::string v;
  for (char c : *ct) {
    if (c == ';') break;
    if (c != ' ' && c != '\t') v += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return v == "application/json";
}

std::optional<HttpResponse> ParseJsonObject(const HttpRequest& req, json::object* out) {
  if (!IsJsonContentType(req.Header("content-type"))) {
    return api::Problem(415, code::kUnsupportedMediaType, "Content-Type must be application/json");
  }
  if (req.body.empty()) return api::Problem(400, code::kMalformedJson, "request body is empty");
  json::parse_options opts;
  opts.max_depth = kMaxJsonDepth;
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec, {}, opts);
  if (ec) {
    if (ec == json::error::too_deep) {
      return api::Problem(400, code::kMalformedJson, "JSON nesting deeper than 32 levels");
    }
    return api::Problem(400, code::kMalformedJson, "body is not valid JSON: " + ec.message());
  }
  if (!v.is_object()) return api::Problem(400, code::kMalformedJson, "body must be a JSON object");
  *out = std::move(v.as_object());
  return std::nullopt;
}

void Validator::Fail(std::string_view field, std::string message) {
  if (!field_.empty()) return;
  field_ = Path(field);
  message_ = std::move(message);
}

HttpResponse Validator::Problem() const { return ValidationProblem(field_, message_); }

const json::value* Validator::Get(std::string_view name, bool required) {
  auto it = o_.find(name);
  if (it == o_.end() || it->value().is_null()) {
    if (required) Fail(name, "is required");
    return nullptr;
  }
  return &it->value();
}

std::optional<std::string> Validator::Str(std::string_view name, bool required, size_t max_len) {
  const json::value* v = Get(name, required);
  if (!v) return std::nullopt;
  if (!v->is_string()) {
    Fail(name, "must be a string");
    return std::nullopt;
  }
  const auto& s = v->as_string();
  if (s.empty()) {
    Fail(name, "must not be empty");
    return std::nullopt;
  }
  if (s.size() > max_len) {
    Fail(name, "must be at most " + std::to_string(max_len) + " characters");
    return std::nullopt;
  }
  return std::string(s);
}

std::optional<std::string> Validator::Enum(std::string_view name, bool required,
                                           const std::vector<std::string_view>& allowed) {
  auto s = Str(name, required, 64);
  if (!s) return std::nullopt;
  if (std::find(allowed.begin(), allowed.end(), *s) == allowed.end()) {
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    Fail(name, "must be one of: " + list);
    return std::nullopt;
  }
  return s;
}

std::optional<bool> Validator::Bool(std::string_view name, bool required) {
  const json::value* v = Get(name, required);
  if (!v) return std::nullopt;
  if (!v->is_bool()) {
    Fail(name, "must be a boolean");
    return std::nullopt;
  }
  return v->as_bool();
}

std::optional<int64_t> Validator::Int(std::string_view name, bool required, int64_t min,
                                      int64_t max) {
  const json::value* v = Get(name, required);
  if (!v) return std::nullopt;
  int64_t n = 0;
  if (v->is_int64())
    n = v->as_int64();
  else if (v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX))
    n = static_cast<int64_t>(v->as_uint64());
  else {
    Fail(name, "must be an integer");
    return std::nullopt;
  }
  if (n < min || n > max) {
    Fail(name, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return std::nullopt;
  }
  return n;
}

const json::object* Validator::Obj(std::string_view name, bool required) {
  const json::value* v = Get(name, required);
  if (!v) return nullptr;
  if (!v->is_object()) {
    Fail(name, "must be an object");
    return nullptr;
  }
  return &v->as_object();
}

void Validator::OnlyFields(const std::vector<std::string_view>& allowed) {
  for (const auto& kv : o_) {
    if (std::find(allowed.begin(), allowed.end(), kv.key()) == allowed.end()) {
      Fail(kv.key(), "is not a known field");
      return;
    }
  }
}

namespace {
bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::optional<int64_t> ParseDateOrDateTime(std::string_view s) {
  int y, mo, d;
  if (s.size() < 10 || !Digits(s, 0, 4, &y) || s[4] != '-' || !Digits(s, 5, 2, &mo) ||
      s[7] != '-' || !Digits(s, 8, 2, &d)) {
    return std::nullopt;
  }
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1970 || y > 2200 || mo < 1 || mo > 12 || d < 1) return std::nullopt;
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > kDays[mo - 1] + (mo == 2 && leap ? 1 : 0)) return std::nullopt;
  int64_t secs = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400;
  if (s.size() == 10) return secs;
  int h, mi, se;
  if (s[10] != 'T' && s[10] != 't') return std::nullopt;
  if (!Digits(s, 11, 2, &h) || s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' ||
      !Digits(s, 17, 2, &se)) {
    return std::nullopt;
  }
  if (h > 23 || mi > 59 || se > 60) return std::nullopt;
  size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start || i - start > 9) return std::nullopt;
  }
  if (i >= s.size()) return std::nullopt;  // RFC 3339 requires an offset
  int64_t offset = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    int oh, om;
    if (!Digits(s, i + 1, 2, &oh) || i + 3 >= s.size() || s[i + 3] != ':' ||
        !Digits(s, i + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = (oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return secs + h * 3600 + mi * 60 + std::min(se, 59) - offset;
}

HttpResponse JsonResponse(int status, const json::value& v) {
  HttpResponse r;
  r.status = status;
  r.body = json::serialize(v);
  return r;
}

}  // namespace syncwell::api
