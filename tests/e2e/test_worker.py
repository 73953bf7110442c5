"""End-to-end tests of the worker pool (SPEC S3, S4 error classes, S6; issue 3 item 7).

Every test runs `syncwell serve` with the TEST-ONLY scripted handler (`worker.handler =
script:<path>`), which never calls a provider and appends every execution to
<data dir>/executions.log (one fsync'ed JSON line per event: start / end / committed; see
src/worker/scripted_handler.hpp). The tests judge the pool from that log and from the API.
"""
import collections
import json
import os
import signal
import tempfile
import threading
import time
import unittest
import uuid

from harness import Server

JOB = {"dataType": "workout", "mode": "manual"}


def write_script(data_dir, script):
    path = os.path.join(data_dir, "script.json")
    with open(path, "w") as f:
        json.dump(script, f)
    return path


def read_log(data_dir):
    path = os.path.join(data_dir, "executions.log")
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a line torn by kill -9 mid-write (cannot happen with one write(2); tolerated)
    return out


def wait_for(pred, timeout, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def make_users(s, n, src_provider, dst_provider, prefix):
    """n users, each with a token and a (source, destination) connection pair."""
    users = []
    for i in range(n):
        u = f"{prefix}{i}"
        tok = s.user(u)
        users.append((u, tok, s.connection(u, src_provider), s.connection(u, dst_provider)))
    return users


def statuses(s, jobs):
    """{job id: status} for jobs = [(job id, token)]."""
    out = {}
    for job_id, tok in jobs:
        r = s.request("GET", "/v1/sync-jobs/" + job_id, token=tok)
        out[job_id] = r.json().get("status") if r.status == 200 else f"HTTP {r.status}"
    return out


class CrashTest(unittest.TestCase):
    def test_kill9_twice_under_load_loses_nothing_and_never_runs_a_job_twice_at_once(self):
        d = tempfile.mkdtemp(prefix="syncwell-e2e-worker-")
        script = write_script(d, {"default": {"outcomes": ["ok"], "sleep_ms": 20, "sleep_ms_max": 50}})
        # Short visibility so the messages held by a killed process come back quickly; withings has
        # no rate limit, so the limiter never defers here.
        s = Server(data_dir=d, extra=["--set", "worker.handler=script:" + script,
                                      "--set", "worker.visibility_timeout=3s",
                                      "--set", "worker.min_workers=4",
                                      "--set", "api.user_rate_per_second=0"])
        try:
            users = make_users(s, 6, "withings", "strava", "crash")
            s.start()
            accepted = []  # (job id, token)
            stop = threading.Event()

            def stream():
                i = 0
                while not stop.is_set():
                    u, tok, src, dst = users[i % len(users)]
                    i += 1
                    try:
                        r = s.request("POST", "/v1/sync-jobs",
                                      dict(JOB, sourceConnectionId=src, destinationConnectionId=dst), token=tok)
                        if r.status == 202:
                            accepted.append((r.json()["jobId"], tok))
                    except Exception:
                        time.sleep(0.05)  # server down (killed / restarting): not accepted
                    time.sleep(0.01)

            t = threading.Thread(target=stream)
            t.start()
            killed_pids = set()
            try:
                for _ in range(2):
                    time.sleep(2.5)
                    killed_pids.add(s.proc.pid)
                    s.kill9()
                    s.start()
                time.sleep(2.5)
            finally:
                stop.set()
                t.join(timeout=30)
            self.assertGreater(len(accepted), 50, "the stream should have been accepted many jobs")

            ok = wait_for(lambda: all(v == "SUCCEEDED" for v in statuses(s, accepted).values()), 60, 1.0)
            final = statuses(s, accepted)
            lost = {j: v for j, v in final.items() if v != "SUCCEEDED"}
            self.assertTrue(ok and not lost, f"{len(lost)} of {len(accepted)} jobs not SUCCEEDED: "
                                             f"{list(lost.items())[:5]}")

            events = read_log(d)
            current_pid = s.proc.pid
            open_exec = {}       # job -> pid of its running execution
            committed = collections.Counter()
            applied = collections.Counter()
            for e in events:
                j = e["job"]
                if e["ev"] == "start":
                    # No job runs twice at once: an execution may only still be "open" when its
                    # process was killed (kill -9 ends it without an end line).
                    if j in open_exec:
                        other = open_exec[j]
                        self.assertTrue(other in killed_pids and other != e["pid"],
                                        f"job {j} started in pid {e['pid']} while running in pid {other}")
                    # Applied-twice guard: a job whose SUCCEEDED status was committed never runs again.
                    self.assertEqual(committed[j], 0, f"job {j} ran again after its success was committed")
                    open_exec[j] = e["pid"]
                elif e["ev"] == "end":
                    self.assertEqual(open_exec.pop(j, None), e["pid"], f"unpaired end for {j}")
                    if e["outcome"] == "ok":
                        applied[j] += 1
                elif e["ev"] == "committed":
                    committed[j] += 1
            for job_id, _ in accepted:
                self.assertLessEqual(committed[job_id], 1, f"job {job_id} committed SUCCEEDED twice")
                self.assertGreaterEqual(applied[job_id], 1, f"job {job_id} SUCCEEDED but never applied")
            # Re-executions can only come from the crashes: a job applied twice must have had its first
            # completion in a killed process, before its status commit.
            reapplied = [j for j, n in applied.items() if n > 1]
            self.assertLessEqual(len(reapplied), 2 * 10 * 4, "too many re-executions for two crashes")
            self.assertEqual(s.queue_stats()["dead-lettered"], 0)
            self.assertNotIn(current_pid, killed_pids)
        finally:
            s.cleanup()
            import shutil
            shutil.rmtree(d, ignore_errors=True)


class RateLimitTest(unittest.TestCase):
    WINDOW_S = 2
    LIMIT = 4

    def test_burst_against_tight_budget_never_overruns_and_high_priority_goes_first(self):
        d = tempfile.mkdtemp(prefix="syncwell-e2e-worker-")
        script = write_script(d, {"default": {"outcomes": ["ok"], "sleep_ms": 10}})
        common = ["--set", f"ratelimit.limits=garmin:app:{self.WINDOW_S}s:{self.LIMIT}",
                  "--set", "api.user_rate_per_second=0"]
        s = Server(data_dir=d, extra=["--role", "api", *common])
        try:
            n = 16
            users = make_users(s, n, "garmin", "strava", "rl")
            s.start()
            jobs = {}  # job id -> (token, priority)
            for i, (u, tok, src, dst) in enumerate(users):
                prio = "high" if i % 2 == 0 else "low"
                r = s.request("POST", "/v1/sync-jobs",
                              dict(JOB, sourceConnectionId=src, destinationConnectionId=dst, priority=prio), token=tok)
                self.assertEqual(r.status, 202, r)
                jobs[r.json()["jobId"]] = (tok, prio)
            # Every job is queued before a worker runs, so the budget decides the order.
            self.assertEqual(s.stop(), 0)
            s.extra = ["--set", "worker.handler=script:" + script, "--set", "worker.min_workers=4",
                       "--set", "worker.retry_base=100ms", "--set", "worker.retry_cap=1s", *common]
            s.start()
            pairs = [(j, tok) for j, (tok, _) in jobs.items()]
            ok = wait_for(lambda: all(v == "SUCCEEDED" for v in statuses(s, pairs).values()), 50, 0.5)
            self.assertTrue(ok, statuses(s, pairs))

            events = read_log(d)
            starts = [e for e in events if e["ev"] == "start"]
            self.assertEqual(len(starts), n, "each job runs exactly once (deferrals never run the handler)")
            per_window = collections.Counter(e["granted_us"] // (self.WINDOW_S * 1_000_000) for e in starts)
            self.assertLessEqual(max(per_window.values()), self.LIMIT, f"budget overrun: {per_window}")
            self.assertGreaterEqual(len(per_window), n // self.LIMIT, "the burst must have spanned several windows")
            done = {e["job"]: e["t_us"] for e in events if e["ev"] == "committed"}
            high = [done[j] for j, (_, p) in jobs.items() if p == "high"]
            low = [done[j] for j, (_, p) in jobs.items() if p == "low"]
            self.assertLess(sum(high) / len(high), sum(low) / len(low), "high priority should finish first on average")
            m = s.metrics()
            self.assertGreater(m['syncwell_worker_jobs_total{outcome="deferred_rate_limited"}'], 0)
            self.assertEqual(m["syncwell_queue_dlq_messages"], 0)
            self.assertIn("dead-letter queue is empty", s.admin("admin", "dlq", "list").stdout)
        finally:
            s.cleanup()
            import shutil
            shutil.rmtree(d, ignore_errors=True)


class DlqAdminTest(unittest.TestCase):
    def test_permanent_failures_dead_letter_then_admin_lists_shows_and_redrives(self):
        d = tempfile.mkdtemp(prefix="syncwell-e2e-worker-")
        # A permanent failure dead-letters the job at once (SPEC S4: no retries); the second execution
        # (after the redrive) succeeds.
        script = write_script(d, {"default": {"outcomes": ["permanent", "ok"]}})
        s = Server(data_dir=d, extra=["--set", "worker.handler=script:" + script,
                                      "--set", "worker.retry_base=10ms", "--set", "worker.retry_cap=50ms"])
        try:
            (u, tok, src, dst), = make_users(s, 1, "withings", "strava", "dlq")
            s.start()
            r = s.request("POST", "/v1/sync-jobs", dict(JOB, sourceConnectionId=src, destinationConnectionId=dst),
                          token=tok)
            job_id = r.json()["jobId"]
            get = lambda: s.request("GET", "/v1/sync-jobs/" + job_id, token=tok).json()
            self.assertTrue(wait_for(lambda: get()["status"] == "FAILED", 20), get())
            self.assertIn("permanent", get()["error"])
            listing = s.admin("admin", "dlq", "list").stdout
            rows = listing.splitlines()
            self.assertTrue(rows[0].startswith("ID"), listing)
            self.assertEqual(len(rows), 2, listing)
            msg_id, group_hash, receives = rows[1].split()[:3]
            self.assertEqual(receives, "1")
            self.assertNotIn(u, listing, "users appear only hashed")
            shown = s.admin("admin", "dlq", "show", msg_id).stdout
            self.assertIn(job_id, shown)
            self.assertIn(group_hash, shown)
            self.assertNotIn(u, shown)
            self.assertEqual(shown.count("failed    receive"), 1, shown)
            self.assertEqual(s.admin("admin", "dlq", "show", "999999", check=False).returncode, 2)
            self.assertIn("redriven 1 message(s)", s.admin("admin", "dlq", "redrive", "--all").stdout)
            self.assertTrue(wait_for(lambda: get()["status"] == "SUCCEEDED", 20), get())
            self.assertIn("dead-letter queue is empty", s.admin("admin", "dlq", "list").stdout)
            stats = s.queue_stats()
            self.assertEqual((stats["dead-lettered (total)"], stats["redriven (total)"]), (1, 1))
            self.assertIn("purged 0", s.admin("admin", "dlq", "purge", "--yes").stdout)
        finally:
            s.cleanup()
            import shutil
            shutil.rmtree(d, ignore_errors=True)


class DrainTest(unittest.TestCase):
    def _run(self, sleep_ms, drain_timeout, expect_released):
        d = tempfile.mkdtemp(prefix="syncwell-e2e-worker-")
        slow = write_script(d, {"default": {"outcomes": ["ok"], "sleep_ms": sleep_ms}})
        s = Server(data_dir=d, extra=["--set", "worker.handler=script:" + slow, "--set", "worker.min_workers=4",
                                      "--set", f"worker.drain_timeout={drain_timeout}",
                                      "--set", "api.user_rate_per_second=0"])
        try:
            users = make_users(s, 4, "withings", "strava", "drain")
            s.start()
            jobs = []
            for u, tok, src, dst in users:
                r = s.request("POST", "/v1/sync-jobs", dict(JOB, sourceConnectionId=src, destinationConnectionId=dst),
                              token=tok)
                self.assertEqual(r.status, 202, r)
                jobs.append((r.json()["jobId"], tok))
            self.assertTrue(wait_for(lambda: sum(e["ev"] == "start" for e in read_log(d)) >= 4, 15, 0.05),
                            "jobs did not start")
            t0 = time.time()
            rc = s.stop(signal.SIGTERM, timeout=30)
            elapsed = time.time() - t0
            self.assertEqual(rc, 0)
            drain_s = float(drain_timeout.rstrip("s"))
            self.assertLess(elapsed, drain_s + 5, "exit must be bounded by the drain timeout")
            ends = [e for e in read_log(d) if e["ev"] == "end"]
            if expect_released:
                self.assertEqual(sorted(e["outcome"] for e in ends), ["cancelled"] * 4)
            else:
                self.assertEqual(sorted(e["outcome"] for e in ends), ["ok"] * 4)
            # Restart with fast jobs: everything completes, nothing dead-lettered.
            fast = write_script(d, {"default": {"outcomes": ["ok"], "sleep_ms": 5}})
            s.extra = ["--set", "worker.handler=script:" + fast, "--set", "api.user_rate_per_second=0"]
            s.start()
            ok = wait_for(lambda: all(v == "SUCCEEDED" for v in statuses(s, jobs).values()), 30, 0.3)
            self.assertTrue(ok, statuses(s, jobs))
            self.assertEqual(s.queue_stats()["dead-lettered"], 0)
            starts = collections.Counter(e["job"] for e in read_log(d) if e["ev"] == "start")
            for job_id, _ in jobs:
                self.assertEqual(starts[job_id], 2 if expect_released else 1)
        finally:
            s.cleanup()
            import shutil
            shutil.rmtree(d, ignore_errors=True)

    def test_sigterm_releases_jobs_that_outlive_the_drain_timeout(self):
        self._run(sleep_ms=20000, drain_timeout="1s", expect_released=True)

    def test_sigterm_lets_short_jobs_finish(self):
        self._run(sleep_ms=1500, drain_timeout="10s", expect_released=False)


if __name__ == "__main__":
    unittest.main()
