#pragma once
// Conflict resolution on metadata (SPEC S5). Pure functions: no I/O, no clock, deterministic.
//
// Two records conflict when they have the same DataType, their time ranges overlap by MORE than
// the threshold (default 60 s, allowed 10-300 s), and -- for workouts -- their activity types
// are in the same family (providers/records.hpp ActivityFamily). Instantaneous records (weight,
// end == start) conflict when their instants are within the threshold of each other.
// Timezone-shift tolerance (workouts and sleep): a destination record that matches the source
// when shifted by a whole number of hours (1..14, either direction) with the same duration
// (+- threshold) is the same event recorded with a wrong zone, and conflicts too.
//
// Per source record, in order:
//   1. origin is ours (IsOurOrigin)             -> kSkip "echo": we wrote it (loop suppression);
//   2. no conflicting destination record         -> kWrite;
//   3. an identical destination record exists    -> kSkip "identical" (same type/family, start and
//      end within 1 s of each other, or equal after a timezone shift);
//   4. otherwise by strategy against the conflicting record with the largest overlap:
//        source_wins -> kWrite ("source_wins over <dest id>");
//        dest_wins   -> kSkip  ("dest_wins: <dest id> overlaps by N s");
//        newest_wins -> the larger modified_ms wins; a tie goes to the source.
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "providers/records.hpp"

namespace syncwell::sync {

enum class Strategy { kSourceWins, kDestWins, kNewestWins };
std::string_view StrategyName(Strategy s);  // "source_wins", "dest_wins", "newest_wins"
bool ParseStrategy(std::string_view s, Strategy* out);

inline constexpr std::chrono::seconds kMinOverlapThreshold{10};
inline constexpr std::chrono::seconds kMaxOverlapThreshold{300};

struct ConflictSettings {
  Strategy strategy = Strategy::kSourceWins;
  std::chrono::seconds overlap_threshold{60};  // clamped to [10 s, 300 s]
  bool tolerate_timezone_shift = true;
};

struct Decision {
  enum class Action { kWrite, kSkip };
  std::string source_id;
  Action action = Action::kWrite;
  std::string reason;               // stable, human-readable; never contains health values
  std::string conflicting_dest_id;  // empty when none
};

// Overlap in ms of [a.start, a.end) and [b.start, b.end) (0 when disjoint).
int64_t OverlapMs(const providers::RecordMeta& a, const providers::RecordMeta& b);
bool Conflicts(const providers::RecordMeta& source, const providers::RecordMeta& dest,
               const ConflictSettings& s);

// One Decision per source record, in the order of `source`.
std::vector<Decision> Resolve(const std::vector<providers::RecordMeta>& source,
                              const std::vector<providers::RecordMeta>& dest,
                              const ConflictSettings& s);

}  // namespace syncwell::sync
