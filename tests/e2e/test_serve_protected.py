"""A passphrase-protected identity.age (DESIGN.md section 11; issue 19, first
step): the key on disk is an age file with one scrypt stanza, exactly what the
stock `age -p` writes, so an agent that can read the home cannot decrypt the
store. `secrets serve` asks for the passphrase once, before it reads anything
else, and then holds the identity only in memory.

The identities here are protected by the stock `age -p` (typed into a pty), so
the test does not trust our own writer to prove that our reader accepts age's
format. The passphrase comes on `--passphrase-fd 0` (a pipe): never argv, never
the environment.
"""

import os
import pty
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import E2ETestCase  # noqa: E402

PASSPHRASE = "correct horse battery staple 7f3e"


def age_passphrase_encrypt(src, dst, passphrase, timeout=60.0):
    """Runs the stock `age -p -o dst src`, typing `passphrase` (twice) into the
    pty it reads it from; returns (exit code, what it printed)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp("age", ["age", "-p", "-o", dst, src])
        finally:
            os._exit(127)
    seen = b""
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the pty
                break
            if not chunk:
                break
            seen += chunk
            # "Enter passphrase (...): " then "Confirm passphrase: "
            while seen.lower().count(b"passphrase") > answered and seen.rstrip().endswith(b":"):
                os.write(fd, passphrase.encode() + b"\n")
                answered += 1
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen


class ProtectedIdentity(E2ETestCase):
    def protected_home(self):
        """A home with one secret whose identity.age the stock age -p then protects."""
        home = self.new_home()
        home.add("api_key", "sk-protected-value-91")
        home.stop()
        plain = home.file("identity.age")
        protected = home.file("identity.age.p")
        rc, out = age_passphrase_encrypt(plain, protected, PASSPHRASE)
        self.assertEqual(rc, 0, out)
        os.chmod(protected, 0o600)
        os.replace(protected, plain)
        with open(plain, "rb") as f:
            head = f.read(200)
        self.assertTrue(head.startswith(b"age-encryption.org/v1\n-> scrypt "), head)
        return home

    def test_serve_unwraps_an_identity_that_stock_age_protected(self):
        home = self.protected_home()
        d = home.start_with_passphrase(PASSPHRASE + "\n")  # one trailing newline is not part of it
        home.wait_ready(d)
        home.daemon = d
        lease = home.lease_json("api_key", "--ttl", "5m")
        self.assertEqual(lease["value"], "sk-protected-value-91")
        # New secrets go into the same store, encrypted to the same key.
        home.add("second", "v-two")
        self.assertEqual(home.lease_json("second")["value"], "v-two")
        # Nothing of the passphrase in the daemon's argv, its output or any file of the home.
        with open("/proc/%d/cmdline" % d.pid, "rb") as f:
            self.assertNotIn(PASSPHRASE.encode(), f.read())
        home.stop()
        self.assertNotIn(PASSPHRASE.encode(), d.output().encode())
        for root, _, files in os.walk(home.path):
            for name in files:
                path = os.path.join(root, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                with open(path, "rb") as f:
                    self.assertNotIn(PASSPHRASE.encode(), f.read(), path)

    def test_a_wrong_passphrase_stops_serve_before_the_socket(self):
        home = self.protected_home()
        with open(home.file("identity.age"), "rb") as f:
            before = f.read()
        d = home.start_with_passphrase("not the passphrase")
        rc = d.proc.wait(timeout=60)
        out = d.output()
        self.assertEqual(rc, 5, out)  # denied: Errc::unauthorized
        self.assertIn("wrong passphrase", out)
        self.assertNotIn("not the passphrase", out)
        self.assertFalse(os.path.exists(home.socket))
        with open(home.file("identity.age"), "rb") as f:
            self.assertEqual(f.read(), before)

    def test_without_a_passphrase_source_serve_refuses_with_a_fix(self):
        # No terminal (new session, stdin /dev/null), no pinentry on PATH, no fd.
        home = self.protected_home()
        bare = os.path.join(home.logs, "bin")
        os.mkdir(bare)
        home.env["PATH"] = bare
        r = home.serve_expect_exit(timeout=30)
        self.assertIsNotNone(r.rc)
        self.assertNotEqual(r.rc, 0)
        env = r.env_err
        self.assertIsNotNone(env, r)
        self.assertIs(env["ok"], False)
        self.assertIn("no passphrase", env["error"]["message"])
        self.assertIn("--passphrase-fd", env["fix"])
        self.assertFalse(os.path.exists(home.socket))


if __name__ == "__main__":
    harness.main()
