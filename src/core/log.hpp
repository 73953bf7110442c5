#pragma once
// Logging facade: one JSON object per line on stderr. Domain code logs through these functions
// only, so the sink can change without touching callers. Thread-safe (one write(2) per line).
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace syncwell::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLevel(Level level);
Level GetLevel();
bool ParseLevel(std::string_view s, Level* out);

using Field = std::pair<std::string_view, std::string>;
// Writes {"ts":..., "level":..., "msg":..., fields...}. Field values are JSON-escaped strings.
void Write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});
// Writes a pre-built JSON object line (used by the access log, which builds its own line).
void WriteRaw(std::string_view json_line);

inline void Info(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kInfo, m, f);
}
inline void Warn(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kWarn, m, f);
}
inline void Error(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kError, m, f);
}
inline void Debug(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kDebug, m, f);
}

// Appends s to out as JSON string contents (without quotes).
void AppendJsonEscaped(std::string& out, std::string_view s);

}  // namespace syncwell::log
