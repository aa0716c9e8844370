"""End-to-end tests of the daemon's wire protocol over the raw Unix socket
(DESIGN.md section 4): framing, error codes, limits, ordering, Go client
compatibility, notifications, and the peer uid check."""

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import BIN, E2ETestCase, Home, RpcConn, UUID4_RE, now_utc, parse_time  # noqa: E402

VALUE = "s3cret-VALUE-zz91"


class Framing(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("x", VALUE.encode())

    def test_status_fields(self):
        with self.home.connect() as c:
            reply = c.call("secrets.status", id=7)
        self.assertEqual(reply["jsonrpc"], "2.0")
        self.assertEqual(reply["id"], 7)
        res = reply["result"]
        for field in ("running", "started_at", "secrets_count", "active_leases", "heartbeat", "pid",
                      "version", "uptime", "socket", "killswitch_tripped"):
            self.assertIn(field, res, res)
        self.assertIn("enabled", res["heartbeat"])

    def test_malformed_json(self):
        with self.home.connect() as c:
            for bad in (b"{not json", b'{"jsonrpc":"2.0","method":"secrets.status","id":1', b"\x00\x01\x02",
                        b'{"a":1}}'):
                c.send_raw(bad + b"\n")
                reply = c.read_json()
                self.assert_rpc_error(reply, -32700, id=None)
            # The same connection still serves.
            self.assertIn("result", c.call("secrets.status"))
        self.assert_serving(self.home)

    def test_invalid_requests(self):
        cases = [
            b"[]",
            b'[{"jsonrpc":"2.0","method":"secrets.status","id":1}]',
            b"42",
            b'"secrets.status"',
            b'{"jsonrpc":"2.0","id":3}',
            b'{"jsonrpc":"2.0","method":5,"id":3}',
            b'{"jsonrpc":"1.0","method":"secrets.status","id":3}',
            b'{"jsonrpc":"2.0","method":"secrets.status","id":{"a":1}}',
        ]
        with self.home.connect() as c:
            for line in cases:
                c.send_raw(line + b"\n")
                reply = c.read_json()
                self.assert_rpc_error(reply, -32600)
                self.assertIn(reply["id"], (None, 3), (line, reply))
            self.assertIn("result", c.call("secrets.status"))
        self.assert_serving(self.home)

    def test_unknown_method(self):
        with self.home.connect() as c:
            reply = c.call("secrets.frobnicate", {}, id=11)
            self.assert_rpc_error(reply, -32601, id=11)
            reply = c.call("", {}, id=12)
            self.assertIn(reply["error"]["code"], (-32601, -32600), reply)
            self.assertIn("result", c.call("secrets.status"))
        self.assert_serving(self.home)

    def test_wrong_param_types(self):
        cases = [
            ("secrets.lease", {"secret_name": 5}),
            ("secrets.lease", {"secret_name": "x", "ttl": 30}),
            ("secrets.lease", {"secret_name": "x", "client_id": ["c"]}),
            ("secrets.lease", {"secret_name": ["x"], "client_id": "c", "ttl": "30m"}),
            ("secrets.add", {"name": "y", "value": 5}),
            ("secrets.add", {"name": 5, "value": "v"}),
            ("secrets.add", {"name": "y", "value": "v", "force": "yes"}),
            ("secrets.delete", {"name": None}),
            ("secrets.revoke", {"lease_id": 5}),
            ("secrets.audit", {"tail": "3"}),
            ("secrets.audit", {"tail": -1}),
            ("secrets.watch", {"lease_ids": "abc"}),
            ("secrets.watch", {"lease_ids": [1, 2]}),
            ("secrets.status", [1, 2]),
            ("secrets.lease", "x"),
        ]
        with self.home.connect() as c:
            for i, (method, params) in enumerate(cases, 100):
                reply = c.call(method, params, id=i)
                err = self.assert_rpc_error(reply, -32602, id=i)
                self.assertEqual(err.get("data", {}).get("code"), "invalid_params", (method, params, reply))
        self.assert_serving(self.home)
        self.assertEqual(self.home.status()["active_leases"], 0)
        self.assertEqual(self.home.status()["secrets_count"], 1)

    def test_missing_params(self):
        cases = [
            ("secrets.lease", None),
            ("secrets.lease", {}),
            ("secrets.lease", {"client_id": "c"}),
            ("secrets.add", {"name": "y"}),
            ("secrets.add", {"value": "v"}),
            ("secrets.delete", {}),
            ("secrets.revoke", {}),
            ("secrets.watch", {}),
        ]
        with self.home.connect() as c:
            for i, (method, params) in enumerate(cases, 200):
                reply = c.call(method, params, id=i)
                self.assert_rpc_error(reply, -32602, id=i)
        self.assert_serving(self.home)

    def test_bad_ttl_is_invalid_params_naming_the_range(self):
        for ttl in ("abc", "0", "48h", "-1m"):
            reply = self.home.rpc("secrets.lease", {"secret_name": "x", "client_id": "c", "ttl": ttl})
            err = self.assert_rpc_error(reply, -32602)
            self.assertIn("1s", err["message"])
            self.assertIn("24h", err["message"])
            self.assertNotIn(VALUE, json.dumps(reply))

    def test_request_without_id_gets_id_null(self):
        with self.home.connect() as c:
            c.send_raw(b'{"jsonrpc":"2.0","method":"secrets.status"}\n')
            reply = c.read_json()
            self.assertIn("id", reply)
            self.assertIsNone(reply["id"])
            self.assertIs(reply["result"]["running"], True)
            c.send_raw(b'{"jsonrpc":"2.0","method":"secrets.nope"}\n')
            reply = c.read_json()
            self.assert_rpc_error(reply, -32601, id=None)

    def test_ids_are_echoed(self):
        with self.home.connect() as c:
            for rid in ("abc", 0, -5, 2 ** 40, "", None):
                c.send_raw(json.dumps({"jsonrpc": "2.0", "method": "secrets.status", "id": rid}).encode() + b"\n")
                reply = c.read_json()
                self.assertEqual(reply["id"], rid)
                self.assertIn("result", reply)

    def test_blank_lines_and_crlf(self):
        with self.home.connect() as c:
            c.send_raw(b"\n   \n\r\n" + b'{"jsonrpc":"2.0","method":"secrets.status","id":"crlf"}\r\n')
            reply = c.read_json()
            self.assertEqual(reply["id"], "crlf", reply)
            self.assertIn("result", reply)

    def test_request_split_across_writes(self):
        line = json.dumps({"jsonrpc": "2.0", "method": "secrets.status", "id": 9}).encode() + b"\n"
        with self.home.connect() as c:
            for i in range(len(line)):
                c.send_raw(line[i:i + 1])
                if i % 10 == 0:
                    time.sleep(0.002)
            self.assertEqual(c.read_json()["id"], 9)

    def test_line_over_1mib_is_refused_and_closed(self):
        c = self.home.connect()
        self.addCleanup(c.close)
        big = b'{"jsonrpc":"2.0","method":"secrets.add","params":{"name":"big","value":"' + b"a" * (2 << 20) + b'"},"id":1}\n'

        def sender():
            try:
                c.sock.sendall(big)
            except OSError:
                pass  # the daemon closed while we were still writing

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        reply = c.read_json(timeout=15)
        self.assert_rpc_error(reply, -32600)
        self.assertIsNone(reply["id"])
        self.assertTrue(c.wait_closed(5), "the connection must close after an oversized line")
        t.join(10)
        self.assert_serving(self.home)
        names = [s["name"] for s in self.home.run_json("list")["secrets"]]
        self.assertNotIn("big", names)
        entries = self.home.audit_entries()
        self.assertFalse([e for e in entries if e["action"] == "daemon_stop"], entries)

    def test_line_just_under_1mib_is_accepted(self):
        value = "b" * 1_000_000
        with self.home.connect() as c:
            reply = c.call("secrets.add", {"name": "nearly", "value": value}, timeout=15)
            self.assertIn("result", reply, str(reply)[:300])
            reply = c.call("secrets.lease", {"secret_name": "nearly", "client_id": "t", "ttl": "1m"}, timeout=15)
            self.assertEqual(reply["result"]["value"], value)

    def test_secrets_get_is_always_unauthorized(self):
        for params in ({"name": "x"}, {"secret_name": "x"}, {}):
            reply = self.home.rpc("secrets.get", params)
            self.assert_rpc_error(reply, -32006)
            self.assertNotIn(VALUE, json.dumps(reply))
        self.assertTrue(any(e["action"] == "denied" and e["success"] is False
                            for e in self.home.audit_entries()))
        self.assert_serving(self.home)

    def test_many_errors_in_a_row_leave_the_daemon_serving(self):
        with self.home.connect() as c:
            for i in range(50):
                c.send_raw(b"garbage %d\n" % i)
            for i in range(50):
                self.assert_rpc_error(c.read_json(), -32700)
        # Clients that vanish mid-request.
        for _ in range(5):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.home.socket)
            s.sendall(b'{"jsonrpc":"2.0","method":"secrets.lea')
            s.close()
        for _ in range(5):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.home.socket)
            s.sendall(b'{"jsonrpc":"2.0","method":"secrets.lease","params":{"secret_name":"x"},"id":1}\n')
            s.close()
        self.assert_serving(self.home)
        self.assertEqual(self.home.run("lease", "x").out, VALUE.encode())


class Methods(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("x", VALUE.encode())

    def test_go_client_lease_request(self):
        with self.home.connect() as c:
            c.send_raw(b'{"jsonrpc":"2.0","method":"secrets.lease","params":{"secret_name":"x","client_id":"c","ttl":"30m"},"id":1}\n')
            raw = c.read_line()
        reply = json.loads(raw)
        self.assertEqual(reply["jsonrpc"], "2.0")
        self.assertEqual(reply["id"], 1)
        res = reply["result"]
        self.assertRegex(res["lease_id"], UUID4_RE)
        self.assertEqual(res["value"], VALUE)
        exp = parse_time(res["expires_at"])
        self.assertLess(abs((exp - now_utc()).total_seconds() - 1800), 30)
        self.assertEqual(res.get("secret_name"), "x")
        self.assertEqual(res.get("client_id"), "c")

    def test_go_client_empty_ttl_means_default(self):
        reply = self.home.rpc("secrets.lease", {"secret_name": "x", "client_id": "c", "ttl": ""})
        exp = parse_time(reply["result"]["expires_at"])
        self.assertLess(abs((exp - now_utc()).total_seconds() - 3600), 30)

    def test_lease_missing_secret(self):
        reply = self.home.rpc("secrets.lease", {"secret_name": "nope", "client_id": "c", "ttl": "1m"})
        err = self.assert_rpc_error(reply, -32000)
        self.assertEqual(err["data"]["code"], "not_found")
        self.assertTrue(err["data"].get("fix"))

    def test_add_list_delete(self):
        with self.home.connect() as c:
            res = c.result("secrets.add", {"name": "y", "value": "yv"})
            self.assertIs(res["success"], True)
            self.assertEqual(res["name"], "y")
            parse_time(res["created_at"])
            reply = c.call("secrets.add", {"name": "y", "value": "other"})
            self.assert_rpc_error(reply, -32010)
            res = c.result("secrets.add", {"name": "y", "value": "other", "force": True})
            self.assertIs(res["success"], True)
            reply = c.call("secrets.add", {"name": "z", "value": ""})
            self.assert_rpc_error(reply, -32602)
            res = c.result("secrets.list")
            self.assertEqual(sorted(s["name"] for s in res["secrets"]), ["x", "y"])
            for s in res["secrets"]:
                self.assertNotIn("value", s)
                for f in ("name", "created_at", "updated_at", "last_rotated"):
                    self.assertIn(f, s)
            lease = c.result("secrets.lease", {"secret_name": "y", "client_id": "t", "ttl": "1m"})
            self.assertEqual(lease["value"], "other")
            res = c.result("secrets.delete", {"name": "y"})
            self.assertIs(res["success"], True)
            self.assertTrue(res["message"])
            self.assert_rpc_error(c.call("secrets.delete", {"name": "y"}), -32000)
            self.assert_rpc_error(c.call("secrets.revoke", {"lease_id": lease["lease_id"]}), -32002)

    def test_revoke_codes(self):
        with self.home.connect() as c:
            lease = c.result("secrets.lease", {"secret_name": "x", "client_id": "t", "ttl": "10m"})
            res = c.result("secrets.revoke", {"lease_id": lease["lease_id"]})
            self.assertIs(res["success"], True)
            self.assertTrue(res["message"])
            self.assert_rpc_error(c.call("secrets.revoke", {"lease_id": lease["lease_id"]}), -32002)
            self.assert_rpc_error(c.call("secrets.revoke", {"lease_id": "no-such-lease"}), -32001)

    def test_revoke_all_and_leases(self):
        with self.home.connect() as c:
            ids = [c.result("secrets.lease", {"secret_name": "x", "client_id": "t%d" % i, "ttl": "10m"})["lease_id"]
                   for i in range(4)]
            res = c.result("secrets.leases")
            self.assertEqual(sorted(l["lease_id"] for l in res["leases"]), sorted(ids))
            for l in res["leases"]:
                self.assertEqual(l["secret_name"], "x")
                parse_time(l["created_at"])
                parse_time(l["expires_at"])
                self.assertNotIn("value", l)
            res = c.result("secrets.revokeAll", {})
            self.assertIs(res["success"], True)
            self.assertEqual(res["leases_revoked"], 4)
            self.assertTrue(res["message"])
            self.assertEqual(c.result("secrets.leases")["leases"], [])
            # The Go client sends no params at all.
            res = c.result("secrets.revokeAll")
            self.assertEqual(res["leases_revoked"], 0)

    def test_audit_and_verify(self):
        with self.home.connect() as c:
            c.result("secrets.lease", {"secret_name": "x", "client_id": "t", "ttl": "10m"})
            res = c.result("secrets.audit", {"tail": 1})
            self.assertEqual(len(res["entries"]), 1)
            self.assertEqual(res["entries"][0]["action"], "lease_acquire")
            self.assertIn("expires_at", res["entries"][0])
            all_entries = c.result("secrets.audit", {"tail": 0})["entries"]
            self.assertEqual(len(all_entries), len(self.home.audit_lines()))
            self.assertEqual(c.result("secrets.audit")["entries"], all_entries)
            res = c.result("secrets.verifyAudit")
            self.assertIs(res["ok"], True)
            self.assertEqual(res["entries"], len(all_entries))

    def test_health(self):
        res = self.home.rpc("secrets.health")["result"]
        for f in ("total_secrets", "active_leases", "expiring_soon", "never_rotated", "stale_secrets", "warnings"):
            self.assertIn(f, res)

    def test_watch_notifies_on_revoke_and_expiry(self):
        with self.home.connect() as c:
            a = c.result("secrets.lease", {"secret_name": "x", "client_id": "w", "ttl": "10m"})["lease_id"]
            b = c.result("secrets.lease", {"secret_name": "x", "client_id": "w", "ttl": "1s"})["lease_id"]
        w = self.home.connect()
        self.addCleanup(w.close)
        reply = w.call("secrets.watch", {"lease_ids": [a, b, "gone-id"]}, id=1)
        self.assertIs(reply["result"]["success"], True, reply)
        self.assertEqual(sorted(reply["result"]["watching"]), sorted([a, b]))
        notes = {}

        def collect(keys, timeout):
            deadline = time.monotonic() + timeout
            while not keys <= notes.keys() and time.monotonic() < deadline:
                try:
                    msg = w.read_json(timeout=max(0.05, deadline - time.monotonic()))
                except TimeoutError:
                    break
                self.assertEqual(msg.get("method"), "lease.ended", msg)
                self.assertNotIn("id", msg)
                notes[msg["params"]["lease_id"]] = msg["params"]["reason"]

        collect({"gone-id"}, 3)
        self.assertIn("result", self.home.rpc("secrets.revoke", {"lease_id": a}))
        collect({"gone-id", a, b}, 6)
        self.assertEqual(notes.get("gone-id"), "not_live", notes)
        self.assertEqual(notes.get(a), "revoked", notes)
        self.assertEqual(notes.get(b), "expired", notes)


class Ordering(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("x", VALUE.encode())

    def test_pipelined_replies_in_order(self):
        lease = {"secret_name": "x", "client_id": "p", "ttl": "5m"}
        lines = [
            {"jsonrpc": "2.0", "method": "secrets.lease", "params": lease, "id": 1},
            {"jsonrpc": "2.0", "method": "secrets.status", "id": 2},
            b"this is not json",
            {"jsonrpc": "2.0", "method": "secrets.nope", "id": 4},
            {"jsonrpc": "2.0", "method": "secrets.lease", "params": lease, "id": 5},
            {"jsonrpc": "2.0", "method": "secrets.list", "id": 6},
            {"jsonrpc": "2.0", "method": "secrets.status"},
            {"jsonrpc": "2.0", "method": "secrets.lease", "params": {"secret_name": "nope"}, "id": "eight"},
            {"jsonrpc": "2.0", "method": "secrets.add", "params": {"name": "p2", "value": "v"}, "id": 9},
            {"jsonrpc": "2.0", "method": "secrets.lease", "params": dict(lease, secret_name="p2"), "id": 10},
        ]
        blob = b"".join((l if isinstance(l, bytes) else json.dumps(l).encode()) + b"\n" for l in lines)
        with self.home.connect() as c:
            c.send_raw(blob)
            replies = [c.read_json() for _ in lines]
        self.assertEqual([r.get("id", "MISSING") for r in replies], [1, 2, None, 4, 5, 6, None, "eight", 9, 10])
        self.assertEqual(replies[0]["result"]["value"], VALUE)
        self.assertEqual(replies[1]["result"]["active_leases"], 1)
        self.assertEqual(replies[2]["error"]["code"], -32700)
        self.assertEqual(replies[3]["error"]["code"], -32601)
        self.assertEqual(replies[4]["result"]["value"], VALUE)
        self.assertIn("secrets", replies[5]["result"])
        self.assertEqual(replies[6]["result"]["active_leases"], 2)
        self.assertEqual(replies[7]["error"]["code"], -32000)
        self.assertIs(replies[8]["result"]["success"], True)
        self.assertEqual(replies[9]["result"]["value"], "v")

    def test_many_pipelined_leases(self):
        n = 300
        blob = b"".join(json.dumps({"jsonrpc": "2.0", "method": "secrets.lease",
                                    "params": {"secret_name": "x", "client_id": "bulk", "ttl": "10m"},
                                    "id": i}).encode() + b"\n" for i in range(n))
        with self.home.connect() as c:
            t = threading.Thread(target=c.send_raw, args=(blob,), daemon=True)
            t.start()
            replies = [c.read_json(timeout=30) for _ in range(n)]
            t.join(10)
        self.assertEqual([r["id"] for r in replies], list(range(n)))
        ids = {r["result"]["lease_id"] for r in replies}
        self.assertEqual(len(ids), n)
        self.assertEqual(self.home.status()["active_leases"], n)
        acquired = {e["lease_id"] for e in self.home.audit_entries() if e["action"] == "lease_acquire"}
        self.assertEqual(acquired, ids)

    def test_concurrent_connections(self):
        errors = []
        got = []
        lock = threading.Lock()

        def worker(k):
            try:
                with self.home.connect() as c:
                    for i in range(25):
                        r = c.result("secrets.lease", {"secret_name": "x", "client_id": "c%d" % k, "ttl": "10m"})
                        if r["value"] != VALUE:
                            errors.append("wrong value")
                        with lock:
                            got.append(r["lease_id"])
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(set(got)), 200)
        self.assertEqual(self.home.status()["active_leases"], 200)
        res = self.home.run_json("audit", "--verify")
        self.assertIs(res["ok"], True, res)


_NOBODY = harness.nobody_prefix()


@unittest.skipUnless(_NOBODY is not None, "needs root and setpriv or runuser (and a nobody user)")
class PeerCheck(E2ETestCase):
    """The daemon runs as nobody; we (root) connect: another uid is refused."""

    def setUp(self):
        prefix, pw = _NOBODY
        probe = subprocess.run(prefix + [BIN, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if probe.returncode != 0:
            self.skipTest("nobody cannot run %s: %r" % (BIN, probe.stderr[-300:]))
        home = Home(init=False, as_user=prefix)
        self.addCleanup(home.cleanup)
        os.chown(home.path, pw.pw_uid, pw.pw_gid)
        os.chmod(home.path, 0o700)
        r = home.run("init")
        self.assertEqual(r.rc, 0, r)
        home.serve(probe="connect")
        self.home = home
        self.nobody_uid = pw.pw_uid
        r = home.run("add", "x", input=VALUE.encode())  # as nobody: allowed
        self.assertEqual(r.rc, 0, r)

    def test_other_uid_refused_and_audited(self):
        with RpcConn(self.home.socket) as c:
            reply = c.call("secrets.lease", {"secret_name": "x", "client_id": "intruder", "ttl": "1m"}, id=1)
            self.assert_rpc_error(reply, -32006, id=1)
            self.assertNotIn(VALUE, json.dumps(reply))
            self.assertTrue(c.wait_closed(5), "a refused peer's connection is closed")
        with RpcConn(self.home.socket) as c:
            self.assert_rpc_error(c.call("secrets.status"), -32006)
        # The CLI as root: denied, exit 5.
        r = self.home.run("lease", "x", user=False)
        self.assertEqual(r.out, b"")
        self.assert_err(r, rc=5, code="unauthorized", stream="stderr")
        # The daemon still serves its own user.
        r = self.home.run("status")
        res = self.assert_ok(r, "secrets status")
        self.assertEqual(res["active_leases"], 0)
        r = self.home.run("lease", "x")
        self.assertEqual((r.rc, r.out), (0, VALUE.encode()), r)
        denied = [e for e in self.home.audit_entries() if e["action"] == "denied"]
        self.assertGreaterEqual(len(denied), 2, denied)
        for e in denied:
            self.assertIs(e["success"], False)
            self.assertEqual(e.get("peer", {}).get("uid"), 0, e)
        self.assertFalse([e for e in self.home.audit_entries()
                          if e["action"] == "lease_acquire" and e.get("client_id") == "intruder"])
        log = self.home.read("audit.log") + self.home.read("daemon.log")
        self.assertNotIn(VALUE.encode(), log)


if __name__ == "__main__":
    harness.main()
