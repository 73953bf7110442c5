// Conflict resolution on metadata (SPEC S5, sync/conflict.hpp): the rule order (echo, no
// conflict, identical, strategy), the overlap threshold and its clamping, activity families,
// timezone-shift tolerance, instants, daily steps, the choice among several candidates, and
// determinism (a fixed-seed property test against a brute-force reference).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "sync/conflict.hpp"

namespace syncwell::sync {

// Found by argument-dependent lookup from EXPECT_EQ and std::vector's operator==.
bool operator==(const Decision& a, const Decision& b) {
  return a.source_id == b.source_id && a.action == b.action && a.reason == b.reason &&
         a.conflicting_dest_id == b.conflicting_dest_id;
}

// Printed by GoogleTest when a comparison fails.
void PrintTo(const Decision& d, std::ostream* os) {
  *os << "{" << d.source_id << ", " << (d.action == Decision::Action::kWrite ? "write" : "skip")
      << ", \"" << d.reason << "\", dest=" << d.conflicting_dest_id << "}";
}

namespace {

using providers::DataType;
using providers::RecordMeta;
using std::chrono::seconds;
using Action = Decision::Action;

constexpr int64_t kT0 = 1'800'000'000'000;  // ms; an hour boundary
constexpr int64_t kHour = 3600;             // s
constexpr int64_t kDay = 24 * kHour;        // s

// Times in seconds after kT0.
RecordMeta Rec(std::string id, DataType type, int64_t start_s, int64_t end_s,
               std::string activity = "", int64_t modified_ms = 0) {
  RecordMeta r;
  r.id = std::move(id);
  r.type = type;
  r.start_ms = kT0 + start_s * 1000;
  r.end_ms = kT0 + end_s * 1000;
  r.modified_ms = modified_ms;
  r.activity = std::move(activity);
  return r;
}
RecordMeta Workout(std::string id, int64_t start_s, int64_t end_s, std::string activity = "run",
                   int64_t modified_ms = 0) {
  return Rec(std::move(id), DataType::kWorkout, start_s, end_s, std::move(activity), modified_ms);
}
RecordMeta Sleep(std::string id, int64_t start_s, int64_t end_s) {
  return Rec(std::move(id), DataType::kSleepSession, start_s, end_s);
}
RecordMeta Weight(std::string id, int64_t at_s) {
  return Rec(std::move(id), DataType::kWeight, at_s, at_s);
}

ConflictSettings With(Strategy strategy, int threshold_s = 60, bool tz = true) {
  ConflictSettings s;
  s.strategy = strategy;
  s.overlap_threshold = seconds{threshold_s};
  s.tolerate_timezone_shift = tz;
  return s;
}

// Resolve for a single source record.
Decision One(const RecordMeta& src, const std::vector<RecordMeta>& dest,
             const ConflictSettings& s) {
  auto out = Resolve({src}, dest, s);
  EXPECT_EQ(out.size(), 1u);
  return out.empty() ? Decision{} : out[0];
}

Decision Expect(std::string src, Action action, std::string reason, std::string dest = "") {
  return Decision{std::move(src), action, std::move(reason), std::move(dest)};
}

TEST(ConflictStrategy, NamesRoundTrip) {
  for (Strategy s : {Strategy::kSourceWins, Strategy::kDestWins, Strategy::kNewestWins}) {
    Strategy parsed = Strategy::kSourceWins;
    ASSERT_TRUE(ParseStrategy(StrategyName(s), &parsed)) << StrategyName(s);
    EXPECT_EQ(parsed, s);
  }
  EXPECT_EQ(StrategyName(Strategy::kNewestWins), "newest_wins");
  Strategy unchanged = Strategy::kDestWins;
  EXPECT_FALSE(ParseStrategy("latest_wins", &unchanged));
  EXPECT_FALSE(ParseStrategy("", &unchanged));
  EXPECT_EQ(unchanged, Strategy::kDestWins);
}

TEST(ConflictOverlap, HalfOpenRanges) {
  EXPECT_EQ(OverlapMs(Workout("a", 0, 3600), Workout("b", 1800, 5400)), 1'800'000);
  EXPECT_EQ(OverlapMs(Workout("a", 0, 3600), Workout("b", 3600, 5400)), 0);  // touching
  EXPECT_EQ(OverlapMs(Workout("a", 0, 3600), Workout("b", 7200, 9000)), 0);
  EXPECT_EQ(OverlapMs(Workout("a", 0, 3600), Workout("b", 600, 1200)), 600'000);
  EXPECT_EQ(OverlapMs(Weight("a", 10), Weight("b", 10)), 0);
}

TEST(ConflictResolve, EmptyInputs) {
  const auto s = With(Strategy::kDestWins);
  EXPECT_TRUE(Resolve({}, {}, s).empty());
  EXPECT_TRUE(Resolve({}, {Workout("d1", 0, 3600)}, s).empty());
  const auto out = Resolve({Workout("s1", 0, 3600), Sleep("s2", 0, 3600)}, {}, s);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], Expect("s1", Action::kWrite, "no conflict"));
  EXPECT_EQ(out[1], Expect("s2", Action::kWrite, "no conflict"));
}

TEST(ConflictResolve, OneDecisionPerSourceInSourceOrder) {
  // Durations differ from d1's, so no timezone reading links s2/s3 to it.
  const std::vector<RecordMeta> src = {Workout("s3", 7200, 9900), Workout("s1", 0, 1800),
                                       Workout("s2", 3600, 4200)};
  const auto out = Resolve(src, {Workout("d1", 0, 1800)}, With(Strategy::kDestWins));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], Expect("s3", Action::kWrite, "no conflict"));
  EXPECT_EQ(out[1], Expect("s1", Action::kSkip, "identical: d1", "d1"));
  EXPECT_EQ(out[2], Expect("s2", Action::kWrite, "no conflict"));
}

TEST(ConflictResolve, DifferentTypesNeverConflict) {
  const auto src = Workout("s1", 0, 3600);
  EXPECT_FALSE(Conflicts(src, Sleep("d1", 0, 3600), With(Strategy::kDestWins)));
  EXPECT_EQ(One(src, {Sleep("d1", 0, 3600)}, With(Strategy::kDestWins)),
            Expect("s1", Action::kWrite, "no conflict"));
}

// The source 10:00-11:00, the destination 10:30-12:00 (different durations, so no timezone
// reading) overlaps by 1800 s.
TEST(ConflictStrategy, SourceWins) {
  EXPECT_EQ(One(Workout("s1", 0, 3600), {Workout("d1", 1800, 7200)}, With(Strategy::kSourceWins)),
            Expect("s1", Action::kWrite, "source_wins over d1", "d1"));
}

TEST(ConflictStrategy, DestWins) {
  EXPECT_EQ(One(Workout("s1", 0, 3600), {Workout("d1", 1800, 7200)}, With(Strategy::kDestWins)),
            Expect("s1", Action::kSkip, "dest_wins: d1 overlaps by 1800 s", "d1"));
}

TEST(ConflictStrategy, NewestWinsSourceNewer) {
  EXPECT_EQ(One(Workout("s1", 0, 3600, "run", 2000), {Workout("d1", 1800, 7200, "run", 1000)},
                With(Strategy::kNewestWins)),
            Expect("s1", Action::kWrite, "newest_wins: source is newer or tie over d1", "d1"));
}

TEST(ConflictStrategy, NewestWinsDestNewer) {
  EXPECT_EQ(One(Workout("s1", 0, 3600, "run", 1000), {Workout("d1", 1800, 7200, "run", 1001)},
                With(Strategy::kNewestWins)),
            Expect("s1", Action::kSkip, "newest_wins: d1 is newer", "d1"));
}

TEST(ConflictStrategy, NewestWinsTieGoesToSource) {
  EXPECT_EQ(One(Workout("s1", 0, 3600, "run", 1500), {Workout("d1", 1800, 7200, "run", 1500)},
                With(Strategy::kNewestWins)),
            Expect("s1", Action::kWrite, "newest_wins: source is newer or tie over d1", "d1"));
}

// "More than the threshold": an overlap equal to it does not conflict.
class ConflictThreshold : public ::testing::TestWithParam<int> {};

TEST_P(ConflictThreshold, OverlapMustExceedThreshold) {
  const int t = GetParam();
  const auto src = Workout("s1", 0, kHour);
  // The destination is two hours long (never a timezone reading of a one-hour source) and
  // overlaps the source's last `overlap` seconds.
  auto dest = [](int64_t overlap) { return Workout("d1", kHour - overlap, 3 * kHour - overlap); };
  const auto s = With(Strategy::kDestWins, t);
  EXPECT_FALSE(Conflicts(src, dest(t - 1), s));
  EXPECT_FALSE(Conflicts(src, dest(t), s));
  EXPECT_TRUE(Conflicts(src, dest(t + 1), s));
  // Sub-second: one millisecond over the threshold conflicts.
  auto over = dest(t);
  over.start_ms -= 1;
  over.end_ms -= 1;
  EXPECT_TRUE(Conflicts(src, over, s));

  EXPECT_EQ(One(src, {dest(t)}, s), Expect("s1", Action::kWrite, "no conflict"));
  EXPECT_EQ(One(src, {dest(t + 1)}, s),
            Expect("s1", Action::kSkip, "dest_wins: d1 overlaps by " + std::to_string(t + 1) + " s",
                   "d1"));
}

INSTANTIATE_TEST_SUITE_P(Thresholds, ConflictThreshold, ::testing::Values(10, 60, 300));

TEST(ConflictThresholdClamp, BelowMinimumActsAsTenSeconds) {
  const auto src = Workout("s1", 0, kHour);
  auto dest = [](int64_t overlap) { return Workout("d1", kHour - overlap, 3 * kHour - overlap); };
  for (int t : {-5, 0, 1, 9}) {
    const auto s = With(Strategy::kDestWins, t);
    EXPECT_FALSE(Conflicts(src, dest(10), s)) << t;
    EXPECT_TRUE(Conflicts(src, dest(11), s)) << t;
  }
}

TEST(ConflictThresholdClamp, AboveMaximumActsAsFiveMinutes) {
  const auto src = Workout("s1", 0, kHour);
  auto dest = [](int64_t overlap) { return Workout("d1", kHour - overlap, 3 * kHour - overlap); };
  for (int t : {301, 600, 86'400}) {
    const auto s = With(Strategy::kDestWins, t);
    EXPECT_FALSE(Conflicts(src, dest(300), s)) << t;
    EXPECT_TRUE(Conflicts(src, dest(301), s)) << t;
  }
}

TEST(ConflictFamilies, SameFamilyConflicts) {
  const auto s = With(Strategy::kDestWins);
  EXPECT_TRUE(Conflicts(Workout("s1", 0, 3600, "run"), Workout("d1", 0, 7200, "trail_run"), s));
  EXPECT_TRUE(Conflicts(Workout("s1", 0, 3600, "ride"), Workout("d1", 0, 7200, "virtual_ride"), s));
  EXPECT_TRUE(Conflicts(Workout("s1", 0, 3600, "yoga"), Workout("d1", 0, 7200, "yoga"), s));
  EXPECT_EQ(One(Workout("s1", 0, 3600, "run"), {Workout("d1", 0, 7200, "trail_run")}, s),
            Expect("s1", Action::kSkip, "dest_wins: d1 overlaps by 3600 s", "d1"));
}

TEST(ConflictFamilies, DifferentFamiliesNeverConflict) {
  const auto s = With(Strategy::kDestWins);
  EXPECT_FALSE(Conflicts(Workout("s1", 0, 3600, "run"), Workout("d1", 0, 3600, "ride"), s));
  EXPECT_FALSE(Conflicts(Workout("s1", 0, 3600, "strength"), Workout("d1", 0, 3600, "yoga"), s));
  EXPECT_FALSE(Conflicts(Workout("s1", 0, 3600, "walk"), Workout("d1", 0, 3600, "swim"), s));
  // Not even as an identical record or after a timezone shift.
  EXPECT_EQ(One(Workout("s1", 0, 3600, "run"),
                {Workout("d1", 0, 3600, "ride"), Workout("d2", 3600, 7200, "ride")}, s),
            Expect("s1", Action::kWrite, "no conflict"));
}

// A workout the destination stored with the wrong zone: same duration, whole hours off.
class ConflictTimezoneShift : public ::testing::TestWithParam<int> {};

TEST_P(ConflictTimezoneShift, WholeHourShiftIsTheSameWorkout) {
  const int h = GetParam();
  // Same local clock time: the destination's UTC instant and offset are both h hours off.
  auto src = Workout("s1", 0, kHour);
  src.utc_offset_min = 60;
  auto dest = Workout("d1", h * kHour, (h + 1) * kHour, "trail_run");
  dest.utc_offset_min = 60 - h * 60;
  const std::string shift = std::string(h > 0 ? "+" : "") + std::to_string(h) + " h";
  EXPECT_TRUE(Conflicts(src, dest, With(Strategy::kSourceWins)));
  EXPECT_EQ(One(src, {dest}, With(Strategy::kSourceWins)),
            Expect("s1", Action::kSkip, "identical: d1 (timezone shift " + shift + ")", "d1"));

  // Not identical (30 s later, 20 s longer) but still the same event: the strategy decides.
  auto near = dest;
  near.start_ms += 30'000;
  near.end_ms += 50'000;
  EXPECT_EQ(One(src, {near}, With(Strategy::kDestWins)),
            Expect("s1", Action::kSkip,
                   "dest_wins: d1 overlaps by 3570 s (timezone shift " + shift + ")", "d1"));
  EXPECT_EQ(
      One(src, {near}, With(Strategy::kSourceWins)),
      Expect("s1", Action::kWrite, "source_wins over d1 (timezone shift " + shift + ")", "d1"));

  // Disabled: a different time is a different workout.
  EXPECT_FALSE(Conflicts(src, dest, With(Strategy::kSourceWins, 60, false)));
  EXPECT_EQ(One(src, {dest}, With(Strategy::kSourceWins, 60, false)),
            Expect("s1", Action::kWrite, "no conflict"));
}

INSTANTIATE_TEST_SUITE_P(Shifts, ConflictTimezoneShift, ::testing::Values(1, -1, -5, 14, -14),
                         [](const auto& info) {
                           return (info.param < 0 ? "minus" : "plus") +
                                  std::to_string(std::abs(info.param));
                         });

TEST(ConflictTimezone, FifteenHoursIsTooFar) {
  const auto src = Workout("s1", 0, kHour);
  EXPECT_FALSE(Conflicts(src, Workout("d1", 15 * kHour, 16 * kHour), With(Strategy::kDestWins)));
  EXPECT_FALSE(Conflicts(src, Workout("d1", -15 * kHour, -14 * kHour), With(Strategy::kDestWins)));
}

TEST(ConflictTimezone, ThirtyMinutesIsNotATimezoneShift) {
  // Overlaps by half an hour directly: a conflict, but neither identical nor shifted.
  const auto src = Workout("s1", 0, kHour);
  const auto dest = Workout("d1", 1800, kHour + 1800);
  EXPECT_EQ(One(src, {dest}, With(Strategy::kDestWins)),
            Expect("s1", Action::kSkip, "dest_wins: d1 overlaps by 1800 s", "d1"));
  EXPECT_EQ(One(src, {dest}, With(Strategy::kSourceWins)),
            Expect("s1", Action::kWrite, "source_wins over d1", "d1"));
  // A 30-minute workout 90 minutes later only lines up after a 1.5 h shift: no conflict.
  EXPECT_FALSE(
      Conflicts(Workout("s1", 0, 1800), Workout("d1", 5400, 7200), With(Strategy::kDestWins)));
}

TEST(ConflictTimezone, DurationsMustMatchWithinThreshold) {
  auto src = Workout("s1", 0, kHour);
  src.utc_offset_min = -300;  // the destination below has no offset: local time stored as UTC
  const auto s = With(Strategy::kDestWins, 60);
  EXPECT_TRUE(Conflicts(src, Workout("d1", kHour, 2 * kHour + 60), s));   // 60 s longer
  EXPECT_FALSE(Conflicts(src, Workout("d1", kHour, 2 * kHour + 61), s));  // 61 s longer
  EXPECT_FALSE(Conflicts(src, Workout("d1", kHour, 2 * kHour - 61), s));  // 61 s shorter
}

TEST(ConflictTimezone, SameZoneWholeHoursApartAreDifferentSessions) {
  // Yoga at 09:00 and at 17:00 in the same zone: same duration, 8 whole hours apart, but the
  // same offset on both sides means no timezone mistake explains it.
  auto src = Workout("s1", 8 * kHour, 9 * kHour, "yoga");
  src.utc_offset_min = 120;
  auto dest = Workout("d1", 0, kHour, "yoga");
  dest.utc_offset_min = 120;
  EXPECT_FALSE(Conflicts(src, dest, With(Strategy::kDestWins)));
  EXPECT_EQ(One(src, {dest}, With(Strategy::kDestWins)),
            Expect("s1", Action::kWrite, "no conflict"));
  // The same pair where the destination lost its zone (offset 0): a timezone mistake.
  dest.utc_offset_min = 0;
  EXPECT_TRUE(Conflicts(src, dest, With(Strategy::kDestWins)));
}

TEST(ConflictTimezone, SleepSessionsAreShiftTolerant) {
  auto src = Sleep("s1", 0, 8 * kHour);
  src.utc_offset_min = 540;  // destinations below have no offset (local time stored as UTC)
  // 3 h late: the direct overlap (5 h) conflicts anyway; the shift explains it as identical.
  EXPECT_EQ(One(src, {Sleep("d1", 3 * kHour, 11 * kHour)}, With(Strategy::kSourceWins)),
            Expect("s1", Action::kSkip, "identical: d1 (timezone shift +3 h)", "d1"));
  // 9 h late: no direct overlap at all.
  EXPECT_EQ(One(src, {Sleep("d1", 9 * kHour, 17 * kHour)}, With(Strategy::kSourceWins)),
            Expect("s1", Action::kSkip, "identical: d1 (timezone shift +9 h)", "d1"));
  EXPECT_EQ(One(src, {Sleep("d1", 9 * kHour, 17 * kHour)}, With(Strategy::kSourceWins, 60, false)),
            Expect("s1", Action::kWrite, "no conflict"));
}

TEST(ConflictTimezone, WeightIsNotShiftTolerant) {
  EXPECT_FALSE(Conflicts(Weight("s1", 0), Weight("d1", kHour), With(Strategy::kDestWins)));
}

TEST(ConflictIdentical, WithinOneSecondSkipsWhateverTheStrategy) {
  const auto src = Workout("s1", 0, kHour, "run", 5000);
  auto dest = Workout("d1", 0, kHour, "treadmill_run", 1000);
  dest.start_ms += 1000;
  dest.end_ms -= 1000;
  for (Strategy st : {Strategy::kSourceWins, Strategy::kDestWins, Strategy::kNewestWins}) {
    EXPECT_EQ(One(src, {dest}, With(st)), Expect("s1", Action::kSkip, "identical: d1", "d1"))
        << StrategyName(st);
  }
  // 1.001 s apart is no longer identical: the strategy decides.
  dest.start_ms += 1;
  EXPECT_EQ(One(src, {dest}, With(Strategy::kSourceWins)),
            Expect("s1", Action::kWrite, "source_wins over d1", "d1"));
}

TEST(ConflictIdentical, AnIdenticalRecordWinsOverALargerOverlap) {
  const auto src = Workout("s1", 0, kHour);
  const std::vector<RecordMeta> dest = {Workout("a", -kHour, 2 * kHour),  // overlaps 3600 s
                                        Workout("b", 0, kHour)};
  EXPECT_EQ(One(src, dest, With(Strategy::kSourceWins)),
            Expect("s1", Action::kSkip, "identical: b", "b"));
  // An unshifted copy is preferred to a shifted one.
  EXPECT_EQ(One(src, {Workout("a", kHour, 2 * kHour), Workout("z", 0, kHour)},
                With(Strategy::kSourceWins)),
            Expect("s1", Action::kSkip, "identical: z", "z"));
}

TEST(ConflictIdentical, ACopyShorterThanTheThresholdStillConflicts) {
  // Overlap 30 s is below the 60 s threshold, but it is the same record: never write it twice.
  const auto src = Workout("s1", 0, 30);
  EXPECT_TRUE(Conflicts(src, Workout("d1", 0, 30), With(Strategy::kSourceWins)));
  EXPECT_EQ(One(src, {Workout("d1", 0, 30)}, With(Strategy::kSourceWins)),
            Expect("s1", Action::kSkip, "identical: d1", "d1"));
  EXPECT_FALSE(Conflicts(src, Workout("d1", 10, 40), With(Strategy::kSourceWins)));
}

TEST(ConflictEcho, OurOwnWritesAreSkippedFirst) {
  auto src = Workout("s1", 0, kHour);
  src.origin = "sw1:0123456789abcdef0123456789abcdef";
  const Decision echo = Expect("s1", Action::kSkip, "echo: written by SyncWell");
  EXPECT_EQ(One(src, {}, With(Strategy::kSourceWins)), echo);
  // Before the conflict rules, whatever the destination holds.
  EXPECT_EQ(One(src, {Workout("d1", 0, kHour)}, With(Strategy::kSourceWins)), echo);
  src.origin = "garmin:123";  // someone else's tag
  EXPECT_EQ(One(src, {}, With(Strategy::kSourceWins)), Expect("s1", Action::kWrite, "no conflict"));
}

TEST(ConflictWeight, InstantsConflictWithinThreshold) {
  const auto s = With(Strategy::kDestWins, 60);
  const auto src = Weight("s1", 0);
  EXPECT_TRUE(Conflicts(src, Weight("d1", 30), s));
  EXPECT_TRUE(Conflicts(src, Weight("d1", -60), s));
  EXPECT_FALSE(Conflicts(src, Weight("d1", 61), s));
  EXPECT_FALSE(Conflicts(src, Weight("d1", -61), s));
  EXPECT_EQ(One(src, {Weight("d1", 30)}, s),
            Expect("s1", Action::kSkip, "dest_wins: d1 is 30 s apart", "d1"));
  EXPECT_EQ(One(src, {Weight("d1", 61)}, s), Expect("s1", Action::kWrite, "no conflict"));
  // Within a second: the same measurement.
  EXPECT_EQ(One(src, {Weight("d1", 1)}, With(Strategy::kSourceWins)),
            Expect("s1", Action::kSkip, "identical: d1", "d1"));
  // The closest instant is chosen.
  EXPECT_EQ(One(src, {Weight("far", 50), Weight("near", -20), Weight("mid", 40)}, s),
            Expect("s1", Action::kSkip, "dest_wins: near is 20 s apart", "near"));
  // A larger threshold reaches further.
  EXPECT_TRUE(Conflicts(src, Weight("d1", 300), With(Strategy::kDestWins, 300)));
}

TEST(ConflictSteps, DailyTotalsConflictWhenTheirDaysOverlap) {
  const auto s = With(Strategy::kDestWins);
  // The same local day recorded in UTC+1 (starts 23:00 UTC the day before) and in UTC.
  auto src = Rec("s1", DataType::kSteps, -kHour, kDay - kHour);
  src.utc_offset_min = 60;
  const auto same_day = Rec("d1", DataType::kSteps, 0, kDay);
  EXPECT_EQ(One(src, {same_day}, s),
            Expect("s1", Action::kSkip, "dest_wins: d1 overlaps by 82800 s", "d1"));
  // The next day touches but does not overlap; the day after is far away.
  EXPECT_EQ(One(Rec("s1", DataType::kSteps, 0, kDay),
                {Rec("d2", DataType::kSteps, kDay, 2 * kDay),
                 Rec("d3", DataType::kSteps, 2 * kDay, 3 * kDay)},
                s),
            Expect("s1", Action::kWrite, "no conflict"));
  EXPECT_EQ(One(Rec("s1", DataType::kSteps, 0, kDay), {Rec("d1", DataType::kSteps, 0, kDay)},
                With(Strategy::kSourceWins)),
            Expect("s1", Action::kSkip, "identical: d1", "d1"));
}

TEST(ConflictCandidates, LargestOverlapThenSmallestIdWhateverTheOrder) {
  const auto src = Workout("s1", 0, kHour);
  // Overlaps: "c" 600 s, "b" and "a" 1800 s, "d" 1200 s; none is identical or shifted.
  std::vector<RecordMeta> dest = {
      Workout("c", -2 * kHour + 600, 600), Workout("b", kHour - 1800, 3 * kHour),
      Workout("a", -3 * kHour, 1800), Workout("d", kHour - 1200, 4 * kHour)};
  const Decision want = Expect("s1", Action::kSkip, "dest_wins: a overlaps by 1800 s", "a");
  std::sort(dest.begin(), dest.end(),
            [](const RecordMeta& x, const RecordMeta& y) { return x.id < y.id; });
  do {
    EXPECT_EQ(One(src, dest, With(Strategy::kDestWins)), want);
  } while (
      std::next_permutation(dest.begin(), dest.end(),
                            [](const RecordMeta& x, const RecordMeta& y) { return x.id < y.id; }));
}

TEST(ConflictCandidates, NewestWinsComparesAgainstTheChosenRecord) {
  // The largest overlap ("big", older than the source) decides, not the newer small one.
  const auto src = Workout("s1", 0, kHour, "run", 2000);
  const std::vector<RecordMeta> dest = {Workout("small", kHour - 120, 3 * kHour, "run", 9000),
                                        Workout("big", -kHour, kHour - 300, "run", 1000)};
  EXPECT_EQ(One(src, dest, With(Strategy::kNewestWins)),
            Expect("s1", Action::kWrite, "newest_wins: source is newer or tie over big", "big"));
}

TEST(ConflictCandidates, ALongDestinationRecordIsFoundAmongManyShortOnes) {
  // A week-long record sorted first must still be found for a source at the end of the week.
  std::vector<RecordMeta> dest = {Sleep("long", -kDay, 7 * kDay)};
  for (int64_t i = 0; i < 500; ++i) {
    dest.push_back(Sleep("short" + std::to_string(i), i * 600, i * 600 + 60));
  }
  EXPECT_EQ(One(Sleep("s1", 6 * kDay, 6 * kDay + 3 * kHour), dest, With(Strategy::kDestWins)),
            Expect("s1", Action::kSkip, "dest_wins: long overlaps by 10800 s", "long"));
}

TEST(ConflictRobustness, MalformedTimesDoNotCrash) {
  const auto s = With(Strategy::kDestWins);
  auto backwards = Workout("s1", kHour, 0);  // end before start: read as an instant
  auto huge = Workout("d1", 0, 0);
  huge.start_ms = std::numeric_limits<int64_t>::min();
  huge.end_ms = std::numeric_limits<int64_t>::max();
  const auto out = Resolve({backwards, huge}, {huge, backwards}, s);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].action, Action::kSkip);
  EXPECT_EQ(out[1].action, Action::kSkip);
  EXPECT_GE(OverlapMs(huge, huge), 0);
}

// --- Property test: fixed seed, random records, brute-force reference ----------------------

RecordMeta RandomRecord(std::mt19937_64& rng, const std::string& id) {
  static const char* const kActivities[] = {"run",  "trail_run", "ride", "e_bike_ride",
                                            "walk", "yoga",      "swim", "other"};
  std::uniform_int_distribution<int> type_dist(0, 3);
  std::uniform_int_distribution<int64_t> start_dist(0, 3 * kDay);
  std::uniform_int_distribution<int64_t> dur_dist(60, 3 * kHour);
  std::uniform_int_distribution<int> act_dist(0, 7);
  std::uniform_int_distribution<int64_t> mod_dist(0, 5);
  std::uniform_int_distribution<int> coin(0, 9);
  const auto type = static_cast<DataType>(type_dist(rng));
  int64_t start = start_dist(rng);
  int64_t end = start + dur_dist(rng);
  std::string activity;
  if (type == DataType::kWorkout) activity = kActivities[act_dist(rng)];
  if (type == DataType::kWeight) end = start;
  if (type == DataType::kSteps) {
    start = start / kDay * kDay - (coin(rng) < 5 ? kHour : 0);
    end = start + kDay;
  }
  auto r = Rec(id, type, start, end, activity, mod_dist(rng));
  if (coin(rng) == 0) r.origin = "sw1:ffff";
  return r;
}

// Copies of some source records in the destination, sometimes shifted by whole hours, so that
// identical and timezone matches are exercised too.
std::vector<RecordMeta> RandomDest(std::mt19937_64& rng, const std::vector<RecordMeta>& src,
                                   int n) {
  std::vector<RecordMeta> dest;
  std::uniform_int_distribution<int> coin(0, 9);
  std::uniform_int_distribution<int> hours(-14, 14);
  std::uniform_int_distribution<size_t> pick(0, src.size() - 1);
  for (int i = 0; i < n; ++i) {
    if (coin(rng) < 3) {
      RecordMeta r = src[pick(rng)];
      r.id = "d" + std::to_string(i);
      r.origin.clear();
      const int64_t shift = (coin(rng) < 5 ? hours(rng) * kHour : 0) * 1000;
      r.start_ms += shift;
      r.end_ms += shift;
      dest.push_back(r);
    } else {
      dest.push_back(RandomRecord(rng, "d" + std::to_string(i)));
    }
  }
  return dest;
}

TEST(ConflictProperty, DeterministicOrderIndependentAndComplete) {
  std::mt19937_64 rng(20240601);
  for (int round = 0; round < 6; ++round) {
    std::vector<RecordMeta> src;
    src.reserve(400);
    for (int i = 0; i < 400; ++i) src.push_back(RandomRecord(rng, "s" + std::to_string(i)));
    std::vector<RecordMeta> dest = RandomDest(rng, src, 400);
    for (Strategy st : {Strategy::kSourceWins, Strategy::kDestWins, Strategy::kNewestWins}) {
      for (bool tz : {true, false}) {
        const auto s = With(st, 10 + 58 * round, tz);
        const auto first = Resolve(src, dest, s);
        ASSERT_EQ(first.size(), src.size());
        EXPECT_EQ(Resolve(src, dest, s), first) << "same input, same output";
        auto shuffled = dest;
        std::shuffle(shuffled.begin(), shuffled.end(), rng);
        EXPECT_EQ(Resolve(src, shuffled, s), first) << "dest order must not matter";

        // Reference: the sweep finds a conflicting record exactly when brute force does, and
        // what it names conflicts.
        for (size_t i = 0; i < src.size(); ++i) {
          const Decision& d = first[i];
          EXPECT_EQ(d.source_id, src[i].id);
          if (providers::IsOurOrigin(src[i].origin)) {
            EXPECT_EQ(d.reason, "echo: written by SyncWell");
            continue;
          }
          const bool any = std::any_of(dest.begin(), dest.end(), [&](const RecordMeta& r) {
            return Conflicts(src[i], r, s);
          });
          EXPECT_EQ(!d.conflicting_dest_id.empty(), any) << src[i].id;
          if (!any) {
            EXPECT_EQ(d, Expect(src[i].id, Action::kWrite, "no conflict"));
            continue;
          }
          const auto it = std::find_if(dest.begin(), dest.end(), [&](const RecordMeta& r) {
            return r.id == d.conflicting_dest_id;
          });
          ASSERT_NE(it, dest.end());
          EXPECT_TRUE(Conflicts(src[i], *it, s)) << src[i].id << " vs " << it->id;
          if (d.reason.starts_with("identical: ")) {
            EXPECT_EQ(d.action, Action::kSkip);
            continue;
          }
          if (st == Strategy::kSourceWins) {
            EXPECT_EQ(d.action, Action::kWrite) << d.reason;
          }
          if (st == Strategy::kDestWins) {
            EXPECT_EQ(d.action, Action::kSkip) << d.reason;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace syncwell::sync
