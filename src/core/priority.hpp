#pragma once
// Job priority, shared by the queue (delivery order) and the rate limiter (reserve floors), so
// both speak one type instead of two enums kept equal by convention.
#include <string_view>

namespace syncwell {

enum class Priority { kHigh = 0, kMedium = 1, kLow = 2 };

bool ParsePriority(std::string_view s, Priority* out);  // "high" | "medium" | "low"
const char* PriorityName(Priority p);

}  // namespace syncwell
