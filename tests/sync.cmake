# Tests of src/sync (see tests/CMakeLists.txt for the tiers).
syncwell_add_test(NAME sync_conflict_test SOURCES unit/sync_conflict_test.cpp LIBS syncwell_sync LABELS unit)
syncwell_add_test(NAME sync_circuit_breaker_test SOURCES unit/sync_circuit_breaker_test.cpp LIBS syncwell_sync LABELS unit)
syncwell_add_test(NAME sync_engine_test SOURCES unit/sync_engine_test.cpp LIBS syncwell_sync syncwell_store_sqlite LABELS unit)
