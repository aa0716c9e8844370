"""Load (issue 7, item 4; DESIGN.md 5): 64 concurrent clients on persistent
and fresh connections mixing lease, revoke, list and status with no error and
no deadlock; a stable fd count over 10,000 connections; and RSS back near its
start after 100,000 leases and `revoke --all`."""

import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import E2ETestCase, RpcConn, wait_until  # noqa: E402

CLIENTS = 64
SECONDS = float(os.environ.get("LOAD_SECONDS", "8"))
CONNECTIONS = 10_000
LEASES = int(os.environ.get("LOAD_LEASES", "100000"))
# RSS after the 100,000 leases are revoked may exceed the warmed-up start by at
# most this: the allocator keeps some freed pages, but the lease table itself
# (tens of MB at its peak) must be gone.
RSS_SLACK_KB = 16 * 1024


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def lease_many(home, n, conns=8, batch=64):
    """Acquires n leases over `conns` pipelining connections; returns their ids."""
    ids, errors = [], []
    lock = threading.Lock()

    def worker(count):
        mine = []
        try:
            with RpcConn(home.socket, timeout=120) as c:
                left = count
                while left:
                    k = min(batch, left)
                    for _ in range(k):
                        c.send(c.request("secrets.lease", {"secret_name": "s0", "client_id": "bulk", "ttl": "1h"}))
                    for _ in range(k):
                        reply = c.read_json(timeout=120)
                        if "result" not in reply:
                            errors.append(reply)
                            return
                        mine.append(reply["result"]["lease_id"])
                    left -= k
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=worker, args=(n // conns + (i < n % conns),)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError("bulk leases failed: %r" % errors[:3])
    return ids


class Load(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.names = ["s%d" % i for i in range(8)]
        for name in self.names:
            self.home.add(name, ("value-of-" + name).encode())
        self.pid = self.home.daemon.pid

    def test_64_clients_mixed(self):
        home = self.home
        base_fds = fd_count(self.pid)
        deadline = time.monotonic() + SECONDS
        errors, counts = [], {"lease": 0, "revoke": 0, "list": 0, "status": 0}
        lock = threading.Lock()

        def client(n):
            rng = random.Random(n)
            persistent = n % 2 == 0
            conn = RpcConn(home.socket, timeout=60) if persistent else None
            mine, done = [], {k: 0 for k in counts}
            try:
                while time.monotonic() < deadline:
                    r = rng.random()
                    if r < 0.4:
                        name = rng.choice(self.names)
                        op, method, params = "lease", "secrets.lease", {
                            "secret_name": name, "client_id": "load-%d" % n, "ttl": "10m"}
                    elif r < 0.65 and mine:
                        op, method, params = "revoke", "secrets.revoke", {"lease_id": mine.pop()}
                    elif r < 0.8:
                        op, method, params = "list", "secrets.list", None
                    else:
                        op, method, params = "status", "secrets.status", None
                    if persistent:
                        reply = conn.call(method, params, timeout=60)
                    else:
                        with RpcConn(home.socket, timeout=60) as c:
                            reply = c.call(method, params, timeout=60)
                    if "result" not in reply:
                        raise AssertionError("%s: %r" % (method, reply))
                    if op == "lease":
                        if reply["result"]["value"] != "value-of-" + name:
                            raise AssertionError("wrong value for %s" % name)
                        mine.append(reply["result"]["lease_id"])
                    done[op] += 1
            except Exception as e:  # noqa: BLE001 - collected and reported
                with lock:
                    errors.append("client %d: %r" % (n, e))
            finally:
                if conn:
                    conn.close()
                with lock:
                    for k, v in done.items():
                        counts[k] += v

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(SECONDS + 120)
        elapsed = time.monotonic() - start
        self.assertFalse([t for t in threads if t.is_alive()], "clients still blocked: a deadlock")
        self.assertEqual(errors, [])
        total = sum(counts.values())
        self.assertGreater(counts["lease"], CLIENTS)
        self.assertGreater(counts["revoke"], CLIENTS // 2)
        status = home.status()
        self.assertEqual(status["active_leases"], counts["lease"] - counts["revoke"])
        self.assertIs(home.run_json("audit", "--verify")["ok"], True)
        self.assertTrue(wait_until(lambda: fd_count(self.pid) <= base_fds, 30))
        print("\nload: %d clients for %.1fs: %d requests (%.0f/s; %r), 0 errors, fds %d -> %d"
              % (CLIENTS, elapsed, total, total / elapsed, counts, base_fds, fd_count(self.pid)))

    def test_fd_count_stable_over_10000_connections(self):
        home = self.home
        base = fd_count(self.pid)
        errors, peak = [], [base]

        def worker(k):
            try:
                for i in range(CONNECTIONS // 16):
                    with RpcConn(home.socket, timeout=60) as c:
                        if i % 3 == 0:
                            c.call("secrets.status")  # others connect and leave at once
                    if k == 0 and i % 50 == 0:
                        peak[0] = max(peak[0], fd_count(self.pid))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        self.assertEqual(errors, [])
        # At most as many as before: a descriptor open for a moment when `base`
        # was counted (a snapshot or anchor write) may be closed by now.
        self.assertTrue(wait_until(lambda: fd_count(self.pid) <= base, 30),
                        "fd count %d, was %d" % (fd_count(self.pid), base))
        self.assertTrue(home.daemon.alive())
        print("\nconnections: %d in %.1fs (%.0f/s), daemon fds %d before, peak %d, %d after"
              % (CONNECTIONS, elapsed, CONNECTIONS / elapsed, base, peak[0], fd_count(self.pid)))

    @unittest.skipIf(harness.binary_is_sanitized(), "AddressSanitizer's allocator keeps freed memory in quarantine")
    def test_rss_returns_after_100000_leases_and_revoke_all(self):
        home = self.home
        # Warm up: the allocator's arenas and the bounded memory of ended ids (10,000) are full.
        lease_many(home, 12_000)
        home.run_json("revoke", "--all")
        start_rss = rss_kb(self.pid)
        t0 = time.monotonic()
        ids = lease_many(home, LEASES)
        lease_secs = time.monotonic() - t0
        self.assertEqual(len(set(ids)), LEASES)
        self.assertEqual(home.status()["active_leases"], LEASES)
        peak_rss = rss_kb(self.pid)
        # leases.json may still be the small one from the warm-up (no snapshot
        # is due while 100,000 leases arrive in a few seconds): the one to wait
        # for is the next file, written after the revoke.
        def stamp():
            try:
                st = os.stat(home.file("leases.json"))
            except FileNotFoundError:
                return None
            return (st.st_ino, st.st_mtime_ns, st.st_size)

        before = stamp()
        t0 = time.monotonic()
        res = home.run_json("revoke", "--all", timeout=120)
        revoke_secs = time.monotonic() - t0
        self.assertEqual(res["leases_revoked"], LEASES)
        self.assertEqual(home.status()["active_leases"], 0)
        # The next snapshot (every 2 s while dirty) is the small, empty one.
        def new_small_snapshot():
            now = stamp()
            return now is not None and now != before and now[2] < 4096

        self.assertTrue(wait_until(new_small_snapshot, 60))
        end_rss = rss_kb(self.pid)
        print("\nrss: %d leases in %.1fs (%.0f/s), revoke --all in %.1fs; VmRSS %d kB at start, %d kB with "
              "the leases, %d kB after (slack %d kB)" % (LEASES, lease_secs, LEASES / lease_secs, revoke_secs,
                                                         start_rss, peak_rss, end_rss, RSS_SLACK_KB))
        self.assertLessEqual(end_rss, start_rss + RSS_SLACK_KB)
        self.assertIs(home.run_json("audit", "--verify", timeout=120)["ok"], True)


if __name__ == "__main__":
    harness.main()
