#include "sync/job_dates.hpp"

#include <cstddef>

#include "core/civil_time.hpp"

namespace syncwell::sync {
namespace {

constexpr int64_t kDayMs = 86'400'000;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).

bool Digits(std::string_view s, size_t pos, size_t n, int64_t* out) {
  if (pos + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

int DaysInMonth(int64_t y, int64_t m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

}  // namespace

bool ParseJobDate(std::string_view s, bool end_bound, int64_t* out_ms) {
  int64_t y = 0, mo = 0, d = 0;
  if (s.size() < 10 || s[4] != '-' || s[7] != '-' || !Digits(s, 0, 4, &y) ||
      !Digits(s, 5, 2, &mo) || !Digits(s, 8, 2, &d)) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > DaysInMonth(y, mo)) return false;
  const int64_t day_ms = DaysFromCivil(y, mo, d) * kDayMs;
  if (s.size() == 10) {
    *out_ms = day_ms + (end_bound ? kDayMs : 0);
    return true;
  }
  int64_t hh = 0, mm = 0, ss = 0;
  if ((s[10] != 'T' && s[10] != 't') || s.size() < 20 || s[13] != ':' || s[16] != ':' ||
      !Digits(s, 11, 2, &hh) || !Digits(s, 14, 2, &mm) || !Digits(s, 17, 2, &ss) || hh > 23 ||
      mm > 59 || ss > 60) {
    return false;
  }
  size_t pos = 19;
  int64_t frac_ms = 0;
  if (s[pos] == '.') {
    const size_t first = ++pos;
    int64_t scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      frac_ms += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == first) return false;
  }
  if (pos >= s.size()) return false;
  int64_t offset_min = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int64_t oh = 0, om = 0;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return false;
    }
    offset_min = (s[pos] == '-' ? -1 : 1) * (oh * 60 + om);
    pos += 6;
  } else {
    return false;
  }
  if (pos != s.size()) return false;
  *out_ms = day_ms + ((hh * 60 + mm) * 60 + ss) * 1000 + frac_ms - offset_min * 60'000;
  return true;
}

}  // namespace syncwell::sync
