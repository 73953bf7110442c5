#!/usr/bin/env bash
# pg_queue_bench.sh — the PostgreSQL queue's full cycle (send + receive 10 + delete, durable
# commits) next to a raw-SQL SKIP LOCKED baseline and the embedded SQLite adapter, in one run.
#
#   bench/pg_queue_bench.sh [BUILD_DIR=build/release] [JOBS=20000] [THREADS=8]
#
# Starts a throwaway PostgreSQL 15 with its durable defaults (fsync, synchronous_commit on) on
# 127.0.0.1 (scripts/with-services.sh), runs syncwell_pg_queue_bench (PostgresJobQueue, then the
# raw-SQL baseline, on the same server), then syncwell_queue_bench's cycle for SQLite (FULL,
# 10,000 groups). A benchmark: prints figures, asserts nothing; the host is noisy (compare
# within a run).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/release}
JOBS=${2:-20000}
THREADS=${3:-8}
[[ -x "$BUILD/bench/syncwell_pg_queue_bench" ]] || { echo "build $BUILD first (bench targets)" >&2; exit 2; }
echo "== PostgreSQL (durable): PostgresJobQueue vs raw SQL" >&2
SYNCWELL_PG_DURABLE=1 scripts/with-services.sh bash -c \
  "\"$BUILD/bench/syncwell_pg_queue_bench\" \"\$SYNCWELL_TEST_POSTGRES_URL\" $JOBS $THREADS"
echo "== SQLite (synchronous FULL): SqliteJobQueue, same machine, same run" >&2
"$BUILD/bench/syncwell_queue_bench" --seconds 10 --groups 10000 --sync FULL --skip-backlog \
  --baseline-seconds 5
