#pragma once
// Withings reports local time as IANA zone names ("Europe/Paris"), canonical records carry a
// UTC offset in minutes. GCC 12's libstdc++ has no std::chrono::tzdb, and reading the system
// zoneinfo through TZ/localtime is process-global, so this is a small fixed table: the common
// zones with their standard offset and daylight-saving rule (EU, US, south-east Australia, New
// Zealand, none), plus the fixed "Etc/GMT±N" and "UTC" names. Rules are the current ones (no
// historical changes). Unknown names -> nullopt (callers use 0 and say so in README.md).
// Pure and thread-safe.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace syncwell::providers::withings {

// Offset (minutes east of UTC) of zone `tz` at the UTC instant `utc_ms`.
std::optional<int32_t> UtcOffsetMinutes(std::string_view tz, int64_t utc_ms);

// A zone name with this fixed offset: "UTC", "Etc/GMT-1" (= UTC+1: POSIX signs are inverted) for
// whole hours, a DST-free named zone for the usual half/quarter hours ("Asia/Kolkata"); empty
// when there is none.
std::string ZoneNameForOffset(int32_t offset_min);

// UTC instant of local midnight starting the civil day `days` (days since 1970-01-01) in `tz`.
int64_t LocalMidnightUtcMs(std::string_view tz, int64_t days);

// Civil date helpers shared by the mapping: "YYYY-MM-DD" <-> days since 1970-01-01.
std::optional<int64_t> ParseYmd(std::string_view s);
std::string FormatYmd(int64_t days);

}  // namespace syncwell::providers::withings
