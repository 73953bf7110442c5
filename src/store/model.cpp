#include "store/model.hpp"

#include <charconv>

#include "core/murmur3.hpp"

namespace syncwell::store {

const char* TierName(Tier t) { return t == Tier::kPro ? "PRO" : "FREE"; }

bool ParseTier(std::string_view s, Tier* out) {
  if (s == "FREE") {
    *out = Tier::kFree;
  } else if (s == "PRO") {
    *out = Tier::kPro;
  } else {
    return false;
  }
  return true;
}

const char* ConnectionStatusName(ConnectionStatus s) {
  switch (s) {
    case ConnectionStatus::kActive:
      return "active";
    case ConnectionStatus::kNeedsReauth:
      return "needs_reauth";
    case ConnectionStatus::kRevoked:
      return "revoked";
  }
  return "active";
}

bool ParseConnectionStatus(std::string_view s, ConnectionStatus* out) {
  if (s == "active") {
    *out = ConnectionStatus::kActive;
  } else if (s == "needs_reauth") {
    *out = ConnectionStatus::kNeedsReauth;
  } else if (s == "revoked") {
    *out = ConnectionStatus::kRevoked;
  } else {
    return false;
  }
  return true;
}

const char* JobStatusName(JobStatus s) {
  switch (s) {
    case JobStatus::kQueued:
      return "QUEUED";
    case JobStatus::kRunning:
      return "RUNNING";
    case JobStatus::kSucceeded:
      return "SUCCEEDED";
    case JobStatus::kFailed:
      return "FAILED";
  }
  return "QUEUED";
}

bool ParseJobStatus(std::string_view s, JobStatus* out) {
  if (s == "QUEUED") {
    *out = JobStatus::kQueued;
  } else if (s == "RUNNING") {
    *out = JobStatus::kRunning;
  } else if (s == "SUCCEEDED") {
    *out = JobStatus::kSucceeded;
  } else if (s == "FAILED") {
    *out = JobStatus::kFailed;
  } else {
    return false;
  }
  return true;
}

const char* LedgerStateName(LedgerState s) { return s == LedgerState::kDone ? "done" : "pending"; }

int ScheduleShardOf(const UserId& user) {
  return static_cast<int>(Murmur3_32(user.str()) % static_cast<uint32_t>(kScheduleShards));
}

std::string EncodeSlots(const std::vector<TimePoint>& slots) {
  std::string out;
  for (const TimePoint& t : slots) {
    if (!out.empty()) out += ',';
    out += std::to_string(ToUnixMillis(t));
  }
  return out;
}

std::vector<TimePoint> DecodeSlots(std::string_view text) {
  std::vector<TimePoint> out;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    int64_t ms = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), ms);
    if (ec == std::errc() && end == item.data() + item.size()) out.push_back(FromUnixMillis(ms));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace syncwell::store
