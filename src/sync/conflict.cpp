#include "sync/conflict.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <tuple>
#include <utility>

namespace syncwell::sync {

namespace {

using providers::DataType;
using providers::RecordMeta;

constexpr int64_t kHourMs = 3'600'000;
constexpr int kMaxShiftHours = 14;
// Start and end within this of each other: the same record (rule 3).
constexpr int64_t kIdenticalMs = 1'000;
// Times come from providers (external input): clamp them far inside int64 so that shifting by
// hours and subtracting never overflows (+-2^60 ms is ~36 million years).
constexpr int64_t kTimeLimit = int64_t{1} << 60;

int64_t ClampTime(int64_t t) { return std::clamp(t, -kTimeLimit, kTimeLimit); }

// A record's time range, clamped, with end >= start (a malformed end < start is read as an
// instant at start).
struct Span {
  int64_t start = 0;
  int64_t end = 0;
  bool Instant() const { return end == start; }
  int64_t Duration() const { return end - start; }
  Span Shifted(int64_t ms) const { return {start + ms, end + ms}; }
};

Span SpanOf(const RecordMeta& r) {
  const int64_t start = ClampTime(r.start_ms);
  return {start, std::max(start, ClampTime(r.end_ms))};
}

int64_t Overlap(Span a, Span b) {
  return std::max<int64_t>(0, std::min(a.end, b.end) - std::max(a.start, b.start));
}
// Distance between two ranges (0 when they touch or overlap).
int64_t Gap(Span a, Span b) {
  return std::max<int64_t>(0, std::max(a.start, b.start) - std::min(a.end, b.end));
}
int64_t AbsDiff(int64_t a, int64_t b) { return a > b ? a - b : b - a; }
bool Near(Span a, Span b) {
  return AbsDiff(a.start, b.start) <= kIdenticalMs && AbsDiff(a.end, b.end) <= kIdenticalMs;
}

int64_t ThresholdMs(const ConflictSettings& s) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::clamp(s.overlap_threshold, kMinOverlapThreshold, kMaxOverlapThreshold))
      .count();
}

bool ShiftTolerant(DataType t, bool tolerate) {
  return tolerate && (t == DataType::kWorkout || t == DataType::kSleepSession);
}

// Records are only ever compared within one group: same type and, for workouts, same family.
std::string GroupFamily(const RecordMeta& r) {
  return r.type == DataType::kWorkout ? std::string(providers::ActivityFamily(r.activity))
                                      : std::string();
}

// How one destination record relates to one source record (same group assumed).
struct Match {
  bool conflicts = false;
  bool identical = false;
  bool instant = false;
  int shift_hours = 0;  // the destination lies this many whole hours after the source
  int64_t overlap = 0;  // ms, at shift_hours
  int64_t gap = 0;      // ms, instants only

  // Larger is a better explanation of the source record: identical first, then the largest
  // overlap (closest instant), then an unshifted match.
  auto Rank() const {
    return std::make_tuple(identical, instant ? -gap : overlap, shift_hours == 0);
  }
};

// A shift of h hours (b lies h hours after a) is a timezone mistake only when the two records
// show the same local clock time (h h == the difference of their UTC offsets), or when exactly
// one side has no offset (a provider that stored local time as UTC). Two different sessions
// whole hours apart in the same zone (yoga at 09:00 and at 17:00) are never merged.
bool ShiftAllowed(int h, int32_t off_a, int32_t off_b) {
  if ((off_a == 0) != (off_b == 0)) return true;
  return static_cast<int64_t>(h) * 60 == static_cast<int64_t>(off_a) - off_b;
}

Match Evaluate(Span a, Span b, DataType type, int64_t threshold, bool tolerate_shift, int32_t off_a,
               int32_t off_b) {
  Match m;
  if (a.Instant() || b.Instant()) {
    m.instant = true;
    m.gap = Gap(a, b);
    m.identical = Near(a, b);
    m.conflicts = m.gap <= threshold || m.identical;
    return m;
  }
  // A copy always conflicts, even when it is too short to overlap by more than the threshold.
  m.overlap = Overlap(a, b);
  m.identical = Near(a, b);
  m.conflicts = m.overlap > threshold || m.identical;
  if (!ShiftTolerant(type, tolerate_shift) || AbsDiff(a.Duration(), b.Duration()) > threshold) {
    return m;
  }
  // Same event recorded with a wrong zone: try +1, -1, +2, -2, ... so that ties keep the
  // smallest shift, positive first.
  for (int k = 1; k <= kMaxShiftHours; ++k) {
    for (int h : {k, -k}) {
      if (!ShiftAllowed(h, off_a, off_b)) continue;
      const Span shifted = b.Shifted(-h * kHourMs);
      Match c;
      c.conflicts = true;
      c.shift_hours = h;
      c.overlap = Overlap(a, shifted);
      c.identical = Near(a, shifted);
      if (c.overlap <= threshold && !c.identical) continue;
      if (!m.conflicts || c.Rank() > m.Rank()) m = c;
    }
  }
  return m;
}

// A total order on destination records so that ties never depend on input order.
auto DestKey(const RecordMeta& d) {
  return std::tie(d.id, d.start_ms, d.end_ms, d.modified_ms, d.utc_offset_min, d.activity,
                  d.origin);
}

// Destination records of one group sorted by start, with a max-end segment tree so that all
// records intersecting a time range are found in O(log m + k).
class Index {
 public:
  void Add(const RecordMeta* r) { recs_.push_back(r); }

  void Build() {
    std::sort(recs_.begin(), recs_.end(), [](const RecordMeta* x, const RecordMeta* y) {
      return SpanOf(*x).start < SpanOf(*y).start;
    });
    starts_.reserve(recs_.size());
    for (const RecordMeta* r : recs_) starts_.push_back(SpanOf(*r).start);
    leaves_ = 1;
    while (leaves_ < recs_.size()) leaves_ *= 2;
    tree_.assign(2 * leaves_, std::numeric_limits<int64_t>::min());
    for (size_t i = 0; i < recs_.size(); ++i) tree_[leaves_ + i] = SpanOf(*recs_[i]).end;
    for (size_t i = leaves_ - 1; i >= 1; --i) tree_[i] = std::max(tree_[2 * i], tree_[2 * i + 1]);
  }

  // Calls f(record) for every record with start <= hi and end >= lo.
  template <class F>
  void Visit(int64_t lo, int64_t hi, F&& f) const {
    const size_t limit =
        static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), hi) - starts_.begin());
    if (limit > 0) Descend(1, 0, leaves_, limit, lo, f);
  }

 private:
  template <class F>
  void Descend(size_t node, size_t first, size_t last, size_t limit, int64_t lo, F& f) const {
    if (first >= limit || tree_[node] < lo) return;
    if (last - first == 1) {
      f(*recs_[first]);
      return;
    }
    const size_t mid = first + (last - first) / 2;
    Descend(2 * node, first, mid, limit, lo, f);
    Descend(2 * node + 1, mid, last, limit, lo, f);
  }

  std::vector<const RecordMeta*> recs_;
  std::vector<int64_t> starts_;
  std::vector<int64_t> tree_;
  size_t leaves_ = 1;
};

std::string ShiftSuffix(int hours) {
  if (hours == 0) return {};
  return " (timezone shift " + std::string(hours > 0 ? "+" : "") + std::to_string(hours) + " h)";
}

Decision Decide(const RecordMeta& src, const RecordMeta& dest, const Match& m,
                const ConflictSettings& s) {
  Decision d;
  d.source_id = src.id;
  d.conflicting_dest_id = dest.id;
  const std::string shift = ShiftSuffix(m.shift_hours);
  if (m.identical) {
    d.action = Decision::Action::kSkip;
    d.reason = "identical: " + dest.id + shift;
    return d;
  }
  switch (s.strategy) {
    case Strategy::kSourceWins:
      d.action = Decision::Action::kWrite;
      d.reason = "source_wins over " + dest.id + shift;
      break;
    case Strategy::kDestWins:
      d.action = Decision::Action::kSkip;
      d.reason = m.instant
                     ? "dest_wins: " + dest.id + " is " + std::to_string(m.gap / 1000) + " s apart"
                     : "dest_wins: " + dest.id + " overlaps by " +
                           std::to_string(m.overlap / 1000) + " s" + shift;
      break;
    case Strategy::kNewestWins:
      if (src.modified_ms >= dest.modified_ms) {
        d.action = Decision::Action::kWrite;
        d.reason = "newest_wins: source is newer or tie over " + dest.id + shift;
      } else {
        d.action = Decision::Action::kSkip;
        d.reason = "newest_wins: " + dest.id + " is newer" + shift;
      }
      break;
  }
  return d;
}

}  // namespace

std::string_view StrategyName(Strategy s) {
  switch (s) {
    case Strategy::kSourceWins:
      return "source_wins";
    case Strategy::kDestWins:
      return "dest_wins";
    case Strategy::kNewestWins:
      return "newest_wins";
  }
  return "source_wins";
}

bool ParseStrategy(std::string_view s, Strategy* out) {
  for (Strategy st : {Strategy::kSourceWins, Strategy::kDestWins, Strategy::kNewestWins}) {
    if (StrategyName(st) == s) {
      *out = st;
      return true;
    }
  }
  return false;
}

int64_t OverlapMs(const RecordMeta& a, const RecordMeta& b) {
  // Uses the raw ranges as documented ([start, end)); a malformed range overlaps nothing.
  const int64_t lo = std::max(ClampTime(a.start_ms), ClampTime(b.start_ms));
  const int64_t hi = std::min(ClampTime(a.end_ms), ClampTime(b.end_ms));
  return std::max<int64_t>(0, hi - lo);
}

bool Conflicts(const RecordMeta& source, const RecordMeta& dest, const ConflictSettings& s) {
  if (source.type != dest.type || GroupFamily(source) != GroupFamily(dest)) return false;
  return Evaluate(SpanOf(source), SpanOf(dest), source.type, ThresholdMs(s),
                  s.tolerate_timezone_shift, source.utc_offset_min, dest.utc_offset_min)
      .conflicts;
}

std::vector<Decision> Resolve(const std::vector<RecordMeta>& source,
                              const std::vector<RecordMeta>& dest, const ConflictSettings& s) {
  const int64_t threshold = ThresholdMs(s);

  std::map<std::pair<DataType, std::string>, Index> groups;
  for (const RecordMeta& d : dest) groups[{d.type, GroupFamily(d)}].Add(&d);
  for (auto& [key, index] : groups) index.Build();

  std::vector<Decision> out;
  out.reserve(source.size());
  for (const RecordMeta& src : source) {
    if (providers::IsOurOrigin(src.origin)) {
      out.push_back({src.id, Decision::Action::kSkip, "echo: written by SyncWell", ""});
      continue;
    }
    const RecordMeta* best = nullptr;
    Match best_match;
    const auto it = groups.find({src.type, GroupFamily(src)});
    if (it != groups.end()) {
      const Span a = SpanOf(src);
      const bool shift = ShiftTolerant(src.type, s.tolerate_timezone_shift);
      const int64_t reach = threshold + (shift ? kMaxShiftHours * kHourMs : 0);
      it->second.Visit(a.start - reach, a.end + reach, [&](const RecordMeta& d) {
        const Match m = Evaluate(a, SpanOf(d), src.type, threshold, s.tolerate_timezone_shift,
                                 src.utc_offset_min, d.utc_offset_min);
        if (!m.conflicts) return;
        if (best == nullptr || m.Rank() > best_match.Rank() ||
            (m.Rank() == best_match.Rank() && DestKey(d) < DestKey(*best))) {
          best = &d;
          best_match = m;
        }
      });
    }
    if (best == nullptr) {
      out.push_back({src.id, Decision::Action::kWrite, "no conflict", ""});
    } else {
      out.push_back(Decide(src, *best, best_match, s));
    }
  }
  return out;
}

}  // namespace syncwell::sync
