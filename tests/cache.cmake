# cache tests (SPEC S8): the Cache and Counter contracts, CachingStore/CacheAside, Redis adapters.
syncwell_add_test(NAME cache_conformance_test SOURCES conformance/cache_conformance_test.cpp
                  LIBS syncwell_cache syncwell_sync LABELS conformance)
syncwell_add_test(NAME caching_store_test SOURCES unit/caching_store_test.cpp
                  LIBS syncwell_cache LABELS unit)
# support/services.hpp includes libpq-fe.h (headers only: nothing of it is linked in).
syncwell_add_test(NAME cache_redis_test SOURCES redis/cache_redis_test.cpp
                  LIBS syncwell_cache_redis PkgConfig::LIBPQ LABELS redis)
