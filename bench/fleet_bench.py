#!/usr/bin/env python3
"""fleet_bench.py -- the fleet on PostgreSQL + Redis, measured next to the embedded server in the
same run (the host is noisy: compare within a run). A benchmark: prints figures, asserts nothing.

    SYNCWELL_BIN=build/release/src/app/syncwell python3 bench/fleet_bench.py [--users 200]
        [--intake-seconds 15] [--jobs-per-user 1] [--apis 2] [--workers 2]
        [--sustain-seconds 20] [--sustain-rate 400]

Phases (PostgreSQL durable: fsync on, synchronous_commit on):
 1. First syncs: a local cluster (tests/e2e/cluster.py) with the provider simulator (latency 0,
    no rate limits), USERS users each with a Garmin -> Fitbit workout config connected over OAuth
    through the API; JOBS_PER_USER manual jobs each are posted while no worker runs, then WORKERS
    worker processes start and the time until every job is terminal gives jobs/s (includes the
    workers' start-up: a smoke figure).
 2. Sustained end to end: with the workers running, `syncwell loadgen` posts jobs to every API
    process at SUSTAIN_RATE/s each for SUSTAIN_SECONDS; the phase ends when the workers have
    succeeded as many jobs as were accepted. Prints jobs/s from the first post to the last
    success, how long the backlog took to drain after posting ended (near 0: the fleet kept up)
    and the CPU each kind of process (PostgreSQL, API, worker, scheduler, simulator) spent per
    job, from /proc.
 3. Intake: `syncwell loadgen --rate 0` POST /v1/sync-jobs against each API process at once
    (one loadgen per API, the same token file), summed; workers stopped, so this is the API and
    PostgreSQL alone.
 4. Baseline: the embedded server (`serve --role api`, SQLite) with the same users, the same
    loadgen settings, one process.
Prints a table and one JSON line.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import cluster  # noqa: E402
import harness  # noqa: E402

BODY = ('{"sourceConnectionId":"{{conn_src}}","destinationConnectionId":"{{conn_dst}}",'
        '"dataType":"workout","mode":"manual"}')
QUIET = ("--set", "server.access_log=false", "--log-level", "warn", "--set", "api.user_rate_per_second=0")
# The simulator runs without rate limits; the server's limiter keeps the real SPEC S6 quotas unless
# told otherwise (Garmin's 100 requests/min per app alone caps first syncs at ~1.5 jobs/s), so the
# bench sizes them like the demo does: it measures SyncWell, not the providers' quotas.
QUOTAS = ("--set", "ratelimit.limits=strava:app:15m:1000000,garmin:app:1m:1000000,"
          "withings:app:1m:1000000,fitbit:user:1h:1000")


def loadgen(targets, tokens, seconds, workdir, name, rate=0):
    """One `syncwell loadgen` per target at once; `rate` is each one's fixed rate (0: saturation)."""
    procs = []
    for i, t in enumerate(targets):
        out = open(os.path.join(workdir, f"{name}{i}.txt"), "w")
        procs.append((subprocess.Popen(
            [harness.BIN, "loadgen", "--target", t, "--method", "POST", "--path", "/v1/sync-jobs",
             "--tokens", tokens, "--random-tokens", "--body", BODY, "--rate", str(rate),
             "--duration", f"{seconds}s", "--connections", "32", "--timeout", "10s"],
            stdout=out, stderr=subprocess.STDOUT), out))
    results = []
    for p, out in procs:
        p.wait(timeout=seconds + 120)
        out.close()
        with open(out.name) as f:
            lines = [ln for ln in f.read().splitlines() if ln.startswith("{")]
        results.append(json.loads(lines[-1]))
    return results


def cpu_by_pid(pids):
    """User + system CPU seconds of each of these processes so far (/proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return out


class CpuMeter:
    """CPU seconds per process kind between start() and stop(): the processes alive at stop()
    (PostgreSQL backends come and go), each counted from start() or from 0 if it started since.
    A process that exited meanwhile is not counted (its CPU is lost with it)."""

    def __init__(self, c):
        self.c = c

    def start(self):
        self.t0 = {k: cpu_by_pid(v) for k, v in process_kinds(self.c).items()}

    def stop(self):
        out = {}
        for k, pids in process_kinds(self.c).items():
            now = cpu_by_pid(pids)
            out[k] = sum(v - self.t0.get(k, {}).get(pid, 0.0) for pid, v in now.items())
        return out


def children(ppid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def process_kinds(c):
    """The cluster's process ids by kind (PostgreSQL: the postmaster and its children now)."""
    pg = c.pg.pid()
    return {"postgres": [pg, *children(pg)], "api": [a.proc.pid for a in c.apis],
            "worker": [w.proc.pid for w in c.workers], "scheduler": [s.proc.pid for s in c.schedulers],
            "simulator": [c.sim.proc.pid]}


def psql(c, sql):
    return subprocess.run(["psql", "-X", "-q", "-d", c.pg.url, "-c", sql], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def succeeded(workers):
    return sum(w.metrics().get('syncwell_worker_jobs_total{outcome="succeeded"}', 0) for w in workers)


def sustain(c, args, tokens_path, work, out):
    """Phase 2: every API process gets `--sustain-rate` job posts per second for
    `--sustain-seconds` while the workers run; the phase ends when the workers have succeeded as
    many jobs as were accepted (or made no progress for 30 s). Jobs/s end to end = jobs succeeded
    / time from the first post to the last success; CPU per job per process kind from /proc."""
    total = args.sustain_rate * len(c.apis)
    print(f"== sustained end to end: {total}/s posted for {args.sustain_seconds}s, {args.workers} workers",
          file=sys.stderr)
    if args.pg_statements:
        psql(c, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()")
    meter = CpuMeter(c)
    meter.start()
    base = succeeded(c.workers)
    t0 = time.time()
    res = loadgen([f"http://127.0.0.1:{a.port}" for a in c.apis], tokens_path, args.sustain_seconds, work,
                  "sustain", rate=args.sustain_rate)
    posted_s = time.time() - t0
    accepted = sum(r["status_2xx"] for r in res)
    done, progress_at = 0, time.time()
    while done < accepted and time.time() - progress_at < 30:
        time.sleep(0.1)
        now = succeeded(c.workers) - base
        if now != done:
            done, progress_at = now, time.time()
    span = (progress_at if done < accepted else time.time()) - t0
    cpu = meter.stop()
    out["sustain_sim_duplicates"] = c.sim.stats()["totals"]["duplicates"]  # phases 1 and 2
    if args.pg_statements:
        print(f"== PostgreSQL statements during the sustained phase, per succeeded job ({int(done)})",
              file=sys.stderr)
        print(psql(c, f"""SELECT round((total_exec_time / {max(1, done)})::numeric, 4) AS ms_per_job,
                                 round((calls::numeric / {max(1, done)}), 2) AS calls_per_job,
                                 round((total_exec_time / greatest(calls, 1))::numeric, 4) AS ms_per_call,
                                 left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
                            FROM pg_stat_statements WHERE toplevel
                           ORDER BY total_exec_time DESC LIMIT 25"""), file=sys.stderr)
    out.update({"sustain_target_per_s": total, "sustain_seconds": args.sustain_seconds,
                "sustain_accepted": accepted, "sustain_rejected": sum(r["errors_total"] for r in res),
                "sustain_succeeded": int(done), "sustain_span_s": round(span, 2),
                "sustain_drain_s": round(span - posted_s, 2),
                "sustain_jobs_per_s": round(done / span, 1) if span > 0 else 0.0,
                "sustain_intake_p50_ms": max(r["latency_ms"]["p50"] for r in res),
                "sustain_intake_p99_ms": max(r["latency_ms"]["p99"] for r in res),
                "sustain_cpu_ms_per_job": {k: round(1000 * v / max(1, done), 3) for k, v in cpu.items()}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--jobs-per-user", type=int, default=1)
    ap.add_argument("--intake-seconds", type=int, default=15)
    ap.add_argument("--apis", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sustain-seconds", type=int, default=20,
                    help="phase 2 length (0: skip); jobs are posted at --sustain-rate per API process")
    ap.add_argument("--sustain-rate", type=int, default=400, help="job posts per second per API process")
    ap.add_argument("--pg-statements", action="store_true",
                    help="diagnosis: load pg_stat_statements and print the top statements of phase 2")
    ap.add_argument("--no-fsync", action="store_true",
                    help="PostgreSQL with fsync/synchronous_commit off (diagnosis: is it the disk?)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="syncwell-fleet-bench-")
    out = {"kind": "fleet_bench", "users": args.users, "apis": args.apis, "workers": args.workers}

    out["postgres_durable"] = not args.no_fsync
    if args.pg_statements:
        os.environ["SYNCWELL_CLUSTER_PG_OPTS"] = ("-c shared_preload_libraries=pg_stat_statements "
                                                 "-c pg_stat_statements.track=all")
    c = cluster.Cluster(apis=args.apis, workers=0, schedulers=1, durable=not args.no_fsync,
                        sim_extra=("--no-rate-limits", "--days", "5"),
                        server_extra=(*QUIET, *QUOTAS, "--set", "worker.max_workers=64",
                                      "--set", "worker.min_workers=8"))
    try:
        c.start()
        print(f"== seeding {args.users} users through the API (OAuth with the simulator)", file=sys.stderr)
        tokens_path = os.path.join(work, "fleet-tokens.txt")
        users = []
        with open(tokens_path, "w") as tf:
            for i in range(args.users):
                sim_user = f"bench{i}"
                token = c.token(f"user-{sim_user}", "PRO")
                api = c.apis[i % len(c.apis)]
                conns = []
                for p in ("garmin", "fitbit"):
                    r = api.request("POST", "/v1/connections", {"provider": p, "code": c.sim.code(p, sim_user)},
                                    token=token)
                    assert r.status == 201, r
                    conns.append(r.json()["connectionId"])
                r = api.request("POST", "/v1/sync-configs", {
                    "sourceConnectionId": conns[0], "destinationConnectionId": conns[1], "dataType": "workout",
                    "conflictStrategy": "source_wins"}, token=token)
                assert r.status == 201, r
                users.append((token, conns[0], conns[1]))
                tf.write(f"{token} {conns[0]} {conns[1]}\n")

        # -- 1. end to end
        jobs = []
        for k in range(args.jobs_per_user):
            for i, (token, s, d) in enumerate(users):
                r = c.apis[i % len(c.apis)].request("POST", "/v1/sync-jobs", {
                    "sourceConnectionId": s, "destinationConnectionId": d, "dataType": "workout",
                    "mode": "manual", "priority": "high"}, token=token)
                assert r.status == 202, r
                jobs.append((token, r.json()["jobId"]))
        print(f"== end to end: {len(jobs)} jobs queued; starting {args.workers} workers", file=sys.stderr)
        t0 = time.time()
        for i in range(args.workers):
            c.workers.append(c.server("worker", f"worker{i + 1}").start())
        pending = list(jobs)
        statuses = {}
        while pending and time.time() - t0 < 900:
            still = []
            for token, job in pending:
                r = c.apis[0].request("GET", f"/v1/sync-jobs/{job}", token=token)
                st = r.json().get("status") if r.status == 200 else None
                if st in ("SUCCEEDED", "FAILED"):
                    statuses[st] = statuses.get(st, 0) + 1
                else:
                    still.append((token, job))
            pending = still
            if pending:
                time.sleep(0.2)
        e2e_s = time.time() - t0
        dups = c.sim.stats()["totals"]["duplicates"]
        out.update({"e2e_jobs": len(jobs), "e2e_seconds": round(e2e_s, 2),
                    "e2e_jobs_per_s": round((len(jobs) - len(pending)) / e2e_s, 1),
                    "e2e_statuses": statuses, "e2e_unfinished": len(pending), "sim_duplicates": dups})

        # -- 2. sustained end to end: loadgen posts jobs at a fixed rate while the workers run
        if args.sustain_seconds > 0:
            sustain(c, args, tokens_path, work, out)
        for w in c.workers:
            w.cleanup()
        c.workers = []

        # -- 3. fleet intake
        print(f"== fleet intake: {args.apis} API processes, {args.intake_seconds}s saturation", file=sys.stderr)
        meter = CpuMeter(c)
        meter.start()
        res = loadgen([f"http://127.0.0.1:{a.port}" for a in c.apis], tokens_path, args.intake_seconds, work,
                      "fleet")
        accepted = max(1, sum(r["status_2xx"] for r in res))
        out["fleet_intake_cpu_ms_per_job"] = {k: round(1000 * v / accepted, 3) for k, v in meter.stop().items()
                                              if k in ("postgres", "api")}
        out["fleet_intake_2xx_per_s"] = round(sum(r["achieved_rate_2xx"] for r in res), 1)
        out["fleet_intake_per_api"] = [round(r["achieved_rate_2xx"], 1) for r in res]
        out["fleet_p99_ms"] = max(r["latency_ms"]["p99"] for r in res)
        out["fleet_non2xx"] = sum(r["errors_total"] for r in res)
    finally:
        c.cleanup()

    # -- 4. embedded baseline (same users and tokens file shape)
    print("== embedded baseline: one `serve --role api` on SQLite", file=sys.stderr)
    data = os.path.join(work, "embedded")
    s = harness.Server(data_dir=data, extra=["--role", "api", *QUIET])
    tokens_path = os.path.join(work, "embedded-tokens.txt")
    with open(tokens_path, "w") as tf:
        for i in range(args.users):
            u = f"user-bench{i}"
            harness.run("admin", "user", "create", "--user", u, "--tier", "PRO", data_dir=data)
            src = harness.run("admin", "connection", "create", "--user", u, "--provider", "garmin",
                              "--access-token", "x", data_dir=data).stdout.strip()
            dst = harness.run("admin", "connection", "create", "--user", u, "--provider", "fitbit",
                              "--access-token", "x", data_dir=data).stdout.strip()
            tok = harness.run("token", "--user", u, "--tier", "PRO", data_dir=data).stdout.strip()
            tf.write(f"{tok} {src} {dst}\n")
    s.start()
    try:
        res = loadgen([f"http://127.0.0.1:{s.port}"], tokens_path, args.intake_seconds, work, "embedded")
        out["embedded_intake_2xx_per_s"] = round(res[0]["achieved_rate_2xx"], 1)
        out["embedded_p99_ms"] = res[0]["latency_ms"]["p99"]
    finally:
        s.cleanup()
    out["fleet_vs_embedded"] = round(out["fleet_intake_2xx_per_s"] / max(1.0, out["embedded_intake_2xx_per_s"]), 2)

    print(f"\n{'end to end (' + str(args.workers) + ' workers, sim latency 0)':45} "
          f"{out['e2e_jobs_per_s']:>10} jobs/s   ({out['e2e_jobs']} jobs in {out['e2e_seconds']} s, "
          f"{out['e2e_statuses']}, sim duplicates {out['sim_duplicates']})")
    if "sustain_jobs_per_s" in out:
        print(f"{'sustained end to end (' + str(out['sustain_target_per_s']) + '/s posted)':45} "
              f"{out['sustain_jobs_per_s']:>10} jobs/s   ({out['sustain_succeeded']} of {out['sustain_accepted']} "
              f"accepted jobs succeeded in {out['sustain_span_s']} s, {out['sustain_drain_s']} s after posting "
              f"ended; {out['sustain_rejected']} posts not accepted; intake p50 {out['sustain_intake_p50_ms']} ms, "
              f"p99 {out['sustain_intake_p99_ms']} ms; sim duplicates {out['sustain_sim_duplicates']})")
        print(f"{'  CPU ms per succeeded job':45} " +
              ", ".join(f"{k} {v}" for k, v in out["sustain_cpu_ms_per_job"].items()))
    print(f"{'fleet intake (' + str(args.apis) + ' API processes)':45} {out['fleet_intake_2xx_per_s']:>10} req/s 2xx"
          f"   per API {out['fleet_intake_per_api']}, p99 {out['fleet_p99_ms']} ms")
    print(f"{'  CPU ms per accepted job':45} " +
          ", ".join(f"{k} {v}" for k, v in out["fleet_intake_cpu_ms_per_job"].items()))
    print(f"{'embedded intake (baseline, 1 process)':45} {out['embedded_intake_2xx_per_s']:>10} req/s 2xx"
          f"   p99 {out['embedded_p99_ms']} ms")
    print(f"{'ratio fleet / embedded':45} {out['fleet_vs_embedded']:>10}")
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
