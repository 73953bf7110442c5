#pragma once
// Date bounds of historical sync jobs (SPEC S2 dateRange: "YYYY-MM-DD" or RFC 3339). Pure.
#include <cstdint>
#include <string_view>

namespace syncwell::sync {

// Parses a job date bound: "YYYY-MM-DD" (start: 00:00 UTC of that day; end: inclusive, i.e.
// 00:00 UTC of the next day) or RFC 3339 ("2025-01-31T10:00:00Z", "+02:00" offsets; exact).
// False on anything else (including impossible dates such as 2025-02-29).
bool ParseJobDate(std::string_view s, bool end_bound, int64_t* out_ms);

}  // namespace syncwell::sync
