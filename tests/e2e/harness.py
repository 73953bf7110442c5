"""Starts real `syncwell` processes on loopback and talks HTTP to them (stdlib only).

Every server gets a throwaway data directory and port 0; the harness reads the bound port from
the "listening HOST:PORT" line the server prints on stdout. Servers are stopped by PID.
"""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

BIN = os.environ.get("SYNCWELL_BIN", "build/release/src/app/syncwell")


def run(*args, data_dir, check=True):
    # --data-dir goes before a "--" (after it, every word is positional).
    if "--" in args:
        cut = args.index("--")
        argv = [BIN, *args[:cut], "--data-dir", data_dir, *args[cut:]]
    else:
        argv = [BIN, *args, "--data-dir", data_dir]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"syncwell {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


class Server:
    def __init__(self, data_dir=None, extra=()):
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="syncwell-e2e-")
        self.extra = list(extra)
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.data_dir, "server.log")

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0", *self.extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("listening "):
                self.port = int(line.strip().rsplit(":", 1)[1])
                return self
            if not line and self.proc.poll() is not None:
                break
        raise AssertionError("server did not start: " + open(self.log_path).read()[-2000:])

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        rc = self.proc.returncode if self.proc else None
        if self.proc:
            self.proc.stdout.close()
            self.log.close()
        self.proc = None
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def cleanup(self):
        rc = self.stop()
        # Sanitizer builds: any report in the server's log fails the test that owned the server.
        with open(self.log_path, errors="replace") as f:
            log = f.read()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "ThreadSanitizer"):
            if marker in log:
                raise AssertionError(f"sanitizer report in {self.log_path}:\n" + log[log.index(marker) - 200:][:4000])
        if rc not in (None, 0):
            raise AssertionError(f"server exited with {rc} on SIGTERM; log tail:\n" + log[-3000:])
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- admin helpers ---
    def admin(self, *args, check=True):
        return run(*args, data_dir=self.data_dir, check=check)

    def user(self, user, tier="FREE"):
        self.admin("admin", "user", "create", "--user", user, "--tier", tier)
        return self.admin("token", "--user", user, "--tier", tier).stdout.strip()

    def connection(self, user, provider):
        return self.admin("admin", "connection", "create", "--user", user, "--provider", provider,
                          "--access-token", "tok-" + uuid.uuid4().hex).stdout.strip()

    def token(self, user, tier="FREE", ttl="1h"):
        return self.admin("token", "--user", user, "--tier", tier, "--ttl", ttl).stdout.strip()

    # --- HTTP ---
    def request(self, method, path, body=None, token=None, key="auto", headers=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = {}
        if token:
            h["Authorization"] = "Bearer " + token
        if key == "auto" and method in ("POST", "PUT", "DELETE"):
            key = str(uuid.uuid4())
        if key and key != "auto":
            h["Idempotency-Key"] = key
        data = None
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
            h.setdefault("Content-Type", "application/json")
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        conn.close()
        return Response(r.status, dict((k.lower(), v) for k, v in r.getheaders()), payload)

    def metrics(self):
        text = self.request("GET", "/metrics").text
        out = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
        return out

    def queue_stats(self):
        out = {}
        for line in self.admin("admin", "queue", "stats").stdout.splitlines():
            parts = line.rsplit(None, 1)
            if len(parts) == 2:
                out[parts[0].strip()] = float(parts[1])
        return out


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    @property
    def code(self):
        return self.json().get("code")

    def __repr__(self):
        return f"<{self.status} {self.text[:300]}>"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_rs256(data_dir, header, claims):
    """Signs a JWT with the dev key through the openssl CLI, so tests can craft any claims."""
    signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
    key = os.path.join(data_dir, "dev-signing-key.pem")
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                         capture_output=True, check=True).stdout
    return signing_input.decode() + "." + b64url(sig)


def dev_kid(data_dir):
    with open(os.path.join(data_dir, "dev-jwks.json")) as f:
        return json.load(f)["keys"][0]["kid"]


def free_socket_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


class Sim:
    """`syncwell provider-sim` on 127.0.0.1:0 (src/providers/sim/README.md)."""

    def __init__(self, extra=()):
        self.dir = tempfile.mkdtemp(prefix="syncwell-sim-")
        self.log_path = os.path.join(self.dir, "sim.log")
        self.extra = list(extra)
        self.proc = None
        self.port = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "provider-sim", "--listen", "127.0.0.1:0", *self.extra],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("listening "):
                self.port = int(line.strip().rsplit(":", 1)[1])
                return self
            if not line and self.proc.poll() is not None:
                break
        raise AssertionError("simulator did not start: " + open(self.log_path).read()[-2000:])

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        if self.proc:
            self.proc.stdout.close()
            self.log.close()
        self.proc = None

    def cleanup(self):
        self.stop()
        with open(self.log_path, errors="replace") as f:
            log = f.read()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "ThreadSanitizer"):
            if marker in log:
                raise AssertionError(f"sanitizer report in {self.log_path}:\n" + log[log.index(marker) - 200:][:4000])
        shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = conn.getresponse()
        payload = r.read()
        conn.close()
        return Response(r.status, dict((k.lower(), v) for k, v in r.getheaders()), payload)

    def code(self, provider, user):
        r = self.call("GET", f"/_sim/authorize?provider={provider}&user={user}")
        assert r.status == 200, r
        return r.json()["code"]

    def records(self, provider, user, type_):
        r = self.call("GET", f"/_sim/users/{user}/{provider}/records?type={type_}")
        assert r.status == 200, r
        return r.json()["records"]

    def written(self, provider, user):
        r = self.call("GET", f"/_sim/users/{user}/{provider}/written")
        assert r.status == 200, r
        return r.json()["records"]

    def stats(self):
        return self.call("GET", "/_sim/stats").json()

    def config(self, **fields):
        r = self.call("POST", "/_sim/config", fields)
        assert r.status == 200, r
        return r.json()
