"""Single instance and restart races (issue 7, item 7; DESIGN.md 4 "Single
instance"): two `secrets serve` started at once, exactly one wins; `serve`
after a SIGKILL starts and replaces the stale socket."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import E2ETestCase, RpcConn, wait_until  # noqa: E402

ROUNDS = 10


class Races(E2ETestCase):
    def race(self, home):
        """Starts two daemons at once; checks that exactly one serves and returns it."""
        a, b = home.start(), home.start()
        # The loser exits on its own; the winner keeps running and serves.
        self.assertTrue(wait_until(lambda: not a.alive() or not b.alive(), 15),
                        "neither `serve` exited:\n%s\n---\n%s" % (a.output(), b.output()))
        loser = a if not a.alive() else b
        winner = b if loser is a else a
        home.wait_ready(winner)  # fails if the winner exits too
        self.assertNotEqual(loser.proc.returncode, 0, loser.output())
        self.assertIn("already", loser.output().lower(), loser.output())
        home.daemon = winner
        self.assertEqual(home.status()["pid"], winner.pid)
        return winner

    def test_two_serves_at_once_one_wins(self):
        home = self.new_home(serve=False)
        for i in range(ROUNDS):
            winner = self.race(home)
            self.assertTrue(winner.alive())
            home.add("s%d" % i, b"v%d" % i)
            self.assertEqual(home.run("lease", "s%d" % i).out, b"v%d" % i)
            # Alternate: a clean stop, or a SIGKILL leaving a stale socket and pid file.
            if i % 2:
                home.stop()
                self.assertFalse(os.path.exists(home.socket))
            else:
                home.kill()
                self.assertTrue(os.path.exists(home.socket), "a SIGKILLed daemon leaves its socket")
        home.serve()
        entries = home.audit_entries()
        self.assertEqual([e["action"] for e in entries].count("daemon_start"), ROUNDS + 1,
                         "only winners may write daemon_start")
        self.assertIs(home.run_json("audit", "--verify")["ok"], True)

    def test_serve_after_sigkill_replaces_the_stale_socket(self):
        home = self.new_home()
        home.add("tok", b"v")
        lease = home.lease_json("tok", "--ttl", "10m")["lease_id"]
        for _ in range(3):
            old_pid = home.daemon.pid
            home.kill()
            self.assertTrue(os.path.exists(home.socket))
            with self.assertRaises(ConnectionRefusedError, msg="the socket should be stale"):
                RpcConn(home.socket).close()
            # The pid file still names the dead daemon; its lock died with it.
            self.assertEqual(home.read("daemon.pid").strip(), str(old_pid).encode())
            d = home.serve()
            self.assertEqual(home.status()["pid"], d.pid)
            self.assertEqual(home.read("daemon.pid").strip(), str(d.pid).encode())
            self.assertIn(lease, {l["lease_id"] for l in home.rpc("secrets.leases")["result"]["leases"]})
            self.assertEqual(home.run("lease", "tok").out, b"v")


if __name__ == "__main__":
    harness.main()
