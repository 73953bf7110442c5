#include "api/problem.hpp"

#include "core/log.hpp"

namespace syncwell::api {
namespace {
const char* Title(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return status >= 500 ? "Internal Server Error" : "Error";
  }
}

std::string Escaped(std::string_view s) {
  std::string out;
  log::AppendJsonEscaped(out, s);
  return out;
}
}  // namespace

HttpResponse Problem(int status, std::string_view code, std::string_view detail) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/problem+json";
  r.body = "{\"type\":\"https://syncwell.dev/problems/" + Escaped(code) + "\",\"title\":\"" +
           Title(status) + "\",\"status\":" + std::to_string(status) + ",\"code\":\"" +
           Escaped(code) + "\",\"detail\":\"" + Escaped(detail) + "\"}";
  return r;
}

HttpResponse ValidationProblem(std::string_view field, std::string_view message) {
  HttpResponse r =
      Problem(400, code::kValidationFailed, std::string(field) + ": " + std::string(message));
  r.body.pop_back();
  r.body += ",\"errors\":[{\"field\":\"" + Escaped(field) + "\",\"message\":\"" + Escaped(message) +
            "\"}]}";
  return r;
}

}  // namespace syncwell::api
