"""End-to-end tests of the SPEC S7 tiered schedule: `syncwell serve` (embedded, role all) with
short intervals via --set, users and sync configs created through the admin commands and the API,
the noop worker handler (no provider is called). Scheduled jobs must appear, and every processed
slot must have produced exactly one job, whose id derives from (config id, slot).
"""
import hashlib
import os
import sqlite3
import subprocess
import time
import unittest

from harness import BIN, Server


def slot_job_id(config_id, slot_ms):
    """src/schedule/scheduler.cpp Scheduler::SlotJobId."""
    return "job_sch_" + hashlib.sha256(f"{config_id}/{slot_ms}".encode()).hexdigest()[:24]


def coalesced_only(cfg, slots, ids):
    """slots: remembered slots, newest first. A slot without its own job is fine only when it was
    coalesced, i.e. an older remembered slot has a job (that job was still QUEUED when the
    slot came due; slow builds hit this). At least one slot has its job."""
    have = [slot_job_id(cfg, t) in ids for t in slots]
    if not any(have):
        return False
    return all(h or any(have[k + 1:]) or k == len(slots) - 1 for k, h in enumerate(have))


def wait_for(pred, timeout, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


class ScheduleTest(unittest.TestCase):
    def start(self, *extra):
        s = Server(extra=["--set", "worker.handler=noop", "--set", "api.user_rate_per_second=0",
                          *extra]).start()
        self.addCleanup(s.cleanup)
        return s

    def user_with_config(self, server, user, tier):
        token = server.user(user, tier)
        src = server.connection(user, "strava")
        dst = server.connection(user, "fitbit")
        r = server.request("POST", "/v1/sync-configs", {
            "sourceConnectionId": src, "destinationConnectionId": dst, "dataType": "workout",
            "conflictStrategy": "source_wins"}, token=token)
        self.assertEqual(r.status, 201, r)
        return token, r.json()["configId"]

    def test_pro_user_gets_one_scheduled_job_per_slot(self):
        server = self.start("--set", "scheduler.tick=200ms", "--set", "scheduler.pro_interval=2s")
        token, cfg = self.user_with_config(server, "pro-alice", "PRO")
        free_token, free_cfg = self.user_with_config(server, "free-bob", "FREE")
        server.user("pro-nobody", "PRO")  # no config: placed and advanced, never a job

        def enqueued():
            return server.metrics().get("syncwell_scheduler_jobs_enqueued_total", 0) >= 3
        self.assertTrue(wait_for(enqueued, 30), server.metrics())
        m = server.metrics()
        self.assertIn("syncwell_scheduler_due_users", m)
        self.assertIn("syncwell_scheduler_lag_seconds", m)
        self.assertGreater(m.get("syncwell_scheduler_tick_seconds_count", 0), 0)
        self.assertEqual(m.get("syncwell_scheduler_jobs_merged_total", 0), 0)
        self.assertEqual(m.get("syncwell_queue_deduplicated_total", 0), 0)
        self.assertEqual(server.stop(), 0)

        db = sqlite3.connect(os.path.join(server.data_dir, "syncwell.db"))
        jobs = db.execute("SELECT id, user_id, mode, priority, status FROM jobs").fetchall()
        (slots,) = db.execute("SELECT recent_slots FROM users WHERE id = 'pro-alice'").fetchone()
        (free_next,) = db.execute("SELECT next_sync_at FROM users WHERE id = 'free-bob'").fetchone()
        (nobody_next,) = db.execute(
            "SELECT next_sync_at FROM users WHERE id = 'pro-nobody'").fetchone()
        db.close()

        scheduled = [j for j in jobs if j[2] == "scheduled"]
        self.assertEqual(len(scheduled), len(jobs), jobs)  # nothing else created jobs
        self.assertTrue(all(j[1] == "pro-alice" for j in scheduled), scheduled)  # FREE: a day
        self.assertTrue(all(j[3] == "medium" for j in scheduled), scheduled)
        self.assertGreater(free_next, 0)  # placed within its day
        self.assertGreater(nobody_next, 0)
        # Every processed slot (the user row remembers the last four) has exactly its job, and
        # there is no job for any other slot.
        slot_list = [int(s) for s in slots.split(",") if s]
        self.assertGreaterEqual(len(slot_list), 3)
        ids = sorted(j[0] for j in scheduled)
        self.assertEqual(len(ids), len(set(ids)))
        expected = sorted(slot_job_id(cfg, s) for s in slot_list)
        if len(ids) <= 4:
            self.assertTrue(set(ids) <= set(expected), (expected, ids))
        self.assertTrue(coalesced_only(cfg, slot_list, ids), (expected, ids))
        # Slots are ~2 s apart (+-10%).
        gaps = [a - b for a, b in zip(slot_list, slot_list[1:])]
        self.assertTrue(all(1800 <= g <= 2200 for g in gaps), gaps)

        # After a restart the schedule goes on from the stored slots, still one job per slot.
        server.start()
        newest = slot_list[0]
        # The newest slot that has its own job (a coalesced slot has none).
        newest_job = next(slot_job_id(cfg, t) for t in slot_list if slot_job_id(cfg, t) in ids)

        def more():
            return server.metrics().get("syncwell_scheduler_jobs_enqueued_total", 0) >= 1
        self.assertTrue(wait_for(more, 30))
        def succeeded():
            r = server.request("GET", f"/v1/sync-jobs/{newest_job}", token=token)
            return r.json() if r.status == 200 and r.json()["status"] == "SUCCEEDED" else None
        job = wait_for(succeeded, 30)
        self.assertTrue(job, "the newest slot's job did not succeed")
        self.assertEqual(job["mode"], "scheduled")
        self.assertEqual(server.stop(), 0)
        db = sqlite3.connect(os.path.join(server.data_dir, "syncwell.db"))
        total, distinct = db.execute("SELECT count(*), count(DISTINCT id) FROM jobs").fetchone()
        (slots,) = db.execute("SELECT recent_slots FROM users WHERE id = 'pro-alice'").fetchone()
        db.close()
        later = [int(s) for s in slots.split(",") if s]
        self.assertEqual(total, distinct)
        self.assertGreater(total, len(ids))
        self.assertGreater(later[0], newest)

    def test_scheduler_disabled_creates_no_jobs(self):
        server = self.start("--set", "scheduler.enabled=false", "--set", "scheduler.tick=200ms",
                            "--set", "scheduler.pro_interval=1s")
        self.user_with_config(server, "pro-carol", "PRO")
        time.sleep(2.5)
        m = server.metrics()
        self.assertNotIn("syncwell_scheduler_jobs_enqueued_total", m)
        self.assertEqual(m.get("syncwell_queue_enqueued_total", 0), 0)

    def test_bad_scheduler_settings_stop_the_start_with_exit_2(self):
        for bad, needle in ((["--set", "scheduler.tick=0s"], "scheduler.tick"),
                            (["--set", "scheduler.pro_interval=soon"], "scheduler.pro_interval"),
                            (["--set", "scheduler.batch_size=0"], "scheduler.batch_size"),
                            (["--set", "scheduler.tick=1m", "--set", "scheduler.pro_interval=30s"],
                             "scheduler.tick")):
            p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir",
                                "/nonexistent-syncwell-e2e", *bad],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, (bad, p.stdout, p.stderr))
            self.assertIn(needle, p.stderr, bad)


class FleetScheduleTest(unittest.TestCase):
    """Two scheduler processes on one PostgreSQL (tests/e2e/cluster.py) split the 64 shards by
    lease; while they join, rebalance and tick, no slot gets two jobs."""

    def test_two_schedulers_never_create_two_jobs_for_one_slot(self):
        from cluster import Cluster  # needs PostgreSQL + Redis binaries
        cluster = Cluster(apis=1, workers=1, schedulers=2, server_extra=[
            "--set", "worker.handler=noop", "--set", "api.user_rate_per_second=0",
            # 4 s between a user's slots: the check below needs most users to have had at most
            # the 4 slots the store remembers by the time both schedulers are stopped, also on a
            # loaded machine under ASan (2 s let 5+ slots pass there: flaky).
            "--set", "scheduler.tick=200ms", "--set", "scheduler.pro_interval=4s"])
        self.addCleanup(cluster.cleanup)
        cluster.start()
        api = cluster.apis[0]
        configs = {}
        for i in range(6):
            user = f"fleet-pro-{i}"
            token = cluster.token(user, "PRO")
            conns = []
            for provider in ("strava", "fitbit"):
                conns.append(cluster.admin("admin", "connection", "create", "--user", user,
                                           "--provider", provider, "--access-token",
                                           "tok").stdout.strip())
            r = api.request("POST", "/v1/sync-configs", {
                "sourceConnectionId": conns[0], "destinationConnectionId": conns[1],
                "dataType": "workout", "conflictStrategy": "source_wins"}, token=token)
            self.assertEqual(r.status, 201, r)
            configs[user] = r.json()["configId"]

        def enqueued():
            return sum(s.metrics().get("syncwell_scheduler_jobs_enqueued_total", 0)
                       for s in cluster.schedulers)

        def both_own_shards():
            return all(s.metrics().get("syncwell_scheduler_shards_owned", 0) > 0
                       for s in cluster.schedulers)
        self.assertTrue(wait_for(both_own_shards, 30))
        self.assertTrue(wait_for(lambda: enqueued() >= 12, 60), enqueued())
        for s in cluster.schedulers:
            self.assertEqual(s.stop(), 0)

        def sql(query):
            p = subprocess.run([os.path.join(cluster.pg.bindir, "psql"), "-h", "127.0.0.1",
                                "-p", str(cluster.pg.port), "-U", "postgres", "-At", "-F", "|",
                                "-c", query], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            return [line.split("|") for line in p.stdout.splitlines() if line]
        jobs = sql("SELECT user_id, id FROM syncwell.jobs WHERE mode = 'scheduled'")
        slots = dict(sql("SELECT id, recent_slots FROM syncwell.users WHERE id LIKE 'fleet-pro-%'"))
        self.assertGreaterEqual(len(jobs), 12)
        checked = 0
        for user, cfg in configs.items():
            ids = sorted(j[1] for j in jobs if j[0] == user)
            recent = [int(x) for x in slots[user].split(",") if x]
            expected = sorted(slot_job_id(cfg, t) for t in recent)
            # No job outside the processed slots (four remembered). A slot may lack its job: the
            # previous one was still QUEUED (coalesced), or the config was not yet visible to the
            # scheduler's cached read (skipped); the single-process test checks that part.
            if len(ids) <= 4:
                self.assertTrue(set(ids) <= set(expected), (user, expected, ids))
                checked += 1
        self.assertGreaterEqual(checked, 3)


if __name__ == "__main__":
    unittest.main()
