#pragma once
// A thin wrapper around SQLite's default page cache that keeps a B-tree split from making the
// next commit scan the writer's whole page-cache hash table.
//
// Why: when SQLite's balance_nonroot() swaps two pages to keep siblings in ascending order, it
// parks one page under a temporary key, the page number of the lock-byte page
// (PENDING_BYTE / page_size + 1: 1,048,577 with 1 KiB pages). The default cache (pcache1) then
// remembers that key as the largest it has held, and every commit's truncate to the database
// size, seeing a largest key a million pages away, walks every bucket of its hash table (one
// integer division each). With uuid keys a split happens in most group commits; with the
// writer's 32 MiB cache (32,768 buckets) that walk was ~11% of all CPU at a fixed 3,000 jobs/s
// (perf, session 11; BENCHMARKS.md).
//
// What: every method is SQLite's own, except that the temporary key is stored under key 0 (no
// real page has number 0, and the lock-byte page is never read), so the default cache's largest
// key stays the database's real last page and the truncate touches only the buckets above it.
//
// Process-wide: SQLite takes the page cache at initialisation, so the wrapper is installed by the
// first SqliteDb opened (before SQLite initialises) and applies to every connection afterwards.
#include <cstdint>

namespace syncwell::store {

// Installs the wrapper if SQLite has not initialised yet; true if it is (now or already) in use.
// Thread-safe; later calls only report.
bool InstallSqlitePageCache();

// How many times a page was moved to or from the temporary key (diagnostics and tests).
int64_t SqlitePageCacheTemporaryKeyMoves();

}  // namespace syncwell::store
