"""End-to-end tests: the real binary over HTTP on loopback (SPEC S2)."""
import concurrent.futures
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import time
import unittest
import uuid

from harness import Server, b64url, dev_kid, sign_rs256

JOB = {"sourceConnectionId": None, "destinationConnectionId": None, "dataType": "workout", "mode": "manual"}


class ApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # API only: these tests look at jobs while QUEUED (the worker is tested in test_worker.py).
        cls.s = Server(extra=["--role", "api", "--set", "api.user_rate_per_second=0",
                              "--set", "server.read_timeout=2s"])
        # Users and connections are created before the server starts and while it runs.
        cls.alice = cls.s.user("alice", "FREE")
        cls.s.start()
        cls.a_fitbit = cls.s.connection("alice", "fitbit")
        cls.a_strava = cls.s.connection("alice", "strava")
        cls.bob = cls.s.user("bob", "PRO")
        cls.b_fitbit = cls.s.connection("bob", "fitbit")
        cls.b_garmin = cls.s.connection("bob", "garmin")

    @classmethod
    def tearDownClass(cls):
        cls.s.cleanup()

    def job(self, **kw):
        j = dict(JOB, sourceConnectionId=self.a_fitbit, destinationConnectionId=self.a_strava)
        j.update(kw)
        return j

    def test_job_lifecycle_and_replay(self):
        key = str(uuid.uuid4())
        r = self.s.request("POST", "/v1/sync-jobs", self.job(), token=self.alice, key=key)
        self.assertEqual(r.status, 202, r)
        self.assertTrue(r.headers.get("x-request-id"))
        job_id = r.json()["jobId"]
        # UUID version 7: the first 48 bits are the creation time in Unix milliseconds.
        self.assertRegex(job_id, r"^job_[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        created_ms = int(job_id[4:12] + job_id[13:17], 16)
        self.assertLess(abs(created_ms - time.time() * 1000), 60_000, job_id)
        again = self.s.request("POST", "/v1/sync-jobs", self.job(), token=self.alice, key=key)
        self.assertEqual(again.status, 202)
        self.assertEqual(again.json()["jobId"], job_id)
        self.assertEqual(again.headers.get("idempotent-replayed"), "true")
        other = self.s.request("POST", "/v1/sync-jobs", self.job(priority="high"), token=self.alice, key=key)
        self.assertEqual((other.status, other.code), (422, "IDEMPOTENCY_KEY_REUSED"))
        g = self.s.request("GET", "/v1/sync-jobs/" + job_id, token=self.alice)
        self.assertEqual(g.status, 200)
        self.assertEqual(g.json()["status"], "QUEUED")
        self.assertEqual(self.s.request("GET", "/v1/sync-jobs/" + job_id, token=self.bob).status, 404)

    def test_concurrent_identical_requests_make_one_job(self):
        before = self.s.queue_stats()["enqueued (total)"]
        key = str(uuid.uuid4())
        body = self.job()

        def call(_):
            r = self.s.request("POST", "/v1/sync-jobs", body, token=self.alice, key=key)
            return r.status, (r.json().get("jobId") if r.status == 202 else r.code)

        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as ex:
            results = list(ex.map(call, range(64)))
        accepted = {v for s, v in results if s == 202}
        others = {(s, v) for s, v in results if s != 202}
        self.assertEqual(len(accepted), 1, results)
        self.assertTrue(others <= {(409, "IDEMPOTENCY_REQUEST_IN_PROGRESS")}, others)
        self.assertEqual(self.s.queue_stats()["enqueued (total)"] - before, 1)

    def test_bad_input_changes_nothing_and_server_survives(self):
        before = self.s.queue_stats()["enqueued (total)"]
        t = self.alice
        cases = [
            (dict(raw="{oops"), 400, "MALFORMED_JSON"),
            (dict(raw="[" * 100 + "]" * 100), 400, "MALFORMED_JSON"),
            (dict(raw=json.dumps(self.job(dataType=7))), 400, "VALIDATION_FAILED"),
            (dict(raw=json.dumps(self.job(dataType="heart_rate"))), 400, "VALIDATION_FAILED"),
            (dict(raw=json.dumps({"mode": "manual"})), 400, "VALIDATION_FAILED"),
            (dict(raw=json.dumps(self.job(dataType="steps"))), 422, "CAPABILITY_MISMATCH"),
            (dict(raw=json.dumps(self.job(sourceConnectionId=self.b_fitbit))), 404, "NOT_FOUND"),
            (dict(raw=json.dumps(self.job(mode="historical", dateRange={"startDate": "2025-01-01", "endDate": "2025-03-01"}))), 403, "PRO_TIER_REQUIRED"),
            (dict(raw=b"\xff\xfe\x00garbage"), 400, "MALFORMED_JSON"),
            (dict(raw=json.dumps(self.job()), headers={"Content-Type": "text/plain"}), 415, "UNSUPPORTED_MEDIA_TYPE"),
            (dict(raw=" " * (2 << 20)), 413, "PAYLOAD_TOO_LARGE"),
            (dict(raw=json.dumps(self.job()), key=None), 400, "IDEMPOTENCY_KEY_MISSING"),
        ]
        for kw, status, code in cases:
            kw.setdefault("key", "auto")
            r = self.s.request("POST", "/v1/sync-jobs", token=t, **kw)
            self.assertEqual((r.status, r.code), (status, code), (kw.get("raw", "")[:80], r))
            self.assertEqual(r.headers["content-type"], "application/problem+json")
        self.assertEqual(self.s.queue_stats()["enqueued (total)"], before)
        self.assertEqual(self.s.request("GET", "/healthz").status, 200)

    def test_tokens_are_verified(self):
        d = self.s.data_dir
        now = int(time.time())
        kid = dev_kid(d)
        hdr = {"alg": "RS256", "typ": "JWT", "kid": kid}
        good = {"iss": "syncwell-dev", "aud": "syncwell", "sub": "alice", "iat": now, "exp": now + 600}
        self.assertEqual(self.s.request("GET", "/v1/connections", token=sign_rs256(d, hdr, good)).status, 200)
        bad = {
            "expired": sign_rs256(d, hdr, dict(good, exp=now - 3600)),
            "not yet valid": sign_rs256(d, hdr, dict(good, nbf=now + 3600)),
            "wrong audience": sign_rs256(d, hdr, dict(good, aud="someone-else")),
            "wrong issuer": sign_rs256(d, hdr, dict(good, iss="evil")),
            "no sub": sign_rs256(d, hdr, {k: v for k, v in good.items() if k != "sub"}),
            "unknown kid": sign_rs256(d, dict(hdr, kid="nope"), good),
        }
        forged = sign_rs256(d, hdr, good)
        head, payload, sig = forged.split(".")
        bad["forged payload"] = head + "." + b64url(json.dumps(dict(good, sub="bob")).encode()) + "." + sig
        bad["alg none"] = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode()) + "." + payload + "."
        pub = subprocess.run(["openssl", "pkey", "-in", os.path.join(d, "dev-signing-key.pem"), "-pubout"],
                             capture_output=True, check=True).stdout
        hs_input = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()) + "." + payload
        bad["HS256 with public key"] = hs_input + "." + b64url(hmac.new(pub, hs_input.encode(), hashlib.sha256).digest())
        bad["garbage"] = "not.a.jwt"
        bad["two parts"] = "abc.def"
        bad["huge"] = "a" * 9000
        for name, tok in bad.items():
            r = self.s.request("GET", "/v1/connections", token=tok)
            self.assertEqual((r.status, r.code), (401, "UNAUTHENTICATED"), name)
        r = self.s.request("GET", "/v1/connections")
        self.assertEqual(r.status, 401)
        self.assertIn("www-authenticate", r.headers)

    def test_headers_too_large_and_slow_clients(self):
        r = self.s.request("GET", "/v1/connections", token=self.alice, headers={"X-Big": "a" * 20000})
        self.assertEqual(r.status, 431)
        # A client that never finishes its request is disconnected after read_timeout (2 s here).
        s = socket.create_connection(("127.0.0.1", self.s.port), timeout=15)
        s.sendall(b"POST /v1/sync-jobs HTTP/1.1\r\nHost: x\r\n")
        start = time.time()
        data = s.recv(1000)
        self.assertEqual(data, b"")
        self.assertLess(time.time() - start, 12)
        s.close()
        # Malformed request line.
        s = socket.create_connection(("127.0.0.1", self.s.port), timeout=15)
        s.sendall(b"\x00\x01 nonsense\r\n\r\n")
        self.assertIn(b"400", s.recv(1000))
        s.close()
        self.assertEqual(self.s.request("GET", "/healthz").status, 200)

    def test_sync_configs_and_connections(self):
        t = self.bob
        c = self.s.request("POST", "/v1/sync-configs", {"sourceConnectionId": self.b_garmin,
                           "destinationConnectionId": self.b_fitbit, "dataType": "weight"}, token=t)
        self.assertEqual(c.status, 201, c)
        cfg = c.json()
        self.assertEqual(c.headers["etag"], '"1"')
        u = self.s.request("PUT", "/v1/sync-configs/" + cfg["configId"], {"conflictStrategy": "newest_wins", "enabled": True},
                           token=t, headers={"If-Match": '"1"'})
        self.assertEqual(u.status, 200, u)
        stale = self.s.request("PUT", "/v1/sync-configs/" + cfg["configId"], {"conflictStrategy": "dest_wins", "enabled": True},
                               token=t, headers={"If-Match": '"1"'})
        self.assertEqual((stale.status, stale.code), (409, "VERSION_CONFLICT"))
        self.assertEqual(self.s.request("GET", "/v1/sync-configs/" + cfg["configId"], token=self.alice).status, 404)
        conns = self.s.request("GET", "/v1/connections", token=t).json()["connections"]
        self.assertEqual({c["provider"] for c in conns}, {"fitbit", "garmin"})
        self.assertEqual(self.s.request("DELETE", "/v1/connections/" + self.b_fitbit, token=self.alice).status, 404)

    def test_metrics_expose_routes_latency_and_auth_cache(self):
        for _ in range(3):
            self.s.request("GET", "/v1/connections", token=self.alice)
        m = self.s.metrics()
        self.assertGreaterEqual(m['syncwell_http_requests_total{route="GET /v1/connections",status="200"}'], 3)
        self.assertIn('syncwell_http_request_duration_seconds_bucket{route="GET /v1/connections",le="0.0005"}', m)
        self.assertGreater(m["syncwell_auth_decision_cache_hits_total"], 0)

    def test_metrics_can_be_limited_to_named_families(self):
        self.s.request("GET", "/v1/connections", token=self.alice)
        r = self.s.request("GET", "/metrics?name=syncwell_http_requests_total&name=process_threads")
        self.assertEqual(r.status, 200)
        families = {l.split()[2] for l in r.text.splitlines() if l.startswith("# TYPE ")}
        self.assertEqual(families, {"syncwell_http_requests_total", "process_threads"})
        self.assertIn('syncwell_http_requests_total{route="GET /v1/connections",status="200"}', r.text)
        self.assertEqual(self.s.request("GET", "/metrics?name=no_such_family").text, "")
        for bad in ("/metrics?name=", "/metrics?name=1abc", "/metrics?family=process_threads",
                    "/metrics?name=a%20b", "/metrics?&"):
            r = self.s.request("GET", bad)
            self.assertEqual(r.status, 400, bad)
            self.assertEqual(r.json()["code"], "BAD_REQUEST", bad)

    def test_jwks_drop_forgets_cached_decisions(self):
        tok = self.s.token("carol")
        self.s.request("GET", "/v1/connections", token=tok)
        misses = self.s.metrics()["syncwell_auth_decision_cache_misses_total"]
        self.s.request("GET", "/v1/connections", token=tok)
        self.assertEqual(self.s.metrics()["syncwell_auth_decision_cache_misses_total"], misses)
        # A kid is base64url and may start with '-' (one dev key in 64 does): after "--" it is
        # never read as a flag. CI once failed on such a key when the test passed it bare.
        out = self.s.admin("admin", "jwks", "drop", "--", "-not-a-flag").stdout
        self.assertIn("dropped -not-a-flag", out)
        out = self.s.admin("admin", "jwks", "drop", "--", dev_kid(self.s.data_dir)).stdout
        self.assertIn("dropped", out)
        deadline = time.time() + 10
        while time.time() < deadline:
            self.s.request("GET", "/v1/connections", token=tok)
            if self.s.metrics()["syncwell_auth_decision_cache_misses_total"] > misses:
                break
            time.sleep(0.2)
        self.assertGreater(self.s.metrics()["syncwell_auth_decision_cache_misses_total"], misses)


class LifecycleTest(unittest.TestCase):
    def test_kill9_loses_no_accepted_job_and_keeps_idempotency(self):
        s = Server(extra=["--role", "api"])  # no worker: every accepted job must still be queued
        try:
            tok = s.user("dora")
            src, dst = s.connection("dora", "garmin"), s.connection("dora", "strava")
            s.start()
            accepted = {}
            for i in range(50):
                key = f"k{i}"
                r = s.request("POST", "/v1/sync-jobs", dict(JOB, sourceConnectionId=src, destinationConnectionId=dst),
                              token=tok, key=key)
                self.assertEqual(r.status, 202)
                accepted[key] = r.json()["jobId"]
            s.kill9()
            s.start()
            for key, job_id in accepted.items():
                self.assertEqual(s.request("GET", "/v1/sync-jobs/" + job_id, token=tok).status, 200)
            # Replays survive the crash too.
            r = s.request("POST", "/v1/sync-jobs", dict(JOB, sourceConnectionId=src, destinationConnectionId=dst),
                          token=tok, key="k7")
            self.assertEqual(r.json()["jobId"], accepted["k7"])
            self.assertEqual(s.queue_stats()["visible"], 50)
        finally:
            s.cleanup()

    def test_server_takes_the_hard_open_file_limit(self):
        # Workers, fan-out helpers and API clients need thousands of descriptors: a server started
        # from a shell with the usual soft limit raises it to the hard one.
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        low = 256
        self.assertGreater(hard, low, "this test needs a hard open-file limit above 256")
        s = Server(extra=["--role", "api"])
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
        try:
            s.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        try:
            with open(f"/proc/{s.proc.pid}/limits") as f:
                line = next(l for l in f if l.startswith("Max open files"))
            want = hard if hard != resource.RLIM_INFINITY else 1 << 20
            self.assertEqual(int(line.split()[3]), want, line)
        finally:
            s.cleanup()

    def test_sigterm_drains_and_exits_zero(self):
        s = Server()
        try:
            tok = s.user("erin")
            s.start()
            self.assertEqual(s.request("GET", "/readyz").status, 200)
            idle = socket.create_connection(("127.0.0.1", s.port))  # an idle keep-alive client
            start = time.time()
            rc = s.stop(signal.SIGTERM, timeout=20)
            self.assertEqual(rc, 0)
            self.assertLess(time.time() - start, 15)
            idle.close()
        finally:
            s.cleanup()

    def test_account_deletion_completes_asynchronously(self):
        s = Server()
        try:
            tok = s.user("finn")
            s.connection("finn", "fitbit")
            s.start()
            r = s.request("DELETE", "/v1/users/me", token=tok)
            self.assertEqual(r.status, 202, r)
            deadline = time.time() + 15
            status = None
            while time.time() < deadline:
                status = s.request("GET", "/v1/users/me/deletion", token=tok).json()["status"]
                if status == "completed":
                    break
                time.sleep(0.2)
            self.assertEqual(status, "completed")
            self.assertEqual(s.request("GET", "/v1/connections", token=tok).json()["connections"], [])
            # Idempotent: deleting again is accepted.
            self.assertEqual(s.request("DELETE", "/v1/users/me", token=tok).status, 202)
        finally:
            s.cleanup()


if __name__ == "__main__":
    unittest.main()
