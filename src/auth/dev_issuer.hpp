#pragma once
// DevIssuer: the program acting as its own identity provider in development and tests (SPEC S2).
// Keeps an RSA-2048 signing key in <data_dir>/dev-signing-key.pem (0600, created on first use)
// and publishes the public half as <data_dir>/dev-jwks.json, which the server trusts in dev
// mode through a FileJwksSource. Never used in production configurations.
// Thread-safety: immutable after LoadOrCreate; Mint/SignRs256 may be called concurrently.
#include <openssl/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/result.hpp"

namespace syncwell::auth {

class DevIssuer {
 public:
  static constexpr const char* kDevIssuer = "syncwell-dev";
  static constexpr const char* kDevAudience = "syncwell";
  static constexpr const char* kKeyFileName = "dev-signing-key.pem";
  static constexpr const char* kJwksFileName = "dev-jwks.json";

  // Creates data_dir if needed, loads or generates the key, and (re)writes the JWKS file.
  static Result<DevIssuer> LoadOrCreate(const std::string& data_dir);

  DevIssuer(DevIssuer&&) noexcept = default;
  DevIssuer& operator=(DevIssuer&&) noexcept = default;
  ~DevIssuer();

  // An RS256 token with header {alg,typ,kid} and claims {iss,aud,sub,tier,iat,nbf,exp};
  // "tier" is omitted when empty.
  std::string Mint(const std::string& user, const std::string& tier, std::chrono::seconds ttl,
                   TimePoint now) const;
  // Signs arbitrary header/payload JSON (used verbatim) with RS256 and returns the compact JWS,
  // so tests can craft tokens with any claims.
  std::string SignRs256(std::string_view header_json, std::string_view payload_json) const;

  const std::string& kid() const { return kid_; }
  std::string jwks_path() const { return jwks_path_; }
  const std::string& jwks_json() const { return jwks_json_; }
  // SubjectPublicKeyInfo PEM of the signing key (e.g. for the HS256 key-confusion test).
  const std::string& public_key_pem() const { return public_pem_; }

 private:
  struct PkeyFree {
    void operator()(EVP_PKEY* p) const;
  };
  DevIssuer() = default;

  std::unique_ptr<EVP_PKEY, PkeyFree> pkey_;
  std::string kid_;
  std::string jwks_path_;
  std::string jwks_json_;
  std::string public_pem_;
};

}  // namespace syncwell::auth
