"""End-to-end tests of what outlives a request: the store file (and the stock
`age` tool), lease expiry, restarts, SIGTERM/SIGKILL, a Go agent-secrets home
taken over, refusal to start on a corrupt or exposed home, audit tampering,
single instance, and no secret value in any log (DESIGN.md 2, 5, 6).

A Go home taken over, the Go format of leases.json and every pair of
snapshot files are in test_persistence_go.py."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import age_decrypt, E2ETestCase, now_utc, parse_time, wait_until, walk_json  # noqa: E402
from persistence_case import HAVE_AGE, MULTI, age_keygen, lease_ids  # noqa: E402


class Store(E2ETestCase):
    @unittest.skipUnless(HAVE_AGE, "needs age and age-keygen")
    def test_age_cli_decrypts_the_go_schema(self):
        home = self.new_home()
        home.add("api_key", b"s3cret-VALUE-zz91")
        home.add("multi", MULTI, "--rotate-via", "printf new")
        data = home.read("secrets.age")
        self.assertTrue(data.startswith(b"age-encryption.org/v1\n-> X25519 "), data[:40])
        self.assertNotIn(b"s3cret-VALUE", data)
        doc = age_decrypt(home)
        self.assertEqual(doc["version"], 1)
        self.assertEqual(sorted(doc["secrets"]), ["api_key", "multi"])
        a = doc["secrets"]["api_key"]
        self.assertEqual(set(a), {"name", "created_at", "updated_at", "last_rotated", "value"})
        self.assertEqual(a["name"], "api_key")
        self.assertEqual(a["value"], "s3cret-VALUE-zz91")
        self.assertEqual(a["last_rotated"], "0001-01-01T00:00:00Z")
        for f in ("created_at", "updated_at"):
            self.assertLess(abs((parse_time(a[f]) - now_utc()).total_seconds()), 120)
        m = doc["secrets"]["multi"]
        self.assertEqual(m["value"].encode(), MULTI)
        self.assertEqual(m["rotate_via"], "printf new")
        # list agrees with the file.
        listed = {s["name"]: s for s in home.run_json("list")["secrets"]}
        self.assertEqual(parse_time(listed["api_key"]["created_at"]), parse_time(a["created_at"]))
        # remove rewrites the file without it.
        home.run_json("remove", "api_key")
        self.assertEqual(sorted(age_decrypt(home)["secrets"]), ["multi"])
        self.assertEqual(harness.file_mode(home.file("secrets.age")), 0o600)

    @unittest.skipUnless(HAVE_AGE, "needs age")
    def test_fresh_store_decrypts_to_empty(self):
        home = self.new_home(serve=False)
        doc = age_decrypt(home)
        self.assertEqual(doc.get("version"), 1)
        self.assertIn(doc.get("secrets"), ({}, None))

    def test_secrets_survive_restart(self):
        home = self.new_home()
        home.add("a", MULTI)
        home.add("b", b"bee")
        home.restart()
        self.assertEqual(home.run("lease", "a").out, MULTI)
        self.assertEqual(home.run("lease", "b").out, b"bee")
        self.assertEqual(home.status()["secrets_count"], 2)


class Expiry(E2ETestCase):
    def test_one_second_lease_expires_and_is_audited(self):
        home = self.new_home()
        home.add("tok", b"v")
        lid = home.lease_json("tok", "--ttl", "1s")["lease_id"]
        other = home.lease_json("tok", "--ttl", "1h")["lease_id"]
        self.assertIn(lid, lease_ids(home))
        ok = wait_until(lambda: home.status()["active_leases"] == 1, timeout=5, interval=0.1)
        self.assertTrue(ok, "the 1s lease is still active after 5s")
        self.assertEqual(set(lease_ids(home)), {other})
        expired = [e for e in home.audit_entries() if e["action"] == "lease_expire"]
        self.assertEqual([e.get("lease_id") for e in expired], [lid], expired)
        self.assertEqual(expired[0].get("secret_name"), "tok")
        r = home.run("revoke", lid)
        self.assert_err(r, code="lease_ended")
        self.assertIs(home.run_json("audit", "--verify")["ok"], True)

    def test_lease_expiring_while_down_is_expired_on_start(self):
        home = self.new_home()
        home.add("tok", b"v")
        res = home.lease_json("tok", "--ttl", "1s")
        keep = home.lease_json("tok", "--ttl", "1h")["lease_id"]
        home.stop()
        left = (parse_time(res["expires_at"]) - now_utc()).total_seconds()
        if left > -0.2:
            time.sleep(left + 0.3)
        home.serve()
        self.assertEqual(set(lease_ids(home)), {keep})
        self.assertEqual(home.status()["active_leases"], 1)
        expired = [e for e in home.audit_entries() if e["action"] == "lease_expire"]
        self.assertEqual([e.get("lease_id") for e in expired], [res["lease_id"]])


class Restart(E2ETestCase):
    def test_sigterm_writes_snapshot_and_daemon_stop(self):
        home = self.new_home()
        home.add("tok", b"s3cret-VALUE-zz91")
        a = home.lease_json("tok", "--client-id", "c1")
        b = home.lease_json("tok", "--client-id", "c2")
        home.run_json("revoke", b["lease_id"])
        rc = home.stop()
        self.assertEqual(rc, 0, "secrets serve should exit 0 on SIGTERM")
        leases = json.loads(home.read("leases.json"))
        self.assertIsInstance(leases, list, leases)  # Go's array
        self.assertEqual(len(leases), 1, leases)
        l = leases[0]
        self.assertEqual(l["id"], a["lease_id"])
        self.assertEqual(l["secret_name"], "tok")
        self.assertEqual(l["client_id"], "c1")
        self.assertIs(l["revoked"], False)
        self.assertEqual(parse_time(l["expires_at"]), parse_time(a["expires_at"]))
        parse_time(l["created_at"])
        state = json.loads(home.read("state.json"))
        self.assertEqual(state.get("version"), 1, state)
        self.assertIsInstance(state.get("audit_seq"), int, state)
        self.assertEqual(set(state["leases"]), {a["lease_id"]}, state)
        for name in ("leases.json", "state.json"):
            self.assertNotIn("value", [k for k, _ in walk_json(json.loads(home.read(name)))])
            self.assertNotIn(b"s3cret-VALUE", home.read(name))
        entries = home.audit_entries()
        self.assertEqual(entries[-1]["action"], "daemon_stop", entries[-1])
        revoke_seq = [e["seq"] for e in entries if e["action"] == "lease_revoke"][0]
        self.assertGreaterEqual(state["audit_seq"], revoke_seq)
        self.assertLessEqual(state["audit_seq"], entries[-1]["seq"])
        self.assertFalse(os.path.exists(home.socket), "the socket is removed on a clean stop")
        self.assertEqual(harness.file_mode(home.path), 0o700)
        for name in os.listdir(home.path):
            self.assertEqual(harness.file_mode(home.file(name)), 0o600, name)

    def test_restart_keeps_live_leases(self):
        home = self.new_home()
        home.add("tok", b"v")
        a = home.lease_json("tok", "--client-id", "c1", "--ttl", "1h")
        b = home.lease_json("tok", "--client-id", "c2", "--ttl", "2h")
        c = home.lease_json("tok", "--client-id", "c3", "--ttl", "2h")
        home.run_json("revoke", c["lease_id"])
        before = lease_ids(home)
        home.restart()
        after = lease_ids(home)
        self.assertEqual(set(after), {a["lease_id"], b["lease_id"]})
        for lid in after:
            self.assertEqual(after[lid]["secret_name"], "tok")
            self.assertEqual(after[lid]["client_id"], before[lid]["client_id"])
            self.assertEqual(parse_time(after[lid]["expires_at"]), parse_time(before[lid]["expires_at"]))
            self.assertEqual(parse_time(after[lid]["created_at"]), parse_time(before[lid]["created_at"]))
        self.assertEqual(home.status()["active_leases"], 2)
        res = home.run_json("audit", "--verify")
        self.assertIs(res["ok"], True, res)
        # The restored ids work like any lease, and a revoked one stays ended.
        self.assert_ok(home.run("revoke", a["lease_id"]), "secrets revoke")
        self.assertNotEqual(home.run("revoke", c["lease_id"]).rc, 0)
        home.restart()
        self.assertEqual(set(lease_ids(home)), {b["lease_id"]})
        entries = home.audit_entries()
        self.assertEqual([e["seq"] for e in entries], list(range(1, len(entries) + 1)))
        self.assertEqual([e["action"] for e in entries].count("daemon_start"), 3)
        self.assertEqual([e["action"] for e in entries].count("daemon_stop"), 2)
        self.assertIs(home.run_json("audit", "--verify")["ok"], True)

    def test_sigkill_replays_the_audit_log_and_replaces_the_stale_socket(self):
        home = self.new_home()
        home.add("tok", b"v")
        a = home.lease_json("tok", "--client-id", "c1")["lease_id"]
        b = home.lease_json("tok", "--client-id", "c2")["lease_id"]
        home.run_json("revoke", b)
        c = home.lease_json("tok", "--client-id", "c3")["lease_id"]
        old_pid = home.daemon.pid
        home.kill()
        self.assertTrue(os.path.exists(home.socket), "a SIGKILLed daemon leaves its socket file")
        d = home.serve()
        self.assertNotEqual(d.pid, old_pid)
        self.assertEqual(home.status()["pid"], d.pid)
        self.assertEqual(set(lease_ids(home)), {a, c})
        self.assertNotEqual(home.run("revoke", b).rc, 0)
        self.assertIs(home.run_json("audit", "--verify")["ok"], True)
        self.assertEqual(home.run("lease", "tok").out, b"v")


class SingleInstance(E2ETestCase):
    def test_second_serve_refuses_and_first_keeps_serving(self):
        home = self.new_home()
        home.add("tok", b"v")
        first = home.daemon
        ino = os.stat(home.socket).st_ino
        lines_before = len(home.audit_lines())
        r = home.serve_expect_exit(timeout=10)
        self.assertIsNotNone(r.rc, "a second `secrets serve` kept running")
        self.assertNotEqual(r.rc, 0, r)
        text = (r.out + r.err).decode("utf-8", "replace").lower()
        self.assertIn("already", text, r)
        self.assertTrue(r.env is not None and r.env.get("fix"), r)
        self.assertTrue(first.alive())
        self.assertEqual(os.stat(home.socket).st_ino, ino, "the live socket was replaced")
        self.assertEqual(home.status()["pid"], first.pid)
        self.assertEqual(home.run("lease", "tok").out, b"v")
        actions = [e["action"] for e in home.audit_entries()[lines_before:]]
        self.assertNotIn("daemon_start", actions)
        self.assertNotIn("daemon_stop", actions)


class RefuseToStart(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("tok", b"s3cret-VALUE-zz91")
        self.home.stop()
        self.original = self.home.read("secrets.age")
        self.ident = self.home.read("identity.age")

    def write(self, name, data):
        path = self.home.file(name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)

    def assert_refuses(self, why, want_in_fix=None):
        r = self.home.serve_expect_exit(timeout=10)
        self.assertIsNotNone(r.rc, "%s: serve started anyway" % why)
        self.assertNotEqual(r.rc, 0, (why, r))
        env = r.env
        self.assertIsNotNone(env, "%s: no error envelope: %r" % (why, r))
        self.assertIs(env.get("ok"), False, env)
        self.assertTrue(env.get("error", {}).get("message"), env)
        self.assertTrue(env.get("fix", "").strip(), env)
        if want_in_fix:
            self.assertIn(want_in_fix, env["fix"] + " " + env["error"]["message"], (why, env))
        self.assertFalse(os.path.exists(self.home.socket), "%s: a socket was left behind" % why)
        return env

    def assert_store_intact_and_serves(self):
        self.assertEqual(self.home.read("secrets.age"), self.original)
        self.home.serve()
        self.assertEqual(self.home.run("lease", "tok").out, b"s3cret-VALUE-zz91")
        self.home.stop()

    def test_corrupt_store_is_never_replaced(self):
        data = self.original
        payload = data.index(b"\n---") + 1
        payload = data.index(b"\n", payload) + 1
        flip = lambda d, i: d[:i] + bytes([d[i] ^ 0xFF]) + d[i + 1:]  # noqa: E731
        variants = {
            "payload byte flipped": flip(data, payload + 20),
            "last byte flipped": flip(data, len(data) - 1),
            "header MAC flipped": flip(data, payload - 5),
            "stanza flipped": flip(data, data.index(b"-> X25519 ") + 15),
            "truncated": data[: len(data) // 2],
            "header only": data[:payload],
            "not age at all": b"hello, world\n",
        }
        for why, bad in variants.items():
            self.write("secrets.age", bad)
            self.assert_refuses(why)
            self.assertEqual(self.home.read("secrets.age"), bad, "%s: secrets.age was modified" % why)
            # No daemon: clients cannot replace it either.
            r = self.home.run("add", "new", input=b"x")
            self.assertEqual(r.rc, 3, r)
            self.assertEqual(self.home.read("secrets.age"), bad, why)
        self.write("secrets.age", self.original)
        self.assert_store_intact_and_serves()

    @unittest.skipUnless(HAVE_AGE, "needs age-keygen")
    def test_wrong_identity(self):
        key, _ = age_keygen()
        self.write("identity.age", key.encode() + b"\n")
        self.assert_refuses("wrong identity")
        self.assertEqual(self.home.read("secrets.age"), self.original)
        self.write("identity.age", self.ident)
        self.assert_store_intact_and_serves()

    def test_missing_or_garbage_identity(self):
        os.unlink(self.home.file("identity.age"))
        self.assert_refuses("no identity")
        self.assertEqual(self.home.read("secrets.age"), self.original)
        self.write("identity.age", b"AGE-SECRET-KEY-1NOTAKEY\n")
        self.assert_refuses("garbage identity")
        self.write("identity.age", self.ident)
        self.assert_store_intact_and_serves()

    def test_exposed_home_directory(self):
        for mode in (0o755, 0o750, 0o711, 0o701):
            os.chmod(self.home.path, mode)
            self.assert_refuses("home %o" % mode, "chmod 700")
        os.chmod(self.home.path, 0o700)
        self.assert_store_intact_and_serves()

    def test_exposed_files(self):
        for name, mode in (("secrets.age", 0o644), ("secrets.age", 0o640), ("identity.age", 0o604),
                           ("audit.log", 0o644), ("leases.json", 0o660), ("state.json", 0o640)):
            os.chmod(self.home.file(name), mode)
            self.assert_refuses("%s %o" % (name, mode), "chmod 600")
            self.assertEqual(harness.file_mode(self.home.file(name)), mode, "the daemon must not chmod for us")
            os.chmod(self.home.file(name), 0o600)
        self.assert_store_intact_and_serves()


class AuditTamper(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("tok", b"v")
        for i in range(3):
            self.home.lease_json("tok", "--client-id", "c%d" % i)
        self.home.run_json("revoke", "--all")
        self.home.add("other", b"w")
        self.home.stop()
        self.lines = self.home.audit_lines()
        self.assertGreaterEqual(len(self.lines), 8)

    def rewrite(self, lines):
        with open(self.home.file("audit.log"), "wb") as f:
            f.write(b"".join(l + b"\n" for l in lines))
        os.chmod(self.home.file("audit.log"), 0o600)

    def assert_broken_at(self, n):
        self.home.serve()
        r = self.home.run("audit", "--verify")
        env = self.assert_err(r, rc=1, code="audit_tampered")
        self.assertIn("line %d" % n, env["error"]["message"], env)
        self.assertIn("line %d" % n, env["fix"], env)
        reply = self.home.rpc("secrets.verifyAudit")["result"]
        self.assertIs(reply["ok"], False, reply)
        self.assertEqual(reply["first_bad_line"], n, reply)

    def test_edited_details_byte(self):
        # A middle line with details: change one byte of its details text.
        middle = len(self.lines) // 2
        idx = next(i for i in range(middle, len(self.lines) - 1) if b'"details":"' in self.lines[i])
        line = self.lines[idx]
        pos = line.index(b'"details":"') + len(b'"details":"')
        new_byte = b"X" if line[pos:pos + 1] != b"X" else b"Y"
        edited = line[:pos] + new_byte + line[pos + 1:]
        json.loads(edited)  # still valid JSON: only the hash can tell
        self.rewrite(self.lines[:idx] + [edited] + self.lines[idx + 1:])
        self.assert_broken_at(idx + 1)

    def test_edited_client_id(self):
        idx = next(i for i, l in enumerate(self.lines) if b'"client_id":"c1"' in l)
        edited = self.lines[idx].replace(b'"client_id":"c1"', b'"client_id":"c9"')
        self.rewrite(self.lines[:idx] + [edited] + self.lines[idx + 1:])
        self.assert_broken_at(idx + 1)

    def test_deleted_middle_line(self):
        idx = len(self.lines) // 2
        self.rewrite(self.lines[:idx] + self.lines[idx + 1:])
        self.assert_broken_at(idx + 1)

    def test_untouched_log_verifies(self):
        self.home.serve()
        res = self.home.run_json("audit", "--verify")
        self.assertIs(res["ok"], True, res)
        self.assertEqual(res["entries"], len(self.lines) + 1)  # + this start's daemon_start


class NoLeaks(E2ETestCase):
    def test_no_value_in_any_log_after_a_full_session(self):
        home = self.new_home()
        home.add("api", b"s3cret-VALUE-zz91")
        home.add("multi", b"s3cret-VALUE-zz94\nline2-s3cret-VALUE-zz94\n")
        r = home.run("add", "api", input=b"s3cret-VALUE-zz93")  # refused: exists
        self.assertNotEqual(r.rc, 0)
        home.add("api", b"s3cret-VALUE-zz92", "--force")
        r = home.run("add", "bad name", input=b"s3cret-VALUE-zz95")
        self.assertNotEqual(r.rc, 0)
        home.run("add", "argv", "--value", "s3cret-VALUE-zz96")
        l1 = home.lease_json("api", "--client-id", "agent")["lease_id"]
        self.assertEqual(home.run("lease", "multi", "--ttl", "1s").rc, 0)
        home.run("lease", "api", "--ttl", "99h")
        home.run("lease", "missing")
        home.rpc("secrets.get", {"name": "api"})
        home.rpc("secrets.add", {"name": "rpc", "value": "s3cret-VALUE-zz97"})
        home.rpc("secrets.lease", {"secret_name": "rpc", "client_id": "x", "ttl": "bad"})
        home.run_json("revoke", l1)
        home.run_json("list")
        home.run_json("status")
        home.run_json("health")
        home.run_json("audit")
        home.run_json("audit", "--verify")
        home.run_json("revoke", "--all")
        home.run_json("remove", "multi")
        home.restart()
        home.run("lease", "api")
        home.stop()
        files = {name: home.read(name) for name in ("audit.log", "daemon.log", "leases.json", "state.json")}
        files["daemon stdout/stderr"] = home.daemon_output().encode()
        for name, data in files.items():
            self.assertNotIn(b"s3cret-VALUE", data, "a secret value leaked into %s" % name)
            self.assertNotIn(b"line2-", data, name)
        self.assertNotIn(b"s3cret-VALUE", home.read("secrets.age"))
        # And the audit log did record the session.
        actions = {e["action"] for e in home.audit_entries()}
        for a in ("secret_add", "secret_delete", "lease_acquire", "lease_revoke", "killswitch", "denied",
                  "daemon_start", "daemon_stop"):
            self.assertIn(a, actions)


if __name__ == "__main__":
    harness.main()
