#include "store/job_message.hpp"

#include "core/log.hpp"

namespace syncwell::store {

queue::OutgoingMessage JobMessage(const Job& job, std::string dedup_id) {
  queue::OutgoingMessage msg;
  msg.dedup_id = std::move(dedup_id);
  msg.group_id = job.user.str();
  if (!queue::ParsePriority(job.priority, &msg.priority)) msg.priority = Priority::kMedium;
  msg.body = R"({"jobId":")";
  log::AppendJsonEscaped(msg.body, job.id.str());
  msg.body += R"(","userId":")";
  log::AppendJsonEscaped(msg.body, job.user.str());
  msg.body += R"("})";
  return msg;
}

Job QueuedJobFor(const SyncConfig& cfg, JobId id, std::string mode, std::string priority,
                 TimePoint now) {
  Job job;
  job.id = std::move(id);
  job.user = cfg.user;
  job.source = cfg.source;
  job.destination = cfg.destination;
  job.data_type = cfg.data_type;
  job.mode = std::move(mode);
  job.priority = std::move(priority);
  job.status = JobStatus::kQueued;
  job.created_at = job.updated_at = now;
  return job;
}

}  // namespace syncwell::store
