// Runs the Store contract (store_suite.hpp) against the in-memory fake and the SQLite adapter
// (also with its row cache on, as `syncwell serve` runs it).
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include "conformance/store_suite.hpp"
#include "fakes/in_memory_store.hpp"
#include "store/sqlite/sqlite_job_queue.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace syncwell::conformance {
namespace {

class FakeHarness {
 public:
  explicit FakeHarness(ManualClock& clock) : fake_(clock) {}
  store::Store& store() { return fake_; }
  queue::JobQueue& queue() { return fake_; }

 private:
  fakes::InMemoryStore fake_;
};

std::string MakeTempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "syncwell-store-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

class SqliteHarness {
 public:
  explicit SqliteHarness(ManualClock& clock, size_t row_cache_entries = 0)
      : dir_(MakeTempDir()), store_(store::SqliteSettings{.data_dir = dir_}, clock) {
    store_.EnableRowCache(row_cache_entries);
    if (auto st = store_.Start(); !st.ok()) throw std::runtime_error(st.error().message);
    queue_.emplace(store_);
  }
  ~SqliteHarness() {
    queue_.reset();
    store_.Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  store::Store& store() { return store_; }
  queue::JobQueue& queue() { return *queue_; }

 private:
  std::string dir_;
  store::SqliteStore store_;
  std::optional<store::SqliteJobQueue> queue_;
};

// SqliteStore::EnableRowCache: unfinished jobs and cursors served from memory.
class SqliteRowCacheHarness : public SqliteHarness {
 public:
  explicit SqliteRowCacheHarness(ManualClock& clock) : SqliteHarness(clock, 1024) {}
};

using Impls = ::testing::Types<FakeHarness, SqliteHarness, SqliteRowCacheHarness>;

class HarnessNames {
 public:
  template <class T>
  static std::string GetName(int) {
    if constexpr (std::is_same_v<T, FakeHarness>) return "InMemory";
    if constexpr (std::is_same_v<T, SqliteRowCacheHarness>) return "SqliteRowCache";
    return "Sqlite";
  }
};

}  // namespace

INSTANTIATE_TYPED_TEST_SUITE_P(Store, StoreConformance, Impls, HarnessNames);

}  // namespace syncwell::conformance
