#!/usr/bin/env bash
# intake_bench.sh — how fast does `syncwell serve` take in POST /v1/sync-jobs, compared with the
# practical HTTP ceiling of this machine measured in the same run (the host is noisy, ±25%)?
#
#   bench/intake_bench.sh [SYNCWELL_BIN [BASELINE_SERVER_BIN]]
#
# (a) baseline: syncwell_baseline_server, `syncwell loadgen --rate 0` GET saturation;
# (b) intake: a fresh data dir with USERS users (every 5th PRO) and a fitbit + strava connection
#     each, one JWT per user, then `syncwell serve`, POST /v1/sync-jobs saturation and then a fixed
#     FIXED_RATE req/s (coordinated-omission-correct latency);
# (c) server VmRSS / VmHWM after each phase; (d) a summary table against the goals.
#
# Environment (durations as loadgen accepts them: 10s, 500ms, 2m):
#   SYNCWELL_BIN, BASELINE_BIN       binaries (or the arguments above); BASELINE_BIN defaults to
#                                    the syncwell_baseline_server next to or near SYNCWELL_BIN
#   BASELINE_DURATION=10s  BASELINE_THREADS=2 (serve's default is one io thread per core)
#   USERS=200  CONNECTIONS=64  LOADGEN_THREADS=1  TIMEOUT=10s
#   WARMUP_DURATION=3s WARMUP_RATE=300 (0s skips)  SAT_DURATION=15s
#   FIXED_RATE=3000  FIXED_DURATION=30s
#   STATUS_DURATION=5s  GET /v1/sync-jobs/{id} saturation (one user's job: the route clients
#                    poll), reported beside intake (0s skips)
#   SERVE_LOG_LEVEL=warn  `syncwell serve --log-level` (info logs a line per request to the work dir)
#   SERVE_ARGS="..."  extra flags for `syncwell serve` (e.g. "--set server.io_threads=1")
#   KEEP_WORK=1       keep the work dir (data dir, outputs, server logs)
#   STRICT=1          exit 1 when a goal is missed (default: exit 0 once the run completed)
# Needs bash, coreutils and python3 only. Every process it starts is stopped on exit.
set -euo pipefail

die() { echo "intake_bench: $*" >&2; exit 2; }

SYNCWELL_BIN=${1:-${SYNCWELL_BIN:-}}
BASELINE_BIN=${2:-${BASELINE_BIN:-}}
[[ -n "$SYNCWELL_BIN" ]] || die "usage: $0 SYNCWELL_BIN [BASELINE_SERVER_BIN] (or set SYNCWELL_BIN)"
[[ -x "$SYNCWELL_BIN" ]] || die "not executable: $SYNCWELL_BIN"
SYNCWELL_BIN=$(realpath "$SYNCWELL_BIN")
if [[ -z "$BASELINE_BIN" ]]; then
  d=$(dirname "$SYNCWELL_BIN")
  for c in "$d/syncwell_baseline_server" "$d/bench/syncwell_baseline_server" \
           "$d/../bench/syncwell_baseline_server"; do
    [[ -x "$c" ]] && { BASELINE_BIN=$c; break; }
  done
fi
[[ -n "$BASELINE_BIN" && -x "$BASELINE_BIN" ]] || die "baseline server not found: pass it or set BASELINE_BIN"
BASELINE_BIN=$(realpath "$BASELINE_BIN")
command -v python3 >/dev/null || die "python3 is needed"

BASELINE_DURATION=${BASELINE_DURATION:-10s}
BASELINE_THREADS=${BASELINE_THREADS:-2}
USERS=${USERS:-200}
CONNECTIONS=${CONNECTIONS:-64}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
TIMEOUT=${TIMEOUT:-10s}
WARMUP_DURATION=${WARMUP_DURATION:-3s}
WARMUP_RATE=${WARMUP_RATE:-300}
SAT_DURATION=${SAT_DURATION:-15s}
FIXED_RATE=${FIXED_RATE:-3000}
FIXED_DURATION=${FIXED_DURATION:-30s}
STATUS_DURATION=${STATUS_DURATION:-5s}
# The per-user request limit (default 50/s) would turn a few hundred synthetic users at
# saturation into 429s; the limiter stays in the path but is set out of reach. --role api
# measures intake alone (with the default role `all` the worker pool also drains the queue on the
# same SQLite writer; pass SERVE_ARGS to measure that).
SERVE_ARGS=${SERVE_ARGS:---role api --set api.user_rate_per_second=1000000 --set api.user_burst=1000000}
SERVE_LOG_LEVEL=${SERVE_LOG_LEVEL:-warn}
KEEP_WORK=${KEEP_WORK:-0}
STRICT=${STRICT:-0}
[[ "$USERS" =~ ^[1-9][0-9]*$ ]] || die "USERS must be a positive integer"

WORK=$(mktemp -d -t syncwell-intake-bench.XXXXXX)
DATA_DIR="$WORK/data"
mkdir -p "$DATA_DIR"
PIDS=()

stop_pid() {  # stop_pid PID: TERM, up to 5 s grace, then KILL
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  local pid
  for pid in "${PIDS[@]:-}"; do [[ -n "$pid" ]] && stop_pid "$pid"; done
  if [[ "$KEEP_WORK" == 1 ]]; then
    echo "intake_bench: work dir kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_listening PID FILE: prints PORT from the "listening HOST:PORT" line the server writes.
wait_listening() {
  local pid=$1 file=$2 i line
  for i in $(seq 300); do  # 30 s
    line=$(grep -m1 '^listening ' "$file" 2>/dev/null || true)
    if [[ -n "$line" ]]; then echo "${line##*:}"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "intake_bench: server exited; its output:" >&2; cat "$file" >&2; return 1; }
    sleep 0.1
  done
  echo "intake_bench: server did not report 'listening' within 30 s" >&2
  return 1
}

# seconds DURATION: whole seconds (rounded up) for the outer `timeout` guard
seconds() {
  python3 -c 'import re,sys,math
m=re.fullmatch(r"([0-9.]+)(ms|s|m|min|h)?",sys.argv[1]); v=float(m.group(1)); u=m.group(2) or "s"
print(math.ceil(v*{"ms":0.001,"s":1,"m":60,"min":60,"h":3600}[u]))' "$1"
}

# run_loadgen NAME ARGS...: runs `syncwell loadgen`, keeps its report in $WORK/NAME.txt and its
# JSON line in $WORK/NAME.json. Guarded by `timeout` (duration + drain + margin).
run_loadgen() {
  local name=$1; shift
  local dur=$1; shift
  local guard=$(( $(seconds "$dur") + 40 ))
  echo "--- $name: syncwell loadgen --duration $dur $*" >&2
  local rc=0
  timeout -k 5 "$guard" "$SYNCWELL_BIN" loadgen --duration "$dur" --timeout "$TIMEOUT" \
    --connections "$CONNECTIONS" --threads "$LOADGEN_THREADS" "$@" >"$WORK/$name.txt" 2>"$WORK/$name.err" || rc=$?
  sed '$d' "$WORK/$name.txt" >&2  # the readable report (the last line is the JSON)
  tail -n 1 "$WORK/$name.txt" >"$WORK/$name.json"
  if ! python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["kind"]=="loadgen_result"' \
      "$WORK/$name.json" 2>/dev/null; then
    echo "intake_bench: loadgen ($name) produced no result (exit $rc):" >&2
    cat "$WORK/$name.txt" "$WORK/$name.err" >&2
    return 1
  fi
}

# rss PID NAME: VmRSS and VmHWM in MB into $WORK/NAME.rss
rss() {
  local pid=$1 name=$2
  awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{printf "{\"rss_mb\":%.1f,\"hwm_mb\":%.1f}\n", r/1024, h/1024}' \
    "/proc/$pid/status" >"$WORK/$name.rss"
  echo "    server memory after $name: $(cat "$WORK/$name.rss")" >&2
}

# snap PID PORT NAME: the server's CPU time (/proc/PID/stat) and its SQLite writer counters
# (/metrics) into $WORK/NAME.snap, so the summary can say where a phase's time went per job.
snap() {
  python3 - "$1" "$2" "$WORK/$3.snap" <<'PY'
import json, os, sys, urllib.request
pid, port, out = sys.argv[1], sys.argv[2], sys.argv[3]
with open(f"/proc/{pid}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
tick = os.sysconf("SC_CLK_TCK")
snap = {"cpu_s": (int(fields[11]) + int(fields[12])) / tick}
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
for line in text.splitlines():
    if line.startswith("syncwell_sqlite_"):
        name, value = line.rsplit(" ", 1)
        snap[name] = float(value)
json.dump(snap, open(out, "w"))
PY
}

# ---------------------------------------------------------------- (a) baseline
echo "=== (a) baseline: $BASELINE_BIN, $BASELINE_THREADS thread(s)" >&2
"$BASELINE_BIN" --port 0 --threads "$BASELINE_THREADS" >"$WORK/baseline_server.out" 2>&1 &
BASE_PID=$!
PIDS+=("$BASE_PID")
BASE_PORT=$(wait_listening "$BASE_PID" "$WORK/baseline_server.out")
run_loadgen baseline "$BASELINE_DURATION" --target "http://127.0.0.1:$BASE_PORT" --method GET --path /healthz --rate 0
rss "$BASE_PID" baseline
stop_pid "$BASE_PID"

# ---------------------------------------------------------------- (b) intake setup
echo "=== (b) creating $USERS users with two connections each in $DATA_DIR" >&2
TOKENS="$WORK/tokens.txt"
: >"$TOKENS"
for i in $(seq 1 "$USERS"); do
  user="u$i"
  tier=FREE
  (( i % 5 == 0 )) && tier=PRO  # 20% PRO as in SPEC S1
  "$SYNCWELL_BIN" admin user create --data-dir "$DATA_DIR" --user "$user" --tier "$tier" >/dev/null \
    || die "admin user create failed for $user"
  src=$("$SYNCWELL_BIN" admin connection create --data-dir "$DATA_DIR" --user "$user" \
          --provider fitbit --access-token x | tail -n 1)
  dst=$("$SYNCWELL_BIN" admin connection create --data-dir "$DATA_DIR" --user "$user" \
          --provider strava --access-token x | tail -n 1)
  tok=$("$SYNCWELL_BIN" token --data-dir "$DATA_DIR" --user "$user" | tail -n 1)
  [[ -n "$src" && -n "$dst" && -n "$tok" ]] || die "setup produced an empty id or token for $user"
  printf '%s %s %s\n' "$tok" "$src" "$dst" >>"$TOKENS"
  (( i % 50 == 0 )) && echo "    $i users" >&2
done
BODY='{"sourceConnectionId":"{{conn_src}}","destinationConnectionId":"{{conn_dst}}","dataType":"workout","mode":"manual"}'

echo "=== starting syncwell serve" >&2
# shellcheck disable=SC2086  # SERVE_ARGS is a list of flags on purpose
"$SYNCWELL_BIN" serve --data-dir "$DATA_DIR" --listen 127.0.0.1:0 --log-level "$SERVE_LOG_LEVEL" $SERVE_ARGS \
  >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVE_PID=$!
PIDS+=("$SERVE_PID")
SERVE_PORT=$(wait_listening "$SERVE_PID" "$WORK/serve.out")
rss "$SERVE_PID" startup
POST=(--target "http://127.0.0.1:$SERVE_PORT" --method POST --path /v1/sync-jobs --tokens "$TOKENS" --body "$BODY")

if [[ "$(seconds "$WARMUP_DURATION")" != 0 ]]; then
  run_loadgen warmup "$WARMUP_DURATION" "${POST[@]}" --rate "$WARMUP_RATE"
fi
snap "$SERVE_PID" "$SERVE_PORT" before_saturation
run_loadgen saturation "$SAT_DURATION" "${POST[@]}" --rate 0
snap "$SERVE_PID" "$SERVE_PORT" after_saturation
rss "$SERVE_PID" saturation
kill -0 "$SERVE_PID" 2>/dev/null || die "syncwell serve died during the saturation phase"
run_loadgen fixed "$FIXED_DURATION" "${POST[@]}" --rate "$FIXED_RATE"
snap "$SERVE_PID" "$SERVE_PORT" after_fixed
rss "$SERVE_PID" fixed
kill -0 "$SERVE_PID" 2>/dev/null || die "syncwell serve died during the fixed-rate phase"
if [[ "$(seconds "$STATUS_DURATION")" != 0 ]]; then
  # One job of the first user, read back as fast as the server answers.
  read -r tok src dst <"$TOKENS"
  job=$(python3 - "$SERVE_PORT" "$tok" "$src" "$dst" <<'PY'
import json, sys, urllib.request
port, tok, src, dst = sys.argv[1:]
body = json.dumps({"sourceConnectionId": src, "destinationConnectionId": dst,
                   "dataType": "workout", "mode": "manual"}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/sync-jobs", data=body, method="POST",
                             headers={"Authorization": f"Bearer {tok}", "Idempotency-Key": "status-probe",
                                      "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=10))["jobId"])
PY
  ) || die "could not create the job the status phase reads"
  printf '%s\n' "$tok" >"$WORK/status_token.txt"
  snap "$SERVE_PID" "$SERVE_PORT" before_status
  run_loadgen status "$STATUS_DURATION" --target "http://127.0.0.1:$SERVE_PORT" --method GET \
    --path "/v1/sync-jobs/$job" --tokens "$WORK/status_token.txt" --no-idempotency-key --rate 0
  snap "$SERVE_PID" "$SERVE_PORT" after_status
fi

# ---------------------------------------------------------------- (d) summary
python3 - "$WORK" "$FIXED_RATE" "$STRICT" <<'PY'
import json, os, sys
work, fixed_rate, strict = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
def load(name, ext="json"):
    with open(f"{work}/{name}.{ext}") as f:
        return json.load(f)
base, sat, fix = load("baseline"), load("saturation"), load("fixed")
mem = {p: load(p, "rss") for p in ("startup", "saturation", "fixed")}
ratio = sat["achieved_rate_2xx"] / base["achieved_rate"] if base["achieved_rate"] else 0.0
lat = fix["latency_ms"]
peak_rss = max(m["hwm_mb"] for m in mem.values())
def errs(r):
    e = r["errors"]
    parts = [f"{k}={v}" for k, v in e.items() if v]
    return f'{r["errors_total"]} / {r["scheduled"]}' + (f' ({", ".join(parts)})' if parts else "")
goals = [
    ("intake/baseline >= 40%", ratio >= 0.40),
    (f"P99 at {fixed_rate:.0f}/s < 10 ms", lat["p99"] < 10.0),
    (f"achieved >= 98% of {fixed_rate:.0f}/s (2xx)", fix["achieved_rate_2xx"] >= 0.98 * fixed_rate),
    ("server RSS (HWM) < 150 MB", peak_rss < 150.0),
]
rows = [
    ("baseline GET saturation", f'{base["achieved_rate"]:,.0f} req/s  p50 {base["latency_ms"]["p50"]:.2f} ms  p99 {base["latency_ms"]["p99"]:.2f} ms'),
    ("intake POST saturation", f'{sat["achieved_rate"]:,.0f} req/s ({sat["achieved_rate_2xx"]:,.0f} 2xx)  p50 {sat["latency_ms"]["p50"]:.2f} ms  p99 {sat["latency_ms"]["p99"]:.2f} ms'),
    ("ratio intake/baseline", f"{ratio:.1%}  (goal >= 40%)"),
    (f"fixed {fixed_rate:.0f}/s achieved", f'{fix["achieved_rate"]:,.0f} req/s ({fix["achieved_rate_2xx"]:,.0f} 2xx)'),
    (f"fixed latency (ms)", f'p50 {lat["p50"]:.2f}  p95 {lat["p95"]:.2f}  p99 {lat["p99"]:.2f}  max {lat["max"]:.2f}  (goal p99 < 10)'),
    ("errors saturation", errs(sat)),
    ("errors fixed", errs(fix)),
    ("server RSS startup", f'{mem["startup"]["rss_mb"]:.1f} MB'),
    ("server RSS after saturation", f'{mem["saturation"]["rss_mb"]:.1f} MB (HWM {mem["saturation"]["hwm_mb"]:.1f})'),
    ("server RSS after fixed", f'{mem["fixed"]["rss_mb"]:.1f} MB (HWM {mem["fixed"]["hwm_mb"]:.1f})  (goal < 150)'),
]
# Where the server's time went per accepted job, from the counter deltas over each phase.
def cost(before, after, done):
    b, a = load(before, "snap"), load(after, "snap")
    d = lambda k: a.get(k, 0.0) - b.get(k, 0.0)
    us = lambda k: d(k) / done * 1e6 if done else 0.0
    commits = d("syncwell_sqlite_group_commits_total")
    per_commit = d("syncwell_sqlite_writes_total") / commits if commits else 0.0
    # The writer's checkpoint time is counted after every batch (mostly a no-op check); the
    # checkpoints that copy pages are what stall requests, so average over those.
    ckpts = d("syncwell_sqlite_checkpoints_total")
    avg_ckpt_ms = d("syncwell_sqlite_writer_checkpoint_seconds_total") / ckpts * 1e3 if ckpts else 0.0
    return (f'CPU {us("cpu_s"):.0f} us/job; writer {us("syncwell_sqlite_writer_closures_seconds_total"):.0f} closures '
            f'+ {us("syncwell_sqlite_writer_commit_seconds_total"):.0f} commit '
            f'+ {us("syncwell_sqlite_writer_checkpoint_seconds_total"):.0f} checkpoint us/job, '
            f'{per_commit:.1f} writes/commit; checkpointer {us("syncwell_sqlite_background_checkpoint_seconds_total"):.0f} us/job; '
            f'{ckpts:.0f} writer checkpoints, {avg_ckpt_ms:.1f} ms each')
rows.insert(3, ("saturation server time", cost("before_saturation", "after_saturation", sat["status_2xx"])))
rows.insert(6, ("fixed server time", cost("after_saturation", "after_fixed", fix["status_2xx"])))
if os.path.exists(f"{work}/status.json"):
    st = load("status")
    b, a = load("before_status", "snap"), load("after_status", "snap")
    per = (a["cpu_s"] - b["cpu_s"]) / st["status_2xx"] * 1e6 if st["status_2xx"] else 0.0
    rows.insert(7, ("job status GET saturation",
                    f'{st["achieved_rate"]:,.0f} req/s ({st["achieved_rate_2xx"]:,.0f} 2xx)  p50 {st["latency_ms"]["p50"]:.2f} ms  '
                    f'p99 {st["latency_ms"]["p99"]:.2f} ms  CPU {per:.0f} us/request; errors {errs(st)}'))
w = max(len(k) for k, _ in rows)
print("\n=== intake benchmark summary")
for k, v in rows:
    print(f"  {k:<{w}}  {v}")
print("  goals: " + "  ".join(f'{"PASS" if ok else "FAIL"} {name}' for name, ok in goals))
summary = {"kind": "intake_bench", "baseline_rate": base["achieved_rate"],
           "intake_saturation_rate": sat["achieved_rate"], "intake_saturation_rate_2xx": sat["achieved_rate_2xx"],
           "ratio": ratio, "fixed_rate": fixed_rate, "fixed_achieved_rate": fix["achieved_rate"],
           "fixed_latency_ms": lat, "errors_saturation": sat["errors_total"], "errors_fixed": fix["errors_total"],
           "rss_mb": {k: v for k, v in mem.items()}, "goals": {name: ok for name, ok in goals}}
if os.path.exists(f"{work}/status.json"):
    st = load("status")
    summary["status_get_rate_2xx"] = st["achieved_rate_2xx"]
    summary["status_get_latency_ms"] = st["latency_ms"]
print(json.dumps(summary, separators=(",", ":")))
sys.exit(1 if strict and not all(ok for _, ok in goals) else 0)
PY
