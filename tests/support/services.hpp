#pragma once
// Access to the throwaway PostgreSQL and Redis that scripts/with-services.sh starts for the test
// run (scripts/test.sh runs ctest under it). Tests labelled `postgres` / `redis` FAIL (never skip)
// when the variables are missing, so CI can never pass without having run them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>

#include "store/postgres/pg.hpp"

namespace syncwell::test_support {

inline std::string RequireEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    throw std::runtime_error(std::string(name) +
                             " is not set: run the test under scripts/with-services.sh "
                             "(scripts/test.sh does)");
  }
  return v;
}

inline std::string PostgresUrl() { return RequireEnv("SYNCWELL_TEST_POSTGRES_URL"); }
inline std::string RedisUrl() { return RequireEnv("SYNCWELL_TEST_REDIS_URL"); }

// A unique name per call (process id + counter + random), safe across parallel test processes.
inline std::string UniqueName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  static const uint32_t salt = std::random_device{}();
  return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(salt % 100000) + "_" +
         std::to_string(counter++);
}

// A fresh schema in the test PostgreSQL with every migration applied; dropped on destruction.
class PgTestSchema {
 public:
  explicit PgTestSchema(size_t pool_size = 8) {
    store::pg::PgPoolSettings s;
    s.url = PostgresUrl();
    s.schema = UniqueName("t");
    s.size = pool_size;
    pool_ = std::make_unique<store::pg::PgPool>(s);
    auto n = store::pg::Migrate(*pool_, store::pg::AllMigrations());
    if (!n) throw std::runtime_error("migrate: " + n.error().message);
  }
  ~PgTestSchema() {
    std::string drop =
        "DROP SCHEMA IF EXISTS " + store::pg::QuoteIdent(pool_->settings().schema) + " CASCADE";
    (void)pool_->Exec(drop);
  }
  PgTestSchema(const PgTestSchema&) = delete;
  PgTestSchema& operator=(const PgTestSchema&) = delete;
  store::pg::PgPool& pool() { return *pool_; }

 private:
  std::unique_ptr<store::pg::PgPool> pool_;
};

}  // namespace syncwell::test_support
