#pragma once
// What the API needs from authentication: a bearer token in, a caller out. Implemented in
// src/app by adapting auth::TokenVerifier (JWKS + decision cache); fakes in tests.
#include <string>
#include <string_view>

#include "core/ids.hpp"
#include "core/result.hpp"

namespace syncwell::api {

struct Caller {
  UserId user;
  std::string tier_claim;  // "FREE", "PRO" or "" (the store's tier wins when the user exists)
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // kUnauthenticated with a short reason on any failure. Thread-safe.
  virtual Result<Caller> Authenticate(std::string_view bearer_token) = 0;
};

}  // namespace syncwell::api
