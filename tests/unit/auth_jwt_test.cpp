// TokenVerifier (SPEC S2): what a bearer token must satisfy, and the per-token decision cache.
// Tokens are minted by DevIssuer; keys come from a FakeJwksSource; time from a ManualClock.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <atomic>
#include <boost/json.hpp>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "auth/base64url.hpp"
#include "auth/dev_issuer.hpp"
#include "auth/jwks.hpp"
#include "auth/jwt.hpp"
#include "core/clock.hpp"
#include "fakes/fake_jwks_source.hpp"
#include "support/temp_dir.hpp"

namespace syncwell::auth {
namespace {

namespace json = boost::json;
using std::chrono::seconds;

std::string MakeTempDir() { return test_support::MakeTempDir("jwt"); }

using fakes::FakeJwksSource;

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    issuer_ = new DevIssuer(std::move(DevIssuer::LoadOrCreate(MakeTempDir())).value());
    attacker_ = new DevIssuer(std::move(DevIssuer::LoadOrCreate(MakeTempDir())).value());
  }
  static void TearDownTestSuite() {
    delete issuer_;
    delete attacker_;
  }

  JwtTest() { source_.Set(issuer_->jwks_json()); }

  static VerifierSettings Settings() {
    VerifierSettings s;
    s.issuer = DevIssuer::kDevIssuer;
    s.audience = DevIssuer::kDevAudience;
    return s;
  }
  int64_t Now() const {
    return std::chrono::duration_cast<seconds>(clock_.Now().time_since_epoch()).count();
  }
  json::object Header() const {
    return json::object{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", issuer_->kid()}};
  }
  json::object Claims() const {
    return json::object{{"iss", DevIssuer::kDevIssuer},
                        {"aud", DevIssuer::kDevAudience},
                        {"sub", "user-1"},
                        {"tier", "PRO"},
                        {"iat", Now()},
                        {"nbf", Now()},
                        {"exp", Now() + 3600}};
  }
  // A correctly signed token with the given header and claims.
  std::string Sign(const json::object& header, const json::object& claims,
                   const DevIssuer* signer = nullptr) const {
    return (signer ? signer : issuer_)->SignRs256(json::serialize(header), json::serialize(claims));
  }
  std::string WithClaims(const json::object& claims) const { return Sign(Header(), claims); }
  std::string Valid() const { return WithClaims(Claims()); }

  // Expects rejection with kUnauthenticated and the given reason.
  void ExpectRejected(const std::string& token, const std::string& reason) {
    auto r = verifier_.Verify(token);
    ASSERT_FALSE(r.ok()) << "accepted; expected: " << reason;
    EXPECT_EQ(r.error().code, Errc::kUnauthenticated) << r.error().message;
    EXPECT_EQ(r.error().message, reason);
  }

  static inline DevIssuer* issuer_ = nullptr;
  static inline DevIssuer* attacker_ = nullptr;
  ManualClock clock_;
  FakeJwksSource source_;
  JwksCache jwks_{source_, clock_};
  TokenVerifier verifier_{Settings(), jwks_, clock_};
};

// --- accepted --------------------------------------------------------------------------------

TEST_F(JwtTest, ValidTokenYieldsPrincipal) {
  auto r = verifier_.Verify(issuer_->Mint("user-42", "PRO", seconds{3600}, clock_.Now()));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->user.str(), "user-42");
  EXPECT_EQ(r->tier, "PRO");
  EXPECT_EQ(r->kid, issuer_->kid());
  EXPECT_EQ(r->exp, Now() + 3600);
}

TEST_F(JwtTest, TierIsFreeProOrEmpty) {
  auto free = verifier_.Verify(issuer_->Mint("u", "FREE", seconds{60}, clock_.Now()));
  ASSERT_TRUE(free.ok());
  EXPECT_EQ(free->tier, "FREE");
  json::object c = Claims();
  c.erase("tier");
  EXPECT_EQ(verifier_.Verify(WithClaims(c))->tier, "");
  c["tier"] = "GOLD";
  EXPECT_EQ(verifier_.Verify(WithClaims(c))->tier, "");
}

TEST_F(JwtTest, AudienceMayBeAnArray) {
  json::object c = Claims();
  c["aud"] = json::array{"other", DevIssuer::kDevAudience};
  EXPECT_TRUE(verifier_.Verify(WithClaims(c)).ok());
  c["aud"] = json::array{"other", "another"};
  ExpectRejected(WithClaims(c), "wrong audience");
}

TEST_F(JwtTest, OptionalClaimsMayBeAbsentAndTypOptional) {
  json::object c = Claims();
  c.erase("iat");
  c.erase("nbf");
  json::object h = Header();
  h.erase("typ");
  EXPECT_TRUE(verifier_.Verify(Sign(h, c)).ok());
}

// --- time claims and leeway ------------------------------------------------------------------

TEST_F(JwtTest, ExpiryHonoursLeeway) {
  json::object c = Claims();
  c["exp"] = Now() - 29;  // expired, but within the 30 s leeway
  EXPECT_TRUE(verifier_.Verify(WithClaims(c)).ok());
  c["exp"] = Now() - 30;
  ExpectRejected(WithClaims(c), "token expired");
  c.erase("exp");
  ExpectRejected(WithClaims(c), "missing exp");
  c["exp"] = "tomorrow";
  ExpectRejected(WithClaims(c), "bad exp");
}

TEST_F(JwtTest, MintedTokenExpiresAfterTtlPlusLeeway) {
  const std::string token = issuer_->Mint("u", "FREE", seconds{60}, clock_.Now());
  clock_.Advance(seconds{60 + 29});
  EXPECT_TRUE(verifier_.Verify(token).ok());
  clock_.Advance(seconds{1});
  ExpectRejected(token, "token expired");
}

TEST_F(JwtTest, NotBeforeHonoursLeeway) {
  json::object c = Claims();
  c["nbf"] = Now() + 30;
  EXPECT_TRUE(verifier_.Verify(WithClaims(c)).ok());
  c["nbf"] = Now() + 31;
  ExpectRejected(WithClaims(c), "token not yet valid");
}

TEST_F(JwtTest, IssuedInTheFutureIsRejected) {
  json::object c = Claims();
  c["iat"] = Now() + 31;
  ExpectRejected(WithClaims(c), "token issued in the future");
}

// --- iss / aud / sub -------------------------------------------------------------------------

TEST_F(JwtTest, WrongIssuerOrAudienceIsRejected) {
  json::object c = Claims();
  c["iss"] = "https://evil.example";
  ExpectRejected(WithClaims(c), "wrong issuer");
  c = Claims();
  c.erase("iss");
  ExpectRejected(WithClaims(c), "wrong issuer");
  c = Claims();
  c["aud"] = "another-service";
  ExpectRejected(WithClaims(c), "wrong audience");
  c.erase("aud");
  ExpectRejected(WithClaims(c), "wrong audience");
}

TEST_F(JwtTest, SubjectIsRequiredAndRestricted) {
  json::object c = Claims();
  c.erase("sub");
  ExpectRejected(WithClaims(c), "missing sub");
  c["sub"] = "";
  ExpectRejected(WithClaims(c), "missing sub");
  c["sub"] = 42;
  ExpectRejected(WithClaims(c), "missing sub");
  c["sub"] = "user 1";
  ExpectRejected(WithClaims(c), "bad sub");
  c["sub"] = "user/../1";
  ExpectRejected(WithClaims(c), "bad sub");
  c["sub"] = std::string(129, 'a');
  ExpectRejected(WithClaims(c), "bad sub");
  c["sub"] = std::string(128, 'a');
  EXPECT_TRUE(verifier_.Verify(WithClaims(c)).ok());
  c["sub"] = "firebase:Ab9_x.y@z-1";
  EXPECT_TRUE(verifier_.Verify(WithClaims(c)).ok());
}

// --- signature and header --------------------------------------------------------------------

TEST_F(JwtTest, FlippedSignatureByteIsRejected) {
  std::string token = Valid();
  char& c = token[token.rfind('.') + 10];
  c = c == 'A' ? 'B' : 'A';
  ExpectRejected(token, "bad signature");
}

TEST_F(JwtTest, TamperedPayloadIsRejected) {
  const std::string genuine = Valid();
  json::object c = Claims();
  c["sub"] = "admin";
  const std::string forged = WithClaims(c);
  // Genuine header and signature around a different payload.
  const std::string spliced =
      genuine.substr(0, genuine.find('.')) +
      forged.substr(forged.find('.'), forged.rfind('.') - forged.find('.')) +
      genuine.substr(genuine.rfind('.'));
  ExpectRejected(spliced, "bad signature");
}

TEST_F(JwtTest, SignedByAnotherKeyUnderOurKidIsRejected) {
  ExpectRejected(Sign(Header(), Claims(), attacker_), "bad signature");
}

TEST_F(JwtTest, AlgNoneIsRejected) {
  json::object h = Header();
  h["alg"] = "none";
  const std::string unsigned_token =
      Base64UrlEncode(json::serialize(h)) + "." + Base64UrlEncode(json::serialize(Claims())) + ".";
  ExpectRejected(unsigned_token, "malformed token");
  ExpectRejected(unsigned_token + "AAAA", "unsupported alg");
  h["alg"] = "None";
  ExpectRejected(Sign(h, Claims()), "unsupported alg");
  h.erase("alg");
  ExpectRejected(Sign(h, Claims()), "missing alg");
}

TEST_F(JwtTest, Hs256WithPublicKeyAsSecretIsRejected) {
  // Classic key confusion: HMAC over the token with the RSA public key PEM as the secret.
  json::object h = Header();
  h["alg"] = "HS256";
  const std::string input =
      Base64UrlEncode(json::serialize(h)) + "." + Base64UrlEncode(json::serialize(Claims()));
  const std::string& pem = issuer_->public_key_pem();
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  ASSERT_NE(HMAC(EVP_sha256(), pem.data(), static_cast<int>(pem.size()),
                 reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len),
            nullptr);
  const std::string token =
      input + "." + Base64UrlEncode(std::string_view(reinterpret_cast<char*>(mac), mac_len));
  ExpectRejected(token, "unsupported alg");
  EXPECT_EQ(source_.fetches(), 0) << "rejected before any key lookup";
}

TEST_F(JwtTest, AlgorithmsOutsideRsaAreRefusedInConfiguration) {
  for (const char* alg : {"none", "HS256", "HS384", "HS512", "ES256", ""}) {
    VerifierSettings s = Settings();
    s.algorithms = {"RS256", alg};
    EXPECT_THROW(TokenVerifier(s, jwks_, clock_), std::invalid_argument) << alg;
  }
  VerifierSettings s = Settings();
  s.issuer.clear();
  EXPECT_THROW(TokenVerifier(s, jwks_, clock_), std::invalid_argument);
}

TEST_F(JwtTest, AlgNotInAllowListIsRejectedEvenIfSupported) {
  // RS512 is supported but not configured; a valid RS512 signature must still be refused.
  json::object h = Header();
  h["alg"] = "RS512";
  ExpectRejected(Sign(h, Claims()), "unsupported alg");
}

TEST_F(JwtTest, HeaderRequirements) {
  json::object h = Header();
  h.erase("kid");
  ExpectRejected(Sign(h, Claims()), "missing kid");
  h = Header();
  h["kid"] = "";
  ExpectRejected(Sign(h, Claims()), "missing kid");
  h = Header();
  h["typ"] = "at+jwt";
  ExpectRejected(Sign(h, Claims()), "unsupported typ");
  h = Header();
  h["crit"] = json::array{"exp"};
  ExpectRejected(Sign(h, Claims()), "unsupported crit header");
}

TEST_F(JwtTest, UnknownKidIsRejected) {
  json::object h = Header();
  h["kid"] = "no-such-key";
  ExpectRejected(Sign(h, Claims()), "unknown kid");
  json::object h2 = Header();
  h2["kid"] = attacker_->kid();
  ExpectRejected(Sign(h2, Claims(), attacker_), "unknown kid");
}

TEST_F(JwtTest, MalformedEncodingIsRejected) {
  const std::string token = Valid();
  const size_t d1 = token.find('.');
  ExpectRejected("*" + token.substr(1), "malformed header");
  // The payload is covered by the signature, so damage there is caught by it.
  ExpectRejected(token.substr(0, d1 + 1) + "+" + token.substr(d1 + 2), "bad signature");
  std::string bad_sig = token;
  bad_sig.back() = '=';
  ExpectRejected(bad_sig, "malformed signature");
  ExpectRejected(Base64UrlEncode("not json") + token.substr(d1), "malformed header");
  ExpectRejected(Base64UrlEncode("[1,2]") + token.substr(d1), "malformed header");
}

TEST_F(JwtTest, WrongNumberOfPartsIsRejected) {
  const std::string token = Valid();
  ExpectRejected(token.substr(0, token.rfind('.')), "malformed token");  // 2 parts
  ExpectRejected(token + ".AAAA", "malformed token");                    // 4 parts
  ExpectRejected("abc", "malformed token");
  ExpectRejected("..", "malformed token");
  ExpectRejected("", "missing token");
}

TEST_F(JwtTest, OversizedTokenIsRejectedEarly) {
  json::object c = Claims();
  c["pad"] = std::string(9000, 'x');
  const std::string big = WithClaims(c);
  ASSERT_GT(big.size(), TokenVerifier::kMaxTokenBytes);
  ExpectRejected(big, "token too large");
  EXPECT_EQ(source_.fetches(), 0);
  EXPECT_EQ(verifier_.cache_misses(), 0u);
}

TEST_F(JwtTest, KeysUnavailableIsNotAnAuthenticationFailure) {
  FakeJwksSource down;
  down.Fail();
  JwksCache jwks(down, clock_);
  TokenVerifier verifier(Settings(), jwks, clock_);
  auto r = verifier.Verify(Valid());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
}

// --- decision cache --------------------------------------------------------------------------

TEST_F(JwtTest, SecondVerifyIsACacheHit) {
  const std::string token = Valid();
  ASSERT_TRUE(verifier_.Verify(token).ok());
  EXPECT_EQ(verifier_.cache_misses(), 1u);
  EXPECT_EQ(verifier_.cache_hits(), 0u);
  auto again = verifier_.Verify(token);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->user.str(), "user-1");
  EXPECT_EQ(again->kid, issuer_->kid());
  EXPECT_EQ(verifier_.cache_hits(), 1u);
  EXPECT_EQ(verifier_.cache_misses(), 1u);
  EXPECT_EQ(verifier_.cache_size(), 1u);
}

TEST_F(JwtTest, FailuresAreNotCached) {
  json::object c = Claims();
  c["aud"] = "other";
  const std::string token = WithClaims(c);
  EXPECT_FALSE(verifier_.Verify(token).ok());
  EXPECT_FALSE(verifier_.Verify(token).ok());
  EXPECT_EQ(verifier_.cache_hits(), 0u);
  EXPECT_EQ(verifier_.cache_misses(), 2u);
  EXPECT_EQ(verifier_.cache_size(), 0u);
}

TEST_F(JwtTest, CachedDecisionLastsAtMostDecisionTtl) {
  const std::string token = Valid();  // exp in 1 h
  ASSERT_TRUE(verifier_.Verify(token).ok());
  clock_.Advance(seconds{299});
  ASSERT_TRUE(verifier_.Verify(token).ok());
  EXPECT_EQ(verifier_.cache_hits(), 1u);
  clock_.Advance(seconds{1});
  ASSERT_TRUE(verifier_.Verify(token).ok());
  EXPECT_EQ(verifier_.cache_hits(), 1u);
  EXPECT_EQ(verifier_.cache_misses(), 2u);
}

TEST_F(JwtTest, CachedDecisionNeverOutlivesTokenExpiry) {
  const std::string token = issuer_->Mint("u", "PRO", seconds{60}, clock_.Now());
  ASSERT_TRUE(verifier_.Verify(token).ok());
  clock_.Advance(seconds{59});
  ASSERT_TRUE(verifier_.Verify(token).ok());
  EXPECT_EQ(verifier_.cache_hits(), 1u);
  clock_.Advance(seconds{1});  // at exp: re-verified (still inside the leeway), not a hit
  ASSERT_TRUE(verifier_.Verify(token).ok());
  EXPECT_EQ(verifier_.cache_hits(), 1u);
  clock_.Advance(seconds{30});
  ExpectRejected(token, "token expired");
}

TEST_F(JwtTest, ForgetKidEvictsDecisionsAndDropsTheKey) {
  const std::string token = Valid();
  ASSERT_TRUE(verifier_.Verify(token).ok());
  ASSERT_EQ(verifier_.cache_size(), 1u);
  EXPECT_EQ(source_.fetches(), 1);

  // The IdP no longer lists the key: after ForgetKid the cached decision must not be served.
  source_.Set(attacker_->jwks_json());
  verifier_.ForgetKid(issuer_->kid());
  EXPECT_EQ(verifier_.cache_size(), 0u);
  ExpectRejected(token, "unknown kid");
  EXPECT_EQ(source_.fetches(), 2);
  EXPECT_EQ(verifier_.cache_hits(), 0u);
}

TEST_F(JwtTest, ForgetKidWhileKeyStillPublishedReverifies) {
  const std::string token = Valid();
  ASSERT_TRUE(verifier_.Verify(token).ok());
  verifier_.ForgetKid(issuer_->kid());
  ASSERT_TRUE(verifier_.Verify(token).ok());
  EXPECT_EQ(verifier_.cache_hits(), 0u);
  EXPECT_EQ(verifier_.cache_misses(), 2u);
  EXPECT_EQ(source_.fetches(), 2);
}

TEST_F(JwtTest, DecisionCacheIsBounded) {
  VerifierSettings s = Settings();
  s.decision_cache_max_entries = 64;  // one entry per shard
  TokenVerifier small(s, jwks_, clock_);
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(
        small.Verify(issuer_->Mint("u" + std::to_string(i), "", seconds{600}, clock_.Now())).ok());
  }
  EXPECT_LE(small.cache_size(), 64u);
  EXPECT_GT(small.cache_size(), 0u);
}

TEST_F(JwtTest, ConcurrentVerifyIsConsistent) {
  std::vector<std::string> tokens;
  for (int i = 0; i < 8; ++i)
    tokens.push_back(issuer_->Mint("u" + std::to_string(i), "", seconds{600}, clock_.Now()));
  std::atomic<int> ok{0};
  std::atomic<int> unknown_kid{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto r = verifier_.Verify(tokens[(t + i) % tokens.size()]);
        if (r.ok() && r->user.str() == "u" + std::to_string((t + i) % tokens.size())) ++ok;
        // A verification racing the drop may be refused (the key is distrusted from that moment
        // until a fetch that started after the drop lists it again); it must never succeed wrongly.
        else if (!r.ok() && r.error().message.find("kid") != std::string::npos)
          ++unknown_kid;
        else
          ++wrong;
        if (i == 100 && t == 0) verifier_.ForgetKid(issuer_->kid());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(ok.load() + unknown_kid.load(), 4 * 200);
  EXPECT_EQ(verifier_.cache_hits() + verifier_.cache_misses(), 4u * 200u);
  clock_.Advance(seconds{31});  // past the unknown-kid refetch throttle
  EXPECT_TRUE(verifier_.Verify(tokens[0]).ok());
}

}  // namespace
}  // namespace syncwell::auth
