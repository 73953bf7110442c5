// SQLite only: the schedule migration on a database that has users from before it. The rows get
// shard -1 and an unplaced slot; AssignScheduleShards gives them their murmur3 shard in bounded
// batches, after which ListDueUsers finds each on its shard (unplaced: the scheduler spreads
// them). The shared contract is in tests/conformance/store_suite.hpp.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>
#include <vector>

#include "store/sqlite/sqlite_store.hpp"
#include "support/temp_dir.hpp"

namespace syncwell::store {
namespace {

class SqliteScheduleMigration : public ::testing::Test {
 protected:
  SqliteScheduleMigration() : dir_(test_support::MakeTempDir("syncwell-sched")) {}
  ~SqliteScheduleMigration() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void ExecRaw(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2((dir_ + "/syncwell.db").c_str(), &db, SQLITE_OPEN_READWRITE, nullptr),
              SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  std::string dir_;
  ManualClock clock_;
};

TEST_F(SqliteScheduleMigration, ExistingUsersGetTheirShardAfterTheMigration) {
  std::vector<UserId> users;
  users.reserve(7);
  for (int i = 0; i < 7; ++i) users.emplace_back("old-user-" + std::to_string(i));
  {
    SqliteStore store(SqliteSettings{.data_dir = dir_}, clock_);
    ASSERT_TRUE(store.Start().ok());
    for (const auto& u : users) ASSERT_TRUE(store.EnsureUser(u, Tier::kPro).ok());
    store.Stop();
  }
  ASSERT_TRUE(std::filesystem::exists(dir_ + "/syncwell.db"));
  // Back to the schema before the schedule migration (version 4, so without the later ones
  // either), users kept.
  ExecRaw(
      "CREATE INDEX queue_messages_by_group ON queue_messages(group_id, id); "
      "DROP INDEX users_due; ALTER TABLE users DROP COLUMN shard; "
      "ALTER TABLE users DROP COLUMN next_sync_at; ALTER TABLE users DROP COLUMN recent_slots; "
      "DELETE FROM schema_migrations WHERE version >= 4;");

  SqliteStore store(SqliteSettings{.data_dir = dir_}, clock_);
  ASSERT_TRUE(store.Start().ok());
  const TimePoint now = clock_.Now();
  for (const auto& u : users) {
    auto due = store.ListDueUsers(ScheduleShardOf(u), now, 100);
    ASSERT_TRUE(due.ok()) << due.error().message;
    EXPECT_TRUE(due->empty());  // shard -1 until assigned
  }
  auto first = store.AssignScheduleShards(4);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(*first, 4);
  EXPECT_EQ(*store.AssignScheduleShards(4), 3);
  EXPECT_EQ(*store.AssignScheduleShards(4), 0);
  for (const auto& u : users) {
    auto due = store.ListDueUsers(ScheduleShardOf(u), now, 100);
    ASSERT_TRUE(due.ok());
    bool found = false;
    for (const auto& e : *due) {
      if (e.user != u) continue;
      found = true;
      EXPECT_EQ(e.next_sync_at, TimePoint{});  // unplaced: the scheduler spreads it
      EXPECT_EQ(e.tier, Tier::kPro);
    }
    EXPECT_TRUE(found) << u.str();
  }
  store.Stop();
}

}  // namespace
}  // namespace syncwell::store
