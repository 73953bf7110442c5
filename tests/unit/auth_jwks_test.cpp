// JWKS parsing and JwksCache refresh rules (SPEC S2: keys cached 1 h, admin drop of a key,
// no refetch storms from forged kids). No network: a FakeJwksSource serves the documents.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "auth/base64url.hpp"
#include "auth/dev_issuer.hpp"
#include "auth/jwks.hpp"
#include "core/clock.hpp"
#include "fakes/fake_jwks_source.hpp"
#include "support/temp_dir.hpp"

namespace syncwell::auth {
namespace {

using std::chrono::seconds;

std::string MakeTempDir() { return test_support::MakeTempDir("jwks"); }

using fakes::FakeJwksSource;

// Extracts the single JWK object text from a DevIssuer JWKS ({"keys":[<jwk>]}).
std::string JwkOf(const DevIssuer& issuer) {
  const std::string& doc = issuer.jwks_json();
  const size_t open = doc.find('[');
  const size_t close = doc.rfind(']');
  return doc.substr(open + 1, close - open - 1);
}

std::string Jwks(std::initializer_list<std::string> jwks) {
  std::string out = R"({"keys":[)";
  bool first = true;
  for (const std::string& k : jwks) {
    if (!first) out += ",";
    out += k;
    first = false;
  }
  return out + "]}";
}

class JwksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    key_a_ = new DevIssuer(std::move(DevIssuer::LoadOrCreate(MakeTempDir())).value());
    key_b_ = new DevIssuer(std::move(DevIssuer::LoadOrCreate(MakeTempDir())).value());
  }
  static void TearDownTestSuite() {
    delete key_a_;
    delete key_b_;
  }
  static const DevIssuer& A() { return *key_a_; }
  static const DevIssuer& B() { return *key_b_; }

  ManualClock clock_;
  FakeJwksSource source_;

 private:
  static inline DevIssuer* key_a_ = nullptr;
  static inline DevIssuer* key_b_ = nullptr;
};

// --- base64url -------------------------------------------------------------------------------

TEST(Base64UrlTest, RoundTripsAllLengthsAndRejectsBadInput) {
  std::string raw;
  for (int i = 0; i < 64; ++i) {
    auto decoded = Base64UrlDecode(Base64UrlEncode(raw));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, raw);
    raw.push_back(static_cast<char>(i * 37 + 250));
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_EQ(*Base64UrlDecode("-_8"), "\xfb\xff");
  EXPECT_FALSE(Base64UrlDecode("+/8").ok());    // standard alphabet
  EXPECT_FALSE(Base64UrlDecode("QQ==").ok());   // padding
  EXPECT_FALSE(Base64UrlDecode("QQQQQ").ok());  // impossible length
  EXPECT_FALSE(Base64UrlDecode("QR").ok());     // non-zero trailing bits
  EXPECT_FALSE(Base64UrlDecode("QQ\n").ok());
  EXPECT_FALSE(Base64UrlDecode(std::string_view("Q\0", 2)).ok());
  EXPECT_EQ(*Base64UrlDecode("QQ"), "A");
}

// --- ParseJwks -------------------------------------------------------------------------------

TEST_F(JwksTest, ParsesRsaSigningKeysAndSkipsOthers) {
  const std::string ec = R"({"kty":"EC","kid":"ec1","crv":"P-256","x":"AA","y":"AA"})";
  std::string enc = JwkOf(B());
  enc.replace(enc.find(R"("use":"sig")"), 11, R"("use":"enc")");
  std::string no_kid = JwkOf(B());
  no_kid.replace(no_kid.find(R"("kid")"), 5, R"("xid")");
  auto keys = ParseJwks(Jwks({ec, JwkOf(A()), enc, no_kid}));
  ASSERT_TRUE(keys.ok()) << keys.error().message;
  ASSERT_EQ(keys->size(), 1u);
  const auto& key = keys->at(A().kid());
  EXPECT_EQ(key->kid(), A().kid());
  EXPECT_EQ(key->bits(), 2048);
  EXPECT_EQ(key->alg(), "RS256");
}

TEST_F(JwksTest, RejectsDocumentsWithoutUsableKeys) {
  EXPECT_FALSE(ParseJwks("not json").ok());
  EXPECT_FALSE(ParseJwks("[]").ok());
  EXPECT_FALSE(ParseJwks(R"({"keys":{}})").ok());
  EXPECT_FALSE(ParseJwks(R"({"keys":[]})").ok());
  EXPECT_FALSE(ParseJwks(R"({"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB"}]})").ok())
      << "a 24-bit modulus must not be accepted";
  EXPECT_FALSE(ParseJwks(R"({"keys":[{"kty":"RSA","kid":"x","n":"*","e":"AQAB"}]})").ok());
  std::string e_one = JwkOf(A());
  e_one.replace(e_one.find(R"("e":"AQAB")"), 10, R"("e":"AQ")");
  EXPECT_FALSE(ParseJwks(Jwks({e_one})).ok()) << "e = 1 makes every signature verify";
}

TEST_F(JwksTest, DevIssuerWritesItsJwksFile) {
  FileJwksSource file(A().jwks_path());
  auto body = file.Fetch();
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, A().jwks_json());
  EXPECT_FALSE(FileJwksSource("/nonexistent/jwks.json").Fetch().ok());
}

TEST(DevIssuerTest, KeyIsPrivateAndStableAcrossLoads) {
  const std::string dir = MakeTempDir() + "/nested/data";
  auto first = DevIssuer::LoadOrCreate(dir);
  ASSERT_TRUE(first.ok()) << first.error().message;
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/" + DevIssuer::kKeyFileName).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto second = DevIssuer::LoadOrCreate(dir);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->kid(), first->kid());
  EXPECT_EQ(second->jwks_json(), first->jwks_json());
  EXPECT_EQ(first->kid().size(), 16u);  // base64url of 12 bytes
  auto keys = ParseJwks(first->jwks_json());
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->contains(first->kid()));
}

TEST(HttpJwksSourceTest, RejectsUnsupportedUrlsWithoutConnecting) {
  for (const char* url : {"ftp://idp.example/jwks", "idp.example/jwks", "https://user@idp.example/",
                          "https://:443/", "http://idp.example:8x/"}) {
    auto r = HttpJwksSource(url).Fetch();
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument) << url;
  }
}

// --- JwksCache -------------------------------------------------------------------------------

TEST_F(JwksTest, ServesFromMemoryUntilTtlThenRefetches) {
  source_.Set(Jwks({JwkOf(A())}));
  JwksCache cache(source_, clock_, seconds{3600});
  ASSERT_TRUE(cache.Get(A().kid()).ok());
  ASSERT_TRUE(cache.Get(A().kid()).ok());
  EXPECT_EQ(source_.fetches(), 1);

  clock_.Advance(seconds{3599});
  ASSERT_TRUE(cache.Get(A().kid()).ok());
  EXPECT_EQ(source_.fetches(), 1);

  clock_.Advance(seconds{1});
  ASSERT_TRUE(cache.Get(A().kid()).ok());
  EXPECT_EQ(source_.fetches(), 2);
  EXPECT_EQ(cache.fetch_count(), 2u);
}

TEST_F(JwksTest, TtlRefreshReplacesTheKeySet) {
  source_.Set(Jwks({JwkOf(A())}));
  JwksCache cache(source_, clock_, seconds{60});
  ASSERT_TRUE(cache.Get(A().kid()).ok());
  source_.Set(Jwks({JwkOf(B())}));  // the IdP retired key A
  clock_.Advance(seconds{60});
  auto r = cache.Get(A().kid());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnauthenticated);
  EXPECT_TRUE(cache.Get(B().kid()).ok());
  EXPECT_EQ(source_.fetches(), 2);
}

TEST_F(JwksTest, KeepsLastGoodKeysWhenRefreshFailsAndThrottlesRetries) {
  source_.Set(Jwks({JwkOf(A())}));
  JwksCache cache(source_, clock_, seconds{3600});
  ASSERT_TRUE(cache.Get(A().kid()).ok());
  source_.Fail();
  clock_.Advance(seconds{3600});
  EXPECT_TRUE(cache.Get(A().kid()).ok());
  EXPECT_EQ(source_.fetches(), 2);
  EXPECT_EQ(cache.fetch_failures(), 1u);
  EXPECT_TRUE(cache.Get(A().kid()).ok());
  EXPECT_EQ(source_.fetches(), 2) << "retry after a failure is throttled";
  clock_.Advance(JwksCache::kUnknownKidRefetchInterval);
  EXPECT_TRUE(cache.Get(A().kid()).ok());
  EXPECT_EQ(source_.fetches(), 3);
}

TEST_F(JwksTest, UnavailableWhenNoKeysWereEverFetched) {
  source_.Fail();
  JwksCache cache(source_, clock_);
  auto r = cache.Get(A().kid());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  EXPECT_FALSE(cache.Refresh().ok());
}

TEST_F(JwksTest, UnknownKidRefetchIsThrottled) {
  source_.Set(Jwks({JwkOf(A())}));
  JwksCache cache(source_, clock_);
  ASSERT_TRUE(cache.Get(A().kid()).ok());
  EXPECT_EQ(source_.fetches(), 1);

  // Forged kids: no refetch within the interval, however many arrive.
  for (int i = 0; i < 100; ++i) {
    auto r = cache.Get("forged-" + std::to_string(i));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::kUnauthenticated);
  }
  EXPECT_EQ(source_.fetches(), 1);

  // Key rotation at the IdP: the new kid is picked up once the interval has passed.
  source_.Set(Jwks({JwkOf(A()), JwkOf(B())}));
  clock_.Advance(JwksCache::kUnknownKidRefetchInterval - seconds{1});
  EXPECT_FALSE(cache.Get(B().kid()).ok());
  EXPECT_EQ(source_.fetches(), 1);
  clock_.Advance(seconds{1});
  EXPECT_TRUE(cache.Get(B().kid()).ok());
  EXPECT_EQ(source_.fetches(), 2);
  EXPECT_FALSE(cache.Get("forged-x").ok());
  EXPECT_EQ(source_.fetches(), 2);
}

TEST_F(JwksTest, DropForcesRefetchAndKeyComesBackOnlyIfStillListed) {
  source_.Set(Jwks({JwkOf(A()), JwkOf(B())}));
  JwksCache cache(source_, clock_);
  ASSERT_TRUE(cache.Get(A().kid()).ok());
  ASSERT_EQ(source_.fetches(), 1);

  // Still listed by the IdP: the forced refetch (despite the unknown-kid throttle) restores it.
  cache.Drop(A().kid());
  EXPECT_TRUE(cache.Get(A().kid()).ok());
  EXPECT_EQ(source_.fetches(), 2);

  // Revoked at the IdP: dropped and refetched without it, so rejected...
  source_.Set(Jwks({JwkOf(B())}));
  cache.Drop(A().kid());
  EXPECT_FALSE(cache.Get(A().kid()).ok());
  EXPECT_EQ(source_.fetches(), 3);
  EXPECT_TRUE(cache.Get(B().kid()).ok());
  // ...and stays rejected; the forced refetch happens only once per drop.
  source_.Set(Jwks({JwkOf(A()), JwkOf(B())}));
  EXPECT_FALSE(cache.Get(A().kid()).ok());
  EXPECT_EQ(source_.fetches(), 3);
  // A later fetch that lists it again brings it back.
  clock_.Advance(JwksCache::kUnknownKidRefetchInterval);
  EXPECT_TRUE(cache.Get(A().kid()).ok());
  EXPECT_EQ(source_.fetches(), 4);
}

TEST_F(JwksTest, DropDuringAnInFlightFetchIsNotUndoneByIt) {
  source_.Set(Jwks({JwkOf(A())}));
  JwksCache cache(source_, clock_);
  // The drop lands while the first fetch is in flight; that fetch started before the drop, so
  // its (older) view of the key set must not reinstate the key.
  source_.OnFetch([&] { cache.Drop(A().kid()); });
  ASSERT_TRUE(cache.Refresh().ok());
  source_.OnFetch(nullptr);
  EXPECT_TRUE(cache.Get(A().kid()).ok()) << "the next Get refetches, after the drop";
  EXPECT_EQ(source_.fetches(), 2);
}

TEST_F(JwksTest, ConcurrentGetsShareOneFetch) {
  source_.Set(Jwks({JwkOf(A())}));
  JwksCache cache(source_, clock_);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (cache.Get(A().kid()).ok()) ++ok;
        (void)cache.Get("forged");
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 8 * 200);
  EXPECT_EQ(source_.fetches(), 1);
}

}  // namespace
}  // namespace syncwell::auth
