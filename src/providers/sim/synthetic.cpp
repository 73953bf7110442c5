#include "providers/sim/synthetic.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <numbers>

#include "providers/sim/world.hpp"

namespace syncwell::sim::synth {

using providers::DataType;
using providers::Record;

uint64_t HashString(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9e3779b97f4a7c15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

namespace {

constexpr int64_t kMinMs = 60'000;

// Salts keep the independent draws of one day apart.
enum Salt : uint64_t {
  kSaltUser = 1,
  kSaltWeek,
  kSaltWeekday,
  kSaltType,
  kSaltWorkout,
  kSaltSleep,
  kSaltSteps,
  kSaltWeightDay,
  kSaltWeight,
  kSaltPresence,
  kSaltUpload,
  kSaltIdBase,
  kSaltTz,
};

// Record slots in an id (id = base * 1e8 + day * 1000 + slot).
constexpr int64_t kSlotWorkout = 100, kSlotSleep = 200, kSlotSteps = 300, kSlotWeight = 400;
constexpr int64_t kIdDayFactor = 1000, kIdBaseFactor = 100'000'000;

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// A chain of mixes: H(k, a, b, c) = Mix(Mix(Mix(k, a), b), c).
uint64_t H(uint64_t k, uint64_t a) { return Mix(k, a); }
uint64_t H(uint64_t k, uint64_t a, uint64_t b) { return Mix(Mix(k, a), b); }
uint64_t H(uint64_t k, uint64_t a, uint64_t b, uint64_t c) { return Mix(Mix(Mix(k, a), b), c); }

double U01(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }
int64_t Range(uint64_t h, int64_t lo, int64_t hi) {  // inclusive
  return lo + static_cast<int64_t>(h % static_cast<uint64_t>(hi - lo + 1));
}
double RangeF(uint64_t h, double lo, double hi) { return lo + (hi - lo) * U01(h); }

uint64_t UserKey(uint64_t seed, std::string_view user) {
  return H(seed, kSaltUser, HashString(user));
}

struct ProviderList {
  std::array<std::string_view, 3> names;
  size_t n;
};

ProviderList HoldersOf(DataType t) {
  switch (t) {
    case DataType::kWorkout:
      return {{"strava", "garmin", "fitbit"}, 3};
    case DataType::kSleepSession:
      return {{"garmin", "fitbit", "withings"}, 3};
    case DataType::kSteps:
      return {{"garmin", "fitbit", ""}, 2};
    case DataType::kWeight:
      return {{"withings", "fitbit", "garmin"}, 3};
  }
  return {{"", "", ""}, 0};
}

// Which copy of a true record a provider sees: none, the primary or the secondary (~20%).
enum class Copy { kNone, kPrimary, kSecondary };

struct Presence {
  Copy copy = Copy::kNone;
  int jitter_s = 0;  // secondary workouts: start/end shifted by +-1..29 s
};

Presence PresenceAt(uint64_t user_key, DataType t, int64_t day, std::string_view provider) {
  const ProviderList holders = HoldersOf(t);
  size_t idx = holders.n;
  for (size_t i = 0; i < holders.n; ++i) {
    if (holders.names[i] == provider) idx = i;
  }
  if (idx == holders.n) return {};
  const uint64_t h = H(user_key, kSaltPresence, static_cast<uint64_t>(day), static_cast<int>(t));
  const size_t primary = h % holders.n;
  if (idx == primary) return {Copy::kPrimary, 0};
  const bool dup = (h >> 24) % 100 < 20;
  if (!dup) return {};
  const size_t secondary = (primary + 1 + (h >> 40) % (holders.n - 1)) % holders.n;
  if (idx != secondary) return {};
  int jitter = 0;
  if (t == DataType::kWorkout) {
    jitter = 1 + static_cast<int>((h >> 48) % 29);
    if ((h >> 63) != 0) jitter = -jitter;
  }
  return {Copy::kSecondary, jitter};
}

uint64_t IdBase(uint64_t seed, std::string_view provider, std::string_view user) {
  return 1000 + H(seed, kSaltIdBase, HashString(provider), HashString(user)) % 9000;
}

std::string MakeId(uint64_t base, int64_t day, int64_t slot) {
  return std::to_string(static_cast<int64_t>(base) * kIdBaseFactor + day * kIdDayFactor + slot);
}

int64_t SlotOf(DataType t) {
  switch (t) {
    case DataType::kWorkout:
      return kSlotWorkout;
    case DataType::kSleepSession:
      return kSlotSleep;
    case DataType::kSteps:
      return kSlotSteps;
    case DataType::kWeight:
      return kSlotWeight;
  }
  return 0;
}

// --- The true timeline of one person ---------------------------------------------------------

struct ActivityKind {
  std::string_view activity;  // canonical (records.hpp)
  std::string_view label;     // for the name
  int weight;                 // base popularity
  int min_minutes, max_minutes;
  double min_speed, max_speed;  // m/s; 0 = no distance
  double min_kcal_per_min, max_kcal_per_min;
  int min_hr, max_hr;
};

constexpr std::array<ActivityKind, 5> kKinds = {{
    {"run", "Run", 30, 20, 90, 2.4, 4.0, 10, 14, 140, 170},
    {"ride", "Ride", 25, 30, 120, 5.5, 9.0, 7, 11, 125, 155},
    {"walk", "Walk", 20, 20, 90, 1.2, 1.6, 4, 6, 95, 120},
    {"swim", "Swim", 10, 20, 60, 0.5, 0.9, 8, 11, 120, 150},
    {"strength", "Strength Training", 15, 20, 75, 0, 0, 5, 8, 100, 130},
}};

const ActivityKind& PickKind(uint64_t user_key, uint64_t h) {
  // Every person has a favourite activity that gets +30 weight.
  const size_t favourite = H(user_key, kSaltType) % kKinds.size();
  int total = 0;
  for (size_t i = 0; i < kKinds.size(); ++i) total += kKinds[i].weight + (i == favourite ? 30 : 0);
  int r = static_cast<int>(h % static_cast<uint64_t>(total));
  for (size_t i = 0; i < kKinds.size(); ++i) {
    r -= kKinds[i].weight + (i == favourite ? 30 : 0);
    if (r < 0) return kKinds[i];
  }
  return kKinds[0];
}

std::string_view PartOfDay(int64_t local_minute) {
  if (local_minute < 11 * 60) return "Morning";
  if (local_minute < 14 * 60) return "Lunch";
  if (local_minute < 17 * 60) return "Afternoon";
  return "Evening";
}

providers::WorkoutData WorkoutPayload(const ActivityKind& k, int64_t local_minute,
                                      int64_t duration_s, uint64_t h) {
  providers::WorkoutData w;
  w.name = std::string(PartOfDay(local_minute)) + " " + std::string(k.label) + " " +
           std::string(kSentinelTag);
  const double speed = RangeF(H(h, 1), k.min_speed, k.max_speed);
  w.distance_m = k.max_speed > 0 ? SentinelValue(speed * static_cast<double>(duration_s)) : 0.0;
  const double kcal_per_min = RangeF(H(h, 2), k.min_kcal_per_min, k.max_kcal_per_min);
  w.energy_kcal = SentinelValue(kcal_per_min * static_cast<double>(duration_s) / 60.0);
  w.avg_heart_rate_bpm = static_cast<int>(Range(H(h, 3), k.min_hr, k.max_hr));
  return w;
}

int64_t LocalMidnightUtc(int64_t day, int32_t offset_min) {
  return day * kDayMs - static_cast<int64_t>(offset_min) * kMinMs;
}

// 3-6 workout days per ISO week (Monday first), chosen by ranking the week's days by hash.
bool IsWorkoutDay(uint64_t user_key, int64_t day) {
  const int64_t week = FloorDiv(day + 3, 7);  // 1970-01-01 was a Thursday
  const int64_t weekday = day + 3 - week * 7;
  const int64_t count = 3 + static_cast<int64_t>(H(user_key, kSaltWeek, week) % 4);
  const uint64_t mine = H(user_key, kSaltWeekday, week, weekday);
  int64_t rank = 0;
  for (int64_t j = 0; j < 7; ++j) {
    if (j == weekday) continue;
    const uint64_t other = H(user_key, kSaltWeekday, week, j);
    if (other < mine || (other == mine && j < weekday)) ++rank;
  }
  return rank < count;
}

// Weigh-ins every 1-3 days: on a day with a coin flip "yes", and on any day after two "no"s
// (so there is never a gap of more than 3 days).
bool WantsWeighIn(uint64_t user_key, int64_t day) {
  return H(user_key, kSaltWeightDay, day) % 2 == 0;
}
bool IsWeighInDay(uint64_t user_key, int64_t day) {
  return WantsWeighIn(user_key, day) ||
         (!WantsWeighIn(user_key, day - 1) && !WantsWeighIn(user_key, day - 2));
}

double Round(double v, double step) { return std::round(v / step) * step; }

struct Person {
  uint64_t seed;
  uint64_t key;
  int32_t offset_min;
};

// The true record of `type` on local day `day`, if any (ids and upload times are per provider).
std::optional<Record> TrueRecord(const Person& p, DataType type, int64_t day) {
  Record r;
  r.meta.type = type;
  r.meta.utc_offset_min = p.offset_min;
  const int64_t midnight = LocalMidnightUtc(day, p.offset_min);
  switch (type) {
    case DataType::kWorkout: {
      if (!IsWorkoutDay(p.key, day)) return std::nullopt;
      const uint64_t h = H(p.key, kSaltWorkout, day);
      const ActivityKind& k = PickKind(p.key, H(h, 10));
      const int64_t duration_s = Range(H(h, 11), k.min_minutes * 60, k.max_minutes * 60);
      // Start windows: morning 06:00-08:30, lunch 11:30-12:45, afternoon 15:00-16:30,
      // evening 17:30-19:30 (local), to the second.
      static constexpr std::array<std::pair<int, int>, 4> kSlots = {{{6 * 60, 8 * 60 + 30},
                                                                     {11 * 60 + 30, 12 * 60 + 45},
                                                                     {15 * 60, 16 * 60 + 30},
                                                                     {17 * 60 + 30, 19 * 60 + 30}}};
      const auto& slot = kSlots[H(h, 12) % kSlots.size()];
      const int64_t start_s = Range(H(h, 13), slot.first * 60, slot.second * 60);
      r.meta.start_ms = midnight + start_s * 1000;
      r.meta.end_ms = r.meta.start_ms + duration_s * 1000;
      r.meta.activity = std::string(k.activity);
      r.data = WorkoutPayload(k, start_s / 60, duration_s, h);
      return r;
    }
    case DataType::kSleepSession: {
      const uint64_t h = H(p.key, kSaltSleep, day);
      const int64_t bed_min = Range(H(h, 1), 21 * 60 + 30, 24 * 60 + 30);  // 21:30-00:30
      const int64_t total = Range(H(h, 2), 5 * 60, 9 * 60);
      providers::SleepData s;
      s.awake_min = static_cast<int>(total * Range(H(h, 3), 4, 10) / 100);
      s.deep_min = static_cast<int>(total * Range(H(h, 4), 13, 23) / 100);
      s.rem_min = static_cast<int>(total * Range(H(h, 5), 18, 25) / 100);
      s.light_min = static_cast<int>(total) - s.awake_min - s.deep_min - s.rem_min;
      r.meta.start_ms = midnight + bed_min * kMinMs;
      r.meta.end_ms = r.meta.start_ms + total * kMinMs;
      r.data = s;
      return r;
    }
    case DataType::kSteps: {
      const uint64_t h = H(p.key, kSaltSteps, day);
      r.meta.start_ms = midnight;
      r.meta.end_ms = LocalMidnightUtc(day + 1, p.offset_min);
      r.data = providers::StepsData{Range(h, 20, 179) * 100 + 42};  // 2,042 .. 17,942
      return r;
    }
    case DataType::kWeight: {
      if (!IsWeighInDay(p.key, day)) return std::nullopt;
      const uint64_t h = H(p.key, kSaltWeight, day);
      const double base = 55.0 + static_cast<double>(H(p.key, kSaltWeight) % 5001) / 100.0;
      const double drift = 1.5 * std::sin(2 * std::numbers::pi * static_cast<double>(day) / 45.0);
      const double noise = static_cast<double>(Range(H(h, 1), -40, 40)) / 100.0;
      providers::WeightData w;
      w.kg = Round(base + drift + noise, 0.01) + 0.00042;
      const double fat_base =
          0.15 + static_cast<double>(H(p.key, kSaltWeight, 1) % 1701) / 10'000.0;
      const double fat_noise = static_cast<double>(Range(H(h, 2), -50, 50)) / 10'000.0;
      w.fat_ratio = Round(fat_base + fat_noise, 0.0001) + 0.0000042;
      r.meta.start_ms = midnight + Range(H(h, 3), 6 * 3600 + 1800, 8 * 3600 + 1800) * 1000;
      r.meta.end_ms = r.meta.start_ms;
      r.data = w;
      return r;
    }
  }
  return std::nullopt;
}

// The provider's copy of the true record: its id, upload time and (secondary copies of
// workouts) a start shifted by a few seconds.
std::optional<Record> ProviderCopy(const Person& p, std::string_view provider,
                                   std::string_view user, DataType type, int64_t day) {
  const Presence presence = PresenceAt(p.key, type, day, provider);
  if (presence.copy == Copy::kNone) return std::nullopt;
  auto r = TrueRecord(p, type, day);
  if (!r) return std::nullopt;
  r->meta.start_ms += presence.jitter_s * 1000LL;
  r->meta.end_ms += presence.jitter_s * 1000LL;
  r->meta.id = MakeId(IdBase(p.seed, provider, user), day, SlotOf(type));
  const uint64_t h = H(p.key, kSaltUpload, HashString(provider), day * 8 + static_cast<int>(type));
  int64_t delay_min = 0;
  switch (type) {
    case DataType::kWorkout:
      delay_min = Range(h, 2, 29);
      break;
    case DataType::kSleepSession:
      delay_min = Range(h, 10, 60);
      break;
    case DataType::kSteps:
      delay_min = Range(h, 5, 65);
      break;
    case DataType::kWeight:
      delay_min = Range(h, 1, 5);
      break;
  }
  r->meta.modified_ms = r->meta.end_ms + delay_min * kMinMs;
  return r;
}

bool Visible(const Window& w, const Record& r) {
  return r.meta.start_ms >= w.now_ms - static_cast<int64_t>(w.days_of_history) * kDayMs &&
         r.meta.start_ms <= w.now_ms && r.meta.modified_ms <= w.now_ms;
}

Person MakePerson(uint64_t seed, std::string_view user) {
  return Person{seed, UserKey(seed, user), UtcOffsetMin(seed, user)};
}

}  // namespace

bool Holds(std::string_view provider, DataType type) {
  const ProviderList holders = HoldersOf(type);
  for (size_t i = 0; i < holders.n; ++i) {
    if (holders.names[i] == provider) return true;
  }
  return false;
}

int32_t UtcOffsetMin(uint64_t seed, std::string_view sim_user) {
  static constexpr std::array<int32_t, 14> kOffsets = {-480, -420, -360, -300, -240, -180, 0,
                                                       60,   120,  180,  330,  480,  540,  600};
  return kOffsets[H(UserKey(seed, sim_user), kSaltTz) % kOffsets.size()];
}

std::vector<Record> Generate(const Window& w, std::string_view provider, std::string_view sim_user,
                             DataType type, int64_t from_ms, int64_t to_ms) {
  std::vector<Record> out;
  if (!Holds(provider, type) || w.days_of_history <= 0) return out;
  const int64_t lo = std::max(from_ms, w.now_ms - static_cast<int64_t>(w.days_of_history) * kDayMs);
  const int64_t hi = std::min(to_ms, w.now_ms + 1);
  if (lo >= hi) return out;
  const Person p = MakePerson(w.seed, sim_user);
  const int64_t off_ms = static_cast<int64_t>(p.offset_min) * kMinMs;
  // A sleep session that starts after local midnight belongs to the previous day.
  const int64_t first = std::max<int64_t>(0, FloorDiv(lo + off_ms, kDayMs) - 1);
  const int64_t last = FloorDiv(hi + off_ms, kDayMs);
  for (int64_t day = first; day <= last; ++day) {
    auto r = ProviderCopy(p, provider, sim_user, type, day);
    if (r && r->meta.start_ms >= from_ms && r->meta.start_ms < to_ms && Visible(w, *r))
      out.push_back(std::move(*r));
  }
  std::sort(out.begin(), out.end(),
            [](const Record& a, const Record& b) { return a.meta.start_ms < b.meta.start_ms; });
  return out;
}

std::optional<Record> FindById(const Window& w, std::string_view provider,
                               std::string_view sim_user, DataType type, std::string_view id) {
  int64_t value = 0;
  if (id.empty() || id.size() > 13) return std::nullopt;
  auto [ptr, ec] = std::from_chars(id.data(), id.data() + id.size(), value);
  if (ec != std::errc() || ptr != id.data() + id.size() || value <= 0) return std::nullopt;
  const int64_t base = value / kIdBaseFactor;
  const int64_t day = (value % kIdBaseFactor) / kIdDayFactor;
  const int64_t slot = value % kIdDayFactor;
  if (slot != SlotOf(type) || static_cast<uint64_t>(base) != IdBase(w.seed, provider, sim_user)) {
    return std::nullopt;
  }
  auto r = ProviderCopy(MakePerson(w.seed, sim_user), provider, sim_user, type, day);
  if (!r || !Visible(w, *r)) return std::nullopt;
  return r;
}

Record Fresh(uint64_t seed, std::string_view provider, std::string_view sim_user, DataType type,
             int64_t now_ms, uint64_t nonce) {
  const Person p = MakePerson(seed, sim_user);
  const uint64_t h = H(p.key, HashString(provider), nonce, static_cast<uint64_t>(now_ms));
  const int64_t now_s_ms = now_ms - now_ms % 1000;
  const int64_t off_ms = static_cast<int64_t>(p.offset_min) * kMinMs;
  const int64_t day = FloorDiv(now_ms + off_ms, kDayMs);
  Record r;
  r.meta.type = type;
  r.meta.utc_offset_min = p.offset_min;
  switch (type) {
    case DataType::kWorkout: {
      const ActivityKind& k = PickKind(p.key, H(h, 10));
      const int64_t duration_s = Range(H(h, 11), 20 * 60, 60 * 60);
      r.meta.end_ms = now_s_ms - 60'000;
      r.meta.start_ms = r.meta.end_ms - duration_s * 1000;
      const int64_t local_minute = FloorDiv(r.meta.start_ms + off_ms, kMinMs) % (24 * 60);
      r.meta.activity = std::string(k.activity);
      r.data = WorkoutPayload(k, local_minute, duration_s, h);
      break;
    }
    case DataType::kSleepSession: {
      const int64_t total = Range(H(h, 2), 5 * 60, 9 * 60);
      providers::SleepData s;
      s.awake_min = static_cast<int>(total * Range(H(h, 3), 4, 10) / 100);
      s.deep_min = static_cast<int>(total * Range(H(h, 4), 13, 23) / 100);
      s.rem_min = static_cast<int>(total * Range(H(h, 5), 18, 25) / 100);
      s.light_min = static_cast<int>(total) - s.awake_min - s.deep_min - s.rem_min;
      r.meta.end_ms = now_s_ms;
      r.meta.start_ms = now_s_ms - total * kMinMs;
      r.data = s;
      break;
    }
    case DataType::kSteps: {
      r.meta.start_ms = LocalMidnightUtc(day, p.offset_min);
      r.meta.end_ms = LocalMidnightUtc(day + 1, p.offset_min);
      r.data = providers::StepsData{Range(h, 20, 179) * 100 + 42};
      break;
    }
    case DataType::kWeight: {
      const double base = 55.0 + static_cast<double>(H(p.key, kSaltWeight) % 5001) / 100.0;
      providers::WeightData w;
      w.kg = Round(base + static_cast<double>(Range(H(h, 1), -40, 40)) / 100.0, 0.01) + 0.00042;
      r.meta.start_ms = r.meta.end_ms = now_s_ms;
      r.data = w;
      break;
    }
  }
  r.meta.modified_ms = now_ms;
  return r;
}

}  // namespace syncwell::sim::synth
