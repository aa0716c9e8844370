"""Crash consistency (issue 7, item 3; DESIGN.md 5 and 6): SIGKILL at random
points while 8 clients add, lease and revoke, for at least 50 rounds; and a
full disk, where `add` fails cleanly and leases are still served."""

import json
import os
import random
import secrets as pysecrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import Closed, E2ETestCase, RpcConn, age_decrypt  # noqa: E402

HAVE_AGE = shutil.which("age") is not None
ROUNDS = int(os.environ.get("CRASH_ROUNDS", "50"))
CLIENTS = 8
TORN = b'{"seq":999999999,"timestamp":"2026-01-01T00:00:00.000Z","action":"lease_acq'


def store_temps(home):
    """util::AtomicFile temp files of secrets.age (a kill mid-write leaves them)."""
    return [n for n in os.listdir(home.path) if n.startswith("secrets.age.tmp.")]


class Client(threading.Thread):
    """Adds, leases and revokes on one connection until the daemon dies.
    Records only what the daemon acknowledged, and what was in flight."""

    def __init__(self, home, tid, rnd, rng, own_leases, base_names):
        super().__init__(daemon=True)
        self.home, self.tid, self.rnd, self.rng = home, tid, rnd, rng
        self.own_leases = own_leases  # this client's live leases, kept across rounds
        self.base_names = base_names
        self.acked_adds = {}
        self.acked_leases = set()
        self.acked_revokes = set()
        self.inflight_revoke = None
        self.unexpected = []
        self.ops = 0

    def run(self):
        try:
            with RpcConn(self.home.socket, timeout=20) as c:
                i = 0
                while True:
                    i += 1
                    r = self.rng.random()
                    if r < 0.25:
                        name = "r%d_c%d_%d" % (self.rnd, self.tid, i)
                        value = pysecrets.token_hex(16)
                        reply = c.call("secrets.add", {"name": name, "value": value})
                        if "result" in reply:
                            self.acked_adds[name] = value
                    elif r < 0.65 or not self.own_leases:
                        name = self.rng.choice(self.base_names)
                        reply = c.call("secrets.lease", {"secret_name": name, "client_id": "crash-%d" % self.tid,
                                                         "ttl": "30m"})
                        if "result" in reply:
                            self.acked_leases.add(reply["result"]["lease_id"])
                            self.own_leases.append(reply["result"]["lease_id"])
                    else:
                        lid = self.own_leases.pop(self.rng.randrange(len(self.own_leases)))
                        self.inflight_revoke = lid
                        reply = c.call("secrets.revoke", {"lease_id": lid})
                        if "result" in reply:
                            self.acked_revokes.add(lid)
                            self.inflight_revoke = None
                    if "error" in reply:
                        self.unexpected.append(reply)
                        return
                    self.ops += 1
        except (Closed, OSError, TimeoutError, ValueError):
            return  # the daemon was killed


class CrashConsistency(E2ETestCase):
    @unittest.skipUnless(HAVE_AGE, "needs Debian's age to decrypt the store")
    def test_sigkill_rounds(self):
        rng = random.Random(os.environ.get("CRASH_SEED") or pysecrets.randbits(32))
        home = self.new_home()
        base = {"base%d" % i: pysecrets.token_hex(12) for i in range(4)}
        for name, value in base.items():
            home.add(name, value.encode())
        expected_store = dict(base)
        acked_leases, revoked, uncertain = set(), set(), set()
        own = [[] for _ in range(CLIENTS)]
        stats = {"ops": 0, "adds": 0, "leases": 0, "revokes": 0, "torn_injected": 0, "torn_by_kill": 0,
                 "tmp_left": 0, "max_live": 0}
        for rnd in range(ROUNDS):
            clients = [Client(home, t, rnd, random.Random(rng.random()), own[t], list(base)) for t in range(CLIENTS)]
            for c in clients:
                c.start()
            time.sleep(rng.uniform(0.02, 0.4))
            pid = home.daemon.pid
            home.kill()
            for c in clients:
                c.join(30)
                self.assertFalse(c.is_alive(), "client %d hung after the kill" % c.tid)
                self.assertEqual(c.unexpected, [], "round %d: an error reply before the kill" % rnd)
                expected_store.update(c.acked_adds)
                acked_leases |= c.acked_leases
                revoked |= c.acked_revokes
                stats["ops"] += c.ops
                stats["adds"] += len(c.acked_adds)
                stats["leases"] += len(c.acked_leases)
                stats["revokes"] += len(c.acked_revokes)
            # A revoke in flight at the kill may or may not have happened; that client forgets the lease.
            uncertain |= {c.inflight_revoke for c in clients if c.inflight_revoke}

            # The store as the crash left it decrypts, with every acknowledged add.
            store = age_decrypt(home)["secrets"]
            for name, value in expected_store.items():
                self.assertIn(name, store, "round %d: acknowledged add %s lost" % (rnd, name))
                self.assertEqual(store[name]["value"], value, "round %d: %s" % (rnd, name))
            stats["tmp_left"] += len(store_temps(home))

            # A torn last line: one a kill left, or one we write as a crash mid-write would.
            raw = home.read("audit.log")
            torn = bool(raw) and not raw.endswith(b"\n")
            if torn:
                stats["torn_by_kill"] += 1
            elif rnd % 5 == 4:
                with open(home.file("audit.log"), "ab") as f:
                    f.write(TORN)
                torn = True
                stats["torn_injected"] += 1

            lines_before = raw.count(b"\n")
            home.serve()
            self.assertNotEqual(home.daemon.pid, pid)
            after = home.read("audit.log")
            self.assertNotIn(TORN, after, "round %d: a torn line was kept" % rnd)
            entries = [json.loads(l) for l in after.split(b"\n") if l]  # every line parses
            starts = [e for e in entries[lines_before:] if e["action"] == "daemon_start"]
            repaired = [e for e in starts if "torn" in e.get("details", "") and e["success"] is False]
            self.assertEqual(bool(repaired), torn, "round %d: torn tail %s but repair reported %r"
                             % (rnd, torn, starts))
            # Temp files a kill left mid-write (old copies of the store) are gone.
            self.assertEqual(store_temps(home), [], "round %d" % rnd)
            verify = home.rpc("secrets.verifyAudit")["result"]
            self.assertIs(verify["ok"], True, "round %d: %r" % (rnd, verify))

            # Every acknowledged lease is in the audit log; live ones are restored.
            audited = {e.get("lease_id") for e in entries if e["action"] == "lease_acquire"}
            missing = acked_leases - audited
            self.assertFalse(missing, "round %d: acknowledged leases not audited: %r" % (rnd, missing))
            live = {l["lease_id"] for l in home.rpc("secrets.leases", timeout=30)["result"]["leases"]}
            lost = acked_leases - revoked - uncertain - live
            self.assertFalse(lost, "round %d: live leases not restored: %r" % (rnd, lost))
            back = live & revoked
            self.assertFalse(back, "round %d: revoked leases came back: %r" % (rnd, back))
            self.assertFalse(live - audited, "round %d: live leases without a lease_acquire line" % rnd)
            stats["max_live"] = max(stats["max_live"], len(live))
        # The daemon of the last round still serves the whole store.
        for name in rng.sample(sorted(expected_store), 5):
            self.assertEqual(home.run("lease", name).out, expected_store[name].encode())
        print("\ncrash: %d rounds, %d acknowledged ops (%d adds, %d leases, %d revokes), up to %d live leases, "
              "%d torn tails from kills, %d injected, %d temp files left by kills (removed at start)"
              % (ROUNDS, stats["ops"], stats["adds"], stats["leases"], stats["revokes"], stats["max_live"],
                 stats["torn_by_kill"], stats["torn_injected"], stats["tmp_left"]))
        self.assertGreater(stats["adds"], ROUNDS // 2)
        self.assertGreater(stats["leases"], ROUNDS)
        self.assertGreater(stats["revokes"], ROUNDS // 2)


def _mount_small_fs(path, size_kib):
    """Mounts a small filesystem on path: tmpfs, else a loop-mounted ext4 image.
    Returns (description, unmount function), or (None, reasons) when neither works."""
    reasons = []
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk,mode=0700" % size_kib, "tmpfs", path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode == 0:
        return "tmpfs", lambda: subprocess.run(["umount", "-l", path])
    reasons.append("mount tmpfs: " + p.stderr.decode(errors="replace").strip())
    image = tempfile.mktemp(prefix="as-fs-", suffix=".img")
    try:
        with open(image, "wb") as f:
            f.truncate(size_kib * 1024)
        p = subprocess.run(["mkfs.ext4", "-q", "-F", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode == 0:
            p = subprocess.run(["mount", "-o", "loop", image, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if p.returncode == 0:
                os.chmod(path, 0o700)

                def undo():
                    subprocess.run(["umount", "-l", path])
                    os.unlink(image)
                return "loop ext4", undo
        reasons.append("loop ext4: " + p.stderr.decode(errors="replace").strip())
    except OSError as e:
        reasons.append("loop ext4: %s" % e)
    if os.path.exists(image):
        os.unlink(image)
    return None, "; ".join(reasons)


def _fill(path):
    """Writes a file until the filesystem is full; returns its path."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


class FullDisk(E2ETestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a small filesystem")
        home = harness.Home(init=False)
        kind, undo = _mount_small_fs(home.path, 1536)
        if kind is None:
            home.cleanup()
            self.skipTest("cannot mount a small filesystem: %s" % undo)

        def cleanup():
            for d in home._daemons:
                d.kill()
            undo()
            home.cleanup()
        self.addCleanup(cleanup)
        self.kind = kind
        r = home.run("init")
        self.assertEqual(r.rc, 0, r)
        home.serve()
        self.home = home

    def test_add_fails_cleanly_and_leases_go_on(self):
        home = self.home
        big = pysecrets.token_hex(150_000)  # a 300 KB store: rewriting it needs 300 KB free
        home.add("big", big.encode())
        home.add("small", b"small-value")
        store_before = home.read("secrets.age")
        filler = _fill(home.path)
        # Leave room for audit lines, but not for a second copy of the store.
        size = os.path.getsize(filler)
        with open(filler, "r+b") as f:
            f.truncate(max(0, size - 64 * 1024))

        r = home.run("add", "new", input=b"new-value")
        env = self.assert_err(r)
        self.assertIn("space", env["error"]["message"].lower(), env)
        self.assertEqual(home.read("secrets.age"), store_before, "the old store was changed")
        self.assertEqual(store_temps(home), [], "a temp file was left")
        self.assertTrue(home.daemon.alive())
        self.assertNotIn("new", [s["name"] for s in home.run_json("list")["secrets"]])
        r = home.run("add", "small", "--force", input=b"replaced-value")
        self.assert_err(r)
        self.assertEqual(home.read("secrets.age"), store_before)

        # Leases are still served, audited, and the replaced value did not leak into memory state.
        for _ in range(10):
            self.assertEqual(home.run("lease", "small").out, b"small-value")
        self.assertEqual(home.run("lease", "big").out, big.encode())
        self.assertIs(home.run_json("audit", "--verify")["ok"], True)
        failed = [e for e in home.audit_entries() if e["action"] == "secret_add" and e["success"] is False]
        self.assertEqual(len(failed), 2, failed)

        # Completely full: a lease whose audit line cannot be written is not handed out;
        # the daemon still answers everything else, and the lease completes once space returns.
        with open(filler, "ab", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        blocked = home.connect(timeout=30)
        self.addCleanup(blocked.close)
        waited = None
        for i in range(500):
            blocked.send(blocked.request("secrets.lease", {"secret_name": "small", "client_id": "full", "ttl": "5m"}))
            try:
                reply = blocked.read_json(timeout=3)
            except TimeoutError:
                waited = i
                break
            self.assertEqual(reply["result"]["value"], "small-value")
        self.assertIsNotNone(waited, "the disk never filled up")
        self.assertIs(home.rpc("secrets.status")["result"]["running"], True)
        self.assertTrue(home.daemon.alive())
        os.unlink(filler)
        reply = blocked.read_json(timeout=30)  # the writer retries; the reply follows its durable line
        self.assertEqual(reply["result"]["value"], "small-value")
        lid = reply["result"]["lease_id"]
        self.assertIn(lid, [e.get("lease_id") for e in home.audit_entries() if e["action"] == "lease_acquire"])

        # Space again: add works, and the store decrypts with it.
        home.add("new", b"new-value")
        self.assertEqual(home.run("lease", "new").out, b"new-value")
        if HAVE_AGE:
            store = age_decrypt(home)["secrets"]
            self.assertEqual(store["new"]["value"], "new-value")
            self.assertEqual(store["big"]["value"], big)
        home.stop()
        print("\nfull disk: on %s" % self.kind)


if __name__ == "__main__":
    harness.main()
