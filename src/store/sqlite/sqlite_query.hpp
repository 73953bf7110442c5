#pragma once
// Small helpers shared by the SqliteStore translation units (sqlite_store.cpp,
// sqlite_sync_state.cpp). Internal to this folder.
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "store/sqlite/sqlite_db.hpp"

namespace syncwell::store::sqlite_query {

inline int64_t Ms(TimePoint t) { return ToUnixMillis(t); }
inline TimePoint OrNow(TimePoint t, TimePoint now) { return t == TimePoint{} ? now : t; }

inline Error NotFound(std::string_view what, const std::string& id) {
  return MakeError(Errc::kNotFound, std::string(what) + " " + id + " not found");
}

// Reads at most one row with `read`; kNotFound when there is none.
template <class T, class Bind, class ReadRow>
Result<T> QueryOne(sqlite3* db, const std::string& sql, Bind bind, ReadRow read, Error not_found) {
  Stmt s(db, sql);
  bind(s);
  auto row = s.Step();
  if (!row.ok()) return row.error();
  if (!*row) return not_found;
  return read(s);
}

template <class T, class Bind, class ReadRow>
Result<std::vector<T>> QueryAll(sqlite3* db, const std::string& sql, Bind bind, ReadRow read) {
  Stmt s(db, sql);
  bind(s);
  std::vector<T> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.error();
    if (!*row) return out;
    out.push_back(read(s));
  }
}

}  // namespace syncwell::store::sqlite_query
