#!/usr/bin/env bash
# schedule_bench.sh — one scheduler tick turning due users into jobs (SPEC S7), one user at a time
# against scheduler.concurrency users at a time, on the embedded SQLite store (synchronous FULL)
# and on a throwaway durable PostgreSQL 15 (scripts/with-services.sh), alternating the levels.
#
#   bench/schedule_bench.sh [BUILD_DIR=build/release] [USERS=5000] [CONFIGS=2] [LEVELS=1,8,1,8]
#
# A benchmark: prints figures, asserts nothing; the host is noisy (compare within a run).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/release}
USERS=${2:-5000}
CONFIGS=${3:-2}
LEVELS=${4:-1,8,1,8}
BIN="$BUILD/bench/syncwell_schedule_bench"
[[ -x "$BIN" ]] || { echo "build $BUILD first (bench targets)" >&2; exit 2; }
DIR=$(mktemp -d -t syncwell-schedule-bench.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
echo "== SQLite (synchronous FULL), $USERS users x $CONFIGS configs" >&2
"$BIN" "sqlite:$DIR" "$USERS" "$CONFIGS" "$LEVELS" 2> >(grep -v '"level"' >&2)
echo "== PostgreSQL (durable), same run" >&2
SYNCWELL_PG_DURABLE=1 scripts/with-services.sh bash -c \
  "\"$BIN\" \"\$SYNCWELL_TEST_POSTGRES_URL\" $USERS $CONFIGS $LEVELS"
