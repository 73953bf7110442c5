# postgres_store tests
# PostgresStore: the Store conformance suite plus multi-process races (needs scripts/with-services.sh).
syncwell_add_test(NAME store_pg_conformance_test SOURCES postgres/store_pg_conformance_test.cpp LIBS syncwell_store_postgres LABELS postgres conformance)
