#pragma once
// The request plan: what loadgen sends, pre-rendered once before the run so the hot loop only
// picks an entry and adds a fresh Idempotency-Key. No Asio here (cheap to compile and test).
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "loadgen/loadgen.hpp"

namespace syncwell::loadgen {

struct Target {
  std::string host;
  std::string port = "80";
  std::string path;  // empty when the URL has none
};

// Parses http://host[:port][/path]; https is refused (plain HTTP/1.1 only).
Result<Target> ParseTarget(std::string_view url);

struct RequestPlan {
  // One entry per token-file line (one entry when there is no token file). `head` is the request
  // line and all headers except Idempotency-Key, without the blank line that ends the headers.
  struct Entry {
    std::string head;
    std::string body;
  };
  std::vector<Entry> entries;
  std::string path;              // the request path actually used
  bool idempotency_key = false;  // append "Idempotency-Key: <uuid>" per request
  bool random_pick = false;
};

// Reads the token and body files and renders every entry. Errors are kInvalidArgument with a
// message fit for the user.
Result<RequestPlan> BuildRequestPlan(const LoadgenOptions& options, const Target& target);

// Replaces every {{conn_src}} / {{conn_dst}} in a template.
std::string RenderBody(std::string_view tmpl, std::string_view conn_src, std::string_view conn_dst);

// Fast random UUIDv4 for Idempotency-Keys (a per-thread PRNG seeded from std::random_device: keys
// must be unique, not unguessable). Writes exactly 36 chars at out.
class UuidGenerator {
 public:
  UuidGenerator();
  void Write(char* out);
  static constexpr size_t kLength = 36;

 private:
  std::mt19937_64 rng_;
};

}  // namespace syncwell::loadgen
