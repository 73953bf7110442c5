#pragma once
// Deterministic synthetic health data for the simulator (README "Synthetic data").
//
// One true activity timeline per simulated person (seed, sim user): daily step totals, 3-6
// workouts a week, one sleep session a night, a weigh-in every 1-3 days. Each record is assigned
// to one provider that holds its type (and ~20% also to a second one; workouts there start up to
// 29 s apart), so syncing between providers meets real conflicts.
//
// Pure functions of (seed, user, provider, day): no state, no locks, nothing cached. A day costs
// a few hash mixes, so 100k+ users cost nothing until they are asked for. Thread-safe.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "providers/records.hpp"

namespace syncwell::sim::synth {

inline constexpr int64_t kDayMs = 86'400'000;

// Stable across platforms and runs: FNV-1a 64 for strings, splitmix64 finaliser for mixing.
uint64_t HashString(std::string_view s);
uint64_t Mix(uint64_t a, uint64_t b);

// Whether `provider` holds synthetic data of `type` (others only hold what is written to them):
// workouts: strava, garmin, fitbit; sleep: garmin, fitbit, withings; steps: garmin, fitbit;
// weight: withings, fitbit, garmin.
bool Holds(std::string_view provider, providers::DataType type);

// What is visible at `now_ms`: records starting in [now - days_of_history, now] whose upload
// (modified_ms) is not in the future.
struct Window {
  uint64_t seed = 0;
  int days_of_history = 30;
  int64_t now_ms = 0;
};

// Minutes east of UTC of this person (stable per seed and user).
int32_t UtcOffsetMin(uint64_t seed, std::string_view sim_user);

// The synthetic records of `sim_user` at `provider` of `type` starting in [from_ms, to_ms),
// sorted by start_ms.
std::vector<providers::Record> Generate(const Window& w, std::string_view provider,
                                        std::string_view sim_user, providers::DataType type,
                                        int64_t from_ms, int64_t to_ms);

// One synthetic record by its provider id (ids encode the day), if visible.
std::optional<providers::Record> FindById(const Window& w, std::string_view provider,
                                          std::string_view sim_user, providers::DataType type,
                                          std::string_view id);

// A fresh record of `type` ending at now_ms (steps: today's running total), derived from nonce.
providers::Record Fresh(uint64_t seed, std::string_view provider, std::string_view sim_user,
                        providers::DataType type, int64_t now_ms, uint64_t nonce);

}  // namespace syncwell::sim::synth
