#pragma once
// Signing keys of the identity provider (SPEC S2): parsing a JWKS document, where it comes from
// (file or URL), and a cache with the refresh rules the verifier needs.
#include <openssl/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/result.hpp"

namespace syncwell::auth {

// An RSA public key from a JWK. Immutable; owns its EVP_PKEY. Safe to use from many threads.
class PublicKey {
 public:
  // n and e are the raw big-endian bytes (already base64url-decoded). alg is the JWK "alg"
  // member or "" when absent. Rejects moduli below 2048 or above 8192 bits.
  static Result<std::shared_ptr<const PublicKey>> FromRsaComponents(std::string kid,
                                                                    std::string_view n,
                                                                    std::string_view e,
                                                                    std::string alg = "");
  ~PublicKey();
  PublicKey(const PublicKey&) = delete;
  PublicKey& operator=(const PublicKey&) = delete;

  const std::string& kid() const { return kid_; }
  const std::string& alg() const { return alg_; }
  int bits() const;
  EVP_PKEY* native() const { return pkey_; }

  // RSASSA-PKCS1-v1_5 verification; digest is an OpenSSL digest name ("SHA256", ...).
  bool VerifyPkcs1(const char* digest, std::string_view data, std::string_view signature) const;

 private:
  PublicKey(std::string kid, std::string alg, EVP_PKEY* pkey)
      : kid_(std::move(kid)), alg_(std::move(alg)), pkey_(pkey) {}

  std::string kid_;
  std::string alg_;
  EVP_PKEY* pkey_;  // owned
};

using KeySet = std::map<std::string, std::shared_ptr<const PublicKey>, std::less<>>;

// Parses a JWKS document. Keys that are not RSA signing keys (kty != RSA, use != sig, an alg
// other than RS256/RS384/RS512), keys without kid, duplicate kids and malformed keys are skipped
// (an IdP may publish encryption or EC keys next to the ones we use). Fails with
// kInvalidArgument if the document is not a JWKS or no usable key remains.
Result<KeySet> ParseJwks(std::string_view json);

// Where a JWKS document comes from. Implementations may block; called by one thread at a time.
class JwksSource {
 public:
  virtual ~JwksSource() = default;
  virtual Result<std::string> Fetch() = 0;
};

// Reads the document from a local file (dev mode, tests, air-gapped deployments).
class FileJwksSource final : public JwksSource {
 public:
  explicit FileJwksSource(std::string path) : path_(std::move(path)) {}
  Result<std::string> Fetch() override;

 private:
  std::string path_;
};

// GETs the document over http:// or https:// (Beast; implemented in jwks_http_source.cpp).
// HTTPS verifies the server certificate against the system trust store and the host name, with
// SNI. Blocking, with one overall deadline; no redirects; body limited to 1 MiB; 200 only.
class HttpJwksSource final : public JwksSource {
 public:
  explicit HttpJwksSource(std::string url,
                          std::chrono::milliseconds timeout = std::chrono::seconds{5})
      : url_(std::move(url)), timeout_(timeout) {}
  Result<std::string> Fetch() override;

 private:
  std::string url_;
  std::chrono::milliseconds timeout_;
};

// JwksCache: the current key set, refreshed from a JwksSource.
//  - A key is served from memory while the set is younger than `ttl`; after that the next Get
//    refreshes it (other callers meanwhile keep getting the stale key, they do not queue).
//  - An unknown kid triggers a refetch (key rotation at the IdP), but at most once per
//    kUnknownKidRefetchInterval, so tokens with forged kids cannot cause a refetch storm.
//  - Drop(kid) forgets a key (admin command after a key compromise). The kid stays rejected
//    until a fetch that *started after the drop* still lists it; the next Get of that kid does
//    such a fetch regardless of the throttle.
//  - A failed refetch keeps the last good keys; retries are throttled the same way.
// Thread-safety: all methods are thread-safe. Fetches are single-flight (one at a time); a
// Get for an unknown kid waits for an in-progress fetch instead of starting another or
// failing, so a burst of requests with a freshly rotated kid costs one fetch.
class JwksCache {
 public:
  static constexpr std::chrono::seconds kUnknownKidRefetchInterval{30};

  JwksCache(JwksSource& source, const Clock& clock,
            std::chrono::seconds ttl = std::chrono::hours{1});

  // kUnauthenticated ("unknown kid") if the kid is not in the key set; kUnavailable if no key
  // set could ever be fetched.
  Result<std::shared_ptr<const PublicKey>> Get(const std::string& kid);
  void Drop(const std::string& kid);
  // Fetches now (start-up warm-up, admin reload), waiting for an in-progress fetch first.
  Status Refresh();

  uint64_t fetch_count() const { return fetches_.load(std::memory_order_relaxed); }
  uint64_t fetch_failures() const { return fetch_failures_.load(std::memory_order_relaxed); }

 private:
  // Runs one fetch; caller holds fetch_mu_.
  Status FetchLocked();
  bool AttemptAllowed(TimePoint now, std::chrono::seconds interval) const;  // mu_ held
  bool SeqUnchanged(uint64_t seq_seen) const;                               // takes mu_

  JwksSource& source_;
  const Clock& clock_;
  const std::chrono::seconds ttl_;

  std::mutex fetch_mu_;  // single flight; never taken while holding mu_
  mutable std::mutex mu_;
  KeySet keys_;
  std::optional<TimePoint> fetched_at_;                   // last successful fetch
  std::optional<TimePoint> attempted_at_;                 // last fetch attempt
  uint64_t fetch_seq_ = 0;                                // number of fetches started
  bool in_flight_ = false;                                // a fetch is running
  std::map<std::string, uint64_t, std::less<>> dropped_;  // kid -> fetch_seq_ at Drop time

  std::atomic<uint64_t> fetches_{0};
  std::atomic<uint64_t> fetch_failures_{0};
};

}  // namespace syncwell::auth
