"""`syncwell demo` end to end (issue 4 item 5): the one-command demo starts the simulator and
the server, seeds users, syncs and proves its invariants; exit code 0 only when they hold."""
import os
import shutil
import subprocess
import tempfile
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


if __name__ == "__main__":
    unittest.main()
