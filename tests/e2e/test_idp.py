"""Production auth: an identity provider's JWKS fetched over HTTP (dev mode off)."""
import http.server
import os
import shutil
import tempfile
import threading
import time
import unittest

from harness import BIN, Server, dev_kid, run, sign_rs256


class JwksHandler(http.server.BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self):
        if self.path != "/.well-known/jwks.json":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


class IdentityProviderTest(unittest.TestCase):
    ISS = "https://idp.example.test/project-1"
    AUD = "syncwell-api"

    @classmethod
    def setUpClass(cls):
        # An "identity provider": a key pair (made by the dev issuer in a separate directory) whose
        # public JWKS is served over HTTP on loopback.
        cls.idp_dir = tempfile.mkdtemp(prefix="syncwell-idp-")
        run("token", "--user", "x", data_dir=cls.idp_dir)
        with open(os.path.join(cls.idp_dir, "dev-jwks.json"), "rb") as f:
            JwksHandler.body = f.read()
        cls.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), JwksHandler)
        threading.Thread(target=cls.httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{cls.httpd.server_address[1]}/.well-known/jwks.json"
        cls.config = os.path.join(cls.idp_dir, "syncwell.toml")
        with open(cls.config, "w") as f:
            f.write(f'[auth]\nissuer = "{cls.ISS}"\naudience = "{cls.AUD}"\njwks = "{url}"\n')
        cls.s = Server(extra=["--config", cls.config])
        cls.s.start()

    @classmethod
    def tearDownClass(cls):
        cls.s.cleanup()
        cls.httpd.shutdown()
        shutil.rmtree(cls.idp_dir, ignore_errors=True)

    def idp_token(self, **over):
        now = int(time.time())
        claims = {"iss": self.ISS, "aud": [self.AUD, "other"], "sub": "ivy", "iat": now, "exp": now + 600}
        claims.update(over)
        return sign_rs256(self.idp_dir, {"alg": "RS256", "typ": "JWT", "kid": dev_kid(self.idp_dir)}, claims)

    def test_idp_tokens_are_accepted(self):
        r = self.s.request("GET", "/v1/users/me", token=self.idp_token())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["userId"], "ivy")

    def test_dev_tokens_are_refused_when_an_issuer_is_configured(self):
        p = run("token", "--user", "ivy", "--config", self.config, data_dir=self.s.data_dir, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("dev mode is off", p.stderr)
        # A token from the server's own dev key (as if someone reused a dev setup) is rejected.
        dev = run("token", "--user", "ivy", data_dir=self.idp_dir).stdout.strip()
        self.assertEqual(self.s.request("GET", "/v1/users/me", token=dev).status, 401)
        self.assertEqual(self.s.request("GET", "/v1/users/me", token=self.idp_token(iss="syncwell-dev")).status, 401)
        self.assertEqual(self.s.request("GET", "/v1/users/me", token=self.idp_token(aud="x")).status, 401)

    def test_unreachable_jwks_is_503_not_401(self):
        s = Server(extra=["--set", "auth.issuer=" + self.ISS, "--set", "auth.audience=" + self.AUD,
                          "--set", "auth.jwks=http://127.0.0.1:9/jwks.json"])
        try:
            s.start()
            r = s.request("GET", "/v1/users/me", token=self.idp_token())
            self.assertEqual((r.status, r.code), (503, "SERVICE_UNAVAILABLE"), r)
            self.assertIn("retry-after", r.headers)
        finally:
            s.cleanup()


if __name__ == "__main__":
    unittest.main()
