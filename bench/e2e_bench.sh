#!/usr/bin/env bash
# e2e_bench.sh — end-to-end sync jobs/s on this machine, everything co-located (issue 4 item 7).
#
#   bench/e2e_bench.sh [SYNCWELL_BIN]
#
# Each run is `syncwell demo --bench`: the provider simulator and `syncwell serve` (embedded) as
# child processes, USERS users seeded through the API (4 OAuth connections, 4 sync configs each),
# then one burst of 4 x USERS manual jobs that read and write real records through the simulator,
# timed from the first 202 to the last job finished; the server's CPU time over that span (CPU per
# job), its RSS, and the invariant check (written = expected, 0 duplicates, 0 lost). The driver
# reads no job while jobs run: it waits on the worker's finished-delivery counters, then reads
# every job once; the span ends at the latest job's updatedAt, and "sustained" is the rate at
# which the middle 80% of the jobs finished (without the burst's ramp and tail). Runs at
# simulator latency 0 (the engine's own cost: the baseline of the same run) and at a realistic
# 50-300 ms per provider call. A second round then posts the same jobs again: every cursor is set
# and nothing is new, so it measures incremental syncs, the steady state of the S7 schedule.
#
# INCREMENTAL_LATENCY=50ms-300ms adds a run whose first round is at latency 0 (fast set-up) and
# whose incremental round is at that latency, for more users than a slow first round allows;
# INCREMENTAL_ROUNDS=N (default 1) posts every job N times in that round (one burst, N x 4 x USERS
# jobs), for a steady state longer than the ramp at a burst's start and end; INCREMENTAL_NEW_DATA=P
# (default 0) gives P% of the users a new source record per config before each round (no webhook),
# so about P% of that round's jobs read, hydrate and write a record instead of finding nothing.
#
# Runs with provider latency use TARGET_BACKLOG_SLOW (default 1) as the server's
# worker.target_backlog_per_worker: its default of 10 visible messages per worker sizes the pool
# for ~10 job durations of queueing, which a burst of a few thousand slow jobs spends waiting.
#
# Environment: USERS=250  WORKERS_FAST=64  WORKERS_SLOW=1024  LATENCIES="0ms-0ms 50ms-300ms"
#              TARGET_BACKLOG_SLOW=1
#              INCREMENTAL_LATENCY= (unset: no extra run)  INCREMENTAL_ROUNDS=1
#              INCREMENTAL_NEW_DATA=0
set -euo pipefail
BIN=${1:-${SYNCWELL_BIN:-build/release/src/app/syncwell}}
USERS=${USERS:-250}
WORKERS_FAST=${WORKERS_FAST:-64}
WORKERS_SLOW=${WORKERS_SLOW:-1024}
LATENCIES=${LATENCIES:-"0ms-0ms 50ms-300ms"}
WORK=$(mktemp -d /tmp/syncwell-e2e-bench-XXXXXX)
KEEP=0  # a run whose invariants did not hold keeps its data directory and logs for diagnosis
trap '[[ $KEEP == 1 ]] && echo "kept $WORK (a run did not hold)" >&2 || rm -rf "$WORK"' EXIT
echo "machine: $(nproc) cores, $(uname -r); $(date -u +%FT%TZ); users $USERS" >&2
for lat in $LATENCIES; do
  workers=$WORKERS_SLOW
  backlog=(--target-backlog "${TARGET_BACKLOG_SLOW:-1}")
  [[ "$lat" == "0ms-0ms" ]] && workers=$WORKERS_FAST && backlog=()
  out="$WORK/run-$lat.txt"
  "$BIN" demo --bench --users "$USERS" --latency "$lat" --workers "$workers" "${backlog[@]}" \
    --data-dir "$WORK/demo-$lat" --timeout 1800 >"$out" 2>&1 || true
  grep -E "^bench( incremental)?:|^invariants|^records|^already|^duplicates|^manual jobs|^  (mismatch|failed):" "$out"
  if grep -q "VIOLATED" "$out"; then KEEP=1; fi
done
if [[ -n "${INCREMENTAL_LATENCY:-}" ]]; then
  out="$WORK/run-incremental.txt"
  "$BIN" demo --bench --users "$USERS" --latency 0ms-0ms --incremental-latency "$INCREMENTAL_LATENCY" \
    --workers "$WORKERS_SLOW" --target-backlog "${TARGET_BACKLOG_SLOW:-1}" \
    --incremental-rounds "${INCREMENTAL_ROUNDS:-1}" --incremental-new-data "${INCREMENTAL_NEW_DATA:-0}" \
    --data-dir "$WORK/demo-incremental" --timeout 1800 >"$out" 2>&1 || true
  grep -E "^bench( incremental)?:|^invariants|^records|^already|^duplicates|^manual jobs|^  (mismatch|failed):" "$out"
  if grep -q "VIOLATED" "$out"; then KEEP=1; fi
fi
