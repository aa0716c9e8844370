"""End-to-end tests of `secrets openclaw-resolve`, OpenClaw's exec
secret-provider protocol: a JSON request on stdin, one JSON answer on stdout,
exit 0 whenever it answered (some ids may have failed)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import E2ETestCase  # noqa: E402

TRICKY = "line one\n  \"quoted\" 'single' $(id) `id` \\ caf\u00e9 \U0001f511\n\ntrailing  "


def request(ids, **extra):
    req = {"protocolVersion": 1, "provider": "agent-secrets", "ids": ids}
    req.update(extra)
    return json.dumps(req)


class OpenClawResolve(E2ETestCase):
    def resolve(self, home, stdin, *args):
        return home.run("openclaw-resolve", *args, input=stdin)

    def answer(self, r):
        """A successful answer: exit 0, exactly one JSON object on stdout, nothing on stderr."""
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.err, b"", r)
        self.assertTrue(r.out.endswith(b"\n"), r)
        body = json.loads(r.out)
        self.assertEqual(body.get("protocolVersion"), 1, body)
        self.assertIsInstance(body.get("values"), dict, body)
        self.assertIsInstance(body.get("errors"), dict, body)
        return body

    def bad_request(self, r):
        self.assertEqual(r.rc, 2, r)
        self.assertEqual(r.out, b"", "stdout must stay empty for a request it cannot read: %r" % (r,))
        env = r.env_err
        self.assertIsNotNone(env, r)
        self.assertIs(env["ok"], False)
        self.assertEqual(env["error"]["code"], "invalid_params", env)
        self.assertIn("openclaw-resolve", env["fix"])
        return env

    def test_values_and_per_id_errors(self):
        home = self.new_home()
        home.add("github_token", "ghp_abc")
        home.add("tricky", TRICKY)
        r = self.resolve(home, request(["github_token", "tricky", "missing", "bad name; rm -rf ~"]))
        body = self.answer(r)
        self.assertEqual(body["values"], {"github_token": "ghp_abc", "tricky": TRICKY})
        self.assertEqual(sorted(body["errors"]), ["bad name; rm -rf ~", "missing"])
        self.assertIn("not found", body["errors"]["missing"]["message"])
        for e in body["errors"].values():
            self.assertEqual(list(e), ["message"])
            self.assertTrue(e["message"])

    def test_every_id_is_an_audited_lease_for_openclaw(self):
        home = self.new_home()
        home.add("a", "value-of-a-91")
        home.add("b", "value-of-b-92")
        self.answer(self.resolve(home, request(["a", "b", "a"])))
        acquires = [e for e in home.audit_entries() if e.get("action") == "lease_acquire"]
        self.assertEqual(sorted(e["secret_name"] for e in acquires), ["a", "b"])  # a duplicate id is leased once
        self.assertEqual({e["client_id"] for e in acquires}, {"openclaw"})
        self.assertEqual(home.status()["active_leases"], 2)
        # No value reached the audit log.
        self.assertNotIn(b"value-of-", home.read("audit.log"))

    def test_client_id_and_ttl_options(self):
        home = self.new_home()
        home.add("a", "1")
        self.answer(self.resolve(home, request(["a"]), "--client-id", "gateway", "--ttl", "5m"))
        acquire = [e for e in home.audit_entries() if e.get("action") == "lease_acquire"][-1]
        self.assertEqual(acquire["client_id"], "gateway")
        self.assertEqual(acquire["details"], "TTL: 5m0s")

    def test_empty_ids(self):
        home = self.new_home()
        body = self.answer(self.resolve(home, request([])))
        self.assertEqual(body["values"], {})
        self.assertEqual(body["errors"], {})

    def test_daemon_down_is_an_answer_with_errors(self):
        home = self.new_home(serve=False)
        body = self.answer(self.resolve(home, request(["a", "b"])))
        self.assertEqual(body["values"], {})
        self.assertEqual(sorted(body["errors"]), ["a", "b"])
        for e in body["errors"].values():
            self.assertIn("secrets serve", e["message"])

    def test_bad_requests(self):
        home = self.new_home()
        home.add("a", "1")
        for stdin in (b"", b"not json", b"[1,2]", b'"ids"',
                      request(["a"], protocolVersion=2), request(["a"], protocolVersion="1"),
                      json.dumps({"protocolVersion": 1, "provider": "p"}),
                      request("a"), request(["a", 7]), request([None]),
                      request(["a"]) + "garbage"):
            with self.subTest(stdin=stdin):
                self.bad_request(self.resolve(home, stdin))
        # Past 1 MiB it stops reading.
        env = self.bad_request(self.resolve(home, request(["a" * 100] * 20000)))
        self.assertIn("larger than", env["error"]["message"])
        # Nothing was leased by any of those.
        self.assertEqual(home.status()["active_leases"], 0)

    def test_help_and_unknown_option(self):
        home = self.new_home(serve=False)
        r = home.run("openclaw-resolve", "--help")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("--client-id", r.out.decode())
        self.assert_err(home.run("openclaw-resolve", "--bogus"), rc=2)


if __name__ == "__main__":
    harness.main()
