"""End-to-end tests of secret versions (DESIGN.md 16, issue 15 item 9): every
add --force, value-changing rotation and rollback keeps the value it replaces
(the last 5, in secrets.age beside the Go fields); `secrets versions` lists
numbers and dates, never values; `secrets rollback NAME [--to N]` restores one,
audited; a hook that prints a message instead of a key can be undone; a
proxy-only secret's old values stay proxy-only; remove and the killswitch's
wipe take the versions with them."""

import http.client
import json
import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import age_decrypt, E2ETestCase, now_utc, parse_time  # noqa: E402
from upstream import Upstream  # noqa: E402

HAVE_AGE = shutil.which("age") is not None
# Distinct, greppable values: none may show up anywhere but in secrets.age and a lease.
V = ["s3cret-VERSION-%d-a91f" % i for i in range(1, 9)]
MESSAGE = "token rotated successfully, nothing else to do"


class Versions(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()

    def versions(self, name):
        return self.home.run_json("versions", name)

    def lease(self, name):
        r = self.home.run("lease", name, "--bind", "none")
        self.assertEqual(r.rc, 0, r)
        return r.out.decode()

    def assert_no_value_outside_the_store(self, *values):
        home = self.home
        texts = {name: home.read(name) for name in os.listdir(home.path)
                 if name not in ("secrets.age", "identity.age", "agent-secrets.sock")}
        texts["daemon output"] = home.daemon_output().encode()
        for name, data in texts.items():
            for v in values:
                self.assertNotIn(v.encode(), data, "a value leaked into %s" % name)

    def test_add_force_list_rollback_lease(self):
        home = self.home
        home.add("tok", V[0])
        self.assertEqual(self.versions("tok")["versions"], [])
        home.add("tok", V[1], "--force")
        home.add("tok", V[2], "--force")
        r = home.run("versions", "tok")
        res = self.assert_ok(r, "secrets versions")
        for v in V:
            self.assertNotIn(v.encode(), r.out + r.err)
        self.assertEqual([x["version"] for x in res["versions"]], [1, 2])
        self.assertEqual(res["count"], 2)
        self.assertEqual(res["max_versions"], 5)
        times = [parse_time(x["replaced_at"]) for x in res["versions"]]
        self.assertGreaterEqual(times[0], times[1])  # newest first
        for t in times:
            self.assertLess(abs((t - now_utc()).total_seconds()), 120)
        self.assertEqual(parse_time(res["current"]["updated_at"]), times[0])
        self.assertIn("secrets rollback tok", [a["command"] for a in r.env["next_actions"]])
        self.assertEqual(self.lease("tok"), V[2])

        # Default: back to the previous value; the replaced one becomes version 1.
        r = home.run("rollback", "tok")
        res = self.assert_ok(r, "secrets rollback")
        self.assertEqual(res["version"], 1)
        self.assertNotIn(b"s3cret-VERSION", r.out + r.err)
        self.assertEqual(self.lease("tok"), V[1])
        self.assertEqual(len(self.versions("tok")["versions"]), 2)
        # --to N reaches further back.
        home.run_json("rollback", "tok", "--to", "2")
        self.assertEqual(self.lease("tok"), V[0])
        # And a rollback is itself undone by the next one.
        home.run_json("rollback", "tok")
        self.assertEqual(self.lease("tok"), V[1])

        rollbacks = [e for e in home.audit_entries() if e["action"] == "secret_rollback"]
        self.assertEqual([e.get("version") for e in rollbacks], [1, 2, 1])
        self.assertTrue(all(e["success"] and e["secret_name"] == "tok" for e in rollbacks), rollbacks)
        self.assertIn("version 2", rollbacks[1]["details"])
        self.assertIs(home.run_json("audit", "--verify")["ok"], True)

        # Versions live in secrets.age: they survive a restart.
        home.restart()
        self.assertEqual(self.lease("tok"), V[1])
        home.run_json("rollback", "tok")
        self.assertEqual(self.lease("tok"), V[0])
        self.assert_no_value_outside_the_store(*V[:3])

    def test_at_most_five_are_kept(self):
        home = self.home
        home.add("tok", V[0])
        for v in V[1:]:
            home.add("tok", v, "--force")
        res = self.versions("tok")
        self.assertEqual([x["version"] for x in res["versions"]], [1, 2, 3, 4, 5])
        home.run_json("rollback", "tok", "--to", "5")
        self.assertEqual(self.lease("tok"), V[2])  # V[0] and V[1] are gone
        r = home.run("rollback", "tok", "--to", "6")
        self.assert_err(r, code="invalid_params")
        self.assertIn("versions 1 to 5", r.env["error"]["message"])
        self.assertEqual(self.lease("tok"), V[2])

    @unittest.skipUnless(HAVE_AGE, "needs age")
    def test_age_shows_the_go_document_with_versions_beside_it(self):
        home = self.home
        home.add("plain", V[6])
        home.add("tok", V[0], "--rotate-via", "printf x")
        home.add("tok", V[1], "--force")
        doc = age_decrypt(home)
        self.assertEqual(doc["version"], 1)
        self.assertEqual(set(doc["secrets"]["plain"]), {"name", "created_at", "updated_at", "last_rotated", "value"})
        tok = doc["secrets"]["tok"]
        self.assertEqual(set(tok), {"name", "created_at", "updated_at", "last_rotated", "value", "rotate_via",
                                    "versions"})
        self.assertEqual(tok["name"], "tok")
        self.assertEqual(tok["value"], V[1])
        self.assertEqual(tok["rotate_via"], "printf x")
        self.assertEqual(tok["last_rotated"], "0001-01-01T00:00:00Z")
        self.assertLessEqual(parse_time(tok["created_at"]), parse_time(tok["updated_at"]))
        self.assertEqual([set(v) for v in tok["versions"]], [{"value", "created_at"}])
        self.assertEqual(tok["versions"][0]["value"], V[0])
        self.assertEqual(parse_time(tok["versions"][0]["created_at"]),
                         parse_time(self.versions("tok")["versions"][0]["replaced_at"]))

    def test_errors(self):
        home = self.home
        self.assert_err(home.run("versions", "nope"), rc=4, code="not_found")
        self.assert_err(home.run("rollback", "nope"), rc=4, code="not_found")
        home.add("tok", V[0])
        r = home.run("rollback", "tok")
        self.assert_err(r, code="invalid_params")
        self.assertEqual(r.env["fix"], "secrets versions tok")
        self.assert_err(home.run("rollback", "tok", "--to", "0"), rc=2, code="usage")
        home.add("tok", V[1], "--force")
        reply = home.rpc("secrets.rollback", {"name": "tok", "to": "1"})
        self.assert_rpc_error(reply, -32602)
        reply = home.rpc("secrets.rollback", {"name": "tok", "to": -1})
        self.assert_rpc_error(reply, -32602)
        self.assertEqual(self.lease("tok"), V[1])
        failed = [e for e in home.audit_entries() if e["action"] == "secret_rollback"]
        self.assertTrue(failed and not any(e["success"] for e in failed), failed)
        # The RPC, as the CLI uses it.
        res = home.rpc("secrets.versions", {"name": "tok"})["result"]
        self.assertEqual([x["version"] for x in res["versions"]], [1])
        res = home.rpc("secrets.rollback", {"name": "tok"})["result"]
        self.assertEqual((res["success"], res["version"]), (True, 1))
        self.assertEqual(self.lease("tok"), V[0])

    def test_remove_drops_the_versions(self):
        home = self.home
        home.add("tok", V[0])
        home.add("tok", V[1], "--force")
        home.run_json("remove", "tok")
        home.add("tok", V[2])
        self.assertEqual(self.versions("tok")["versions"], [])
        self.assert_err(home.run("rollback", "tok"), code="invalid_params")
        if HAVE_AGE:
            plain = json.dumps(age_decrypt(home))
            self.assertNotIn(V[0], plain)
            self.assertNotIn(V[1], plain)


class Rotation(E2ETestCase):
    def setUp(self):
        self.home = self.new_home(serve=False)

    def allow_hook(self, name, command):
        # hooks.json (DESIGN.md 16): a hook runs only when its exact command is
        # listed here. Written by hand, as `secrets hook allow` would.
        path = self.home.file("hooks.json")
        with open(path, "w") as f:
            json.dump({"version": 1, "hooks": {name: command}}, f)
        os.chmod(path, 0o600)

    def lease(self, name):
        r = self.home.run("lease", name, "--bind", "none")
        self.assertEqual(r.rc, 0, r)
        return r.out.decode()

    def test_a_hook_that_prints_a_message_can_be_rolled_back(self):
        # A hook written for the Go daemon that reports instead of printing a new
        # key: its message becomes the value. The key it replaced is not lost.
        home = self.home
        hook = "echo '%s'" % MESSAGE
        self.allow_hook("tok", hook)
        home.serve()
        home.add("tok", V[0], "--rotate-via", hook)
        res = home.run_json("rotate", "tok")
        self.assertIs(res["success"], True, res)
        self.assertEqual(self.lease("tok"), MESSAGE)
        versions = home.run_json("versions", "tok")
        self.assertEqual([x["version"] for x in versions["versions"]], [1])
        self.assertIn("last_rotated", versions["current"])
        home.run_json("rollback", "tok")
        self.assertEqual(self.lease("tok"), V[0])
        # The rotation's output is a version now, and the rollback is audited.
        self.assertEqual(len(home.run_json("versions", "tok")["versions"]), 1)
        self.assertEqual([e["action"] for e in home.audit_entries()
                          if e["action"] in ("secret_rotate", "secret_rollback")],
                         ["secret_rotate", "secret_rollback"])

    def test_a_hook_that_prints_nothing_keeps_no_version(self):
        home = self.home
        self.allow_hook("tok", "true")
        home.serve()
        home.add("tok", V[0], "--rotate-via", "true")
        home.run_json("rotate", "tok")
        self.assertEqual(home.run_json("versions", "tok")["versions"], [])
        self.assertEqual(self.lease("tok"), V[0])


class ProxyOnly(E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.up = Upstream()

    @classmethod
    def tearDownClass(cls):
        cls.up.close()

    def setUp(self):
        home = self.new_home(serve=False)
        home.write_config({"proxy": {"listen": "127.0.0.1:0"}})
        home.serve()
        self.port = int(home.status()["proxy"]["listen"].rpartition(":")[2])
        self.home = home

    def test_old_values_of_a_proxy_only_secret_stay_proxy_only(self):
        home = self.home
        home.add("api", V[0])  # an ordinary secret first
        home.add("api", V[1], "--force", "--proxy-only", "--base-url", self.up.url + "/v1")
        home.run_json("rollback", "api")
        res = home.lease_json("api")
        self.assertIs(res.get("proxy"), True, res)
        self.assertTrue(res["value"].startswith("as_"), "a rollback made a proxy-only secret leasable raw")
        self.assertNotIn(V[0], json.dumps(res))
        self.assertIs(home.run_json("list")["secrets"][0]["proxy_only"], True)

    def test_a_value_unfit_for_a_header_is_not_rolled_back_into_one(self):
        home = self.home
        home.add("api", V[0] + "\nX-Injected: 1")  # fine as a raw multi-line value
        home.add("api", V[1], "--force", "--proxy-only", "--base-url", self.up.url + "/v1")
        r = home.run("rollback", "api")
        self.assert_err(r, code="invalid_params")
        self.assertIn("header", r.env["error"]["message"])
        self.assertNotIn(V[0].encode(), r.out + r.err)
        self.assertEqual(len(home.run_json("versions", "api")["versions"]), 1)

    def test_the_proxy_injects_the_restored_value_on_a_kept_alive_connection(self):
        # A keep-alive connection reuses its grant while the store's generation
        # is the same; a rollback moves the generation on.
        home = self.home
        home.add("api", V[0], "--proxy-only", "--base-url", self.up.url + "/v1")
        home.add("api", V[1], "--force")
        ph = home.lease_json("api")["value"]
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.addCleanup(conn.close)

        def injected(tag):
            conn.request("GET", "/api/%s/echo" % tag, headers={"Authorization": "Bearer " + ph})
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 200)
            hits = [h for (_, path, h) in self.up.requests if tag in path]
            self.assertEqual(len(hits), 1)
            return {k.lower(): v for k, v in hits[0].items()}["authorization"]

        self.assertEqual(injected("before-rollback-7f1"), "Bearer " + V[1])
        home.run_json("rollback", "api")
        self.assertEqual(injected("after-rollback-7f1"), "Bearer " + V[0])
        self.assertEqual(home.status()["active_leases"], 1, "a rollback ends no lease")


class Killswitch(E2ETestCase):
    def test_wipe_takes_the_versions(self):
        home = self.new_home()
        home.add("tok", V[0])
        home.add("tok", V[1], "--force")
        res = home.run_json("revoke", "--all", "--wipe", "--yes")
        self.assertIs(res.get("wiped"), True, res)
        self.assertFalse(os.path.exists(home.file("secrets.age")))
        self.assert_err(home.run("versions", "tok"), rc=4)
        r = home.run("rollback", "tok")
        self.assertNotEqual(r.rc, 0)
        self.assertNotIn(V[0].encode(), r.out + r.err)
        for name in os.listdir(home.path):
            if name != "agent-secrets.sock":
                self.assertNotIn(V[0].encode(), home.read(name), name)


if __name__ == "__main__":
    harness.main()
