"""CI smoke run of the S14 load test (`syncwell loadgen --plan smoke`, issue 6 item 4).

An embedded server (noop worker handler), 50 users (20% PRO) with a fitbit + strava connection
each, every phase of the plan at CI rates with durations scaled to about 45 s in total. Asserts
only functional facts — exit status, no 5xx, the report (text and JSON) with every phase, every
accepted job terminal — never speed.
"""
import base64
import json
import os
import subprocess
import tempfile
import time
import unittest

import harness

USERS = 50
SCALE = "0.008"  # baseline 4.8 s, soak 14.4 s, peak 7.2 s, stress steps 2.4 s each
FIXED_PHASES = ["baseline", "soak", "peak"]


class LoadTestSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server(extra=["--set", "worker.handler=noop"])
        cls.work = tempfile.mkdtemp(prefix="syncwell-loadtest-")
        # The population in one process: users lt1..lt50 (every 5th PRO), two connections and
        # a dev token each (what bench/loadtest.sh uses too).
        cls.token_file = os.path.join(cls.work, "tokens.txt")
        cls.server.admin("admin", "population", "create", "--users", str(USERS),
                         "--tokens-out", cls.token_file)
        with open(cls.token_file) as f:
            cls.tokens = [tuple(line.split()) for line in f if line.strip()]
        cls.server.start()
        url = f"http://127.0.0.1:{cls.server.port}"
        cls.report_json = os.path.join(cls.work, "report.json")
        cls.jobs_file = os.path.join(cls.work, "jobs.txt")
        cls.chart = os.path.join(cls.work, "chart.html")
        cls.started = time.time()
        cls.proc = subprocess.run(
            [harness.BIN, "loadgen", "--plan", "smoke", "--scale", SCALE, "--targets", url,
             "--tokens", cls.token_file, "--metrics-url", url, "--report-json", cls.report_json,
             "--follow-jobs", "20", "--follow-timeout", "30s", "--jobs-out", cls.jobs_file,
             "--retry-share", "0.05", "--seed", "1", "--chart", cls.chart],
            capture_output=True, text=True, timeout=300)
        cls.elapsed = time.time() - cls.started

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    def report(self):
        with open(self.report_json) as f:
            return json.load(f)

    def test_exit_status_and_text_report(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stdout[-3000:] + self.proc.stderr[-2000:])
        out = self.proc.stdout
        for phase in FIXED_PHASES + ["stress-1"]:
            self.assertIn(f"=== phase {phase}:", out)
        self.assertIn("=== overall", out)
        self.assertRegex(out, r"verdict: (PASS|FAIL)")
        for check in ("latency P95", "5xx rate", "queue visible backlog (max)",
                      "auth decision cache hit ratio", "DLQ depth (end)", "jobs not terminal"):
            self.assertIn(check, out)

    def test_json_report_has_every_phase_and_no_5xx(self):
        r = self.report()
        self.assertEqual(r["kind"], "loadgen_plan_report")
        self.assertEqual(r["plan"], "smoke")
        self.assertEqual(r["users"], USERS)
        names = [p["name"] for p in r["phases"]]
        self.assertEqual(names[:3], FIXED_PHASES)
        self.assertTrue(all(n.startswith("stress-") for n in names[3:]) and len(names) > 3, names)
        for p in r["phases"] + [r["overall"]]:
            self.assertEqual(p["status_5xx"], 0, p["name"])
            self.assertGreater(p["status_2xx"], 0, p["name"])
            self.assertEqual(p["completed"], p["scheduled"], p["name"])  # nothing lost in transit
            self.assertEqual(p["requests"]["POST /v1/sync-jobs"]["5xx"], 0)
            checks = {c["name"]: c for c in p["checks"]}
            self.assertIn(checks["queue visible backlog (max)"]["verdict"], ("PASS", "FAIL"))
            self.assertIn(checks["DLQ depth (end)"]["verdict"], ("PASS", "FAIL"))
            self.assertLessEqual(p["completed_in_window"], p["completed"], p["name"])
            # The server exports its CPU and memory, so the S1 budget checks have a verdict.
            for name in ("server CPU P90", "server memory P90"):
                self.assertIn(checks[name]["verdict"], ("PASS", "FAIL"), (p["name"], checks[name]))
        for p in r["phases"]:
            self.assertGreater(len(p["timeline"]), 0, p["name"])
            self.assertEqual(sum(t["completed"] for t in p["timeline"]), p["completed"], p["name"])
            points = p["server_series"][0]["points"]
            self.assertGreaterEqual(len(points), 2, p["name"])  # before and after at least
            self.assertTrue(all("cpu_seconds" in x and "rss_bytes" in x for x in points))
        kinds = r["overall"]["requests"]
        for k in ("POST /v1/sync-jobs", "GET /v1/sync-jobs/{id}", "GET /v1/sync-configs"):
            self.assertGreater(kinds[k]["sent"], 0, k)
            self.assertEqual(kinds[k]["2xx"], kinds[k]["sent"], k)
        # Client retries reuse an Idempotency-Key and get the original job back.
        self.assertGreater(kinds["POST /v1/sync-jobs (retry, same key)"]["sent"], 0)
        self.assertEqual(r["overall"]["retry_other"], 0)
        self.assertEqual(r["overall"]["retry_same_job_id"],
                         kinds["POST /v1/sync-jobs (retry, same key)"]["sent"])

    def test_chart_has_every_panel(self):
        with open(self.chart) as f:
            html = f.read()
        for panel in ("Throughput", "Latency", "Queue visible backlog", "Server CPU"):
            self.assertIn(panel, html)
        self.assertGreaterEqual(html.count("<path"), 5)
        for phase in FIXED_PHASES:
            self.assertIn(f">{phase}</text>", html)

    def test_followed_jobs_all_terminal(self):
        r = self.report()
        for p in r["phases"]:
            f = p["follow"]
            self.assertGreater(f["sampled"], 0, p["name"])
            self.assertEqual(f["unfinished"], 0, p["name"])
            self.assertEqual(f["succeeded"] + f["failed"], f["sampled"], p["name"])

    def test_every_accepted_job_is_terminal(self):
        with open(self.jobs_file) as f:
            jobs = [line.split() for line in f if line.strip()]
        self.assertEqual(len(jobs), self.report()["overall"]["accepted_jobs"])
        self.assertGreater(len(jobs), 100)
        self.assertEqual(len({j for j, _ in jobs}), len(jobs))  # a fresh key makes a fresh job
        pending = {job: int(user) for job, user in jobs}
        deadline = time.time() + 60
        while pending and time.time() < deadline:
            for job, user in list(pending.items()):
                resp = self.server.request("GET", f"/v1/sync-jobs/{job}", token=self.tokens[user][0])
                self.assertEqual(resp.status, 200, resp)
                if resp.json()["status"] in ("SUCCEEDED", "FAILED"):
                    del pending[job]
            if pending:
                time.sleep(0.5)
        self.assertEqual(pending, {}, f"{len(pending)} accepted jobs never became terminal")

    def test_server_saw_no_5xx(self):
        m = self.server.metrics()
        fives = {k: v for k, v in m.items()
                 if k.startswith("syncwell_http_requests_total") and 'status="5' in k and v > 0}
        self.assertEqual(fives, {})
        self.assertEqual(m.get("syncwell_queue_dlq_messages", 0), 0)


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class PopulationCommand(unittest.TestCase):
    """`syncwell admin population create`: ids, tiers, tokens, idempotency, bad input."""

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server()
        cls.out = os.path.join(cls.server.data_dir, "pop.txt")

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    def create(self, *extra, check=True):
        return self.server.admin("admin", "population", "create", "--tokens-out", self.out,
                                 *extra, check=check)

    def lines(self):
        with open(self.out) as f:
            return [line.split() for line in f if line.strip()]

    def test_users_tiers_connections_and_rerun(self):
        p = self.create("--users", "12", "--prefix", "pp")
        self.assertIn("12 users", p.stdout)
        first = self.lines()
        self.assertEqual(len(first), 12)
        for i, (token, src, dst) in enumerate(first, start=1):
            claims = jwt_claims(token)
            self.assertEqual(claims["sub"], f"pp{i}")
            self.assertEqual(claims["tier"], "PRO" if i % 5 == 0 else "FREE")
            self.assertEqual((src, dst), (f"conn_pp{i}_src", f"conn_pp{i}_dst"))
        # Idempotent: the same ids again, fresh tokens.
        self.create("--users", "12", "--prefix", "pp")
        self.assertEqual([l[1:] for l in self.lines()], [l[1:] for l in first])
        # The tokens and connections work against a server: a sync job is accepted.
        self.server.start()
        try:
            token, src, dst = first[4]
            r = self.server.request("POST", "/v1/sync-jobs", token=token,
                                    body={"sourceConnectionId": src,
                                          "destinationConnectionId": dst,
                                          "dataType": "workout", "mode": "manual"})
            self.assertEqual(r.status, 202, r)
            other = self.server.request("POST", "/v1/sync-jobs", token=first[0][0],
                                        body={"sourceConnectionId": src,
                                              "destinationConnectionId": dst,
                                              "dataType": "workout", "mode": "manual"})
            self.assertEqual(other.status, 404, other)  # not pp1's connections
        finally:
            self.server.stop()

    def test_bad_input_is_refused(self):
        for args in (["--users", "0"], ["--users", "3", "--source", "nosuch"],
                     ["--users", "3", "--ttl", "-5m"]):
            p = self.create(*args, check=False)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertTrue(p.stderr.strip(), args)


if __name__ == "__main__":
    unittest.main()
