#pragma once
// Transport-neutral HTTP request/response used by the router and handlers, so that only
// http_server.cpp includes Beast (compile time) and handlers are testable without sockets.
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace syncwell::api {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without query string, percent-decoding not applied
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string request_id;
  std::string remote_address;

  // First header with this lower-case name, or nullptr.
  const std::string* Header(std::string_view lower_name) const {
    for (const auto& [k, v] : headers) {
      if (k == lower_name) return &v;
    }
    return nullptr;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string route = "unmatched";  // for metrics and the access log
  std::string user_hash;            // for the access log (never the raw user id)
};

// A response a handler finishes later, without holding a thread meanwhile: calling it starts the
// remaining work (a store write); the work calls `done` exactly once, from any thread, with the
// final response. `done` must not block.
using DeferredResponse = std::function<void(std::function<void(HttpResponse)> done)>;

}  // namespace syncwell::api
