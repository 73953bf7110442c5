#include "auth/jwks.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "auth/base64url.hpp"
#include "core/log.hpp"

namespace syncwell::auth {
namespace json = boost::json;
namespace {

constexpr size_t kMaxJwksBytes = 1 << 20;

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// JWK members are base64url without padding, but some IdPs pad; tolerate trailing '='.
Result<std::string> DecodeJwkMember(std::string_view s) {
  while (!s.empty() && s.back() == '=') s.remove_suffix(1);
  return Base64UrlDecode(s);
}

const json::string* StringMember(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v ? v->if_string() : nullptr;
}

}  // namespace

Result<std::shared_ptr<const PublicKey>> PublicKey::FromRsaComponents(std::string kid,
                                                                      std::string_view n,
                                                                      std::string_view e,
                                                                      std::string alg) {
  while (!n.empty() && n.front() == '\0') n.remove_prefix(1);
  if (n.size() < 256 || n.size() > 1024) {
    return MakeError(Errc::kInvalidArgument, "RSA modulus must be 2048..8192 bits");
  }
  while (!e.empty() && e.front() == '\0') e.remove_prefix(1);
  // e must be odd and at least 3: with e = 1 "verification" is the identity and anyone could
  // produce a valid-looking signature.
  if (e.empty() || e.size() > 8 || (static_cast<unsigned char>(e.back()) & 1) == 0 ||
      (e.size() == 1 && static_cast<unsigned char>(e[0]) < 3)) {
    return MakeError(Errc::kInvalidArgument, "bad RSA exponent");
  }

  std::unique_ptr<BIGNUM, BnFree> bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                                                 static_cast<int>(n.size()), nullptr));
  std::unique_ptr<BIGNUM, BnFree> bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                                                 static_cast<int>(e.size()), nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
    return MakeError(Errc::kInternal, "OpenSSL param build failed");
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1 || !pkey) {
    return MakeError(Errc::kInvalidArgument, "invalid RSA public key");
  }
  return std::shared_ptr<const PublicKey>(new PublicKey(std::move(kid), std::move(alg), pkey));
}

PublicKey::~PublicKey() { EVP_PKEY_free(pkey_); }

int PublicKey::bits() const { return EVP_PKEY_get_bits(pkey_); }

bool PublicKey::VerifyPkcs1(const char* digest, std::string_view data,
                            std::string_view signature) const {
  // RSA signatures are exactly the modulus size; anything else is not worth a modexp.
  if (static_cast<int>(signature.size()) != EVP_PKEY_get_size(pkey_)) return false;
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx ||
      EVP_DigestVerifyInit_ex(ctx.get(), &pctx, digest, nullptr, nullptr, pkey_, nullptr) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                          data.size()) == 1;
}

Result<KeySet> ParseJwks(std::string_view text) {
  if (text.size() > kMaxJwksBytes) return MakeError(Errc::kInvalidArgument, "JWKS too large");
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec) return MakeError(Errc::kInvalidArgument, "JWKS is not valid JSON: " + ec.message());
  const json::object* root = doc.if_object();
  const json::value* keys_v = root ? root->if_contains("keys") : nullptr;
  const json::array* keys = keys_v ? keys_v->if_array() : nullptr;
  if (!keys) return MakeError(Errc::kInvalidArgument, "JWKS has no \"keys\" array");

  KeySet out;
  for (const json::value& kv : *keys) {
    const json::object* k = kv.if_object();
    if (!k) continue;
    const json::string* kty = StringMember(*k, "kty");
    if (!kty || *kty != "RSA") continue;
    if (k->contains("use")) {
      const json::string* use = StringMember(*k, "use");
      if (!use || *use != "sig") continue;
    }
    std::string alg;
    if (k->contains("alg")) {
      const json::string* a = StringMember(*k, "alg");
      if (!a || (*a != "RS256" && *a != "RS384" && *a != "RS512")) continue;
      alg = std::string(*a);
    }
    const json::string* kid = StringMember(*k, "kid");
    const json::string* n = StringMember(*k, "n");
    const json::string* e = StringMember(*k, "e");
    if (!kid || kid->empty() || !n || !e) {
      log::Warn("JWKS: skipping RSA key without kid/n/e");
      continue;
    }
    std::string kid_s(*kid);
    if (out.contains(kid_s)) {
      log::Warn("JWKS: skipping duplicate kid", {{"kid", kid_s}});
      continue;
    }
    auto n_raw = DecodeJwkMember(*n);
    auto e_raw = DecodeJwkMember(*e);
    if (!n_raw.ok() || !e_raw.ok()) {
      log::Warn("JWKS: skipping key with bad base64url", {{"kid", kid_s}});
      continue;
    }
    auto key = PublicKey::FromRsaComponents(kid_s, *n_raw, *e_raw, alg);
    if (!key.ok()) {
      log::Warn("JWKS: skipping key", {{"kid", kid_s}, {"reason", key.error().message}});
      continue;
    }
    out.emplace(std::move(kid_s), std::move(key).value());
  }
  if (out.empty())
    return MakeError(Errc::kInvalidArgument, "JWKS contains no usable RSA signing key");
  return out;
}

Result<std::string> FileJwksSource::Fetch() {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return MakeError(Errc::kUnavailable, "cannot read JWKS file " + path_);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return MakeError(Errc::kUnavailable, "error reading JWKS file " + path_);
  return ss.str();
}

// ---------------------------------------------------------------------------------------------

JwksCache::JwksCache(JwksSource& source, const Clock& clock, std::chrono::seconds ttl)
    : source_(source), clock_(clock), ttl_(ttl) {}

bool JwksCache::AttemptAllowed(TimePoint now, std::chrono::seconds interval) const {
  return !attempted_at_ || now - *attempted_at_ >= interval;
}

Result<std::shared_ptr<const PublicKey>> JwksCache::Get(const std::string& kid) {
  enum class Action { kNone, kRefreshIfIdle, kFetch, kWaitForInFlight };
  std::shared_ptr<const PublicKey> found;
  Action action = Action::kNone;
  uint64_t seq_seen = 0;
  {
    std::lock_guard lock(mu_);
    const TimePoint now = clock_.Now();
    if (auto it = keys_.find(kid); it != keys_.end()) found = it->second;
    if (found) {
      const bool stale = !fetched_at_ || now - *fetched_at_ >= ttl_;
      if (!stale || !AttemptAllowed(now, std::min(ttl_, kUnknownKidRefetchInterval))) return found;
      action = Action::kRefreshIfIdle;
    } else {
      auto d = dropped_.find(kid);
      const bool forced_by_drop = d != dropped_.end() && d->second == fetch_seq_;
      if (forced_by_drop || AttemptAllowed(now, kUnknownKidRefetchInterval)) {
        action = Action::kFetch;
      } else if (in_flight_) {
        action = Action::kWaitForInFlight;  // the running fetch may well bring this kid
      }
    }
    seq_seen = fetch_seq_;
  }

  switch (action) {
    case Action::kNone:
      break;
    case Action::kRefreshIfIdle: {
      // A stale but known key is still good enough: refresh only if nobody else is fetching,
      // otherwise keep serving it rather than queueing behind the fetch.
      std::unique_lock flight(fetch_mu_, std::try_to_lock);
      if (!flight.owns_lock()) return found;
      if (SeqUnchanged(seq_seen)) (void)FetchLocked();
      break;
    }
    case Action::kFetch: {
      std::lock_guard flight(fetch_mu_);
      // If a fetch started after we looked, it has finished now and answered our question.
      if (SeqUnchanged(seq_seen)) (void)FetchLocked();
      break;
    }
    case Action::kWaitForInFlight: {
      std::lock_guard flight(fetch_mu_);
      break;
    }
  }

  std::lock_guard lock(mu_);
  if (auto it = keys_.find(kid); it != keys_.end()) return it->second;
  if (!fetched_at_) return MakeError(Errc::kUnavailable, "signing keys unavailable");
  return MakeError(Errc::kUnauthenticated, "unknown kid");
}

bool JwksCache::SeqUnchanged(uint64_t seq_seen) const {
  std::lock_guard lock(mu_);
  return fetch_seq_ == seq_seen;
}

void JwksCache::Drop(const std::string& kid) {
  std::lock_guard lock(mu_);
  keys_.erase(kid);
  dropped_[kid] = fetch_seq_;
  log::Warn("JWKS: key dropped", {{"kid", kid}});
}

Status JwksCache::Refresh() {
  std::lock_guard flight(fetch_mu_);
  return FetchLocked();
}

Status JwksCache::FetchLocked() {
  uint64_t seq;
  TimePoint started;
  {
    std::lock_guard lock(mu_);
    seq = ++fetch_seq_;
    started = clock_.Now();
    attempted_at_ = started;
    in_flight_ = true;
  }
  fetches_.fetch_add(1, std::memory_order_relaxed);
  Result<std::string> body = source_.Fetch();
  Result<KeySet> parsed = body.ok() ? ParseJwks(*body) : Result<KeySet>(body.error());

  std::lock_guard lock(mu_);
  in_flight_ = false;
  // Drops recorded before this fetch started are settled by it; drops during it are not.
  for (auto it = dropped_.begin(); it != dropped_.end();) {
    if (it->second < seq) {
      it = dropped_.erase(it);
    } else {
      if (parsed.ok()) parsed->erase(it->first);
      ++it;
    }
  }
  if (!parsed.ok()) {
    fetch_failures_.fetch_add(1, std::memory_order_relaxed);
    log::Warn("JWKS refresh failed; keeping previous keys", {{"error", parsed.error().message}});
    return parsed.error();
  }
  keys_ = std::move(parsed).value();
  fetched_at_ = started;
  return {};
}

}  // namespace syncwell::auth
