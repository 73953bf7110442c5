#include "auth/jwt.hpp"

#include <boost/json.hpp>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>

#include "auth/base64url.hpp"
#include "auth/decision_cache.hpp"

namespace syncwell::auth {
namespace json = boost::json;
namespace {

constexpr size_t kMaxSubLength = 128;
constexpr size_t kMaxKidLength = 256;

Error Unauth(std::string reason) { return MakeError(Errc::kUnauthenticated, std::move(reason)); }

// OpenSSL digest for a supported JWS alg, or nullptr.
const char* DigestFor(std::string_view alg) {
  if (alg == "RS256") return "SHA256";
  if (alg == "RS384") return "SHA384";
  if (alg == "RS512") return "SHA512";
  return nullptr;
}

// Parses a base64url-encoded JSON object into `out`; false if any step fails.
bool DecodeJsonObject(std::string_view b64, json::monotonic_resource& mr, json::object* out) {
  auto raw = Base64UrlDecode(b64);
  if (!raw.ok()) return false;
  json::parse_options opts;
  opts.max_depth = 16;
  boost::system::error_code ec;
  json::value v = json::parse(*raw, ec, &mr, opts);
  if (ec || !v.is_object()) return false;
  *out = std::move(v.get_object());
  return true;
}

// JWT NumericDate: a JSON number of seconds; fractions are truncated toward -infinity.
std::optional<int64_t> NumericDate(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / 2))
      return std::nullopt;
    return static_cast<int64_t>(v.get_uint64());
  }
  if (v.is_double()) {
    const double d = v.get_double();
    if (!std::isfinite(d) || std::fabs(d) > 1e15) return std::nullopt;
    return static_cast<int64_t>(std::floor(d));
  }
  return std::nullopt;
}

bool ValidSubject(std::string_view sub) {
  if (sub.empty() || sub.size() > kMaxSubLength) return false;
  for (char c : sub) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == ':' || c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool AudienceMatches(const json::value& aud, std::string_view expected) {
  if (const json::string* s = aud.if_string()) return *s == expected;
  if (const json::array* a = aud.if_array()) {
    for (const json::value& v : *a) {
      if (const json::string* s = v.if_string(); s && *s == expected) return true;
    }
  }
  return false;
}

}  // namespace

TokenVerifier::TokenVerifier(VerifierSettings settings, JwksCache& jwks, const Clock& clock)
    : settings_(std::move(settings)),
      jwks_(jwks),
      clock_(clock),
      cache_(std::make_unique<DecisionCache>(settings_.decision_cache_max_entries)) {
  if (settings_.issuer.empty() || settings_.audience.empty()) {
    throw std::invalid_argument("token verifier needs an issuer and an audience");
  }
  if (settings_.algorithms.empty())
    throw std::invalid_argument("token verifier needs an algorithm");
  for (const std::string& alg : settings_.algorithms) {
    if (DigestFor(alg) == nullptr) {
      throw std::invalid_argument("unsupported JWT algorithm '" + alg +
                                  "' (RS256/RS384/RS512 only)");
    }
  }
  if (settings_.leeway.count() < 0 || settings_.decision_ttl.count() < 0) {
    throw std::invalid_argument("leeway and decision_ttl must not be negative");
  }
}

TokenVerifier::~TokenVerifier() = default;

size_t TokenVerifier::cache_size() const { return cache_->size(); }

Result<Principal> TokenVerifier::Verify(std::string_view token) {
  if (token.empty()) return Unauth("missing token");
  if (token.size() > kMaxTokenBytes) return Unauth("token too large");
  const TimePoint now = clock_.Now();
  const TokenDigest digest = DecisionCache::Digest(token);
  if (std::optional<Principal> cached = cache_->Find(digest, now)) {
    hits_.fetch_add(1, std::memory_order_relaxed);
    return std::move(*cached);
  }
  misses_.fetch_add(1, std::memory_order_relaxed);

  const uint64_t epoch = cache_->epoch();  // read before the key lookup, see DecisionCache
  Result<Principal> verdict = VerifyUncached(token, now);
  if (!verdict.ok()) return verdict;

  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const int64_t ttl = settings_.decision_ttl.count();
  const int64_t exp = verdict->exp;
  // Never reuse a decision past the token's own expiry (exp is bounded here, so no overflow).
  const TimePoint expires =
      exp - now_s < ttl ? TimePoint{std::chrono::seconds{exp}} : now + settings_.decision_ttl;
  cache_->Insert(digest, *verdict, expires, epoch, now);
  return verdict;
}

Result<Principal> TokenVerifier::VerifyUncached(std::string_view token, TimePoint now) const {
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Unauth("malformed token");
  }
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view sig_b64 = token.substr(dot2 + 1);
  if (header_b64.empty() || payload_b64.empty() || sig_b64.empty())
    return Unauth("malformed token");

  unsigned char buffer[4096];
  json::monotonic_resource mr(buffer, sizeof buffer);

  // --- header
  json::object header(&mr);
  if (!DecodeJsonObject(header_b64, mr, &header)) return Unauth("malformed header");
  const json::value* alg_v = header.if_contains("alg");
  const json::string* alg = alg_v ? alg_v->if_string() : nullptr;
  if (!alg) return Unauth("missing alg");
  bool allowed = false;
  for (const std::string& a : settings_.algorithms) allowed = allowed || *alg == a;
  if (!allowed) return Unauth("unsupported alg");
  if (const json::value* typ = header.if_contains("typ")) {
    const json::string* t = typ->if_string();
    if (!t || (*t != "JWT" && *t != "jwt")) return Unauth("unsupported typ");
  }
  if (header.contains("crit")) return Unauth("unsupported crit header");
  const json::value* kid_v = header.if_contains("kid");
  const json::string* kid = kid_v ? kid_v->if_string() : nullptr;
  if (!kid || kid->empty() || kid->size() > kMaxKidLength) return Unauth("missing kid");

  // --- signature (before trusting anything in the payload)
  auto key = jwks_.Get(std::string(*kid));
  if (!key.ok()) {
    if (key.error().code == Errc::kUnavailable) return key.error();
    return Unauth("unknown kid");
  }
  if (!(*key)->alg().empty() && (*key)->alg() != *alg) return Unauth("alg does not match key");
  auto sig = Base64UrlDecode(sig_b64);
  if (!sig.ok()) return Unauth("malformed signature");
  if (!(*key)->VerifyPkcs1(DigestFor(*alg), token.substr(0, dot2), *sig)) {
    return Unauth("bad signature");
  }

  // --- claims
  json::object claims(&mr);
  if (!DecodeJsonObject(payload_b64, mr, &claims)) return Unauth("malformed claims");
  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const int64_t leeway = settings_.leeway.count();

  const json::value* iss = claims.if_contains("iss");
  if (!iss || !iss->is_string() || iss->get_string() != settings_.issuer)
    return Unauth("wrong issuer");
  const json::value* aud = claims.if_contains("aud");
  if (!aud || !AudienceMatches(*aud, settings_.audience)) return Unauth("wrong audience");

  const json::value* exp_v = claims.if_contains("exp");
  if (!exp_v) return Unauth("missing exp");
  const std::optional<int64_t> exp = NumericDate(*exp_v);
  if (!exp) return Unauth("bad exp");
  if (*exp <= now_s - leeway) return Unauth("token expired");
  if (const json::value* nbf_v = claims.if_contains("nbf")) {
    const std::optional<int64_t> nbf = NumericDate(*nbf_v);
    if (!nbf) return Unauth("bad nbf");
    if (*nbf > now_s + leeway) return Unauth("token not yet valid");
  }
  if (const json::value* iat_v = claims.if_contains("iat")) {
    const std::optional<int64_t> iat = NumericDate(*iat_v);
    if (!iat) return Unauth("bad iat");
    if (*iat > now_s + leeway) return Unauth("token issued in the future");
  }

  const json::value* sub_v = claims.if_contains("sub");
  if (!sub_v || !sub_v->is_string() || sub_v->get_string().empty()) return Unauth("missing sub");
  const std::string_view sub = sub_v->get_string();
  if (!ValidSubject(sub)) return Unauth("bad sub");

  Principal p;
  p.user = UserId(std::string(sub));
  if (const json::value* tier = claims.if_contains("tier")) {
    if (const json::string* t = tier->if_string(); t && (*t == "FREE" || *t == "PRO")) {
      p.tier = std::string(*t);
    }
  }
  p.kid = std::string(*kid);
  p.exp = *exp;
  return p;
}

void TokenVerifier::ForgetKid(const std::string& kid) {
  jwks_.Drop(kid);
  cache_->ForgetKid(kid);
}

}  // namespace syncwell::auth
