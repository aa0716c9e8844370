"""End-to-end tests of the files the Go agent-secrets shares with us: a home
the Go daemon wrote, taken over unchanged; leases.json kept as Go's plain
array (bound, proxy and renewed leases included, while running and after
SIGKILL) so the Go daemon can still start on the home; and every pair of
snapshot files (leases.json + state.json) the daemon may find at start-up,
including one the Go daemon rewrote after us (DESIGN.md 6)."""

import datetime as dt
import http.client
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import age_decrypt, E2ETestCase, now_utc, parse_time, wait_until  # noqa: E402
from persistence_case import HAVE_AGE, MULTI, age_keygen, go_time, lease_ids  # noqa: E402


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
        self.assertIsNone(listed["x"]["last_rotated"])  # never rotated
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
