// store::JobMessage / QueuedJobFor: the one place every producer turns a job into queue work.
#include <gtest/gtest.h>

#include "store/job_message.hpp"

namespace syncwell::store {
namespace {

TEST(JobMessageTest, GroupDedupPriorityAndAnEscapedIdsOnlyBody) {
  SyncConfig cfg;
  cfg.user = UserId("u\"1\\x");
  cfg.source = ConnectionId("conn_a");
  cfg.destination = ConnectionId("conn_b");
  cfg.data_type = "weight";
  const TimePoint now{std::chrono::milliseconds(1'700'000'000'000)};
  const Job job = QueuedJobFor(cfg, JobId("job_1"), "scheduled", "low", now);
  EXPECT_EQ(job.user, cfg.user);
  EXPECT_EQ(job.source, cfg.source);
  EXPECT_EQ(job.destination, cfg.destination);
  EXPECT_EQ(job.data_type, "weight");
  EXPECT_EQ(job.mode, "scheduled");
  EXPECT_EQ(job.status, JobStatus::kQueued);
  EXPECT_EQ(job.created_at, now);
  EXPECT_EQ(job.updated_at, now);

  const auto msg = JobMessage(job, "dedup-1");
  EXPECT_EQ(msg.dedup_id, "dedup-1");
  EXPECT_EQ(msg.group_id, "u\"1\\x");  // one job of a user at a time
  EXPECT_EQ(msg.priority, Priority::kLow);
  EXPECT_EQ(msg.body, R"({"jobId":"job_1","userId":"u\"1\\x"})");

  Job odd = job;
  odd.priority = "urgent";  // unreadable: medium
  EXPECT_EQ(JobMessage(odd, "d").priority, Priority::kMedium);
}

}  // namespace
}  // namespace syncwell::store
