#pragma once
// Small helpers shared by the PostgresStore translation units (postgres_store.cpp,
// postgres_store_sync_state.cpp). Internal to this folder.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "store/postgres/pg.hpp"

namespace syncwell::store::pg_query {

inline int64_t Ms(TimePoint t) { return ToUnixMillis(t); }

inline Error NotFound(std::string_view what, const std::string& id) {
  return MakeError(Errc::kNotFound, std::string(what) + " " + id + " not found");
}

using pg::IntArray;
using pg::TextArray;

// Every row of `r` read with `read`.
template <class T, class ReadRow>
Result<std::vector<T>> All(Result<pg::PgResult> r, ReadRow read) {
  if (!r) return r.error();
  std::vector<T> out;
  out.reserve(static_cast<size_t>(r->rows()));
  for (int i = 0; i < r->rows(); ++i) out.push_back(read(*r, i));
  return out;
}

// The first row of `r` read with `read`; `not_found` when there is none.
template <class T, class ReadRow>
Result<T> One(Result<pg::PgResult> r, ReadRow read, Error not_found) {
  if (!r) return r.error();
  if (r->rows() == 0) return not_found;
  return read(*r, 0);
}

// How a write's result becomes the call's status.
using Check = std::function<Status(const pg::PgResult&)>;

// Any result is fine (upserts, deletes of whatever is there).
inline Status AnyResult(const pg::PgResult&) { return {}; }

}  // namespace syncwell::store::pg_query
