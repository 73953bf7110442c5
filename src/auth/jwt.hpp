#pragma once
// Bearer-token verification (SPEC S2): strict RS256 JWT checks plus a per-token decision cache
// (the brief's "authorizer cache").
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwks.hpp"
#include "core/clock.hpp"
#include "core/ids.hpp"
#include "core/result.hpp"

namespace syncwell::auth {

class DecisionCache;

// Who the caller is, as established by a verified token.
struct Principal {
  UserId user;       // claim "sub"
  std::string tier;  // claim "tier": "FREE", "PRO", or "" when absent/unrecognised
  std::string kid;   // key that signed the token (lets ForgetKid find decisions made with it)
  int64_t exp = 0;   // claim "exp", seconds since the Unix epoch
};

struct VerifierSettings {
  std::string issuer;
  std::string audience;
  // Allowed header "alg" values. Only RS256, RS384 and RS512 are supported; "none", HS* and
  // anything else is refused at construction so a config typo cannot open a hole.
  std::vector<std::string> algorithms{"RS256"};
  std::chrono::seconds leeway{30};             // clock skew tolerated for exp/nbf/iat
  std::chrono::seconds decision_ttl{300};      // how long a successful verification is reused
  size_t decision_cache_max_entries = 200000;  // 0 disables the decision cache
};

// TokenVerifier turns "Authorization: Bearer <jwt>" into a Principal.
//  - Verify is strict: exactly three base64url parts; header alg in the allow-list, typ absent or
//    "JWT", kid required, no "crit"; signature checked before any claim is looked at; iss, aud,
//    exp (required), nbf and iat (optional) with leeway; sub a non-empty id of at most 128
//    [A-Za-z0-9_.:@-]. Every rejection is Errc::kUnauthenticated with a short reason, except
//    kUnavailable when no signing keys could be fetched (a 503, not a 401).
//  - Successful decisions are cached by SHA-256 of the token for min(decision_ttl, exp - now);
//    failures are never cached (they are cheap to recompute and must not pin a stale verdict).
// Lifecycle: constructed by the composition root; must not outlive the JwksCache and Clock.
// Thread-safety: every method is thread-safe. The hit path is one SHA-256 plus one lock of one
// of 64 shards, so concurrent requests rarely contend.
class TokenVerifier {
 public:
  static constexpr size_t kMaxTokenBytes = 8 * 1024;

  // Throws std::invalid_argument for an unsupported algorithm or an empty issuer/audience
  // (start-up configuration errors).
  TokenVerifier(VerifierSettings settings, JwksCache& jwks, const Clock& clock);
  ~TokenVerifier();
  TokenVerifier(const TokenVerifier&) = delete;
  TokenVerifier& operator=(const TokenVerifier&) = delete;

  Result<Principal> Verify(std::string_view compact_jwt);

  // Admin: a key is compromised or revoked. Removes cached decisions made with it and drops it
  // from the JwksCache (it comes back only if a later JWKS fetch still lists it).
  void ForgetKid(const std::string& kid);

  uint64_t cache_hits() const { return hits_.load(std::memory_order_relaxed); }
  uint64_t cache_misses() const { return misses_.load(std::memory_order_relaxed); }
  size_t cache_size() const;

 private:
  Result<Principal> VerifyUncached(std::string_view token, TimePoint now) const;

  const VerifierSettings settings_;
  JwksCache& jwks_;
  const Clock& clock_;
  std::unique_ptr<DecisionCache> cache_;
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
};

}  // namespace syncwell::auth
