// SecretBox and Secret (SPEC S13): tokens at rest are sealed with AES-256-GCM under a key id,
// keys rotate, tampering is detected, and a Secret never prints or converts.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <type_traits>

#include "secrets/secret.hpp"
#include "secrets/secret_box.hpp"

namespace syncwell::secrets {
namespace {

std::string MakeTempDir() {
  std::string tmpl = ::testing::TempDir() + "secretbox-XXXXXX";
  char* dir = ::mkdtemp(tmpl.data());
  if (dir == nullptr) throw std::runtime_error("mkdtemp failed");
  return dir;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

SecretBox Box(std::vector<std::pair<std::string, std::string>> keys) {
  auto box = SecretBox::FromKeys(std::move(keys));
  if (!box.ok()) throw std::runtime_error(box.error().message);
  return std::move(box).value();
}

const std::string kKeyA(32, 'a');
const std::string kKeyB(32, 'b');

// Replaces one character of the base64url payload with a different valid one.
std::string FlipPayloadChar(std::string sealed, size_t from_end) {
  char& c = sealed[sealed.size() - from_end];
  c = c == 'A' ? 'B' : 'A';
  return sealed;
}

TEST(SecretTest, NeverPrintsOrConverts) {
  static_assert(!std::is_convertible_v<Secret, std::string>);
  static_assert(!std::is_convertible_v<Secret, std::string_view>);
  static_assert(!std::is_constructible_v<std::string, Secret>);
  static_assert(!std::is_convertible_v<Secret, bool>);
  static_assert(!std::is_convertible_v<std::string, Secret>);  // explicit construction only
  Secret s("refresh-token-123");
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "[redacted]");
  EXPECT_EQ(s.reveal(), "refresh-token-123");
}

TEST(SecretTest, MoveLeavesSourceEmptyAndCompareIsByValue) {
  Secret a("short");
  Secret b(std::move(a));
  EXPECT_EQ(b.reveal(), "short");
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): wiped on move on purpose
  EXPECT_TRUE(b == Secret("short"));
  EXPECT_FALSE(b == Secret("shorT"));
  Secret c;
  c = b;
  EXPECT_TRUE(c == b);
}

TEST(SecretBoxTest, RoundTrip) {
  SecretBox box = Box({{"k1", kKeyA}});
  auto sealed = box.Seal(Secret("ya29.provider-access-token"));
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->rfind("v1.k1.", 0), 0u) << *sealed;
  EXPECT_EQ(sealed->find("provider"), std::string::npos);
  auto opened = box.Open(*sealed);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_EQ(opened->reveal(), "ya29.provider-access-token");

  auto empty = box.Seal(Secret(""));
  ASSERT_TRUE(empty.ok());
  auto opened_empty = box.Open(*empty);
  ASSERT_TRUE(opened_empty.ok());
  EXPECT_TRUE(opened_empty->empty());
}

TEST(SecretBoxTest, FreshNonceEverySeal) {
  SecretBox box = Box({{"k1", kKeyA}});
  auto a = box.Seal(Secret("same"));
  auto b = box.Seal(Secret("same"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST(SecretBoxTest, TamperingIsDetected) {
  SecretBox box = Box({{"k1", kKeyA}, {"k2", kKeyB}});
  const std::string sealed = box.Seal(Secret("token")).value();
  ASSERT_TRUE(box.Open(sealed).ok());

  for (size_t from_end : {1u, 5u, 20u, 30u}) {  // tag, ciphertext and nonce bytes
    auto r = box.Open(FlipPayloadChar(sealed, from_end));
    ASSERT_FALSE(r.ok()) << from_end;
    EXPECT_EQ(r.error().code, Errc::kPermanent);
  }
  // The key id is authenticated: relabelling the ciphertext with another known key fails.
  std::string relabelled = sealed;
  relabelled.replace(0, 6, "v1.k1.");
  ASSERT_EQ(sealed.rfind("v1.k2.", 0), 0u);
  EXPECT_EQ(box.Open(relabelled).error().code, Errc::kPermanent);

  EXPECT_EQ(box.Open(sealed.substr(0, sealed.size() - 4)).error().code, Errc::kPermanent);
  EXPECT_EQ(box.Open("v2" + sealed.substr(2)).error().code, Errc::kPermanent);
  EXPECT_EQ(box.Open("v1.k2.").error().code, Errc::kPermanent);
  EXPECT_EQ(box.Open("v1.k2.!!!!").error().code, Errc::kPermanent);
  EXPECT_EQ(box.Open("garbage").error().code, Errc::kPermanent);
  EXPECT_EQ(box.Open("").error().code, Errc::kPermanent);
}

TEST(SecretBoxTest, UnknownKeyIdIsPermanent) {
  SecretBox old_box = Box({{"k1", kKeyA}});
  SecretBox other = Box({{"k9", kKeyB}});
  auto r = other.Open(old_box.Seal(Secret("t")).value());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kPermanent);
  // A different key under the same id fails authentication, also permanently.
  SecretBox same_id = Box({{"k1", kKeyB}});
  EXPECT_EQ(same_id.Open(old_box.Seal(Secret("t")).value()).error().code, Errc::kPermanent);
}

TEST(SecretBoxTest, RotationOldKeyStillOpensNewSealsUseNewId) {
  SecretBox before = Box({{"k1", kKeyA}});
  const std::string old_sealed = before.Seal(Secret("old-token")).value();

  SecretBox after = Box({{"k1", kKeyA}, {"k2", kKeyB}});
  EXPECT_EQ(after.active_key_id(), "k2");
  ASSERT_TRUE(after.Open(old_sealed).ok());
  EXPECT_EQ(after.Open(old_sealed)->reveal(), "old-token");
  const std::string new_sealed = after.Seal(Secret("new-token")).value();
  EXPECT_EQ(new_sealed.rfind("v1.k2.", 0), 0u);
  EXPECT_FALSE(before.Open(new_sealed).ok());

  SecretBox retired = Box({{"k2", kKeyB}});  // k1 removed after re-sealing
  EXPECT_FALSE(retired.Open(old_sealed).ok());
  EXPECT_TRUE(retired.Open(new_sealed).ok());
}

TEST(SecretBoxTest, FromKeysValidates) {
  EXPECT_FALSE(SecretBox::FromKeys({}).ok());
  EXPECT_FALSE(SecretBox::FromKeys({{"k1", std::string(31, 'x')}}).ok());
  EXPECT_FALSE(SecretBox::FromKeys({{"bad.id", kKeyA}}).ok());
  EXPECT_FALSE(SecretBox::FromKeys({{"bad:id", kKeyA}}).ok());
  EXPECT_FALSE(SecretBox::FromKeys({{"", kKeyA}}).ok());
  EXPECT_FALSE(SecretBox::FromKeys({{"k1", kKeyA}, {"k1", kKeyB}}).ok());
}

TEST(SecretBoxTest, LoadOrCreateMakesPrivateKeyFileAndReloadsIt) {
  const std::string path = MakeTempDir() + "/token.keys";
  auto first = SecretBox::LoadOrCreate(path);
  ASSERT_TRUE(first.ok()) << first.error().message;

  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string content = ReadFile(path);
  const std::string line = first->active_key_id() + ":";
  EXPECT_EQ(content.rfind(line, 0), 0u);
  EXPECT_EQ(content.size(), line.size() + 64 + 1);  // id:64 hex\n

  const std::string sealed = first->Seal(Secret("persisted")).value();
  auto second = SecretBox::LoadOrCreate(path);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->active_key_id(), first->active_key_id());
  EXPECT_EQ(second->Open(sealed)->reveal(), "persisted");
  EXPECT_EQ(ReadFile(path), content);  // not rewritten
}

TEST(SecretBoxTest, AppendNewKeyRotatesTheFile) {
  const std::string path = MakeTempDir() + "/token.keys";
  SecretBox v1 = std::move(SecretBox::LoadOrCreate(path)).value();
  const std::string sealed = v1.Seal(Secret("t1")).value();
  auto new_id = SecretBox::AppendNewKey(path);
  ASSERT_TRUE(new_id.ok());
  SecretBox v2 = std::move(SecretBox::LoadOrCreate(path)).value();
  EXPECT_EQ(v2.active_key_id(), *new_id);
  EXPECT_NE(v2.active_key_id(), v1.active_key_id());
  EXPECT_EQ(v2.key_ids().size(), 2u);
  EXPECT_EQ(v2.Open(sealed)->reveal(), "t1");
  EXPECT_EQ(v2.Seal(Secret("t2"))->rfind("v1." + *new_id + ".", 0), 0u);
}

TEST(SecretBoxTest, MalformedKeyFileIsRejected) {
  const std::string dir = MakeTempDir();
  for (const char* content : {"k1:abcd\n", "no-colon\n",
                              "k1:" /* 64 non-hex */
                              "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\n",
                              "# only a comment\n"}) {
    const std::string path = dir + "/bad.keys";
    std::ofstream(path, std::ios::trunc) << content;
    auto r = SecretBox::LoadOrCreate(path);
    EXPECT_FALSE(r.ok()) << content;
  }
  const std::string good = dir + "/good.keys";
  std::ofstream(good) << "# comment\n\nold:" << std::string(64, '1')
                      << "\nnew:" << std::string(64, 'f') << "\n";
  auto r = SecretBox::LoadOrCreate(good);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->active_key_id(), "new");
}

}  // namespace
}  // namespace syncwell::secrets
