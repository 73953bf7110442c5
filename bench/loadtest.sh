#!/usr/bin/env bash
# loadtest.sh — the brief's load test (SPEC S14) as one command: creates a population, starts
# `syncwell serve` (or uses a running fleet), runs `syncwell loadgen --plan ...` and prints the
# SLO report (PASS/FAIL per check, per phase and overall).
#
#   bench/loadtest.sh [options]
#     --bin PATH            syncwell binary (default: $SYNCWELL_BIN or build/release/src/app/syncwell)
#     --plan brief|smoke    (default brief)
#     --scale F             phase durations x F (default 0.05: the whole brief plan in ~5 min)
#     --users N             population size (default 2000; every 5th user PRO = 20% PRO)
#     --data-dir DIR        embedded: data dir to create the population in (default: a temp dir)
#     --postgres-url URL    fleet: create the population in its store (with --redis-url and the
#     --redis-url URL         fleet's --data-dir, whose dev key its API processes trust)
#     --targets URL[,URL]   a running fleet's API URLs (no server is started)
#     --metrics-url URL[,URL]  default: the targets (their /metrics)
#     --follow-jobs N       accepted jobs followed to their terminal state per phase (default 200)
#     --retry-share F       share of client retries reusing an Idempotency-Key (default 0.05)
#     --report-json FILE    default: $WORK/report.json (printed at the end)
#     --chart FILE          HTML chart of throughput, latency, backlog and CPU over time
#                           (default: $WORK/chart.html)
#     --serve-args "..."    extra `syncwell serve` flags (embedded only)
#     --keep                keep the work dir
# The embedded server runs with the per-user rate limit out of reach (Zipf-hot users would
# otherwise turn into 429s; the limiter stays in the path). Needs bash, coreutils, python3.
set -euo pipefail

die() { echo "loadtest: $*" >&2; exit 2; }

BIN=${SYNCWELL_BIN:-build/release/src/app/syncwell}
PLAN=brief SCALE=0.05 USERS=2000 DATA_DIR="" PG_URL="" REDIS_URL="" TARGETS="" METRICS=""
FOLLOW=200 RETRY=0.05 REPORT="" CHART="" KEEP=0
SERVE_ARGS="--set api.user_rate_per_second=1000000 --set api.user_burst=1000000"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --plan) PLAN=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    --data-dir) DATA_DIR=$2; shift 2 ;;
    --postgres-url) PG_URL=$2; shift 2 ;;
    --redis-url) REDIS_URL=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --metrics-url) METRICS=$2; shift 2 ;;
    --follow-jobs) FOLLOW=$2; shift 2 ;;
    --retry-share) RETRY=$2; shift 2 ;;
    --report-json) REPORT=$2; shift 2 ;;
    --chart) CHART=$2; shift 2 ;;
    --serve-args) SERVE_ARGS="$SERVE_ARGS $2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ -x "$BIN" ]] || die "not executable: $BIN (use --bin)"
BIN=$(realpath "$BIN")
[[ "$USERS" =~ ^[1-9][0-9]*$ ]] || die "--users must be a positive integer"
[[ -n "$PG_URL" && -z "$TARGETS" ]] && die "--postgres-url needs --targets (the running fleet)"

WORK=$(mktemp -d -t syncwell-loadtest.XXXXXX)
[[ -n "$DATA_DIR" ]] || DATA_DIR="$WORK/data"
mkdir -p "$DATA_DIR"
[[ -n "$REPORT" ]] || REPORT="$WORK/report.json"
[[ -n "$CHART" ]] || CHART="$WORK/chart.html"
SERVE_PID=""
cleanup() {
  local rc=$? i
  if [[ -n "$SERVE_PID" ]] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SERVE_PID" 2>/dev/null && kill -KILL "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
  fi
  if [[ "$KEEP" == 1 ]]; then echo "loadtest: work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Admin commands address the embedded data dir or the fleet's shared store.
STORE=(--data-dir "$DATA_DIR")
# (the fleet's --data-dir holds the dev signing key its API processes trust: pass the same one).
if [[ -n "$PG_URL" ]]; then
  [[ -n "$REDIS_URL" ]] || die "--postgres-url needs --redis-url too"
  STORE+=(--postgres-url "$PG_URL" --redis-url "$REDIS_URL")
fi

echo "=== creating $USERS users (20% PRO), a fitbit + strava connection and a dev token each" >&2
TOKENS="$WORK/tokens.txt"
"$BIN" admin population create "${STORE[@]}" --users "$USERS" --tokens-out "$TOKENS" >&2 \
  || die "admin population create failed"

if [[ -z "$TARGETS" ]]; then
  echo "=== starting syncwell serve (embedded)" >&2
  # shellcheck disable=SC2086  # SERVE_ARGS is a list of flags on purpose
  "$BIN" serve --data-dir "$DATA_DIR" --listen 127.0.0.1:0 --log-level warn $SERVE_ARGS \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVE_PID=$!
  port=""
  for _ in $(seq 300); do
    line=$(grep -m1 '^listening ' "$WORK/serve.out" 2>/dev/null || true)
    if [[ -n "$line" ]]; then port=${line##*:}; break; fi
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; die "server exited"; }
    sleep 0.1
  done
  [[ -n "$port" ]] || die "server did not report 'listening' within 30 s"
  TARGETS="http://127.0.0.1:$port"
fi
[[ -n "$METRICS" ]] || METRICS=$TARGETS

echo "=== syncwell loadgen --plan $PLAN --scale $SCALE --targets $TARGETS" >&2
rc=0
"$BIN" loadgen --plan "$PLAN" --scale "$SCALE" --targets "$TARGETS" --tokens "$TOKENS" \
  --metrics-url "$METRICS" --report-json "$REPORT" --chart "$CHART" --follow-jobs "$FOLLOW" \
  --retry-share "$RETRY" || rc=$?
if [[ -n "$SERVE_PID" ]] && ! kill -0 "$SERVE_PID" 2>/dev/null; then
  echo "loadtest: syncwell serve died during the run" >&2
  rc=1
fi
echo "=== JSON report: $REPORT ($( [[ -f "$REPORT" ]] && wc -c <"$REPORT" || echo missing) bytes)" >&2
echo "=== chart: $CHART" >&2
[[ "$KEEP" == 1 || "$REPORT" != "$WORK/report.json" ]] || echo "    (removed with the work dir; pass --keep or --report-json FILE / --chart FILE)" >&2
exit $rc
