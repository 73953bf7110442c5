#pragma once
// How a job becomes queue work, in one place for every producer (the API, webhooks, the
// scheduler, the sync engine's continuations): the QUEUED job row of a sync config and the queue
// message that goes with it in the same Store::CreateJob transaction.
#include <string>

#include "queue/job_queue.hpp"
#include "store/model.hpp"

namespace syncwell::store {

// The message of `job`: group = its user (one job of a user at a time, SPEC S3), priority from
// job.priority (medium when unreadable), body {"jobId","userId"} — ids only, never health data.
queue::OutgoingMessage JobMessage(const Job& job, std::string dedup_id);

// A QUEUED job that moves `cfg`'s data type from its source to its destination.
Job QueuedJobFor(const SyncConfig& cfg, JobId id, std::string mode, std::string priority,
                 TimePoint now);

}  // namespace syncwell::store
