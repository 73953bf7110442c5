"""End-to-end tests of the sync engine against the provider simulator (SPEC S4, S5, S7, S13;
issue 4 item 6). Real processes over HTTP: `syncwell provider-sim` and `syncwell serve`
(embedded, worker handler = the sync engine, every provider pointed at the simulator).

Judged from the simulator's side: what it holds and how often each record was written.
"""
import os
import re
import signal
import time
import unittest
import uuid

from harness import Server, Sim

# Provider pairs the capability table allows among the cloud connectors (src/providers/
# capabilities.cpp): source reads the type, destination writes it.
READS = {
    "strava": {"workout"},
    "garmin": {"workout", "sleep_session", "steps", "weight"},
    "fitbit": {"workout", "sleep_session", "steps", "weight"},
    "withings": {"workout", "sleep_session", "steps", "weight"},
}
WRITES = {
    "strava": {"workout"},
    "fitbit": {"workout", "sleep_session", "weight"},
    "withings": {"weight"},
}
PAIRS = [(s, d, t) for s in READS for d in WRITES if s != d for t in sorted(READS[s] & WRITES[d])]
# The server's capability table may be narrower than the connectors'; those pairs answer 422.


def wait_for(pred, timeout, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


class SyncHarness(unittest.TestCase):
    sim_extra = ("--no-rate-limits", "--days", "10")
    server_extra = ()

    def setUp(self):
        self.sim = Sim(self.sim_extra).start()
        self.addCleanup(self.sim.cleanup)
        self.server = self.start_server()

    def start_server(self, data_dir=None):
        s = Server(data_dir=data_dir, extra=["--providers-sim-url", self.sim.url,
                                             "--set", "worker.retry_base=100ms",
                                             "--set", "worker.retry_cap=1s",
                                             "--set", "worker.max_workers=16",
                                             "--set", "api.user_rate_per_second=0",
                                             *self.server_extra]).start()
        if data_dir is None:
            self.addCleanup(s.cleanup)
        return s

    # --- helpers ---
    def user(self, tier="FREE"):
        sim_user = "su-" + uuid.uuid4().hex[:10]
        uid = "user-" + sim_user
        return sim_user, uid, self.server.token(uid, tier)

    def connect(self, sim_user, token, provider, server=None):
        server = server or self.server
        r = server.request("POST", "/v1/connections",
                           {"provider": provider, "code": self.sim.code(provider, sim_user)}, token=token)
        self.assertEqual(r.status, 201, r)
        return r.json()["connectionId"]

    def config(self, token, src, dst, type_, strategy="source_wins"):
        r = self.server.request("POST", "/v1/sync-configs", {
            "sourceConnectionId": src, "destinationConnectionId": dst, "dataType": type_,
            "conflictStrategy": strategy}, token=token)
        self.assertEqual(r.status, 201, r)
        return r.json()["configId"]

    def job(self, token, src, dst, type_, server=None):
        server = server or self.server
        r = server.request("POST", "/v1/sync-jobs", {
            "sourceConnectionId": src, "destinationConnectionId": dst, "dataType": type_,
            "mode": "manual", "priority": "high"}, token=token)
        self.assertEqual(r.status, 202, r)
        return r.json()["jobId"]

    def finished(self, token, job_id, timeout=90, server=None):
        server = server or self.server

        def done():
            r = server.request("GET", f"/v1/sync-jobs/{job_id}", token=token)
            return r.json() if r.status == 200 and r.json()["status"] in ("SUCCEEDED", "FAILED") else None
        j = wait_for(done, timeout)
        self.assertTrue(j, f"job {job_id} did not finish")
        return j

    def ours(self, provider, sim_user, type_):
        return [r for r in self.sim.written(provider, sim_user) if r["type"] == type_]

    def assert_no_duplicates(self):
        self.assertEqual(self.sim.stats()["totals"]["duplicates"], 0, self.sim.stats())


class PairSyncTest(SyncHarness):
    def test_every_allowed_pair_syncs_once_and_a_rerun_writes_nothing(self):
        checked = 0
        for src_p, dst_p, type_ in PAIRS:
            with self.subTest(pair=f"{src_p}->{dst_p} {type_}"):
                sim_user, _, token = self.user()
                src = self.connect(sim_user, token, src_p)
                dst = self.connect(sim_user, token, dst_p)
                r = self.server.request("POST", "/v1/sync-configs", {
                    "sourceConnectionId": src, "destinationConnectionId": dst, "dataType": type_,
                    "conflictStrategy": "source_wins"}, token=token)
                if r.status == 422 and r.code == "CAPABILITY_MISMATCH":
                    continue
                self.assertEqual(r.status, 201, r)
                source = [x for x in self.sim.records(src_p, sim_user, type_) if not x["origin"]]
                j = self.finished(token, self.job(token, src, dst, type_))
                self.assertEqual(j["status"], "SUCCEEDED", j)
                written = self.ours(dst_p, sim_user, type_)
                # Every written record is one of the source's (by time range), each written once.
                starts = {(x["start_ms"] // 1000, x["end_ms"] // 1000) for x in source}
                for w in written:
                    self.assertIn((w["start_ms"] // 1000, w["end_ms"] // 1000), starts, w)
                    self.assertEqual(w["write_count"], 1, w)
                    self.assertTrue(w["origin"].startswith("sw1:"), w)
                self.assertEqual(len({w["origin"] for w in written}), len(written))
                if source:
                    self.assertGreater(len(written), 0, f"nothing written for {src_p}->{dst_p} {type_}")
                # A second run finds everything in the ledger: nothing new is written.
                j2 = self.finished(token, self.job(token, src, dst, type_))
                self.assertEqual(j2["status"], "SUCCEEDED", j2)
                self.assertEqual(len(self.ours(dst_p, sim_user, type_)), len(written))
                checked += 1
        self.assertGreaterEqual(checked, 6)
        self.assert_no_duplicates()

    def test_both_directions_do_not_echo(self):
        sim_user, _, token = self.user()
        strava = self.connect(sim_user, token, "strava")
        fitbit = self.connect(sim_user, token, "fitbit")
        self.config(token, strava, fitbit, "workout")
        self.config(token, fitbit, strava, "workout")
        for _ in range(2):
            for a, b in ((strava, fitbit), (fitbit, strava)):
                self.assertEqual(self.finished(token, self.job(token, a, b, "workout"))["status"], "SUCCEEDED")
        # What went strava -> fitbit never came back fitbit -> strava, and vice versa.
        to_fitbit = self.ours("fitbit", sim_user, "workout")
        to_strava = self.ours("strava", sim_user, "workout")
        native_strava = {(x["start_ms"], x["end_ms"]) for x in self.sim.records("strava", sim_user, "workout") if not x["origin"]}
        native_fitbit = {(x["start_ms"], x["end_ms"]) for x in self.sim.records("fitbit", sim_user, "workout") if not x["origin"]}
        for w in to_strava:
            self.assertIn((w["start_ms"], w["end_ms"]), native_fitbit, "an echo was written back to strava")
        for w in to_fitbit:
            self.assertIn((w["start_ms"], w["end_ms"]), native_strava, "an echo was written back to fitbit")
        self.assert_no_duplicates()


class FaultTest(SyncHarness):
    def test_push_interrupted_then_retried_writes_each_record_once(self):
        sim_user, _, token = self.user()
        src = self.connect(sim_user, token, "garmin")
        dst = self.connect(sim_user, token, "fitbit")
        self.config(token, src, dst, "sleep_session")
        # The destination stores the next writes and then answers 503 (the worst case: applied
        # but not acknowledged), then works again.
        self.sim.config(provider="fitbit", fail_next_writes=3, fail_after_apply=True)
        j = self.finished(token, self.job(token, src, dst, "sleep_session"), timeout=120)
        self.assertEqual(j["status"], "SUCCEEDED", j)
        source = [x for x in self.sim.records("garmin", sim_user, "sleep_session") if not x["origin"]]
        written = self.ours("fitbit", sim_user, "sleep_session")
        self.assertGreater(len(written), 0)
        self.assertLessEqual(len(written), len(source))
        for w in written:
            self.assertEqual(w["write_count"], 1, w)
        self.assert_no_duplicates()

    def test_revoked_grant_sets_needs_reauth_and_fails_at_once_then_reauth_works(self):
        sim_user, _, token = self.user()
        src = self.connect(sim_user, token, "strava")
        dst = self.connect(sim_user, token, "fitbit")
        self.config(token, src, dst, "workout")
        r = self.sim.call("POST", f"/_sim/users/{sim_user}/strava/revoke")
        self.assertEqual(r.status, 200, r)
        j = self.finished(token, self.job(token, src, dst, "workout"))
        self.assertEqual(j["status"], "FAILED", j)
        self.assertIn("re-authoriz", j.get("error", "").lower(), j)
        conns = {c["connectionId"]: c for c in self.server.request("GET", "/v1/connections", token=token).json()["connections"]}
        self.assertEqual(conns[src]["status"], "needs_reauth")
        # The user consents again: the connection is active and syncs work.
        r = self.server.request("POST", f"/v1/connections/{src}/reauth",
                                {"code": self.sim.code("strava", sim_user)}, token=token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["status"], "active")
        j = self.finished(token, self.job(token, src, dst, "workout"))
        self.assertEqual(j["status"], "SUCCEEDED", j)

    def test_expired_access_token_is_refreshed(self):
        sim_user, _, token = self.user()
        src = self.connect(sim_user, token, "withings")
        dst = self.connect(sim_user, token, "fitbit")
        self.config(token, src, dst, "weight")
        self.sim.call("POST", f"/_sim/users/{sim_user}/withings/expire-tokens")
        j = self.finished(token, self.job(token, src, dst, "weight"))
        self.assertEqual(j["status"], "SUCCEEDED", j)
        conns = {c["connectionId"]: c for c in self.server.request("GET", "/v1/connections", token=token).json()["connections"]}
        self.assertEqual(conns[src]["status"], "active")

    def test_bad_oauth_code_is_a_clear_error_and_stores_nothing(self):
        _, _, token = self.user()
        r = self.server.request("POST", "/v1/connections", {"provider": "strava", "code": "not-a-code"}, token=token)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.code, "OAUTH_CODE_REJECTED")
        r = self.server.request("POST", "/v1/connections", {"provider": "strava"}, token=token)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.code, "VALIDATION_FAILED")
        self.assertEqual(self.server.request("GET", "/v1/connections", token=token).json()["connections"], [])


class CrashTest(SyncHarness):
    sim_extra = ("--no-rate-limits", "--days", "20", "--latency", "40ms-80ms")

    def test_kill9_during_syncs_then_restart_writes_exactly_once(self):
        users = []
        for _ in range(6):
            sim_user, _, token = self.user()
            src = self.connect(sim_user, token, "garmin")
            dst = self.connect(sim_user, token, "fitbit")
            self.config(token, src, dst, "workout")
            users.append((sim_user, token, src, dst))
        jobs = [(token, self.job(token, src, dst, "workout")) for _, token, src, dst in users]
        # Kill the server while pushes are in flight.
        wait_for(lambda: self.sim.stats()["totals"]["writes"] > 0, 30, 0.05)
        data_dir = self.server.data_dir
        self.server.kill9()
        self.server = self.start_server(data_dir=data_dir)
        self.addCleanup(self.server.cleanup)
        for token, job_id in jobs:
            j = self.finished(token, job_id, timeout=180)
            self.assertEqual(j["status"], "SUCCEEDED", j)
        for sim_user, *_ in users:
            for w in self.ours("fitbit", sim_user, "workout"):
                self.assertEqual(w["write_count"], 1, w)
        self.assert_no_duplicates()


class TriggerTest(SyncHarness):
    def setUp(self):
        super().setUp()
        # Webhooks from the simulator go to this server.
        self.sim.config(webhook_target=f"http://127.0.0.1:{self.server.port}")

    def test_webhook_new_data_is_synced(self):
        sim_user, _, token = self.user()
        src = self.connect(sim_user, token, "strava")
        dst = self.connect(sim_user, token, "fitbit")
        self.config(token, src, dst, "workout")
        self.assertEqual(self.finished(token, self.job(token, src, dst, "workout"))["status"], "SUCCEEDED")
        before = len(self.ours("fitbit", sim_user, "workout"))
        r = self.sim.call("POST", f"/_sim/users/{sim_user}/strava/new-data?type=workout")
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.json().get("webhook_status"), (200, 202, 204), r)
        new_start = r.json()["record"]["start_ms"]
        got = wait_for(lambda: [w for w in self.ours("fitbit", sim_user, "workout") if w["start_ms"] == new_start], 60)
        self.assertTrue(got, "the webhook's new workout never reached fitbit")
        self.assertEqual(len(self.ours("fitbit", sim_user, "workout")), before + 1)
        self.assert_no_duplicates()

    def test_forged_webhook_is_rejected(self):
        r = self.server.request("POST", "/v1/webhooks/fitbit", raw='[{"collectionType":"activities","ownerId":"x"}]',
                                headers={"X-Fitbit-Signature": "AAAA"})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.code, "WEBHOOK_REJECTED")

    def test_device_upload_goes_to_the_destination_once(self):
        sim_user, _, token = self.user()
        phone = self.server.request("POST", "/v1/connections", {"provider": "apple_health"}, token=token)
        self.assertEqual(phone.status, 201, phone)
        phone = phone.json()["connectionId"]
        dst = self.connect(sim_user, token, "fitbit")
        self.config(token, phone, dst, "weight")
        body = {"connectionId": phone, "dataType": "weight", "records": [
            {"id": f"hk-{i}", "startTime": f"2026-11-{10 + i:02d}T07:00:00Z", "utcOffsetMinutes": 60,
             "weight": {"kg": 70.5 + i / 10}} for i in range(3)]}
        for _ in range(2):  # the phone retries the same batch: nothing is written twice
            r = self.server.request("POST", "/v1/device-upload", body, token=token)
            self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["destinations"][0]["skipped"] + r.json()["destinations"][0]["written"], 3, r)
        written = self.ours("fitbit", sim_user, "weight")
        self.assertEqual(len(written), 3, written)
        bad = dict(body, records=[{"id": "x", "startTime": "yesterday", "weight": {"kg": 70}}])
        r = self.server.request("POST", "/v1/device-upload", bad, token=token)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.code, "VALIDATION_FAILED")
        self.assert_no_duplicates()


class PrivacyTest(SyncHarness):
    def test_no_health_data_at_rest(self):
        sims = []
        for src_p, dst_p, type_ in (("garmin", "fitbit", "workout"), ("withings", "fitbit", "weight"),
                                    ("garmin", "fitbit", "sleep_session"), ("fitbit", "strava", "workout")):
            sim_user, _, token = self.user()
            src = self.connect(sim_user, token, src_p)
            dst = self.connect(sim_user, token, dst_p)
            self.config(token, src, dst, type_)
            self.assertEqual(self.finished(token, self.job(token, src, dst, type_))["status"], "SUCCEEDED")
            sims.append((sim_user, src_p, dst_p, type_))
        # The values SyncWell moved, as the simulator holds them (sentinels: src/providers/sim/README.md).
        needles = {b"SWSENT"}
        moved = 0
        for sim_user, src_p, dst_p, type_ in sims:
            for w in self.ours(dst_p, sim_user, type_):
                moved += 1
                for v in w["data"].values():
                    if isinstance(v, float) and v:
                        needles.add(repr(v).encode())
                    elif isinstance(v, str) and len(v) >= 6:
                        needles.add(v.encode())
        self.assertGreater(moved, 0)
        # Stop the server so every byte is on disk (WAL included), then scan the whole directory.
        self.server.stop()
        # A needle counts only as a whole token: a weight of 127.0 must not match the log's
        # "127.0.0.1", nor 72.5 match "172.5".
        def token_pattern(n):
            if re.fullmatch(rb"-?[0-9.e+-]+", n):
                return re.compile(rb"(?<![0-9.])" + re.escape(n) + rb"(?![0-9])(?!\.[0-9])")
            return re.compile(re.escape(n))
        patterns = {n: token_pattern(n) for n in needles}
        hits = []
        for root, _, files in os.walk(self.server.data_dir):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    blob = f.read()
                for n, pattern in patterns.items():
                    if pattern.search(blob):
                        hits.append((name, n))
        self.assertEqual(hits, [], "health data found at rest")


if __name__ == "__main__":
    unittest.main()
