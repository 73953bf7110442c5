#include "providers/records.hpp"

#include <openssl/sha.h>

#include <cmath>
#include <cstdio>
#include <type_traits>

#include "providers/provider.hpp"

namespace syncwell::providers {

std::string_view DataTypeName(DataType t) {
  switch (t) {
    case DataType::kWorkout:
      return "workout";
    case DataType::kSleepSession:
      return "sleep_session";
    case DataType::kSteps:
      return "steps";
    case DataType::kWeight:
      return "weight";
  }
  return "workout";
}

bool ParseDataType(std::string_view s, DataType* out) {
  for (DataType t :
       {DataType::kWorkout, DataType::kSleepSession, DataType::kSteps, DataType::kWeight}) {
    if (DataTypeName(t) == s) {
      *out = t;
      return true;
    }
  }
  return false;
}

std::string_view ActivityFamily(std::string_view a) {
  if (a == "run" || a == "trail_run" || a == "treadmill_run" || a == "virtual_run") return "run";
  if (a == "ride" || a == "virtual_ride" || a == "mountain_bike_ride" || a == "e_bike_ride")
    return "ride";
  if (a == "walk" || a == "hike") return "walk";
  if (a == "swim" || a == "open_water_swim") return "swim";
  return a;
}

namespace {

// Values are rounded before hashing so that a provider's unit conversions (e.g. kg -> lb -> kg)
// do not change the fingerprint of the same measurement.
void AppendRounded(std::string& out, double v, double step) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "|%.0f", std::round(v / step));
  out += buf;
}

}  // namespace

std::string Fingerprint(const Record& r) {
  std::string canon;
  canon.reserve(128);
  canon += DataTypeName(r.meta.type);
  canon +=
      '|' + std::to_string(r.meta.start_ms / 1000) + '|' + std::to_string(r.meta.end_ms / 1000);
  canon += '|' + std::to_string(r.meta.utc_offset_min) + '|' + r.meta.activity;
  std::visit(
      [&](const auto& d) {
        using T = std::decay_t<decltype(d)>;
        if constexpr (std::is_same_v<T, WorkoutData>) {
          canon += "|w|" + d.name;
          AppendRounded(canon, d.distance_m, 1.0);
          AppendRounded(canon, d.energy_kcal, 1.0);
          canon += '|' + std::to_string(d.avg_heart_rate_bpm);
        } else if constexpr (std::is_same_v<T, StepsData>) {
          canon += "|s|" + std::to_string(d.count);
        } else if constexpr (std::is_same_v<T, SleepData>) {
          canon += "|z|" + std::to_string(d.deep_min) + ',' + std::to_string(d.light_min) + ',' +
                   std::to_string(d.rem_min) + ',' + std::to_string(d.awake_min);
        } else if constexpr (std::is_same_v<T, WeightData>) {
          canon += "|k";
          AppendRounded(canon, d.kg, 0.01);
          if (d.fat_ratio) AppendRounded(canon, *d.fat_ratio, 0.0001);
        }
      },
      r.data);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(canon.data()), canon.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (int i = 0; i < 16; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

std::string OriginTag(std::string_view fingerprint) { return "sw1:" + std::string(fingerprint); }

bool IsOurOrigin(std::string_view origin) { return origin.substr(0, 4) == "sw1:"; }

void FetchedRecords::Keep(DataType type, const Record& r) {
  auto key = std::make_pair(type, r.meta.id);
  if (auto it = by_id_.find(key); it != by_id_.end()) {
    it->second = r;  // a later version in the same listing wins
  } else if (by_id_.size() < kMaxRecords) {
    by_id_.emplace(std::move(key), r);
  }
}

std::optional<std::vector<Record>> FetchedRecords::Take(DataType type,
                                                        const std::vector<std::string>& ids) const {
  std::vector<Record> out;
  out.reserve(ids.size());
  for (const auto& id : ids) {
    auto it = by_id_.find(std::make_pair(type, id));
    if (it == by_id_.end()) return std::nullopt;
    out.push_back(it->second);
  }
  return out;
}

}  // namespace syncwell::providers
