#pragma once
// JSON parsing and field validation for request bodies. The first problem found becomes a
// 400 VALIDATION_FAILED that names the field. Internal to src/api.
#include <boost/json.hpp>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_types.hpp"
#include "core/result.hpp"

namespace syncwell::api {

inline constexpr int kMaxJsonDepth = 32;

// Parses a request body that must be a JSON object. On failure returns the problem response.
std::optional<HttpResponse> ParseJsonObject(const HttpRequest& req, boost::json::object* out);

// True if the Content-Type is application/json (parameters such as charset allowed).
bool IsJsonContentType(const std::string* content_type);

class Validator {
 public:
  explicit Validator(const boost::json::object& o, std::string prefix = "")
      : o_(o), prefix_(std::move(prefix)) {}

  std::optional<std::string> Str(std::string_view name, bool required, size_t max_len = 256);
  std::optional<std::string> Enum(std::string_view name, bool required,
                                  const std::vector<std::string_view>& allowed);
  std::optional<bool> Bool(std::string_view name, bool required);
  std::optional<int64_t> Int(std::string_view name, bool required, int64_t min, int64_t max);
  const boost::json::object* Obj(std::string_view name, bool required);
  // Any field not in `allowed` is an error (typos must not be silently ignored).
  void OnlyFields(const std::vector<std::string_view>& allowed);
  void Fail(std::string_view field, std::string message);

  bool ok() const { return field_.empty(); }
  HttpResponse Problem() const;
  const std::string& prefix() const { return prefix_; }

 private:
  const boost::json::value* Get(std::string_view name, bool required);
  std::string Path(std::string_view name) const {
    return prefix_.empty() ? std::string(name) : prefix_ + "." + std::string(name);
  }

  const boost::json::object& o_;
  std::string prefix_;
  std::string field_;
  std::string message_;
};

// "YYYY-MM-DD" or RFC 3339 date-time. Returns seconds since epoch (UTC) or nullopt.
std::optional<int64_t> ParseDateOrDateTime(std::string_view s);

HttpResponse JsonResponse(int status, const boost::json::value& v);

}  // namespace syncwell::api
