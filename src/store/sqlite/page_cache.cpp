#include "store/sqlite/page_cache.hpp"

#include <sqlite3.h>

#include <atomic>
#include <mutex>

namespace syncwell::store {
namespace {

// SQLite's default (PENDING_BYTE unless a test build moved it): the lock-byte page starts here.
constexpr unsigned kPendingByte = 0x40000000u;

sqlite3_pcache_methods2 g_inner{};  // SQLite's default page cache, wrapped
std::atomic<bool> g_installed{false};
std::atomic<int64_t> g_temporary_key_moves{0};

// One cache: SQLite's own plus the key its B-tree balancer parks pages under.
struct Cache {
  sqlite3_pcache* inner;
  unsigned temporary_key;
};

Cache* Of(sqlite3_pcache* p) { return reinterpret_cast<Cache*>(p); }

unsigned Key(const Cache* c, unsigned key) { return key == c->temporary_key ? 0u : key; }

// These are called by SQLite (C): they must not throw, and they allocate with sqlite3_malloc.
int Init(void*) { return g_inner.xInit != nullptr ? g_inner.xInit(g_inner.pArg) : SQLITE_OK; }

void Shutdown(void*) {
  if (g_inner.xShutdown != nullptr) g_inner.xShutdown(g_inner.pArg);
}

sqlite3_pcache* Create(int page_size, int extra_size, int purgeable) {
  auto* c = static_cast<Cache*>(sqlite3_malloc(sizeof(Cache)));
  if (c == nullptr) return nullptr;
  c->inner = g_inner.xCreate(page_size, extra_size, purgeable);
  if (c->inner == nullptr) {
    sqlite3_free(c);
    return nullptr;
  }
  c->temporary_key = page_size > 0 ? kPendingByte / static_cast<unsigned>(page_size) + 1 : 0;
  return reinterpret_cast<sqlite3_pcache*>(c);
}

void Cachesize(sqlite3_pcache* p, int n) { g_inner.xCachesize(Of(p)->inner, n); }

int Pagecount(sqlite3_pcache* p) { return g_inner.xPagecount(Of(p)->inner); }

sqlite3_pcache_page* Fetch(sqlite3_pcache* p, unsigned key, int create) {
  return g_inner.xFetch(Of(p)->inner, Key(Of(p), key), create);
}

void Unpin(sqlite3_pcache* p, sqlite3_pcache_page* page, int discard) {
  g_inner.xUnpin(Of(p)->inner, page, discard);
}

void Rekey(sqlite3_pcache* p, sqlite3_pcache_page* page, unsigned old_key, unsigned new_key) {
  Cache* c = Of(p);
  if (old_key == c->temporary_key || new_key == c->temporary_key) {
    g_temporary_key_moves.fetch_add(1, std::memory_order_relaxed);
  }
  g_inner.xRekey(c->inner, page, Key(c, old_key), Key(c, new_key));
}

// A page stored at key 0 stands for the temporary key, so a truncate that reaches that key drops
// it as the default cache would (SQLite parks a page only for one balance step and never
// truncates in between, so this finds nothing; it keeps the wrapper exact whatever the caller).
void Truncate(sqlite3_pcache* p, unsigned limit) {
  Cache* c = Of(p);
  if (limit <= c->temporary_key) {
    if (sqlite3_pcache_page* parked = g_inner.xFetch(c->inner, 0, 0)) {
      g_inner.xUnpin(c->inner, parked, 1);
    }
  }
  g_inner.xTruncate(c->inner, limit);
}

void Destroy(sqlite3_pcache* p) {
  Cache* c = Of(p);
  g_inner.xDestroy(c->inner);
  sqlite3_free(c);
}

void Shrink(sqlite3_pcache* p) {
  if (g_inner.xShrink != nullptr) g_inner.xShrink(Of(p)->inner);
}

}  // namespace

bool InstallSqlitePageCache() {
  static std::once_flag once;
  std::call_once(once, [] {
    sqlite3_pcache_methods2 def{};
    // Both fail (SQLITE_MISUSE) once SQLite has initialised; the default cache then stays.
    if (sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &def) != SQLITE_OK || def.xCreate == nullptr ||
        def.xFetch == nullptr || def.xRekey == nullptr || def.xTruncate == nullptr ||
        def.xDestroy == nullptr || def.xUnpin == nullptr || def.xCachesize == nullptr ||
        def.xPagecount == nullptr) {
      return;
    }
    g_inner = def;
    static const sqlite3_pcache_methods2 kMethods = {
        1,      nullptr, &Init,  &Shutdown, &Create,  &Cachesize, &Pagecount,
        &Fetch, &Unpin,  &Rekey, &Truncate, &Destroy, &Shrink,
    };
    if (sqlite3_config(SQLITE_CONFIG_PCACHE2, &kMethods) == SQLITE_OK) g_installed.store(true);
  });
  return g_installed.load();
}

int64_t SqlitePageCacheTemporaryKeyMoves() {
  return g_temporary_key_moves.load(std::memory_order_relaxed);
}

}  // namespace syncwell::store
