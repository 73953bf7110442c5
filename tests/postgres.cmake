# PostgreSQL-labelled tests: run by scripts/test.sh under scripts/with-services.sh.
syncwell_add_test(NAME pg_basics_test SOURCES postgres/pg_basics_test.cpp LIBS syncwell_store_postgres LABELS postgres)
