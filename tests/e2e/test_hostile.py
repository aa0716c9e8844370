"""Hostile peers and input (issue 7, item 5; DESIGN.md 4): another uid is
refused and audited, slowloris clients block no one, 10,000 half-open
connections do not exhaust the daemon's fds, malformed JSON gets a clear
JSON-RPC error, names are validated, and a symlinked store file or a home
owned by someone else stops `serve`."""

import json
import os
import pwd
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import Closed, E2ETestCase, Home, RpcConn, wait_until  # noqa: E402

VALUE = "h0stile-VALUE-q7"


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


NOBODY = harness.nobody_prefix()

CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
req = {"jsonrpc": "2.0", "method": sys.argv[2], "params": json.loads(sys.argv[3]), "id": 7}
s.sendall(json.dumps(req).encode() + b"\n")
buf = b""
while b"\n" not in buf:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(buf.decode())
"""


@unittest.skipUnless(NOBODY is not None, "needs root, a nobody user and setpriv or runuser")
class OtherUid(E2ETestCase):
    """Our daemon (root); a client running as nobody."""

    def test_nobody_gets_unauthorized_and_is_audited(self):
        prefix, pw = NOBODY
        sock_dir = tempfile.mkdtemp(prefix="as-sock-")
        self.addCleanup(shutil.rmtree, sock_dir, True)
        os.chmod(sock_dir, 0o755)
        home = Home()
        self.addCleanup(home.cleanup)
        sock = os.path.join(sock_dir, "s.sock")
        home.env["AGENT_SECRETS_SOCKET"] = sock
        d = home.start()

        def ready():
            try:
                with RpcConn(sock, timeout=2) as c:
                    return "result" in c.call("secrets.status")
            except (OSError, TimeoutError, Closed, ValueError):
                return not d.alive()
        self.assertTrue(wait_until(ready, 10) and d.alive(), d.output())
        home.daemon = d
        r = home.run("add", "x", input=VALUE.encode())
        self.assertEqual(r.rc, 0, r)
        # The daemon makes its socket 0600; open it up so that nobody reaches the peer check.
        self.assertEqual(os.stat(sock).st_mode & 0o777, 0o600)
        os.chmod(sock, 0o666)
        for method, params in (("secrets.lease", {"secret_name": "x", "client_id": "intruder", "ttl": "1m"}),
                               ("secrets.status", {}), ("secrets.revokeAll", {})):
            p = subprocess.run(prefix + [sys.executable, "-c", CLIENT, sock, method, json.dumps(params)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            reply = json.loads(p.stdout)
            self.assert_rpc_error(reply, -32006, id=7)
            self.assertNotIn(VALUE, p.stdout.decode())
        denied = [e for e in home.audit_entries() if e["action"] == "denied"]
        self.assertEqual(len(denied), 3, denied)
        for e in denied:
            self.assertIs(e["success"], False)
            self.assertEqual(e["peer"]["uid"], pw.pw_uid, e)
        self.assertFalse([e for e in home.audit_entries() if e["action"] in ("lease_acquire", "killswitch")])
        self.assertEqual(home.run("lease", "x").out, VALUE.encode())


class Slowloris(E2ETestCase):
    def test_slow_and_unfinished_lines_block_no_one(self):
        home = self.new_home()
        home.add("x", VALUE.encode())
        stop = threading.Event()
        line = json.dumps({"jsonrpc": "2.0", "method": "secrets.status", "id": 5}).encode() + b"\n"
        slow = [home.connect(timeout=30) for _ in range(20)]
        stuck = [home.connect(timeout=30) for _ in range(20)]
        for c in slow + stuck:
            self.addCleanup(c.close)
        for c in stuck:
            c.send_raw(b'{"jsonrpc":"2.0","method":"secrets.lease","params":{"secret_name":"x"')  # never ended

        def drip(c):
            # A byte at a time, all but the last; then the line stays unfinished until `stop`.
            for i in range(len(line) - 1):
                c.send_raw(line[i:i + 1])
                if stop.wait(0.05):
                    break
            else:
                stop.wait()
            c.send_raw(line[i + 1:-1])

        threads = [threading.Thread(target=drip, args=(c,), daemon=True) for c in slow]
        for t in threads:
            t.start()
        # Meanwhile everyone else is served: fresh connections, the CLI, a pipelined batch.
        for i in range(50):
            self.assertIn("result", home.rpc("secrets.status"))
        for i in range(10):
            self.assertEqual(home.run("lease", "x").out, VALUE.encode())
        with home.connect() as c:
            for i in range(100):
                c.send(c.request("secrets.lease", {"secret_name": "x", "client_id": "ok", "ttl": "1m"}, id=i))
            for i in range(100):
                self.assertEqual(c.read_json()["id"], i)
        stop.set()
        for t in threads:
            t.join(30)
        # The slow clients were not dropped: their last byte completes a request that is answered.
        for c in slow:
            c.send_raw(line[-1:])
        for c in slow:
            self.assertEqual(c.read_json(timeout=15)["id"], 5)
        for c in stuck:
            c.send_raw(b',"client_id":"late","ttl":"1m"},"id":9}\n')
            self.assertEqual(c.read_json(timeout=15)["result"]["value"], VALUE)


class HalfOpen(E2ETestCase):
    N = 10_000
    LIMIT = 1024  # Debian's default soft RLIMIT_NOFILE

    def test_ten_thousand_half_open_connections(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < self.N + 200 and os.geteuid() != 0:
            self.skipTest("needs RLIMIT_NOFILE above %d for the client side" % (self.N + 200))
        if soft < self.N + 200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, self.N + 200), max(hard, self.N + 200)))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        home = self.new_home()
        home.add("x", VALUE.encode())
        pid = home.daemon.pid
        # The daemon gets the common default of 1024 fds, so 10,000 connections cannot all fit.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (self.LIMIT, self.LIMIT))
        keeper = home.connect(timeout=30)  # connected before the flood
        self.addCleanup(keeper.close)
        self.assertIn("result", keeper.call("secrets.status"))
        base = fd_count(pid)

        socks, refused = [], 0
        peak = base
        for i in range(self.N):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(home.socket)
                if i % 2:
                    s.send(b'{"jsonrpc":"2.0","method":"secr')  # half a request, never finished
                socks.append(s)
            except OSError:
                refused += 1
                s.close()
            if i % 500 == 0:
                peak = max(peak, fd_count(pid))
        self.addCleanup(lambda: [s.close() for s in socks])
        peak = max(peak, fd_count(pid))
        self.assertTrue(home.daemon.alive())
        self.assertLess(peak, self.LIMIT, "the daemon ran out of fds")
        # fds are left for real work: an add (temp file + rename + fsync of the dir) and a lease.
        reply = keeper.call("secrets.add", {"name": "during_flood", "value": "v2"}, timeout=30)
        self.assertIn("result", reply, reply)
        reply = keeper.call("secrets.lease", {"secret_name": "x", "client_id": "k", "ttl": "1m"}, timeout=30)
        self.assertEqual(reply["result"]["value"], VALUE)
        # Connections over the limit were refused (closed at once), not queued forever.
        closed = 0
        for s in socks:
            s.setblocking(False)
            try:
                closed += s.recv(1) == b""
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                closed += 1
        for s in socks:
            s.close()
        socks.clear()
        self.assertTrue(wait_until(lambda: fd_count(pid) <= base, 30), "fds not released: %d > %d"
                        % (fd_count(pid), base))
        after = fd_count(pid)
        self.assert_serving(home)
        self.assertEqual(home.run("lease", "x").out, VALUE.encode())
        log_size = os.path.getsize(home.file("daemon.log"))
        self.assertLess(log_size, 1 << 20, "the daemon flooded its log")
        print("\nhalf-open: %d connections, %d refused at connect, %d closed by the daemon, daemon fds: "
              "%d before, peak %d (limit %d), %d after; daemon.log %d bytes"
              % (self.N, refused, closed, base, peak, self.LIMIT, after, log_size))


class MalformedInput(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("x", VALUE.encode())

    def send_line(self, data, timeout=15):
        with self.home.connect(timeout=timeout) as c:
            c.send_raw(data + b"\n")
            return c.read_json(timeout=timeout)

    def assert_clear_error(self, reply, codes):
        self.assertIn("error", reply, reply)
        self.assertNotIn("result", reply, reply)
        self.assertIn(reply["error"]["code"], codes, reply)
        self.assertTrue(reply["error"]["message"], reply)
        self.assertIsInstance(reply["error"].get("data", {}).get("code"), str, reply)
        return reply["error"]

    def test_invalid_utf8(self):
        for bad in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"caf\xc3"):
            line = b'{"jsonrpc":"2.0","method":"secrets.add","params":{"name":"u","value":"' + bad + b'"},"id":1}'
            self.assert_clear_error(self.send_line(line), (-32700,))
            line = b'{"jsonrpc":"2.0","method":"secrets.lease","params":{"secret_name":"x' + bad + b'"},"id":1}'
            self.assert_clear_error(self.send_line(line), (-32700,))
        line = b'{"jsonrpc":"2.0","method":"secrets.add","params":{"name":"u","value":"\\ud800"},"id":1}'
        self.assert_clear_error(self.send_line(line), (-32700,))
        self.assertNotIn("u", [s["name"] for s in self.home.run_json("list")["secrets"]])
        self.assert_serving(self.home)

    def test_deep_nesting(self):
        depth = 400_000  # 800 KB, under the 1 MiB line limit
        cases = [
            b"[" * depth + b"]" * depth,
            b'{"jsonrpc":"2.0","method":"secrets.status","params":' + b"[" * depth + b"]" * depth + b',"id":1}',
            b'{"jsonrpc":"2.0","method":"secrets.lease","params":{"secret_name":' + b'{"a":' * (depth // 6)
            + b"1" + b"}" * (depth // 6) + b'},"id":1}',
            b"[" * depth,  # unterminated
        ]
        for line in cases:
            self.assert_clear_error(self.send_line(line, timeout=60), (-32700, -32600, -32602))
        self.assert_serving(self.home)

    def test_huge_numbers(self):
        cases = [
            (b'{"jsonrpc":"2.0","method":"secrets.audit","params":{"tail":1e400},"id":1}', (-32700, -32602)),
            (b'{"jsonrpc":"2.0","method":"secrets.audit","params":{"tail":' + b"9" * 400 + b'},"id":1}',
             (-32700, -32602)),
            (b'{"jsonrpc":"2.0","method":"secrets.audit","params":{"tail":-' + b"9" * 40 + b'},"id":1}',
             (-32700, -32602)),
            (b'{"jsonrpc":"2.0","method":"secrets.lease","params":{"secret_name":"x","ttl":1e300},"id":1}',
             (-32602,)),
            (b'{"jsonrpc":"2.0","method":"secrets.lease","params":{"secret_name":"x","ttl":"' + b"9" * 300
             + b'h"},"id":1}', (-32602,)),
            (b'{"jsonrpc":"2.0","method":"secrets.status","id":1e400}', (-32700, -32600)),
        ]
        for line, codes in cases:
            self.assert_clear_error(self.send_line(line), codes)
        self.assertEqual(self.home.status()["active_leases"], 0)
        self.assert_serving(self.home)

    def test_duplicate_keys(self):
        cases = [
            b'{"jsonrpc":"2.0","method":"secrets.status","method":"secrets.revokeAll","id":1}',
            b'{"jsonrpc":"2.0","method":"secrets.lease","params":{"secret_name":"nope","secret_name":"x",'
            b'"client_id":"d","ttl":"1m"},"id":1}',
            b'{"jsonrpc":"2.0","method":"secrets.status","id":1,"id":2}',
            b'{"jsonrpc":"2.0","method":"secrets.add","params":{"name":"d","value":"a","value":"b"},"id":1}',
        ]
        lease = self.home.lease_json("x", "--ttl", "10m")["lease_id"]
        for line in cases:
            err = self.assert_clear_error(self.send_line(line), (-32600, -32700))
            self.assertIn("duplicate", err["message"].lower(), err)
        # None of them ran: the lease is still live, nothing leased or added.
        self.assertEqual([l["lease_id"] for l in self.home.rpc("secrets.leases")["result"]["leases"]], [lease])
        self.assertNotIn("d", [s["name"] for s in self.home.run_json("list")["secrets"]])
        # The same key in sibling objects is fine.
        reply = self.send_line(b'{"jsonrpc":"2.0","method":"secrets.status","params":{"a":{"k":1},"b":{"k":2}},"id":1}')
        self.assertIn("result", reply, reply)

    def test_null_bytes(self):
        for params in ({"name": "a\u0000b", "value": "v"}, {"name": "\u0000", "value": "v"},
                       {"name": "x\u0000", "value": "v", "force": True}):
            err = self.assert_clear_error(self.home.rpc("secrets.add", params), (-32602,))
            self.assertIn("name", err["message"])
        for method, params in (("secrets.lease", {"secret_name": "x\u0000", "client_id": "c", "ttl": "1m"}),
                               ("secrets.delete", {"name": "x\u0000"}),
                               ("secrets.rotate", {"secret_name": "x\u0000"})):
            self.assert_clear_error(self.home.rpc(method, params), (-32602, -32000))
        # A raw NUL byte is not JSON at all.
        self.assert_clear_error(self.send_line(b'{"jsonrpc":"2.0","method":"secrets.status","id":1}\x00'), (-32700,))
        self.assert_clear_error(self.send_line(b'{"jsonrpc":"2.0","method":"secrets.add","params":{"name":"a\x00b",'
                                               b'"value":"v"},"id":1}'), (-32700,))
        self.assertEqual([s["name"] for s in self.home.run_json("list")["secrets"]], ["x"])
        self.assertIs(self.home.run_json("audit", "--verify")["ok"], True)


class Names(E2ETestCase):
    GOOD = ["a", "A", "0", "a" * 128, "api_key", "API.key-2", "x.y_z-0", "0abc"]
    BAD = ["", "a" * 129, "a b", "a/b", "../x", "a\\b", "caf\u00e9", "a\tb", "a\nb", "a:b", "a$b", "a;b", "a,b",
           "a=b", "a*b", "-a", ".a", ".", "..", "a\u0000"]

    def test_names(self):
        home = self.new_home()
        for name in self.GOOD:
            reply = home.rpc("secrets.add", {"name": name, "value": "v-" + name})
            self.assertIn("result", reply, (name, reply))
        for name in self.BAD:
            reply = home.rpc("secrets.add", {"name": name, "value": "v"})
            self.assertEqual(reply.get("error", {}).get("code"), -32602, (name, reply))
            self.assertIn("name", reply["error"]["message"], reply)
            if name:
                self.assertIn("128", reply["error"]["message"], reply)
                self.assertTrue(reply["error"]["data"].get("fix"), reply)
        self.assertEqual(sorted(s["name"] for s in home.run_json("list")["secrets"]), sorted(self.GOOD))
        # The CLI says the same, exit 1 or 2, nothing stored.
        for name in ("a b", "a" * 129, "a/b"):
            r = home.run("add", name, input=b"v")
            self.assertNotEqual(r.rc, 0, r)
        self.assertEqual(home.run("lease", "a" * 128).out, b"v-" + b"a" * 128)


class RefuseToStart(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("tok", VALUE.encode())
        self.home.stop()

    def assert_refused(self, *words):
        r = self.home.serve_expect_exit(timeout=10)
        self.assertIsNotNone(r.rc, "serve started anyway")
        self.assertNotEqual(r.rc, 0, r)
        env = r.env
        self.assertIsNotNone(env, r)
        self.assertIs(env["ok"], False, env)
        self.assertTrue(env.get("fix"), env)
        text = (env["error"]["message"] + " " + env["fix"]).lower()
        for w in words:
            self.assertIn(w, text, env)
        self.assertFalse(os.path.exists(self.home.socket))

    def test_symlinked_store_files(self):
        outside = tempfile.mkdtemp(prefix="as-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        for name in ("secrets.age", "identity.age", "audit.log"):
            target = os.path.join(outside, name)
            shutil.copy2(self.home.file(name), target)
            os.chmod(target, 0o600)
            original = self.home.read(name)
            os.unlink(self.home.file(name))
            os.symlink(target, self.home.file(name))
            self.assert_refused("symbolic link", name)
            os.unlink(self.home.file(name))
            with open(self.home.file(name), "wb") as f:
                f.write(original)
            os.chmod(self.home.file(name), 0o600)
        self.home.serve()
        self.assertEqual(self.home.run("lease", "tok").out, VALUE.encode())

    @unittest.skipUnless(NOBODY is not None, "needs root and a nobody user")
    def test_home_owned_by_another_user(self):
        pw = NOBODY[1]
        os.chown(self.home.path, pw.pw_uid, pw.pw_gid)
        self.assert_refused("owned by uid %d" % pw.pw_uid)
        os.chown(self.home.path, 0, 0)
        os.chown(self.home.file("secrets.age"), pw.pw_uid, pw.pw_gid)
        self.assert_refused("owned by uid %d" % pw.pw_uid, "secrets.age")
        os.chown(self.home.file("secrets.age"), 0, 0)
        self.home.serve()
        self.assertEqual(self.home.run("lease", "tok").out, VALUE.encode())


if __name__ == "__main__":
    harness.main()
