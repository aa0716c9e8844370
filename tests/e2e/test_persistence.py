"""End-to-end tests of what outlives a request: the store file (and the stock
`age` tool), lease expiry, restarts, SIGTERM/SIGKILL, a Go agent-secrets home
taken over, refusal to start on a corrupt or exposed home, audit tampering,
single instance, and no secret value in any log (DESIGN.md 2, 5, 6)."""

import datetime as dt
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import age_decrypt, E2ETestCase, now_utc, parse_time, wait_until, walk_json  # noqa: E402

HAVE_AGE = shutil.which("age") is not None and shutil.which("age-keygen") is not None
MULTI = b"line one\n\tline \"two\" $X \\ caf\xc3\xa9 \xf0\x9f\x94\x91\n\n"


def age_keygen():
    p = subprocess.run(["age-keygen"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, check=True)
    lines = p.stdout.decode().splitlines()
    key = [l for l in lines if l.startswith("AGE-SECRET-KEY-1")][0]
    recipient = [l.split(": ", 1)[1] for l in lines if l.startswith("# public key: ")][0]
    return key, recipient


def go_time(t, nanos_suffix="789", offset_hours=2):
    """A time as Go's time.Time marshals it with a +02:00 zone and nanoseconds."""
    local = t.astimezone(dt.timezone(dt.timedelta(hours=offset_hours)))
    sign = "+" if offset_hours >= 0 else "-"
    return local.strftime("%Y-%m-%dT%H:%M:%S.%f") + nanos_suffix + "%s%02d:00" % (sign, abs(offset_hours))


def lease_ids(home):
    reply = home.rpc("secrets.leases")
    return {l["lease_id"]: l for l in reply["result"]["leases"]}


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


@unittest.skipUnless(HAVE_AGE, "needs age and age-keygen")
class GoHome(E2ETestCase):
    """A home written by the Go agent-secrets, built by hand, taken over unchanged."""

    LIVE = "6f1c1f0e-2b8a-4c1e-9a53-0c2f3b4d5e6f"
    REVOKED = "0b4e8f6a-1d2c-4e3f-8a9b-7c6d5e4f3a2b"
    EXPIRED = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

    def setUp(self):
        home = self.new_home(init=False, serve=False)
        key, recipient = age_keygen()
        now = now_utc()
        self.created = "2024-05-01T10:00:00.123456789+02:00"
        plaintext = {
            "version": 1,
            "secrets": {
                "x": {"name": "x", "created_at": self.created, "updated_at": "2024-05-02T11:30:00.5+02:00",
                      "last_rotated": "0001-01-01T00:00:00Z", "value": "go-value-x"},
                "multi": {"name": "multi", "created_at": "2024-04-01T08:00:00Z",
                          "updated_at": "2024-04-01T08:00:00Z", "rotate_via": "echo rotated",
                          "last_rotated": "2024-04-15T09:00:00.000000001Z", "value": MULTI.decode()},
            },
        }
        self.leases = [
            {"id": self.LIVE, "secret_name": "x", "client_id": "go-agent",
             "created_at": go_time(now - dt.timedelta(minutes=10)),
             "expires_at": go_time(now + dt.timedelta(minutes=50)), "revoked": False},
            {"id": self.REVOKED, "secret_name": "x", "client_id": "go-agent",
             "created_at": go_time(now - dt.timedelta(minutes=5)),
             "expires_at": go_time(now + dt.timedelta(minutes=55)), "revoked": True},
            {"id": self.EXPIRED, "secret_name": "multi", "client_id": "old",
             "created_at": go_time(now - dt.timedelta(hours=3)),
             "expires_at": go_time(now - dt.timedelta(hours=2)), "revoked": False},
        ]
        self.go_audit = [
            b'{"timestamp":"2024-05-01T10:00:00.123456789+02:00","action":"secret_add","secret_name":"x","success":true}',
            b'{"timestamp":"' + go_time(now - dt.timedelta(minutes=10)).encode()
            + b'","action":"lease_acquire","secret_name":"x","client_id":"go-agent","lease_id":"' + self.LIVE.encode()
            + b'","details":"TTL: 1h0m0s","success":true}',
        ]
        with open(home.file("identity.age"), "wb") as f:
            f.write(key.encode())  # bare key line, no newline, as the Go version writes it
        p = subprocess.run(["age", "-r", recipient, "-o", home.file("secrets.age")],
                           input=json.dumps(plaintext, indent=2).encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(home.file("leases.json"), "w") as f:
            json.dump(self.leases, f, indent=2)
        with open(home.file("audit.log"), "wb") as f:
            f.write(b"".join(l + b"\n" for l in self.go_audit))
        for name in os.listdir(home.path):
            os.chmod(home.file(name), 0o600)
        os.chmod(home.path, 0o700)
        self.identity = home.read("identity.age")
        self.recipient = recipient
        self.home = home

    def test_takeover(self):
        home = self.home
        home.serve()
        # The live Go lease is restored with its id; the revoked one is not; the expired one ends.
        leases = lease_ids(home)
        self.assertEqual(set(leases), {self.LIVE}, leases)
        l = leases[self.LIVE]
        self.assertEqual(l["secret_name"], "x")
        self.assertEqual(l["client_id"], "go-agent")
        self.assertEqual(parse_time(l["expires_at"]), parse_time(self.leases[0]["expires_at"]))
        self.assertEqual(home.status()["active_leases"], 1)
        self.assertEqual(home.status()["secrets_count"], 2)
        # The secrets lease byte-exact.
        self.assertEqual(home.run("lease", "x").out, b"go-value-x")
        self.assertEqual(home.run("lease", "multi").out, MULTI)
        listed = {s["name"]: s for s in home.run_json("list")["secrets"]}
        self.assertEqual(parse_time(listed["x"]["created_at"]), parse_time(self.created))
        self.assertIsNone(listed["x"]["last_rotated"])
        self.assertEqual(listed["multi"].get("rotate_via"), "echo rotated")
        self.assertEqual(parse_time(listed["multi"]["last_rotated"]), parse_time("2024-04-15T09:00:00Z"))
        # The audit log continues the Go lines: they are kept byte-exact, and verify is ok.
        lines = home.audit_lines()
        self.assertEqual(lines[:2], self.go_audit)
        res = home.run_json("audit", "--verify")
        self.assertIs(res["ok"], True, res)
        self.assertEqual(res["entries"], len(lines))
        first = json.loads(lines[2])
        self.assertEqual(first["seq"], 1)
        self.assertEqual(first["prev"], harness_sha256(self.go_audit[1]))
        expired = [e for e in home.audit_entries() if e["action"] == "lease_expire"]
        self.assertEqual([e.get("lease_id") for e in expired], [self.EXPIRED])
        # The old lease id works like ours.
        live = home.status()["active_leases"]  # LIVE plus the two raw leases above
        self.assertEqual(live, 3)
        self.assert_ok(home.run("revoke", self.LIVE), "secrets revoke")
        self.assertEqual(home.status()["active_leases"], live - 1)
        self.assertNotIn(self.LIVE, lease_ids(home))
        # A write keeps the file readable by the stock tool with the bare identity.
        home.add("new", b"fresh")
        doc = age_decrypt(home)
        self.assertEqual(sorted(doc["secrets"]), ["multi", "new", "x"])
        self.assertEqual(doc["secrets"]["x"]["value"], "go-value-x")
        self.assertEqual(parse_time(doc["secrets"]["x"]["created_at"]), parse_time(self.created))
        self.assertEqual(home.read("identity.age"), self.identity, "identity.age must not be rewritten")
        # And it all survives a restart; leases.json stays Go's array, our state is beside it.
        lid = home.lease_json("x")["lease_id"]
        before = set(lease_ids(home))
        self.assertIn(lid, before)
        home.restart()
        self.assertEqual(set(lease_ids(home)), before)
        self.assertNotIn(self.LIVE, before)
        go_decode_leases(home.read("leases.json"))
        self.assertEqual(json.loads(home.read("state.json")).get("version"), 1)
        self.assertIs(home.run_json("audit", "--verify")["ok"], True)
        self.assertEqual(home.audit_lines()[:2], self.go_audit)

    def test_go_null_lease_list(self):
        # The Go version writes `null` for an empty lease list.
        home = self.home
        with open(home.file("leases.json"), "w") as f:
            f.write("null")
        home.serve()
        self.assertEqual(home.status()["active_leases"], 0)
        self.assertEqual(home.run("lease", "x").out, b"go-value-x")
        self.assertIs(home.run_json("audit", "--verify")["ok"], True)

    def test_go_null_secrets(self):
        # A Go store that never held a secret may say "secrets": null.
        home = self.home
        p = subprocess.run(["age", "-r", self.recipient, "-o", home.file("secrets.age")],
                           input=b'{"version":1,"secrets":null}', stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        os.chmod(home.file("secrets.age"), 0o600)
        home.serve()
        self.assertEqual(home.status()["secrets_count"], 0)
        home.add("first", b"one")
        self.assertEqual(home.run("lease", "first").out, b"one")
        self.assertEqual(sorted(age_decrypt(home)["secrets"]), ["first"])


# The Go daemon's types.Lease, which it decodes leases.json into ([]*types.Lease,
# encoding/json): it refuses to start when that fails.
GO_LEASE_FIELDS = {"id": str, "secret_name": str, "client_id": str, "created_at": str, "expires_at": str,
                   "revoked": bool}
# time.Time's UnmarshalJSON: RFC 3339, fractional seconds optional, Z or a numeric offset.
GO_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def go_decode_leases(data):
    """Decodes leases.json as the Go daemon does, and more strictly: exactly its
    fields with its types. Returns the leases; fails the test otherwise."""
    doc = json.loads(data)
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise AssertionError("leases.json is not Go's array of leases: %r" % (data[:200],))
    for item in doc:
        if not isinstance(item, dict) or set(item) != set(GO_LEASE_FIELDS):
            raise AssertionError("a lease in leases.json has other fields than Go's: %r" % (item,))
        for field, kind in GO_LEASE_FIELDS.items():
            if not isinstance(item[field], kind):
                raise AssertionError("leases.json: %s is not a %s: %r" % (field, kind.__name__, item))
        for field in ("created_at", "expires_at"):
            if not GO_TIME_RE.match(item[field]):
                raise AssertionError("leases.json: %s is not RFC 3339 as Go reads it: %r" % (field, item))
    return doc


def start_holder():
    """A process that lives until we end it: the holder a lease binds to."""
    return subprocess.Popen(["sleep", "600"])


def proxy_answer(port, name, placeholder):
    """The status the proxy answers a request carrying this placeholder with:
    407 when it does not take it; anything else means it did (here 502: the
    upstream, 127.0.0.1:9, refuses the connection)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/%s/v1/x" % name, headers={"Authorization": "Bearer " + placeholder})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


class GoFormat(E2ETestCase):
    """After our daemon ran, the Go daemon can still start on the home: leases.json
    is Go's array; bindings, placeholders and the rest are in state.json."""

    def setUp(self):
        home = self.new_home(serve=False)
        home.write_config({"proxy": {"listen": "127.0.0.1:0"}})
        home.serve()
        self.home = home
        self.holder = start_holder()
        self.addCleanup(self.holder.wait)
        self.addCleanup(self.holder.kill)

    def port(self):
        return int(self.home.status()["proxy"]["listen"].rpartition(":")[2])

    def test_leases_json_is_gos_array_after_bound_proxy_and_renewed_leases(self):
        home = self.home
        home.add("tok", b"s3cret-VALUE-zz91")
        home.add("api", b"s3cret-VALUE-zz92", "--proxy-only", "--base-url", "http://127.0.0.1:9")
        plain = home.lease_json("tok", "--bind", "none", "--client-id", "plain")["lease_id"]
        bound = home.lease_json("tok", "--bind", str(self.holder.pid))["lease_id"]
        proxied = home.lease_json("api", "--bind", "none")
        renewed = home.lease_json("tok", "--bind", "none", "--ttl", "10m")["lease_id"]
        home.run_json("renew", renewed, "--ttl", "2h")
        gone = home.lease_json("tok", "--bind", "none")["lease_id"]
        home.run_json("revoke", gone)
        live = {plain, bound, proxied["lease_id"], renewed}
        self.assertNotEqual(proxy_answer(self.port(), "api", proxied["value"]), 407)
        home.stop()

        leases = go_decode_leases(home.read("leases.json"))
        self.assertEqual({l["id"] for l in leases}, live)
        self.assertTrue(all(l["revoked"] is False for l in leases))
        by_id = {l["id"]: l for l in leases}
        self.assertEqual(by_id[plain]["client_id"], "plain")
        self.assertEqual(by_id[proxied["lease_id"]]["secret_name"], "api")
        self.assertEqual(parse_time(by_id[proxied["lease_id"]]["expires_at"]), parse_time(proxied["expires_at"]))
        for name in ("leases.json", "state.json"):
            self.assertEqual(harness.file_mode(home.file(name)), 0o600, name)
            self.assertNotIn(b"s3cret-VALUE", home.read(name), name)
            self.assertNotIn(proxied["value"].encode(), home.read(name), "the placeholder itself is never stored")
        state = json.loads(home.read("state.json"))
        self.assertEqual(set(state["leases"]), live)
        self.assertEqual(state["leases"][bound].get("bind_pid"), self.holder.pid)
        self.assertRegex(state["leases"][proxied["lease_id"]].get("placeholder_sha256", ""), "^[0-9a-f]{64}$")
        self.assertEqual(state["leases"][renewed].get("ttl"), "10m0s")  # as acquired; expires_at says 2h
        self.assertEqual(state["leases"][plain], {})
        self.assertIn("tok", state["last_leased"])

        # Our daemon reads it all back: the binding, the placeholder, the renewal.
        home.serve()
        after = lease_ids(home)
        self.assertEqual(set(after), live)
        self.assertEqual(after[bound].get("bind_pid"), self.holder.pid)
        self.assertNotEqual(proxy_answer(self.port(), "api", proxied["value"]), 407)
        # A renewal without --ttl extends by the TTL the lease was acquired with (10m), not by
        # its current length (2h): that TTL came back from state.json.
        renewal = home.run_json("renew", renewed)
        left = (parse_time(renewal["expires_at"]) - now_utc()).total_seconds()
        self.assertLess(left, 1200, renewal)
        self.holder.kill()
        self.holder.wait()
        self.assertTrue(wait_until(lambda: bound not in lease_ids(home), timeout=10), "the binding was lost")

    def test_leases_json_is_gos_array_while_running_and_after_sigkill(self):
        home = self.home
        home.add("tok", b"v")
        lid = home.lease_json("tok", "--bind", str(self.holder.pid))["lease_id"]
        # The periodic snapshot (every 2 s while dirty) is Go's array too.
        self.assertTrue(wait_until(lambda: lid in home.read("state.json").decode(), timeout=15))
        self.assertEqual([l["id"] for l in go_decode_leases(home.read("leases.json"))], [lid])
        home.kill()
        self.assertEqual([l["id"] for l in go_decode_leases(home.read("leases.json"))], [lid])
        home.serve()
        self.assertEqual(lease_ids(home)[lid].get("bind_pid"), self.holder.pid)


class SnapshotPairs(E2ETestCase):
    """leases.json and state.json are written one after the other (leases.json
    first), so a crash, a restored backup or the Go daemon can leave them out of
    step. Each combination, made by hand from two real snapshots, restores every
    live lease with its binding, or (a leases.json older than state.json) at
    least never brings back one that ended."""

    def setUp(self):
        home = self.new_home()
        self.home = home
        self.holder = start_holder()
        self.addCleanup(self.holder.wait)
        self.addCleanup(self.holder.kill)
        home.add("tok", b"v")
        self.a = home.lease_json("tok", "--bind", str(self.holder.pid))["lease_id"]
        self.b = home.lease_json("tok", "--bind", "none")["lease_id"]
        home.stop()
        self.first = self.files()
        home.serve()
        home.run_json("revoke", self.a)
        self.c = home.lease_json("tok", "--bind", str(self.holder.pid))["lease_id"]
        self.d = home.lease_json("tok", "--bind", "none")["lease_id"]
        home.stop()
        self.second = self.files()
        self.live = {self.b, self.c, self.d}
        self.assertLess(json.loads(self.first["state.json"])["audit_seq"],
                        json.loads(self.second["state.json"])["audit_seq"])

    def files(self):
        return {name: self.home.read(name) for name in ("leases.json", "state.json", "audit.log")}

    def restore(self, leases, state, audit=None):
        """Puts these bytes in place (None: no such file) and starts the daemon."""
        for name, data in (("leases.json", leases), ("state.json", state),
                           ("audit.log", audit if audit is not None else self.second["audit.log"])):
            path = self.home.file(name)
            if os.path.exists(path):
                os.unlink(path)
            if data is not None:
                with open(path, "wb") as f:
                    f.write(data)
                os.chmod(path, 0o600)
        self.home.serve()
        return lease_ids(self.home)

    def assert_all_restored(self, live):
        self.assertEqual(set(live), self.live)
        self.assertEqual(live[self.c].get("bind_pid"), self.holder.pid)
        self.assertNotIn("bind_pid", live[self.b])
        r = self.home.run("revoke", self.a)
        self.assertNotEqual(r.rc, 0, "the revoked lease came back")
        self.assertIs(self.home.run_json("audit", "--verify")["ok"], True)

    def test_consistent_pair(self):
        self.assert_all_restored(self.restore(self.second["leases.json"], self.second["state.json"]))

    def test_older_consistent_pair_replays_the_log(self):
        # A SIGKILL before the next snapshot: both files are the earlier pair.
        self.assert_all_restored(self.restore(self.first["leases.json"], self.first["state.json"]))

    def test_leases_json_newer_than_state_json(self):
        # A crash after leases.json was written and before state.json was.
        self.assert_all_restored(self.restore(self.second["leases.json"], self.first["state.json"]))

    def test_leases_json_older_than_state_json(self):
        # Never written so (leases.json goes first), but a backup can do it: A
        # was revoked after that leases.json and must stay so.
        live = self.restore(self.first["leases.json"], self.second["state.json"])
        self.assertNotIn(self.a, live)
        self.assertIn(self.b, live)
        self.assertLessEqual(set(live), self.live)
        self.assertNotEqual(self.home.run("revoke", self.a).rc, 0)

    def test_no_state_json(self):
        # state.json moved away (as its fix says when it is corrupt): leases.json plus the whole log.
        self.assert_all_restored(self.restore(self.second["leases.json"], None))

    def test_no_leases_json(self):
        # leases.json moved away (as its fix says): the table comes from the whole log.
        self.assert_all_restored(self.restore(None, self.second["state.json"]))
        self.assert_all_restored_again()

    def assert_all_restored_again(self):
        # Whatever was restored, the next start finds a consistent pair.
        self.home.stop()
        self.assertEqual({l["id"] for l in go_decode_leases(self.home.read("leases.json"))}, self.live)
        self.assertEqual(set(json.loads(self.home.read("state.json"))["leases"]), self.live)
        self.home.serve()
        self.assertEqual(set(lease_ids(self.home)), self.live)

    def combined(self, pair):
        """The single leases.json object our previous version wrote for this pair."""
        state = json.loads(pair["state.json"])
        leases = []
        for l in json.loads(pair["leases.json"]):
            item = {k: l[k] for k in ("id", "secret_name", "client_id", "created_at", "expires_at")}
            item.update(state["leases"][l["id"]])
            leases.append(item)
        return json.dumps({"version": 1, "audit_seq": state["audit_seq"], "leases": leases,
                           "last_leased": state["last_leased"], "files": state["files"]}).encode()

    def test_previous_versions_single_file(self):
        # A home upgraded in place: leases.json is the object our previous version wrote.
        self.assert_all_restored(self.restore(self.combined(self.second), None))
        self.assert_all_restored_again()

    def test_previous_versions_single_file_beside_a_stale_state_json(self):
        # That version never writes state.json: one found beside its file is older.
        self.assert_all_restored(self.restore(self.combined(self.first), self.second["state.json"]))

    def test_go_daemon_ran_after_us(self):
        # Back to the Go daemon and forward again: it revoked B, leased E, kept
        # C and D (knowing nothing of C's binding), and appended its own lines.
        now = now_utc()
        e = "7d3c2b1a-0f9e-4d8c-b7a6-5f4e3d2c1b0a"
        go = [l for l in json.loads(self.second["leases.json"]) if l["id"] != self.b]
        go.append({"id": e, "secret_name": "tok", "client_id": "go-agent",
                   "created_at": go_time(now), "expires_at": go_time(now + dt.timedelta(hours=1)),
                   "revoked": False})
        go.append({"id": self.b, "secret_name": "tok", "client_id": "cli",
                   "created_at": go_time(now - dt.timedelta(minutes=1)),
                   "expires_at": go_time(now + dt.timedelta(hours=1)), "revoked": True})
        audit = self.second["audit.log"] + (
            b'{"timestamp":"' + go_time(now).encode() + b'","action":"lease_revoke","secret_name":"tok",'
            b'"lease_id":"' + self.b.encode() + b'","success":true}\\n')
        live = self.restore(json.dumps(go, indent=2).encode(), self.second["state.json"], audit)
        self.assertEqual(set(live), {self.c, self.d, e})
        self.assertEqual(live[self.c].get("bind_pid"), self.holder.pid)
        self.assertEqual(live[e]["client_id"], "go-agent")


def harness_sha256(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()


if __name__ == "__main__":
    harness.main()
