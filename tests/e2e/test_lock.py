"""`secrets lock` and `secrets unlock` (DESIGN.md section 11, issue 19): a
daemon whose identity.age is passphrase-protected can forget the key and every
decrypted value, and take them back only with the passphrase. While locked it
answers status, health, audit, revoke and revoke --all; everything that needs
a value gets -32012 `locked` (CLI exit 7) with a fix naming `secrets unlock`.
Wrong passphrases are audited and slow the next attempt down (1 s doubling);
the idle and max timers lock it again by themselves.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import E2ETestCase  # noqa: E402
from harness_util import wait_until  # noqa: E402

PASS = "lock test passphrase 5c1e"
VALUE = "sk-locked-value-4417"
LOCKED = 7


def with_fd(home, *args, value=PASS):
    """`secrets ARGS` with `value` on a pipe named by "{fd}" in args."""
    r, w = os.pipe()
    os.write(w, value.encode())
    os.close(w)
    try:
        return home.run(*[a.replace("{fd}", str(r)) for a in args], pass_fds=(r,))
    finally:
        os.close(r)


class Lock(E2ETestCase):
    def protected_home(self):
        home = self.new_home(init=False, serve=False)
        r = with_fd(home, "init", "--passphrase-fd", "{fd}")
        self.assert_ok(r)
        d = home.start_with_passphrase(PASS)
        home.wait_ready(d, timeout=60)
        home.daemon = d
        home.add("api_key", VALUE)
        return home

    def unlock(self, home, value=PASS, *flags):
        return with_fd(home, "unlock", "--passphrase-fd", "{fd}", *flags, value=value)

    def test_locked_daemon_serves_only_what_needs_no_value(self):
        home = self.protected_home()
        before = home.lease_json("api_key", "--ttl", "10m")
        st = home.status()
        self.assertIs(st["locked"], False)
        self.assertIsNotNone(st["unlock_expires_at"])  # a protected identity's unlock has timers

        self.assert_ok(home.run("lock"))
        st = home.status()
        self.assertIs(st["locked"], True)
        self.assertEqual(st["lock_reason"], "manual")
        self.assertIsNotNone(st["locked_since"])
        self.assertIsNone(st["secrets_count"])

        # lease: nothing on stdout, the envelope on stderr, its own exit code.
        r = home.run("lease", "api_key")
        self.assertEqual(r.rc, LOCKED, r)
        self.assertEqual(r.out, b"")
        env = self.assert_err(r, rc=LOCKED, code="locked")
        self.assertIn("secrets unlock", env["fix"])
        # Over the socket: -32012 for every method that needs the store.
        for method, params in (("secrets.lease", {"secret_name": "api_key"}), ("secrets.list", {}),
                               ("secrets.add", {"name": "x", "value": "y"})):
            self.assert_rpc_error(home.rpc(method, params), -32012)
        # exec fails before it starts anything.
        marker = os.path.join(home.logs, "ran")
        r = home.run("exec", "--secret", "api_key=K", "--", "touch", marker)
        self.assertEqual(r.rc, LOCKED, r)
        self.assertFalse(os.path.exists(marker))
        # env writes no file.
        work = tempfile.mkdtemp(prefix="as-lock-env-")
        self.addCleanup(os.rmdir, work)
        r = home.run("env", "--output", os.path.join(work, ".env"), "--secret", "api_key=K")
        self.assertEqual(r.rc, LOCKED, r)
        self.assertEqual(os.listdir(work), [])
        # Still served: status (above), health, audit, revoke, and the lease granted before keeps its id.
        self.assertIsNone(home.run_json("health")["total_secrets"])
        self.assertIn("lock", [e["action"] for e in home.audit_entries()])
        self.assert_ok(home.run("revoke", before["lease_id"]))

        # Back with the passphrase.
        self.assert_ok(self.unlock(home))
        self.assertIs(home.status()["locked"], False)
        self.assertEqual(home.lease_json("api_key")["value"], VALUE)
        r = home.run_json("revoke", "--all")
        self.assertTrue(r["success"])

    def test_wrong_passphrases_are_audited_and_slow_the_next_try(self):
        home = self.protected_home()
        self.assert_ok(home.run("lock"))
        r = self.unlock(home, "not it")
        env = self.assert_err(r, rc=5, code="unauthorized")
        self.assertEqual(env["error"]["message"], "wrong passphrase")
        # Straight after a failure, even the right passphrase waits its turn.
        r = self.unlock(home)
        env = self.assert_err(r, rc=5)
        self.assertIn("next attempt is accepted in", env["error"]["message"])
        self.assertIs(home.status()["locked"], True)
        # Once the delay is over, the right one opens it.
        ok = wait_until(lambda: self.unlock(home).rc == 0, timeout=10.0, interval=0.3)
        self.assertTrue(ok)
        entries = home.audit_entries()
        failed = [e["details"] for e in entries if e["action"] == "unlock_failed"]
        self.assertEqual(failed.count("wrong passphrase"), 1, failed)
        # Every refused try is audited too, and never says how close it was.
        self.assertTrue(all(d == "wrong passphrase" or "next attempt is accepted in" in d for d in failed), failed)
        self.assertGreaterEqual(len(failed), 2)
        self.assertEqual(entries[-1]["action"], "unlock")
        # The passphrase is in no file of the home and not in the daemon's output.
        for root, _, files in os.walk(home.path):
            for name in files:
                path = os.path.join(root, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as f:
                        data = f.read()
                    self.assertNotIn(PASS.encode(), data, path)
                    self.assertNotIn(b"not it", data, path)
        self.assertNotIn(PASS, home.daemon.output())

    def test_idle_and_max_lock_it_again(self):
        home = self.protected_home()
        self.assert_ok(home.run("lock"))
        self.assert_ok(self.unlock(home, PASS, "--idle", "1s"))
        st = wait_until(lambda: home.status()["locked"] and home.status(), timeout=10.0)
        self.assertTrue(st, "the idle timer did not lock the store")
        self.assertEqual(st["lock_reason"], "idle")
        self.assert_ok(self.unlock(home, PASS, "--max", "2s"))
        st = wait_until(lambda: home.status()["locked"] and home.status(), timeout=10.0)
        self.assertTrue(st, "the max timer did not lock the store")
        self.assertEqual(st["lock_reason"], "max")
        reasons = [e.get("reason") for e in home.audit_entries() if e["action"] == "lock"]
        self.assertEqual(reasons, ["manual", "idle", "max"])

    def test_unlock_checks_its_durations_first(self):
        home = self.new_home(init=False, serve=False)
        for flag in ("--idle", "--max"):
            r = self.unlock(home, PASS, flag, "soon")
            env = self.assert_err(r, rc=2, code="invalid_params")
            self.assertIn(flag, env["error"]["message"])

    def test_a_plain_identity_has_nothing_to_lock(self):
        home = self.new_home()
        env = self.assert_err(home.run("lock"), code="invalid_params")
        self.assertIn("secrets passphrase set", env["fix"])
        self.assertIs(home.status()["locked"], False)


if __name__ == "__main__":
    harness.main()
