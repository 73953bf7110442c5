# Redis-labelled tests: run by scripts/test.sh under scripts/with-services.sh (they fail, never
# skip, without SYNCWELL_TEST_REDIS_URL).
syncwell_add_test(NAME redis_client_test SOURCES redis/redis_client_test.cpp LIBS syncwell_redis LABELS redis)
syncwell_add_test(NAME rate_limiter_redis_test SOURCES redis/rate_limiter_redis_test.cpp LIBS syncwell_ratelimit_redis LABELS redis)
# The same RateLimiter contract against the in-process adapter (no services needed).
syncwell_add_test(NAME rate_limiter_conformance_test SOURCES conformance/rate_limiter_conformance_test.cpp LIBS syncwell_ratelimit LABELS conformance)
