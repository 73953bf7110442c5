#include "core/priority.hpp"

namespace syncwell {

bool ParsePriority(std::string_view s, Priority* out) {
  if (s == "high") {
    *out = Priority::kHigh;
  } else if (s == "medium") {
    *out = Priority::kMedium;
  } else if (s == "low") {
    *out = Priority::kLow;
  } else {
    return false;
  }
  return true;
}

const char* PriorityName(Priority p) {
  switch (p) {
    case Priority::kHigh:
      return "high";
    case Priority::kMedium:
      return "medium";
    case Priority::kLow:
      return "low";
  }
  return "medium";
}

}  // namespace syncwell
