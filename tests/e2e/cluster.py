"""A local SyncWell fleet on loopback: PostgreSQL 15 and Redis 7 from Debian's packages in a
throwaway directory, `syncwell admin migrate`, the provider simulator, API, worker and scheduler
processes sharing them. Used by the fault tests (tests/e2e/test_fleet.py) and by developers:

    python3 tests/e2e/cluster.py up [--apis 2] [--workers 2] [--dir DIR] [--set K=V ...]  # starts
    python3 tests/e2e/cluster.py status [--dir DIR]
    python3 tests/e2e/cluster.py down [--dir DIR]                           # stops, removes DIR

(`scripts/cluster.sh up|status|down` builds first, then runs this.) Every process is started by
absolute path and stopped by its PID; nothing listens beyond 127.0.0.1.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pg_bindir():
    d = os.environ.get("SYNCWELL_PG_BINDIR")
    if d:
        return d
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not dirs:
        raise RuntimeError("PostgreSQL server programs not found (scripts/install-deps.sh)")
    return dirs[-1]


def as_postgres(cmd):
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.geteuid() == 0 else cmd


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Postgres:
    """A PostgreSQL cluster in `root`/pg on a free port. stop()/start() keep the data."""

    def __init__(self, root, durable=True):
        self.root = root
        self.data = os.path.join(root, "pg")
        self.logdir = os.path.join(root, "pglog")
        self.port = free_port()
        self.durable = durable
        self.bindir = pg_bindir()

    @property
    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self):
        os.makedirs(self.data, exist_ok=True)
        os.makedirs(self.logdir, exist_ok=True)
        os.chmod(self.root, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
            shutil.chown(self.logdir, "postgres", "postgres")
        subprocess.run(as_postgres([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres",
                                    "--auth=trust", "-E", "UTF8", "--no-instructions"]),
                       check=True, capture_output=True, cwd=self.root)
        return self

    def start(self):
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c max_connections=300"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        # Diagnosis hook for benchmarks (e.g. pg_stat_statements); empty in the tests.
        opts += " " + os.environ.get("SYNCWELL_CLUSTER_PG_OPTS", "")
        subprocess.run(as_postgres([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l",
                                    os.path.join(self.logdir, "pg.log"), "-w", "-t", "60", "-o", opts, "start"]),
                       check=True, capture_output=True, cwd=self.root)
        return self

    def stop(self, mode="fast"):
        subprocess.run(as_postgres([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w",
                                    "stop"]), capture_output=True, cwd=self.root)

    def pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None


class Redis:
    def __init__(self, root):
        self.root = root
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self, detach=False):
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [server, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", self.root, "--loglevel", "warning"],
            stdout=open(os.path.join(self.root, "redis.log"), "ab"), stderr=subprocess.STDOUT,
            start_new_session=detach)
        if not wait_port(self.port):
            raise RuntimeError("redis did not start")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None


class Cluster:
    """PostgreSQL + Redis + simulator + N API + M worker processes + 1 scheduler."""

    def __init__(self, apis=2, workers=2, schedulers=1, root=None, durable=False, sim_extra=(),
                 server_extra=(), detach=False):
        self.root = root or tempfile.mkdtemp(prefix="syncwell-cluster-")
        os.makedirs(self.root, exist_ok=True)
        self.data_dir = os.path.join(self.root, "data")  # shared keys: dev issuer + secret box
        os.makedirs(self.data_dir, exist_ok=True)
        self.pg = Postgres(self.root, durable=durable)
        self.redis = Redis(self.root)
        self.sim = harness.Sim(extra=list(sim_extra))
        self.n_apis, self.n_workers, self.n_schedulers = apis, workers, schedulers
        self.server_extra = list(server_extra)
        self.detach = detach
        self.apis, self.workers, self.schedulers = [], [], []

    @property
    def backend_flags(self):
        return ["--postgres-url", self.pg.url, "--redis-url", self.redis.url]

    def admin(self, *args, check=True):
        p = subprocess.run([harness.BIN, *args, "--data-dir", self.data_dir, *self.backend_flags],
                           capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"syncwell {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p

    def server(self, role, name):
        s = harness.Server(data_dir=self.data_dir,
                           extra=["--role", role, *self.backend_flags, "--providers-sim-url", self.sim.url,
                                  *self.server_extra])
        s.log_path = os.path.join(self.root, f"{name}.log")
        return s

    def start(self):
        self.pg.init().start()
        self.redis.start(detach=self.detach)
        self.sim.start()
        self.admin("admin", "migrate")
        for i in range(self.n_apis):
            self.apis.append(self.server("api", f"api{i + 1}").start())
        for i in range(self.n_workers):
            self.workers.append(self.server("worker", f"worker{i + 1}").start())
        for i in range(self.n_schedulers):
            self.schedulers.append(self.server("scheduler", f"scheduler{i + 1}").start())
        self.sim.config(webhook_target=f"http://127.0.0.1:{self.apis[0].port}")
        return self

    def processes(self):
        return self.apis + self.workers + self.schedulers

    def token(self, user, tier="PRO"):
        self.admin("admin", "user", "create", "--user", user, "--tier", tier)
        return self.admin("token", "--user", user, "--tier", tier).stdout.strip()

    def stop(self):
        errors = []
        for s in self.processes():
            try:
                s.cleanup()
            except AssertionError as e:
                errors.append(str(e))
        self.apis, self.workers, self.schedulers = [], [], []
        try:
            self.sim.cleanup()
        except AssertionError as e:
            errors.append(str(e))
        self.redis.stop()
        self.pg.stop(mode="immediate")
        return errors

    def cleanup(self):
        errors = self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up", "status", "down"])
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "syncwell-cluster"))
    ap.add_argument("--apis", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="passed to every syncwell serve as --set (repeatable), e.g. "
                         "worker.handler=noop for load tests of the API and queue only")
    args = ap.parse_args()
    state_path = os.path.join(args.dir, "cluster.json")
    if args.command == "up":
        if os.path.exists(state_path):
            sys.exit(f"a cluster is already up in {args.dir} (cluster.py down first)")
        extra = [flag for kv in args.set for flag in ("--set", kv)]
        c = Cluster(apis=args.apis, workers=args.workers, root=args.dir, durable=True, detach=True,
                    server_extra=extra)
        try:
            c.start()
        except Exception:
            c.cleanup()
            raise
        state = {
            "postgres_url": c.pg.url, "redis_url": c.redis.url, "sim_url": c.sim.url,
            "data_dir": c.data_dir, "pg_data": c.pg.data, "pg_bindir": c.pg.bindir,
            "pids": {"redis": c.redis.proc.pid, "sim": c.sim.proc.pid,
                     **{f"api{i + 1}": s.proc.pid for i, s in enumerate(c.apis)},
                     **{f"worker{i + 1}": s.proc.pid for i, s in enumerate(c.workers)},
                     **{f"scheduler{i + 1}": s.proc.pid for i, s in enumerate(c.schedulers)}},
            "api_urls": [f"http://127.0.0.1:{s.port}" for s in c.apis],
            "worker_urls": [f"http://127.0.0.1:{s.port}" for s in c.workers],
        }
        with open(state_path, "w") as f:
            json.dump(state, f, indent=2)
        print(json.dumps(state, indent=2))
        print(f"\nlogs: {args.dir}/*.log; token: {harness.BIN} token --user alice --data-dir {c.data_dir}")
        print(f"stop: python3 {os.path.abspath(__file__)} down --dir {args.dir}")
        os._exit(0)  # leave the children running
    if not os.path.exists(state_path):
        sys.exit(f"no cluster in {args.dir}")
    with open(state_path) as f:
        state = json.load(f)
    if args.command == "status":
        for name, pid in state["pids"].items():
            alive = os.path.exists(f"/proc/{pid}")
            print(f"{name:12} pid {pid:<8} {'running' if alive else 'GONE'}")
        print(json.dumps({k: v for k, v in state.items() if k != "pids"}, indent=2))
        return
    for name, pid in state["pids"].items():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 30
    while time.time() < deadline and any(os.path.exists(f"/proc/{p}") for p in state["pids"].values()):
        time.sleep(0.1)
    subprocess.run(as_postgres([os.path.join(state["pg_bindir"], "pg_ctl"), "-D", state["pg_data"], "-m",
                                "fast", "-w", "stop"]), capture_output=True)
    shutil.rmtree(args.dir, ignore_errors=True)
    print("cluster stopped")


if __name__ == "__main__":
    main()
