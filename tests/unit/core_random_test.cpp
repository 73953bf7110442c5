#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

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

// Small requests come from a per-thread block (random.cpp): ids never repeat across calls,
// threads, or block refills, and sizes around the block's edges come out whole.
TEST(RandomBytes, NeverRepeatsAcrossCallsThreadsAndRefills) {
  std::set<std::string> seen;
  std::mutex mu;
  auto draw = [&] {
    std::vector<std::string> mine;
    for (int i = 0; i < 3000; ++i) mine.push_back(RandomBytes(16));  // ~12 refills
    std::lock_guard l(mu);
    for (auto& b : mine) EXPECT_TRUE(seen.insert(std::move(b)).second);
  };
  std::thread a(draw), b(draw);
  draw();
  a.join();
  b.join();
  EXPECT_EQ(seen.size(), 9000u);
  for (size_t n : {0, 1, 511, 512, 513, 4095, 4096, 10000}) EXPECT_EQ(RandomBytes(n).size(), n);
}

// A forked child must not hand out the bytes its parent hands out next (the block is copied
// into the child with the rest of memory).
TEST(RandomBytes, AForkedChildDrawsOtherBytesThanItsParent) {
  (void)RandomBytes(16);  // the block is filled now
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string mine = RandomBytes(16);
    (void)!write(fds[1], mine.data(), mine.size());
    _exit(0);
  }
  close(fds[1]);
  std::string child(16, '\0');
  EXPECT_EQ(read(fds[0], child.data(), child.size()), 16);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_NE(RandomBytes(16), child);
}

}  // namespace
}  // namespace syncwell
