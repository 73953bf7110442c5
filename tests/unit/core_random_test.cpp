#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <set>
#include <string>

#include "core/random.hpp"

namespace syncwell {
namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

const std::regex kUuid(
    "^[0-9a-f]{8}-[0-9a-f]{4}-([0-9a-f])[0-9a-f]{3}-([0-9a-f])[0-9a-f]{3}-[0-9a-f]{12}$");

TEST(Uuid, V4HasVersionAndVariant) {
  std::smatch m;
  const std::string id = NewUuidV4();
  ASSERT_TRUE(std::regex_match(id, m, kUuid)) << id;
  EXPECT_EQ(m[1], "4");
  EXPECT_NE(std::string("89ab").find(m[2].str()), std::string::npos) << id;
}

TEST(Uuid, V7CarriesTheMillisecondsAndSortsByTime) {
  const system_clock::time_point t{milliseconds{0x0123456789ab}};
  const std::string id = NewUuidV7(t);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(id, m, kUuid)) << id;
  EXPECT_EQ(m[1], "7");
  EXPECT_NE(std::string("89ab").find(m[2].str()), std::string::npos) << id;
  EXPECT_EQ(id.substr(0, 13), "01234567-89ab") << id;

  // Later milliseconds sort after earlier ones whatever the random bits; same millisecond: unique.
  std::string prev;
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string cur = NewUuidV7(t + milliseconds{i});
    if (!prev.empty()) EXPECT_LT(prev, cur);
    prev = cur;
    EXPECT_TRUE(seen.insert(NewUuidV7(t)).second);
  }
  EXPECT_EQ(NewUuidV7(system_clock::time_point{milliseconds{-5}}).substr(0, 13), "00000000-0000");
}

}  // namespace
}  // namespace syncwell
