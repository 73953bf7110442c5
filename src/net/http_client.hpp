#pragma once
// HttpClient: blocking outbound HTTP/1.1 for provider connectors and the simulator's webhook
// sender (ARCHITECTURE §4 "pooled keep-alive connections per provider host, deadlines on every
// call, bounded in-flight per provider").
//
// Contract:
//  * Thread-safe; Send() blocks the calling thread (worker threads, never an I/O thread).
//  * Keep-alive connections are pooled per scheme://host:port and reused; a connection that the
//    server closed while idle is retried once transparently (only for requests not yet written).
//  * Every call has a deadline (HttpCall::timeout) covering resolve, connect, TLS, write and read.
//  * Errors: a bad URL -> kInvalidArgument; DNS failure, connection refused/reset, timeout, a
//    truncated or unparsable response, or a body over max_response_bytes -> kRetryable (the
//    message says which). Any HTTP status (including 4xx/5xx) is a successful Send: callers map
//    statuses themselves.
//  * https:// uses OpenSSL with peer verification against the system store and SNI.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace syncwell::net {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpCall {
  std::string method = "GET";
  std::string url;  // absolute: http(s)://host[:port]/path[?query]
  Headers headers;  // Host, Content-Length and Connection are set by the client
  std::string body;
  std::chrono::milliseconds timeout{10'000};
};

struct HttpResult {
  int status = 0;
  Headers headers;  // names lower-cased
  std::string body;

  // First header with this lower-case name, or nullptr.
  const std::string* Header(std::string_view lower_name) const {
    for (const auto& [k, v] : headers) {
      if (k == lower_name) return &v;
    }
    return nullptr;
  }
};

struct HttpClientSettings {
  size_t max_idle_per_host = 64;          // idle keep-alive connections kept per host
  size_t max_response_bytes = 16u << 20;  // larger bodies -> kRetryable error
  std::string user_agent = "SyncWell-Engine/0.1";
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual Result<HttpResult> Send(const HttpCall& call) = 0;
};

std::unique_ptr<HttpClient> MakeHttpClient(HttpClientSettings settings = {});

// application/x-www-form-urlencoded / query-string encoding (RFC 3986 unreserved kept).
std::string UrlEncode(std::string_view s);
std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace syncwell::net
