"""Fleet mode against real PostgreSQL and Redis (issue 5 items 3 and 5; SPEC S3, S6, S8).

Each test starts a local cluster (tests/e2e/cluster.py): PostgreSQL 15 and Redis 7 from Debian's
packages in a throwaway directory, the provider simulator, 2 API + 2 worker processes and a
scheduler, all on 127.0.0.1. Load is small and bounded; every wait has a deadline. What is judged:
every accepted (202) job ends SUCCEEDED or in the DLQ, and the simulator saw each record written
at most once.
"""
import threading
import time
import unittest
import uuid

from cluster import Cluster
from test_sync import wait_for

SERVER_EXTRA = ("--set", "worker.retry_base=100ms", "--set", "worker.retry_cap=2s",
                "--set", "worker.max_workers=16", "--set", "api.user_rate_per_second=0",
                "--set", "worker.visibility_timeout=10s")


class FleetHarness(unittest.TestCase):
    sim_extra = ("--no-rate-limits", "--days", "5")

    def setUp(self):
        self.cluster = Cluster(apis=2, workers=2, sim_extra=self.sim_extra, server_extra=SERVER_EXTRA)
        self.addCleanup(self.cluster.cleanup)
        self.cluster.start()
        self.sim = self.cluster.sim
        self.api_rr = 0

    # --- helpers ---
    def api(self):
        live = [a for a in self.cluster.apis if a.proc is not None]
        self.api_rr += 1
        return live[self.api_rr % len(live)]

    def user(self):
        sim_user = "su-" + uuid.uuid4().hex[:10]
        uid = "user-" + sim_user
        return sim_user, uid, self.cluster.token(uid)

    def connect(self, sim_user, token, provider):
        r = self.api().request("POST", "/v1/connections",
                               {"provider": provider, "code": self.sim.code(provider, sim_user)}, token=token)
        self.assertEqual(r.status, 201, r)
        return r.json()["connectionId"]

    def seed(self, n, src="garmin", dst="fitbit", type_="workout"):
        users = []
        for _ in range(n):
            sim_user, _, token = self.user()
            s = self.connect(sim_user, token, src)
            d = self.connect(sim_user, token, dst)
            r = self.api().request("POST", "/v1/sync-configs", {
                "sourceConnectionId": s, "destinationConnectionId": d, "dataType": type_,
                "conflictStrategy": "source_wins"}, token=token)
            self.assertEqual(r.status, 201, r)
            users.append((sim_user, token, s, d))
        return users

    def post_job(self, token, src, dst, type_="workout", api=None):
        api = api or self.api()
        r = api.request("POST", "/v1/sync-jobs", {
            "sourceConnectionId": src, "destinationConnectionId": dst, "dataType": type_,
            "mode": "manual", "priority": "high"}, token=token)
        return r

    def status(self, token, job_id):
        for _ in range(len(self.cluster.apis)):
            try:
                r = self.api().request("GET", f"/v1/sync-jobs/{job_id}", token=token)
            except OSError:
                continue
            if r.status == 200:
                return r.json()["status"]
        return None

    def wait_terminal(self, jobs, timeout):
        pending = dict(jobs)
        deadline = time.time() + timeout
        final = {}
        while pending and time.time() < deadline:
            for job_id, token in list(pending.items()):
                st = self.status(token, job_id)
                if st in ("SUCCEEDED", "FAILED"):
                    final[job_id] = st
                    del pending[job_id]
            time.sleep(0.3)
        self.assertFalse(pending, f"{len(pending)} jobs not finished: {list(pending)[:5]}")
        return final

    def dlq_job_ids(self):
        out = self.cluster.admin("admin", "dlq", "list", "--limit", "1000").stdout
        return out

    def assert_written_once(self, users, dst="fitbit", type_="workout"):
        for sim_user, *_ in users:
            for w in self.sim.written(dst, sim_user):
                if w["type"] == type_:
                    self.assertEqual(w["write_count"], 1, w)
        self.assertEqual(self.sim.stats()["totals"]["duplicates"], 0, self.sim.stats())

    def metric_sum(self, server, prefix):
        return sum(v for k, v in server.metrics().items() if k.startswith(prefix))


class FleetTest(FleetHarness):
    def test_two_apis_two_workers_sync_every_job_exactly_once(self):
        users = self.seed(12)
        jobs = {}
        for sim_user, token, s, d in users:
            r = self.post_job(token, s, d)
            self.assertEqual(r.status, 202, r)
            jobs[r.json()["jobId"]] = token
        final = self.wait_terminal(jobs, 180)
        self.assertEqual(set(final.values()), {"SUCCEEDED"}, final)
        self.assert_written_once(users)
        # Both workers took part (jobs are spread by SKIP LOCKED claims).
        delivered = [self.metric_sum(w, "syncwell_worker_jobs_total") for w in self.cluster.workers]
        self.assertTrue(all(x > 0 for x in delivered), delivered)
        # Acks went out in batches (DeleteBatch), after each job's SUCCEEDED commit.
        batches = sum(self.metric_sum(w, "syncwell_worker_ack_batches_total") for w in self.cluster.workers)
        self.assertGreater(batches, 0)
        # One process runs the fleet-wide housekeeping (shard 0's lease holder).
        leaders = [s.metrics().get("syncwell_housekeeping_leader", 0) for s in self.cluster.schedulers]
        self.assertEqual(sum(leaders), 1, leaders)

    def test_kill9_one_worker_and_one_api_mid_load(self):
        users = self.seed(16)
        jobs = {}
        lock = threading.Lock()

        def post_all(batch):
            for sim_user, token, s, d in batch:
                try:
                    r = self.post_job(token, s, d, api=self.cluster.apis[1])
                except OSError:
                    continue  # the API died under us: not accepted, nothing to check
                if r.status == 202:
                    with lock:
                        jobs[r.json()["jobId"]] = token
        first = users[:8]
        for sim_user, token, s, d in first:
            r = self.post_job(token, s, d, api=self.cluster.apis[0])
            self.assertEqual(r.status, 202, r)
            jobs[r.json()["jobId"]] = token
        poster = threading.Thread(target=post_all, args=(users[8:],))
        poster.start()
        wait_for(lambda: self.sim.stats()["totals"]["writes"] > 0, 60, 0.05)
        self.cluster.workers[0].kill9()
        self.cluster.apis[1].kill9()
        poster.join()
        # The survivors finish everything that was accepted: held messages come back after the
        # visibility timeout.
        final = self.wait_terminal(jobs, 240)
        failed = [j for j, st in final.items() if st != "SUCCEEDED"]
        if failed:  # a FAILED job must be in the DLQ (its history says why)
            dlq = self.dlq_job_ids()
            for j in failed:
                self.assertIn(j, dlq)
        self.assert_written_once(users)


class RedisOutageTest(FleetHarness):
    def test_redis_down_30s_api_answers_workers_defer_then_everything_completes(self):
        users = self.seed(8)
        self.cluster.redis.stop()
        t0 = time.time()
        jobs = {}
        for sim_user, token, s, d in users:
            r = self.post_job(token, s, d)
            self.assertEqual(r.status, 202, r)  # the API keeps accepting (state is in PostgreSQL)
            jobs[r.json()["jobId"]] = token
            g = self.api().request("GET", "/v1/sync-configs", token=token)
            self.assertEqual(g.status, 200, g)  # config from PostgreSQL, cache miss counted
        writes_before = self.sim.stats()["totals"]["writes"]
        # While Redis is down: no provider calls (the limiter is unavailable), jobs deferred, none failed.
        time.sleep(max(0.0, 30 - (time.time() - t0)))
        self.assertEqual(self.sim.stats()["totals"]["writes"], writes_before)
        for job_id, token in jobs.items():
            self.assertIn(self.status(token, job_id), ("QUEUED", "RUNNING"))
        deferred = sum(self.metric_sum(w, 'syncwell_worker_jobs_total{outcome="deferred_safe_mode"') for w in self.cluster.workers)
        self.assertGreater(deferred, 0)
        # Cache failures are counted: lookups that failed, or reads sent straight to PostgreSQL.
        cache_errors = sum(v for a in self.cluster.apis for k, v in a.metrics().items()
                           if (k.startswith("syncwell_cache_requests_total") and 'outcome="error"' in k)
                           or (k.startswith("syncwell_cache_store_fallbacks_total") and "cache_error" in k))
        self.assertGreater(cache_errors, 0)
        self.cluster.redis.start()
        final = self.wait_terminal(jobs, 180)
        self.assertEqual(set(final.values()), {"SUCCEEDED"}, final)
        self.assert_written_once(users)


class PostgresRestartTest(FleetHarness):
    def test_postgres_restart_gives_503_retry_after_and_loses_no_job(self):
        users = self.seed(8)
        jobs = {}
        for sim_user, token, s, d in users[:4]:
            r = self.post_job(token, s, d)
            self.assertEqual(r.status, 202, r)
            jobs[r.json()["jobId"]] = token
        self.cluster.pg.stop(mode="fast")
        sim_user, token, s, d = users[4]
        r = self.post_job(token, s, d)
        self.assertEqual(r.status, 503, r)
        self.assertIn("retry-after", r.headers)
        self.assertEqual(r.json()["code"], "SERVICE_UNAVAILABLE")
        g = self.api().request("GET", "/v1/sync-configs", token=token)
        self.assertIn(g.status, (200, 503), g)  # cached config may still answer; never a 500
        if g.status == 503:
            self.assertIn("retry-after", g.headers)
        self.cluster.pg.start()
        for sim_user, token, s, d in users[4:]:
            r = wait_for(lambda: (lambda x: x if x.status == 202 else None)(self.post_job(token, s, d)), 30, 0.5)
            self.assertTrue(r, "API did not recover after PostgreSQL came back")
            jobs[r.json()["jobId"]] = token
        final = self.wait_terminal(jobs, 180)
        self.assertEqual(set(final.values()), {"SUCCEEDED"}, final)
        self.assert_written_once(users)
        for a in self.cluster.apis:
            self.assertEqual(self.metric_sum(a, 'syncwell_http_requests_total{route="/v1/sync-jobs",status="500"'), 0)


class SlowProviderTest(FleetHarness):
    def test_provider_500ms_slower_degrades_gracefully(self):
        users = self.seed(6)
        self.sim.config(provider="*", latency_min_ms=500, latency_max_ms=550)
        jobs = {}
        for sim_user, token, s, d in users:
            r = self.post_job(token, s, d)
            self.assertEqual(r.status, 202, r)
            jobs[r.json()["jobId"]] = token
        final = self.wait_terminal(jobs, 240)
        self.assertEqual(set(final.values()), {"SUCCEEDED"}, final)
        self.assert_written_once(users)
        # The breaker watched every call: its state and call counts are in the workers' metrics.
        text = "".join(w.request("GET", "/metrics").text for w in self.cluster.workers)
        self.assertIn("syncwell_circuit_state", text)


if __name__ == "__main__":
    unittest.main()
