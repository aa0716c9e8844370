"""End-to-end tests of the killswitch (DESIGN.md section 8): `revoke --all`
with --rotate and --wipe, its one audit line, watch notifications, and the
heartbeat (a real HTTP server on 127.0.0.1 in this process) that trips it,
with `status --reset`."""

import http.server
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import BIN, E2ETestCase  # noqa: E402


def count_action(home, action):
    return sum(1 for e in home.audit_entries() if e.get("action") == action)


def lease_many(home, names, n, ttl="1h"):
    """n leases over ONE connection with pipelined secrets.lease requests.
    Returns the lease ids in order."""
    with home.connect(timeout=60) as c:
        reqs = b"".join(
            json.dumps({"jsonrpc": "2.0", "method": "secrets.lease", "id": i,
                        "params": {"secret_name": names[i % len(names)], "client_id": "bulk-%d" % i,
                                   "ttl": ttl}}).encode() + b"\n"
            for i in range(n))
        errors = []

        def writer():
            try:
                c.send_raw(reqs)
            except OSError as e:  # reported through the missing replies
                errors.append(e)

        t = threading.Thread(target=writer)
        t.start()
        ids = []
        for i in range(n):
            reply = c.read_json(timeout=60)
            if reply.get("id") != i or "result" not in reply:
                raise AssertionError("lease %d: %r (writer: %r)" % (i, reply, errors))
            ids.append(reply["result"]["lease_id"])
        t.join(timeout=30)
        return ids


class RevokeAll(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()

    def test_plain_revoke_all(self):
        h = self.home
        h.add("a", "va")
        h.add("b", "vb", "--rotate-via", "echo should-not-run")
        ids = [h.lease_json(n)["lease_id"] for n in ("a", "a", "b")]
        kills = count_action(h, "killswitch")
        res = self.assert_ok(h.run("revoke", "--all"), "secrets revoke")
        self.assertIs(res.get("success"), True, res)
        self.assertEqual(res.get("leases_revoked"), 3, res)
        self.assertEqual(res.get("rotated"), [], res)
        self.assertIs(res.get("wiped"), False, res)
        self.assertIsInstance(res.get("message"), str, res)
        self.assertEqual(count_action(h, "killswitch"), kills + 1)
        self.assertEqual(h.status()["active_leases"], 0)
        for lid in ids:
            self.assertNotEqual(h.run("revoke", lid).rc, 0)
        # --rotate not given: hooks did not run.
        r = h.run("lease", "b")
        self.assertEqual(r.out, b"vb", r)
        # A manual killswitch is not a trip: new leases are allowed at once.
        self.assertIs(h.status().get("killswitch_tripped"), False)
        self.assertEqual(h.run("lease", "a").out, b"va")
        # Empty table: still fine, counts 0.
        self.assert_ok(h.run("revoke", "--all"), "secrets revoke")
        res = self.assert_ok(h.run("revoke", "--all"), "secrets revoke")
        self.assertEqual(res["leases_revoked"], 0, res)
        self.assertEqual(h.run("audit", "--verify").rc, 0)

    def test_rpc_bad_params_get_a_reply(self):
        # secrets.revokeAll is an async method: an ill-typed flag must be a
        # -32602 reply that does nothing, and the connection must keep serving.
        h = self.home
        h.add("a", "va")
        h.lease_json("a")
        with h.connect() as c:
            for i, params in enumerate(({"rotate": "yes"}, {"wipe": 1}, [1]), 300):
                reply = c.call("secrets.revokeAll", params, id=i, timeout=5)
                self.assert_rpc_error(reply, -32602, id=i)
            reply = c.call("secrets.status", id=399, timeout=5)
            self.assertIn("result", reply, reply)
        self.assertEqual(h.status()["active_leases"], 1)
        self.assertTrue(os.path.exists(h.file("secrets.age")))

    def test_rpc_revoke_all(self):
        h = self.home
        h.add("a", "va")
        h.lease_json("a")
        with h.connect() as c:
            reply = c.call("secrets.revokeAll", id="k1")
            self.assertEqual(reply.get("id"), "k1", reply)
            self.assertEqual(reply["result"]["leases_revoked"], 1, reply)
            self.assertIs(reply["result"]["success"], True, reply)

    def test_rotate_and_wipe_need_all(self):
        h = self.home
        h.add("a", "va")
        lid = h.lease_json("a")["lease_id"]
        self.assert_err(h.run("revoke", "--rotate"), rc=2)
        self.assert_err(h.run("revoke", "--wipe", "--yes"), rc=2)
        self.assertEqual(h.status()["active_leases"], 1)
        self.assertTrue(os.path.exists(h.file("secrets.age")))
        self.assert_ok(h.run("revoke", lid), "secrets revoke")

    def test_revoke_all_rotate_over_1000_leases(self):
        h = self.home
        hooked = ["h%d" % i for i in range(5)]
        for name in hooked:
            h.add(name, "old-" + name, "--rotate-via", 'printf "new-%s" "$SECRET_NAME"')
            h.allow_hook(name, 'printf "new-%s" "$SECRET_NAME"')
        h.add("plain", "plain-value")
        t0 = time.monotonic()
        ids = lease_many(h, hooked + ["plain"], 1000)
        lease_time = time.monotonic() - t0
        self.assertEqual(len(set(ids)), 1000)
        self.assertEqual(h.status()["active_leases"], 1000)
        kills = count_action(h, "killswitch")
        lines_before = len(h.audit_lines())

        t0 = time.monotonic()
        r = h.run("revoke", "--all", "--rotate", timeout=120)
        revoke_time = time.monotonic() - t0
        print("\n  [timing] 1000 pipelined leases over one connection: %.3fs; "
              "`secrets revoke --all --rotate` over 1000 leases + 5 hooks: %.3fs wall"
              % (lease_time, revoke_time), flush=True)

        res = self.assert_ok(r, "secrets revoke")
        self.assertIs(res.get("success"), True, res)
        self.assertGreaterEqual(res.get("leases_revoked"), 1000, res)
        self.assertEqual(res.get("leases_revoked"), 1000, res)
        self.assertIs(res.get("wiped"), False, res)
        rotated = res.get("rotated")
        self.assertIsInstance(rotated, list, res)
        self.assertEqual(sorted(o.get("secret_name") for o in rotated), sorted(hooked), res)
        for o in rotated:
            self.assertIs(o.get("success"), True, o)
            self.assertIs(o.get("changed"), True, o)
            self.assertIn("executed_at", o)
        self.assertNotIn("new-h", json.dumps(res))  # never the new values
        self.assertIn("1000", res["message"])

        entries = h.audit_entries()
        self.assertEqual(count_action(h, "killswitch"), kills + 1, [e for e in entries if e["action"] == "killswitch"])
        ks = [e for e in entries if e["action"] == "killswitch"][-1]
        self.assertIs(ks["success"], True, ks)
        self.assertIn("1000", ks.get("details", ""), ks)
        # One pass, one line: no per-lease revoke lines.
        new = entries[lines_before:]
        self.assertFalse([e for e in new if e["action"] in ("lease_revoke", "lease_end")], new[:3])
        self.assertEqual(sorted(e["secret_name"] for e in new if e["action"] == "secret_rotate"), sorted(hooked))

        st = h.status()
        self.assertEqual(st["active_leases"], 0, st)
        self.assertEqual(h.rpc("secrets.leases")["result"]["leases"], [])
        for name in hooked:
            self.assertEqual(h.run("lease", name).out, ("new-" + name).encode())
        self.assertEqual(h.run("lease", "plain").out, b"plain-value")
        self.assertEqual(h.run("audit", "--verify").rc, 0)
        # The revocation is durable: a restart does not bring the 1000 back.
        h.restart()
        self.assertEqual(h.status()["active_leases"], 6)

    def test_plain_revoke_all_over_1000_leases(self):
        h = self.home
        h.add("a", "va")
        h.add("b", "vb")
        lease_many(h, ["a", "b"], 1000)
        t0 = time.monotonic()
        r = h.run("revoke", "--all", timeout=120)
        took = time.monotonic() - t0
        print("\n  [timing] `secrets revoke --all` over 1000 leases: %.3fs wall" % took, flush=True)
        res = self.assert_ok(r, "secrets revoke")
        self.assertEqual(res["leases_revoked"], 1000, res)
        self.assertEqual(count_action(h, "killswitch"), 1)
        self.assertEqual(h.status()["active_leases"], 0)

    def test_rotate_reports_failing_hooks(self):
        h = self.home
        h.add("good", "g1", "--rotate-via", "echo g2")
        h.add("bad", "b1", "--rotate-via", "echo broken-hook >&2; exit 7")
        h.allow_hook("good", "echo g2")
        h.allow_hook("bad", "echo broken-hook >&2; exit 7")
        h.lease_json("good")
        res = self.assert_ok(h.run("revoke", "--all", "--rotate"), "secrets revoke")
        self.assertEqual(res["leases_revoked"], 1, res)
        by_name = {o["secret_name"]: o for o in res["rotated"]}
        self.assertEqual(set(by_name), {"good", "bad"}, res)
        self.assertIs(by_name["good"]["success"], True, res)
        self.assertIs(by_name["bad"]["success"], False, res)
        self.assertIn("broken-hook", by_name["bad"].get("output", "") + by_name["bad"].get("error", ""), res)
        self.assertEqual(h.run("lease", "good").out, b"g2")
        self.assertEqual(h.run("lease", "bad").out, b"b1")
        self.assertEqual(count_action(h, "killswitch"), 1)

    def test_leases_refused_while_the_killswitch_runs(self):
        h = self.home
        h.add("slow", "s1", "--rotate-via", "sleep 2; echo s2")
        h.allow_hook("slow", "sleep 2; echo s2")
        h.add("other", "o1")
        h.lease_json("other")
        p = subprocess.Popen([BIN, "revoke", "--all", "--rotate"], env=h.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.6)
        r = h.run("lease", "other")
        self.assert_err(r, rc=5, code="killswitch_tripped", stream="stderr")
        self.assertEqual(r.out, b"")
        again = h.run("revoke", "--all")
        self.assertNotEqual(again.rc, 0, again)
        self.assert_serving(h)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, (out, err))
        res = json.loads(out)["result"]
        self.assertEqual(res["leases_revoked"], 1, res)
        # Done: leases are allowed again (a manual revoke --all is not a trip).
        self.assertEqual(h.run("lease", "other").out, b"o1")
        self.assertEqual(h.run("lease", "slow").out, b"s2")
        self.assertEqual(sum(1 for e in h.audit_entries() if e["action"] == "killswitch" and e["success"]), 1)

    def test_wipe_without_yes_is_refused(self):
        h = self.home
        h.add("a", "va")
        lid = h.lease_json("a")["lease_id"]
        before = {n: h.read(n) for n in ("secrets.age", "identity.age")}
        kills = count_action(h, "killswitch")
        r = h.run("revoke", "--all", "--wipe")  # stdin is a pipe, not a tty
        env = self.assert_err(r, rc=2)
        self.assertIn("--yes", env["fix"] + env["error"]["message"], env)
        for n, data in before.items():
            self.assertEqual(h.read(n), data, n)
        # Nothing happened at all: not even the revocation.
        self.assertEqual(count_action(h, "killswitch"), kills)
        self.assertEqual([l["lease_id"] for l in h.rpc("secrets.leases")["result"]["leases"]], [lid])
        self.assertEqual(h.run("lease", "a").out, b"va")

    def test_wipe_yes_destroys_the_store(self):
        h = self.home
        h.add("a", "va", "--rotate-via", "echo va2")
        h.add("b", "vb")
        h.lease_json("a")
        h.lease_json("b")
        res = self.assert_ok(h.run("revoke", "--all", "--wipe", "--yes"), "secrets revoke")
        self.assertIs(res.get("wiped"), True, res)
        self.assertEqual(res.get("leases_revoked"), 2, res)
        self.assertFalse(os.path.exists(h.file("secrets.age")))
        self.assertFalse(os.path.exists(h.file("identity.age")))
        self.assertFalse([n for n in os.listdir(h.path) if n.startswith(("secrets.age", "identity.age"))],
                         os.listdir(h.path))
        r = h.run("lease", "a")
        self.assert_err(r, rc=5, code="killswitch_tripped", stream="stderr")
        self.assertEqual(r.out, b"")
        r = h.run("lease", "b", "--json")
        self.assert_err(r, rc=5, code="killswitch_tripped")
        st = h.status()
        self.assertIs(st.get("killswitch_tripped"), True, st)
        self.assertEqual(st.get("active_leases"), 0, st)
        self.assertNotEqual(h.run("add", "c", input=b"vc").rc, 0)
        self.assertFalse(os.path.exists(h.file("secrets.age")))
        # Whatever reads values or changes the store is refused by the gate, with its fix.
        for method, params in (("secrets.rotate", {"secret_name": "a"}), ("secrets.delete", {"name": "a"}),
                               ("secrets.renew", {"lease_id": "x"})):
            reply = h.rpc(method, params)
            self.assert_rpc_error(reply, -32011)
            self.assertIn("backup", reply["error"]["data"]["fix"], reply)
        self.assertIn("result", h.rpc("secrets.list"))
        r = h.run("audit", "--verify")
        self.assert_ok(r, "secrets audit")
        self.assertIs(r.env_out["result"].get("ok"), True, r)
        ks = [e for e in h.audit_entries() if e["action"] == "killswitch"]
        self.assertEqual(len(ks), 1, ks)
        self.assertIn("wipe", ks[0]["details"], ks)
        self.assert_serving(h)
        # After a stop the daemon refuses to start on the wiped home; it never
        # makes a fresh empty store in its place.
        h.stop()
        r = h.serve_expect_exit()
        self.assertIsNotNone(r.rc, "serve started on a wiped home")
        self.assertNotEqual(r.rc, 0, r)
        self.assertFalse(os.path.exists(h.file("secrets.age")))
        self.assertFalse(os.path.exists(h.file("identity.age")))

    def test_revoke_all_notifies_watchers(self):
        h = self.home
        h.add("a", "va")
        a = h.lease_json("a")["lease_id"]
        b = h.lease_json("a")["lease_id"]
        with h.connect() as w:
            reply = w.call("secrets.watch", {"lease_ids": [a, b]}, id=1)
            self.assertEqual(sorted(reply["result"]["watching"]), sorted([a, b]), reply)
            self.assert_ok(h.run("revoke", "--all"), "secrets revoke")
            got = {}
            for _ in range(2):
                note = w.read_json(timeout=5)
                self.assertEqual(note.get("method"), "lease.ended", note)
                self.assertNotIn("id", note)
                got[note["params"]["lease_id"]] = note["params"]["reason"]
            self.assertEqual(got, {a: "killswitch", b: "killswitch"})


# ---------------------------------------------------------------- heartbeat

class HeartbeatServer:
    """A local HTTP server on 127.0.0.1 (a free port) answering 200 or 500."""

    def __init__(self):
        self.healthy = True
        self.delay = 0.0  # seconds to stall before answering
        self.paths = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.paths.append(self.path)
                if outer.delay:
                    time.sleep(outer.delay)
                code = 200 if outer.healthy else 500
                body = b"ok\n" if code == 200 else b"down\n"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        self.running = True

    @property
    def url(self):
        return "http://127.0.0.1:%d/ok" % self.port

    def shutdown(self):
        if self.running:
            self.running = False
            self.httpd.shutdown()
            self.httpd.server_close()


class Heartbeat(E2ETestCase):
    def setUp(self):
        self.server = HeartbeatServer()
        self.addCleanup(self.server.shutdown)

    def heartbeat_home(self, **fail_action):
        home = self.new_home(serve=False)
        for k in list(home.env):
            if k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
                del home.env[k]
        home.env["NO_PROXY"] = "*"
        hb = {"enabled": True, "url": self.server.url, "interval": "1s", "timeout": "1s"}
        if fail_action:
            hb["fail_action"] = fail_action
        home.write_config({"heartbeat": hb})
        home.serve()
        return home

    def wait_tripped(self, h, timeout=8.0):
        t0 = time.monotonic()
        st = harness.wait_until(lambda: (lambda s: s if s.get("killswitch_tripped") else None)(h.status()),
                                timeout, 0.2)
        self.assertTrue(st, "killswitch not tripped within %.0fs: %r" % (timeout, h.status()))
        return st, time.monotonic() - t0

    def test_heartbeat_trips_and_reset_restores(self):
        h = self.heartbeat_home()
        h.add("a", "va")
        h.add("b", "vb")
        st = harness.wait_until(lambda: (lambda s: s if s["heartbeat"].get("last_success") else None)(h.status()),
                                5.0, 0.2)
        self.assertTrue(st, h.status())
        hb = st["heartbeat"]
        self.assertIs(hb.get("enabled"), True, hb)
        self.assertIs(hb.get("tripped"), False, hb)
        self.assertIs(st.get("killswitch_tripped"), False, st)
        harness.parse_time(hb["last_success"])
        self.assertEqual(h.run("lease", "a").out, b"va")
        ids = [h.lease_json(n)["lease_id"] for n in ("a", "b")]
        with h.connect() as w:
            w.call("secrets.watch", {"lease_ids": ids}, id=1)

            self.server.healthy = False
            st, took = self.wait_tripped(h)
            print("\n  [timing] heartbeat tripped %.1fs after the server turned to 500" % took, flush=True)
            self.assertLess(took, 7.0)
            hb = st["heartbeat"]
            self.assertIs(hb.get("tripped"), True, hb)
            self.assertGreaterEqual(hb.get("consecutive_failures", 0), 3, hb)
            self.assertIn("500", hb.get("last_error", ""), hb)
            # Existing leases were revoked, and their holders told.
            self.assertEqual(st["active_leases"], 0, st)
            reasons = {}
            for _ in range(2):
                note = w.read_json(timeout=5)
                reasons[note["params"]["lease_id"]] = note["params"]["reason"]
            self.assertEqual(reasons, {ids[0]: "killswitch", ids[1]: "killswitch"})
        for lid in ids:
            self.assertNotEqual(h.run("revoke", lid).rc, 0)
        # New leases are refused.
        r = h.run("lease", "a")
        self.assert_err(r, rc=5, code="killswitch_tripped", stream="stderr")
        self.assertEqual(r.out, b"")
        self.assert_err(h.run("lease", "b", "--json"), rc=5, code="killswitch_tripped")
        # Audited: heartbeat_fail and one killswitch line, even as failures go on.
        time.sleep(2.2)
        entries = h.audit_entries()
        self.assertEqual(sum(1 for e in entries if e["action"] == "heartbeat_fail"), 1, entries[-5:])
        self.assertEqual(sum(1 for e in entries if e["action"] == "killswitch"), 1, entries[-5:])
        hf = [e for e in entries if e["action"] == "heartbeat_fail"][0]
        self.assertIs(hf["success"], False, hf)
        # fail_action wipe_store is false by default: the store is intact.
        self.assertIs(h.run_json("config")["heartbeat"]["fail_action"]["wipe_store"], False)
        self.assertTrue(os.path.exists(h.file("secrets.age")))
        self.assertTrue(os.path.exists(h.file("identity.age")))
        # Healthy again is not enough: the trip stays until --reset.
        self.server.healthy = True
        time.sleep(1.5)
        self.assert_err(h.run("lease", "a"), rc=5, code="killswitch_tripped", stream="stderr")
        res = self.assert_ok(h.run("status", "--reset"), "secrets status")
        self.assertIs(res.get("killswitch_tripped"), False, res)
        self.assertIs(res["heartbeat"].get("tripped"), False, res)
        self.assertEqual(h.run("lease", "a").out, b"va")
        time.sleep(2.5)  # and it stays healthy
        st = h.status()
        self.assertIs(st.get("killswitch_tripped"), False, st)
        self.assertEqual(st["heartbeat"].get("consecutive_failures"), 0, st)
        self.assertEqual(h.run("lease", "b").out, b"vb")
        self.assertEqual(h.run("audit", "--verify").rc, 0)
        # It only ever asked our URL.
        self.assertTrue(self.server.paths)
        self.assertEqual(set(self.server.paths), {"/ok"})

    def test_server_gone_trips(self):
        h = self.heartbeat_home()
        h.add("a", "va")
        self.assertTrue(harness.wait_until(lambda: h.status()["heartbeat"].get("last_success"), 5.0, 0.2))
        h.lease_json("a")
        self.server.shutdown()  # connection refused from now on
        st, took = self.wait_tripped(h)
        self.assertLess(took, 7.0)
        self.assertEqual(st["active_leases"], 0, st)
        self.assertTrue(st["heartbeat"].get("last_error"), st)
        self.assert_err(h.run("lease", "a"), rc=5, code="killswitch_tripped", stream="stderr")
        self.assertTrue(os.path.exists(h.file("secrets.age")))

    def test_slow_server_times_out_and_trips(self):
        h = self.heartbeat_home()
        h.add("a", "va")
        self.assertTrue(harness.wait_until(lambda: h.status()["heartbeat"].get("last_success"), 5.0, 0.2))
        self.server.delay = 2.5  # over the 1s timeout, still 200
        st, took = self.wait_tripped(h, timeout=12.0)
        self.assertIs(st["heartbeat"]["tripped"], True, st)
        self.assert_err(h.run("lease", "a"), rc=5, code="killswitch_tripped", stream="stderr")

    def test_transient_failures_do_not_trip(self):
        h = self.heartbeat_home()
        h.add("a", "va")
        self.assertTrue(harness.wait_until(lambda: h.status()["heartbeat"].get("last_success"), 5.0, 0.2))
        lid = h.lease_json("a")["lease_id"]
        self.server.healthy = False
        time.sleep(1.4)  # at most 2 probes: fewer than the 3 that trip
        self.server.healthy = True
        time.sleep(2.5)
        st = h.status()
        self.assertIs(st.get("killswitch_tripped"), False, st)
        self.assertIs(st["heartbeat"].get("tripped"), False, st)
        self.assertEqual(st["heartbeat"].get("consecutive_failures"), 0, st)
        self.assertTrue(st["heartbeat"].get("last_failure"), st)
        self.assertEqual(st["active_leases"], 1, st)
        self.assertFalse([e for e in h.audit_entries() if e["action"] in ("heartbeat_fail", "killswitch")])
        self.assertEqual(h.run("lease", "a").out, b"va")
        self.assert_ok(h.run("revoke", lid), "secrets revoke")

    def test_fail_action_rotate_all(self):
        h = self.heartbeat_home(revoke_all=True, rotate_all=True)
        h.add("k", "k1", "--rotate-via", "echo k2")
        h.allow_hook("k", "echo k2")
        self.assertTrue(harness.wait_until(lambda: h.status()["heartbeat"].get("last_success"), 5.0, 0.2))
        self.server.healthy = False
        self.wait_tripped(h)
        self.assertTrue(harness.wait_until(
            lambda: any(e["action"] == "killswitch" for e in h.audit_entries()), 5.0, 0.1))
        self.server.healthy = True
        self.assert_ok(h.run("status", "--reset"), "secrets status")
        self.assertEqual(h.run("lease", "k").out, b"k2")

    def test_renew_refused_while_tripped(self):
        # A trip refuses what extends access, not only new leases: a lease
        # that outlived the trip (a fail_action that revokes nothing) cannot
        # be renewed past it. The dispatcher refuses it, before the handler.
        h = self.heartbeat_home(revoke_all=False)
        h.add("a", "va")
        self.assertTrue(harness.wait_until(lambda: h.status()["heartbeat"].get("last_success"), 5.0, 0.2))
        lid = h.lease_json("a", "--ttl", "10m")["lease_id"]

        def expires_at():
            return {l["lease_id"]: l["expires_at"] for l in h.rpc("secrets.leases")["result"]["leases"]}[lid]

        before = expires_at()
        self.server.healthy = False
        st, _ = self.wait_tripped(h)
        self.assertEqual(st["active_leases"], 1, st)  # nothing revoked it

        self.assert_rpc_error(h.rpc("secrets.renew", {"lease_id": lid, "ttl": "1h"}), -32011)
        self.assert_err(h.run("renew", lid, "--ttl", "1h"), rc=5, code="killswitch_tripped")
        self.assertEqual(expires_at(), before)
        refused = [e for e in h.audit_entries() if e["action"] == "lease_renew"]
        self.assertEqual(len(refused), 2, refused)
        for e in refused:
            self.assertIs(e["success"], False, e)
            self.assertEqual(e.get("lease_id"), lid, e)
        # Reset: renewals are served again.
        self.server.healthy = True
        self.assert_ok(h.run("status", "--reset"), "secrets status")
        self.assertNotEqual(h.run_json("renew", lid, "--ttl", "1h")["expires_at"], before)
        self.assertEqual(h.run("audit", "--verify").rc, 0)

    def test_heartbeat_disabled_by_default(self):
        h = self.new_home()
        st = h.status()
        self.assertIs(st["heartbeat"].get("enabled"), False, st)
        self.assertIs(st.get("killswitch_tripped"), False, st)
        res = self.assert_ok(h.run("status", "--reset"), "secrets status")
        self.assertIs(res.get("killswitch_tripped"), False, res)

    def mapped(self, home, name):
        with open("/proc/%d/maps" % home.daemon.pid) as f:
            return name in f.read()

    def test_libcurl_is_mapped_only_once_a_heartbeat_beats(self):
        # net/curl.hpp: libcurl is dlopen'ed on first use, so an idle daemon
        # without a heartbeat does not carry its ~10 MiB dependency tree.
        off = self.new_home()
        off.add("k", b"v")
        self.assertEqual(off.run("lease", "k").out, b"v")
        self.assertFalse(self.mapped(off, "libcurl"), "libcurl mapped without a heartbeat")
        on = self.heartbeat_home()
        self.assertTrue(harness.wait_until(lambda: on.status()["heartbeat"].get("last_success"), 5.0, 0.2))
        self.assertTrue(self.mapped(on, "libcurl"), "libcurl not mapped after a heartbeat")


if __name__ == "__main__":
    harness.main()
