# Tests of src/schedule (the SPEC S7 tiered schedule); see tests/CMakeLists.txt for the tiers.
syncwell_add_test(NAME schedule_test SOURCES unit/schedule_test.cpp
                  LIBS syncwell_schedule syncwell_store LABELS unit)
syncwell_add_test(NAME store_sqlite_schedule_test SOURCES unit/store_sqlite_schedule_test.cpp
                  LIBS syncwell_store_sqlite LABELS unit)
# PostgreSQL: migrated rows get their shard, slot compare-and-set races, two schedulers on one
# database (needs scripts/with-services.sh).
syncwell_add_test(NAME schedule_pg_test SOURCES postgres/schedule_pg_test.cpp
                  LIBS syncwell_schedule syncwell_store_postgres LABELS postgres)
