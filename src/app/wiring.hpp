#pragma once
// Construction helpers shared by the subcommands (composition root only).
#include <memory>
#include <string>

#include "config/settings.hpp"
#include "core/clock.hpp"
#include "core/result.hpp"
#include "ratelimit/in_process_limiter.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace syncwell::app {

// Refuses scale-out settings until those adapters exist, with a clear message.
Status CheckEmbeddedOnly(const config::Settings& s);
// Creates the data directory (0700) if needed.
Status EnsureDataDir(const std::string& dir);
// Opens (and migrates) the embedded store.
Result<std::unique_ptr<store::SqliteStore>> OpenStore(const config::Settings& s,
                                                      const Clock& clock);

// The in-process limiter's settings: the SPEC S6 defaults, each provider named in
// ratelimit.limits replaced by its entries, and every other known provider present without
// limits (so the limiter knows every provider a connection can have).
Result<ratelimit::InProcessLimiterSettings> LimiterSettings(const config::Settings& s);

}  // namespace syncwell::app
