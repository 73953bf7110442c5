#include "providers/withings/timezones.hpp"

#include <array>
#include <cctype>
#include <cstdio>

#include "core/civil_time.hpp"

namespace syncwell::providers::withings {
namespace {

enum class Rule { kNone, kEu, kUs, kAuSouthEast, kNz };

struct Zone {
  std::string_view name;
  int32_t std_offset_min;
  Rule rule;
};

// Standard offsets and DST rules as of 2024 (IANA tzdata). Kept short on purpose: users'
// zones outside this list fall back to UTC (documented in README.md).
constexpr std::array kZones = {
    Zone{"UTC", 0, Rule::kNone},
    Zone{"Etc/UTC", 0, Rule::kNone},
    Zone{"GMT", 0, Rule::kNone},
    Zone{"Europe/London", 0, Rule::kEu},
    Zone{"Europe/Dublin", 0, Rule::kEu},
    Zone{"Europe/Lisbon", 0, Rule::kEu},
    Zone{"Atlantic/Reykjavik", 0, Rule::kNone},
    Zone{"Africa/Casablanca", 60, Rule::kNone},
    Zone{"Europe/Paris", 60, Rule::kEu},
    Zone{"Europe/Berlin", 60, Rule::kEu},
    Zone{"Europe/Madrid", 60, Rule::kEu},
    Zone{"Europe/Rome", 60, Rule::kEu},
    Zone{"Europe/Amsterdam", 60, Rule::kEu},
    Zone{"Europe/Brussels", 60, Rule::kEu},
    Zone{"Europe/Luxembourg", 60, Rule::kEu},
    Zone{"Europe/Vienna", 60, Rule::kEu},
    Zone{"Europe/Zurich", 60, Rule::kEu},
    Zone{"Europe/Stockholm", 60, Rule::kEu},
    Zone{"Europe/Oslo", 60, Rule::kEu},
    Zone{"Europe/Copenhagen", 60, Rule::kEu},
    Zone{"Europe/Warsaw", 60, Rule::kEu},
    Zone{"Europe/Prague", 60, Rule::kEu},
    Zone{"Europe/Budapest", 60, Rule::kEu},
    Zone{"Europe/Belgrade", 60, Rule::kEu},
    Zone{"Europe/Monaco", 60, Rule::kEu},
    Zone{"Africa/Lagos", 60, Rule::kNone},
    Zone{"Europe/Athens", 120, Rule::kEu},
    Zone{"Europe/Helsinki", 120, Rule::kEu},
    Zone{"Europe/Kiev", 120, Rule::kEu},
    Zone{"Europe/Kyiv", 120, Rule::kEu},
    Zone{"Europe/Bucharest", 120, Rule::kEu},
    Zone{"Europe/Sofia", 120, Rule::kEu},
    Zone{"Europe/Riga", 120, Rule::kEu},
    Zone{"Europe/Vilnius", 120, Rule::kEu},
    Zone{"Europe/Tallinn", 120, Rule::kEu},
    Zone{"Africa/Cairo", 120, Rule::kNone},
    Zone{"Africa/Johannesburg", 120, Rule::kNone},
    Zone{"Europe/Istanbul", 180, Rule::kNone},
    Zone{"Europe/Moscow", 180, Rule::kNone},
    Zone{"Asia/Riyadh", 180, Rule::kNone},
    Zone{"Asia/Tehran", 210, Rule::kNone},
    Zone{"Asia/Dubai", 240, Rule::kNone},
    Zone{"Asia/Kabul", 270, Rule::kNone},
    Zone{"Asia/Karachi", 300, Rule::kNone},
    Zone{"Asia/Kolkata", 330, Rule::kNone},
    Zone{"Asia/Calcutta", 330, Rule::kNone},
    Zone{"Asia/Kathmandu", 345, Rule::kNone},
    Zone{"Asia/Dhaka", 360, Rule::kNone},
    Zone{"Asia/Yangon", 390, Rule::kNone},
    Zone{"Asia/Bangkok", 420, Rule::kNone},
    Zone{"Asia/Jakarta", 420, Rule::kNone},
    Zone{"Asia/Shanghai", 480, Rule::kNone},
    Zone{"Asia/Hong_Kong", 480, Rule::kNone},
    Zone{"Asia/Singapore", 480, Rule::kNone},
    Zone{"Asia/Taipei", 480, Rule::kNone},
    Zone{"Australia/Perth", 480, Rule::kNone},
    Zone{"Asia/Tokyo", 540, Rule::kNone},
    Zone{"Asia/Seoul", 540, Rule::kNone},
    Zone{"Australia/Darwin", 570, Rule::kNone},
    Zone{"Australia/Adelaide", 570, Rule::kAuSouthEast},
    Zone{"Australia/Brisbane", 600, Rule::kNone},
    Zone{"Australia/Sydney", 600, Rule::kAuSouthEast},
    Zone{"Australia/Melbourne", 600, Rule::kAuSouthEast},
    Zone{"Australia/Canberra", 600, Rule::kAuSouthEast},
    Zone{"Australia/Hobart", 600, Rule::kAuSouthEast},
    Zone{"Pacific/Auckland", 720, Rule::kNz},
    Zone{"Atlantic/Azores", -60, Rule::kEu},
    Zone{"America/Sao_Paulo", -180, Rule::kNone},
    Zone{"America/Argentina/Buenos_Aires", -180, Rule::kNone},
    Zone{"America/Halifax", -240, Rule::kUs},
    Zone{"America/Puerto_Rico", -240, Rule::kNone},
    Zone{"America/New_York", -300, Rule::kUs},
    Zone{"America/Toronto", -300, Rule::kUs},
    Zone{"America/Detroit", -300, Rule::kUs},
    Zone{"America/Montreal", -300, Rule::kUs},
    Zone{"America/Bogota", -300, Rule::kNone},
    Zone{"America/Lima", -300, Rule::kNone},
    Zone{"America/Chicago", -360, Rule::kUs},
    Zone{"America/Winnipeg", -360, Rule::kUs},
    Zone{"America/Mexico_City", -360, Rule::kNone},
    Zone{"America/Denver", -420, Rule::kUs},
    Zone{"America/Edmonton", -420, Rule::kUs},
    Zone{"America/Phoenix", -420, Rule::kNone},
    Zone{"America/Los_Angeles", -480, Rule::kUs},
    Zone{"America/Vancouver", -480, Rule::kUs},
    Zone{"America/Anchorage", -540, Rule::kUs},
    Zone{"Pacific/Honolulu", -600, Rule::kNone},
};

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

int Weekday(int64_t days) { return static_cast<int>(((days + 4) % 7 + 7) % 7); }  // 0 = Sunday

// Day number of the n-th (1-based) Sunday of a month, or of the last one when n == 0.
int64_t SundayOf(int64_t y, unsigned m, int n) {
  if (n > 0) {
    int64_t first = DaysFromCivil(y, m, 1);
    return first + (7 - Weekday(first)) % 7 + 7 * (n - 1);
  }
  int64_t next_first = m == 12 ? DaysFromCivil(y + 1, 1, 1) : DaysFromCivil(y, m + 1, 1);
  int64_t last = next_first - 1;
  return last - Weekday(last);
}

constexpr int64_t kMsPerDay = 86'400'000;
constexpr int64_t kMsPerHour = 3'600'000;

// Whether DST is in force at utc_ms for a zone with standard offset `std_min`.
bool InDst(Rule rule, int32_t std_min, int64_t utc_ms) {
  if (rule == Rule::kNone) return false;
  int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(FloorDiv(utc_ms + std_min * 60000LL, kMsPerDay), &y, &m, &d);
  const int64_t std_ms = std_min * 60000LL;
  switch (rule) {
    case Rule::kEu: {  // last Sunday of March 01:00 UTC .. last Sunday of October 01:00 UTC
      int64_t start = SundayOf(y, 3, 0) * kMsPerDay + kMsPerHour;
      int64_t end = SundayOf(y, 10, 0) * kMsPerDay + kMsPerHour;
      return utc_ms >= start && utc_ms < end;
    }
    case Rule::kUs: {  // 2nd Sunday of March 02:00 local .. 1st Sunday of November 02:00 local DST
      int64_t start = SundayOf(y, 3, 2) * kMsPerDay + 2 * kMsPerHour - std_ms;
      int64_t end = SundayOf(y, 11, 1) * kMsPerDay + 1 * kMsPerHour - std_ms;
      return utc_ms >= start && utc_ms < end;
    }
    case Rule::kAuSouthEast: {  // 1st Sunday of October 02:00 std .. 1st Sunday of April 03:00 DST
      int64_t start = SundayOf(y, 10, 1) * kMsPerDay + 2 * kMsPerHour - std_ms;
      int64_t end = SundayOf(y, 4, 1) * kMsPerDay + 2 * kMsPerHour - std_ms;
      return utc_ms >= start || utc_ms < end;
    }
    case Rule::kNz: {  // last Sunday of September 02:00 std .. 1st Sunday of April 03:00 DST
      int64_t start = SundayOf(y, 9, 0) * kMsPerDay + 2 * kMsPerHour - std_ms;
      int64_t end = SundayOf(y, 4, 1) * kMsPerDay + 2 * kMsPerHour - std_ms;
      return utc_ms >= start || utc_ms < end;
    }
    case Rule::kNone:
      break;
  }
  return false;
}

}  // namespace

std::optional<int32_t> UtcOffsetMinutes(std::string_view tz, int64_t utc_ms) {
  if (tz.empty()) return std::nullopt;
  for (const auto& z : kZones) {
    if (z.name == tz) return z.std_offset_min + (InDst(z.rule, z.std_offset_min, utc_ms) ? 60 : 0);
  }
  // "Etc/GMT+5" is UTC-5 and "Etc/GMT-1" is UTC+1 (POSIX sign convention).
  constexpr std::string_view kEtc = "Etc/GMT";
  if (tz.substr(0, kEtc.size()) == kEtc) {
    std::string_view rest = tz.substr(kEtc.size());
    if (rest.empty()) return 0;
    if (rest.size() < 2 || rest.size() > 3 || (rest[0] != '+' && rest[0] != '-'))
      return std::nullopt;
    int h = 0;
    for (char c : rest.substr(1)) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      h = h * 10 + (c - '0');
    }
    if (h > 14) return std::nullopt;
    return (rest[0] == '+' ? -1 : 1) * h * 60;
  }
  return std::nullopt;
}

std::string ZoneNameForOffset(int32_t offset_min) {
  if (offset_min == 0) return "UTC";
  if (offset_min % 60 == 0 && offset_min >= -12 * 60 && offset_min <= 14 * 60) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "Etc/GMT%c%d", offset_min > 0 ? '-' : '+',
                  (offset_min > 0 ? offset_min : -offset_min) / 60);
    return buf;
  }
  for (const auto& z : kZones) {
    if (z.rule == Rule::kNone && z.std_offset_min == offset_min) return std::string(z.name);
  }
  return {};
}

int64_t LocalMidnightUtcMs(std::string_view tz, int64_t days) {
  const int64_t local = days * kMsPerDay;
  // Two fixed-point steps settle the offset that applies at the resulting instant.
  int32_t off = UtcOffsetMinutes(tz, local).value_or(0);
  off = UtcOffsetMinutes(tz, local - off * 60000LL).value_or(0);
  return local - off * 60000LL;
}

std::optional<int64_t> ParseYmd(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  int v[3] = {0, 0, 0};
  const size_t pos[3] = {0, 5, 8}, len[3] = {4, 2, 2};
  for (int i = 0; i < 3; ++i) {
    for (size_t j = pos[i]; j < pos[i] + len[i]; ++j) {
      if (!std::isdigit(static_cast<unsigned char>(s[j]))) return std::nullopt;
      v[i] = v[i] * 10 + (s[j] - '0');
    }
  }
  if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31) return std::nullopt;
  return DaysFromCivil(v[0], static_cast<unsigned>(v[1]), static_cast<unsigned>(v[2]));
}

std::string FormatYmd(int64_t days) {
  int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(days, &y, &m, &d);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(y), m, d);
  return buf;
}

}  // namespace syncwell::providers::withings
