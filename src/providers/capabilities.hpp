#pragma once
// Static provider capability table: which data types each provider can read (as a source) and
// write (as a destination). The API rejects impossible syncs up front (422 CAPABILITY_MISMATCH),
// e.g. steps into Strava. Connectors (later issue) must agree with this table.
#include <string>
#include <string_view>
#include <vector>

namespace syncwell::providers {

inline constexpr std::string_view kDataTypes[] = {"workout", "sleep_session", "steps", "weight"};

struct ProviderInfo {
  std::string_view name;          // stable id used in the API and store: "fitbit"
  std::string_view display_name;  // "Fitbit"
  std::vector<std::string_view> reads;
  std::vector<std::string_view> writes;
  bool cloud = true;  // false: on-device (Apple Health, Health Connect)
};

const std::vector<ProviderInfo>& AllProviders();
const ProviderInfo* FindProvider(std::string_view name);
bool IsDataType(std::string_view t);
bool CanRead(std::string_view provider, std::string_view data_type);
bool CanWrite(std::string_view provider, std::string_view data_type);

}  // namespace syncwell::providers
