"""`syncwell demo` end to end (issue 4 item 5): the one-command demo starts the simulator and
the server, seeds users, syncs and proves its invariants; exit code 0 only when they hold."""
import os
import shutil
import subprocess
import signal
import tempfile
import time
import unittest

from harness import BIN


class DemoTest(unittest.TestCase):
    def test_demo_proves_the_invariants(self):
        d = tempfile.mkdtemp(prefix="syncwell-demo-")
        data = os.path.join(d, "demo")
        try:
            p = subprocess.run([BIN, "demo", "--users", "12", "--data-dir", data, "--timeout", "300"],
                               capture_output=True, text=True, timeout=420)
            out = p.stdout
            self.assertEqual(p.returncode, 0, out[-3000:] + p.stderr[-2000:])
            self.assertIn("invariants:         HOLD", out)
            self.assertIn("duplicates:         0 (simulator-wide: 0)", out)
            self.assertIn("0 failed, 0 lost", out)
            self.assertIn("Authorization: Bearer ", out)  # how to call the API
            for log in ("server.log", "sim.log"):
                with open(os.path.join(data, log), errors="replace") as f:
                    text = f.read()
                for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                    self.assertNotIn(marker, text, f"sanitizer report in {log}")
            # A directory the demo did not create is never removed.
            other = os.path.join(d, "mine")
            os.makedirs(other)
            p = subprocess.run([BIN, "demo", "--users", "1", "--data-dir", other], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertTrue(os.path.isdir(other))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_children_end_when_the_demo_is_killed(self):
        # SIGKILL gives the demo no chance to stop the server and the simulator it started; they
        # must not be left running (holding ports and the data directory).
        d = tempfile.mkdtemp(prefix="syncwell-demo-")
        data = os.path.join(d, "demo")
        p = subprocess.Popen([BIN, "demo", "--users", "2", "--data-dir", data, "--follow",
                              "--timeout", "120"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        children = []
        try:
            deadline = time.time() + 60
            while time.time() < deadline and len(children) < 2:
                time.sleep(0.2)
                children = children_of(p.pid)
            self.assertEqual(len(children), 2, "the demo did not start the server and simulator")
            time.sleep(2)  # both are up and serving by now (or about to be)
            p.kill()
            p.wait()
            deadline = time.time() + 20
            while time.time() < deadline and [c for c in children if alive(c)]:
                time.sleep(0.1)
            self.assertEqual([c for c in children if alive(c)], [],
                             "children still running after the demo was killed")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            for c in children:
                if alive(c):
                    os.kill(c, signal.SIGKILL)
            shutil.rmtree(d, ignore_errors=True)


def children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"  # a zombie has exited


if __name__ == "__main__":
    unittest.main()
