"""End-to-end tests of the `secrets` CLI: every command's success and failure
paths, exit codes and JSON envelopes (DESIGN.md section 7)."""

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import BIN, E2ETestCase, UUID4_RE, go_duration_seconds, now_utc, parse_time, walk_json  # noqa: E402

# Byte-exact round trips: newlines (trailing too), CRLF, tabs, spaces, quotes,
# shell metacharacters, backslashes, JSON escapes, UTF-8 of 2, 3 and 4 bytes.
TRICKY = (b"first line\n"
          b"  indented\twith\ttabs  \n"
          b"\"double\" 'single' `backtick` $HOME ${X} $(id) \\n \\\\ \\u0041 %s %%\r\n"
          b"caf\xc3\xa9 \xe2\x82\xac \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\x91\n"
          b"{\"json\": [1, 2]}\n"
          b"\n"
          b"trailing spaces   \n\n")


class TopLevel(E2ETestCase):
    def test_bare_secrets_prints_command_tree(self):
        home = self.new_home(serve=False)
        r = home.run()
        res = self.assert_ok(r, "secrets")
        self.assertIsInstance(res.get("commands"), list, res)
        usages = " ".join(c.get("usage", "") for c in res["commands"])
        for c in res["commands"]:
            self.assertTrue(c.get("usage", "").startswith("secrets "), c)
            self.assertTrue(c.get("description"), c)
        for name in ("init", "serve", "add", "list", "lease", "revoke", "remove", "audit", "status", "health"):
            self.assertIn("secrets " + name, usages, res)
        self.assertIn("--ttl", usages)
        self.assertIn("--json", usages)
        self.assertIn("--all", usages)
        self.assertIn("--verify", usages)

    def test_command_tree_lists_every_command_and_option_that_help_shows(self):
        # The tree must not drift from the parser: a hand-kept list lacked
        # add --proxy-only, exec --renew and exec --on-leak. Each leaf command
        # that --help names, and each of its options, is in the tree.
        home = self.new_home(init=False, serve=False)
        usages = {}
        for c in self.assert_ok(home.run(), "secrets")["commands"]:
            path = []
            for w in c["usage"].split(" ")[1:]:
                if not re.fullmatch(r"[a-z][a-z0-9-]*", w):
                    break  # the command's words end at its first argument or option
                path.append(w)
            usages[" ".join(path)] = c["usage"]

        def sections(text):
            out, current = {}, None
            for line in text.splitlines():
                if line and not line.startswith(" ") and line.endswith(":"):
                    current = line[:-1]
                    out[current] = []
                elif current and line.startswith("  ") and line.strip():
                    out[current].append(line.strip().split()[0].rstrip(","))
            return out

        def walk(path):
            r = home.run(*path, "--help")
            self.assertEqual(r.rc, 0, r)
            found = sections(r.out.decode())
            if found.get("Subcommands"):
                for sub in found["Subcommands"]:
                    walk(path + [sub])
                return
            name = " ".join(path)
            self.assertIn(name, usages, "secrets %s is missing from the command tree" % name)
            for entry in found.get("Options", []):
                for flag in entry.split(","):
                    if flag.startswith("--") and flag != "--help":
                        self.assertIn("[" + flag, usages[name], "secrets %s: %s is missing" % (name, flag))

        walk([])
        self.assertIn("--proxy-only", usages["add"])
        self.assertIn("--renew", usages["exec"])
        self.assertIn("--on-leak", usages["exec"])

    def test_bare_secrets_needs_no_daemon_and_no_store(self):
        home = self.new_home(init=False, serve=False)
        r = home.run()
        self.assert_ok(r, "secrets")

    def test_help(self):
        home = self.new_home(init=False, serve=False)
        r = home.run("--help")
        self.assertEqual(r.rc, 0, r)
        text = r.out.decode()
        for name in ("init", "serve", "add", "lease", "revoke", "audit", "status"):
            self.assertIn(name, text)
        r = home.run("lease", "--help")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("--ttl", r.out.decode())
        self.assertIn("--client-id", r.out.decode())
        r = home.run("--version")
        self.assertEqual(r.rc, 0, r)
        self.assertTrue((r.out + r.err).strip(), r)

    def test_unknown_subcommand_is_usage_error(self):
        home = self.new_home(init=False, serve=False)
        r = home.run("frobnicate")
        self.assert_err(r, rc=2)

    def test_missing_required_argument_is_usage_error(self):
        home = self.new_home(serve=False)
        self.assert_err(home.run("lease"), rc=2)
        self.assert_err(home.run("add", input=b"v"), rc=2)
        self.assert_err(home.run("remove"), rc=2)


class Init(E2ETestCase):
    def test_init_creates_private_home(self):
        home = self.new_home(init=False, serve=False)
        r = home.run("init")
        res = self.assert_ok(r, "secrets init")
        self.assertTrue(res.get("public_key", "").startswith("age1"), res)
        self.assertEqual(os.path.realpath(res.get("directory")), os.path.realpath(home.path), res)
        self.assertEqual(harness.file_mode(home.path), 0o700)
        for name in ("identity.age", "secrets.age"):
            self.assertTrue(os.path.exists(home.file(name)), name)
            self.assertEqual(harness.file_mode(home.file(name)), 0o600, name)
        ident = home.read("identity.age").decode()
        lines = ident.splitlines()
        self.assertTrue(any(l.startswith("# created: ") for l in lines), ident[:60])
        self.assertIn("# public key: " + res["public_key"], lines)
        self.assertTrue(any(l.startswith("AGE-SECRET-KEY-1") for l in lines))
        self.assertTrue(home.read("secrets.age").startswith(b"age-encryption.org/v1\n"))

    def test_init_twice_is_an_error_and_keeps_the_identity(self):
        home = self.new_home(serve=False)
        before = home.read("identity.age"), home.read("secrets.age")
        r = home.run("init")
        env = self.assert_err(r, rc=1, code="already_exists")
        self.assertEqual(env["command"], "secrets init")
        self.assertEqual((home.read("identity.age"), home.read("secrets.age")), before)

    def test_init_refuses_an_exposed_home(self):
        home = self.new_home(init=False, serve=False)
        os.chmod(home.path, 0o755)
        r = home.run("init")
        env = self.assert_err(r)
        self.assertIn("chmod 700", env["fix"] + " " + env["error"]["message"], env)
        self.assertFalse(os.path.exists(home.file("identity.age")))

    def test_init_creates_missing_directory(self):
        home = self.new_home(init=False, serve=False)
        nested = os.path.join(home.path, "sub", "dir")
        r = home.run("init", env={"AGENT_SECRETS_HOME": nested})
        self.assert_ok(r, "secrets init")
        self.assertEqual(harness.file_mode(nested), 0o700)


class Add(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()

    def test_add_from_stdin_then_list(self):
        r = self.home.run("add", "api_key", input=b"s3cret-VALUE-zz91")
        res = self.assert_ok(r, "secrets add")
        self.assertIs(res.get("success"), True, res)
        self.assertEqual(res.get("name"), "api_key")
        parse_time(res["created_at"])
        cmds = [a["command"] for a in r.env_out["next_actions"]]
        self.assertTrue(any(c.startswith("secrets lease api_key") for c in cmds), cmds)

        r = self.home.run("list")
        res = self.assert_ok(r, "secrets list")
        names = [s["name"] for s in res["secrets"]]
        self.assertEqual(names, ["api_key"])
        s = res["secrets"][0]
        for field in ("created_at", "updated_at"):
            parse_time(s[field])
        self.assertIsNone(s["last_rotated"])  # never rotated (the RPC keeps Go's zero time)
        self.assertIs(s["has_rotation"], False)
        self.assertEqual(res["count"], 1)

    def test_empty_value_is_refused(self):
        r = self.home.run("add", "empty", input=b"")
        env = self.assert_err(r, rc=2)
        self.assertEqual(env["command"], "secrets add")
        res = self.home.run_json("list")
        self.assertEqual(res["secrets"], [])

    def test_existing_secret_needs_force(self):
        self.home.add("k", b"old-value")
        r = self.home.run("add", "k", input=b"new-value")
        self.assert_err(r, rc=1, code="already_exists")
        self.assertEqual(self.home.run("lease", "k").out, b"old-value")
        created = self.home.run_json("list")["secrets"][0]["created_at"]

        r = self.home.run("add", "k", "--force", input=b"new-value")
        res = self.assert_ok(r, "secrets add")
        self.assertIs(res.get("replaced"), True, res)
        self.assertEqual(self.home.run("lease", "k").out, b"new-value")
        s = self.home.run_json("list")["secrets"][0]
        self.assertEqual(s["created_at"], created, "--force keeps created_at")
        self.assertGreaterEqual(parse_time(s["updated_at"]), parse_time(created))

    def test_invalid_name_is_refused(self):
        for name in ("bad name", "a/b", "x;rm"):
            r = self.home.run("add", name, input=b"v")
            self.assert_err(r, rc=2, code="invalid_params")
        self.assertEqual(self.home.run_json("list")["secrets"], [])

    def test_value_flag_works_but_warns(self):
        r = self.home.run("add", "flagged", "--value", "from-argv")
        self.assert_ok(r, "secrets add")
        self.assertIn(b"warning", r.err.lower())
        self.assertEqual(self.home.run("lease", "flagged").out, b"from-argv")

    def test_list_never_shows_values(self):
        values = {"a": b"s3cret-VALUE-zz91", "b": b"multi\nline-zz92\n", "c": b"x" * 40}
        for name, v in values.items():
            self.home.add(name, v)
        self.home.run("lease", "a")
        r = self.home.run("list")
        res = self.assert_ok(r, "secrets list")
        self.assertEqual(sorted(s["name"] for s in res["secrets"]), ["a", "b", "c"])
        for v in values.values():
            for piece in v.split(b"\n"):
                if piece:
                    self.assertNotIn(piece, r.out + r.err)
        self.assertNotIn("value", [k for k, _ in walk_json(res)])
        a = [s for s in res["secrets"] if s["name"] == "a"][0]
        self.assertEqual(a.get("active_leases"), 1, a)


class Lease(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("tok", b"s3cret-VALUE-zz91")

    def test_raw_value_without_newline_on_a_pipe(self):
        r = self.home.run("lease", "tok")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, b"s3cret-VALUE-zz91")
        self.assertNotIn(b"s3cret", r.err)
        r = self.home.run("lease", "tok", "--raw", "--ttl", "5m", "--client-id", "agent-7")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, b"s3cret-VALUE-zz91")

    def test_shell_capture(self):
        script = 'T=$("$BIN" lease tok); rc=$?; printf "%s|%s" "$rc" "$T"'
        p = subprocess.run(["bash", "-c", script], env=dict(self.home.env, BIN=BIN),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.stdout, b"0|s3cret-VALUE-zz91")

    def test_json_envelope(self):
        before = now_utc()
        r = self.home.run("lease", "tok", "--json", "--ttl", "30m", "--client-id", "agent-7")
        res = self.assert_ok(r, "secrets lease")
        self.assertRegex(res.get("lease_id", ""), UUID4_RE)
        self.assertEqual(res.get("value"), "s3cret-VALUE-zz91")
        self.assertEqual(res.get("secret_name"), "tok")
        self.assertEqual(res.get("client_id"), "agent-7")
        self.assertEqual(go_duration_seconds(res.get("ttl")), 1800.0, res)
        exp = parse_time(res["expires_at"])
        self.assertLess(abs((exp - before).total_seconds() - 1800), 30, res)
        cmds = [a["command"] for a in r.env_out["next_actions"]]
        self.assertIn("secrets revoke " + res["lease_id"], cmds)
        # The value is handed out only once its audit line is in the file.
        acquired = [e for e in self.home.audit_entries() if e["action"] == "lease_acquire"]
        self.assertEqual(acquired[-1].get("lease_id"), res["lease_id"])
        self.assertEqual(acquired[-1].get("client_id"), "agent-7")
        self.assertEqual(parse_time(acquired[-1]["expires_at"]), exp)

    def test_newline_added_only_on_a_terminal(self):
        import pty
        import select
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen([BIN, "lease", "tok"], env=self.home.env, stdin=subprocess.DEVNULL,
                                 stdout=slave, stderr=subprocess.PIPE)
            self.assertEqual(p.wait(timeout=30), 0)
            p.stderr.close()
            # The slave stays open here, so the terminal is never hung up and no
            # output is dropped; the kernel moves it to the master asynchronously,
            # so read until the line is complete.
            out = b""
            deadline = time.monotonic() + 10
            while not out.endswith(b"\n") and time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    out += os.read(master, 4096)
        finally:
            os.close(master)
            os.close(slave)
        # The terminal turns \n into \r\n.
        self.assertEqual(out, b"s3cret-VALUE-zz91\r\n")

    def test_default_ttl_and_client_id(self):
        res = self.home.lease_json("tok")
        self.assertEqual(go_duration_seconds(res["ttl"]), 3600.0, res)
        self.assertTrue(res.get("client_id"), res)

    def test_missing_secret_prints_nothing_on_stdout(self):
        r = self.home.run("lease", "missing")
        self.assertEqual(r.rc, 4, r)
        self.assertEqual(r.out, b"")
        env = self.assert_err(r, rc=4, code="not_found", stream="stderr")
        self.assertEqual(env["command"], "secrets lease")
        self.assertIn("missing", env["error"]["message"])

        script = 'T=$("$BIN" lease missing 2>/dev/null); rc=$?; printf "%s|%s" "$rc" "$T"'
        p = subprocess.run(["bash", "-c", script], env=dict(self.home.env, BIN=BIN),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.stdout, b"4|")

    def test_missing_secret_json(self):
        r = self.home.run("lease", "missing", "--json")
        self.assert_err(r, rc=4, code="not_found")

    def test_bad_ttl(self):
        for ttl in ("abc", "0", "48h", "24h0m1s", "500ms", "-5m", "10x"):
            r = self.home.run("lease", "tok", "--ttl=" + ttl)
            self.assertEqual(r.rc, 2, (ttl, r))
            self.assertEqual(r.out, b"", (ttl, r))
            env = self.assert_err(r, rc=2, stream="stderr")
            msg = env["error"]["message"]
            self.assertIn("1s", msg, msg)
            self.assertIn("24h", msg, msg)
            self.assertNotIn(b"s3cret", r.err)
            r = self.home.run("lease", "tok", "--json", "--ttl=" + ttl)
            self.assert_err(r, rc=2, code="invalid_params")
        self.assertEqual(self.home.status()["active_leases"], 0)

    def test_ttl_bounds_are_inclusive(self):
        for ttl in ("1s", "24h", "1h30m", "90s"):
            r = self.home.run("lease", "tok", "--ttl", ttl)
            self.assertEqual((r.rc, r.out), (0, b"s3cret-VALUE-zz91"), (ttl, r))

    def test_each_lease_gets_a_new_id(self):
        ids = {self.home.lease_json("tok")["lease_id"] for _ in range(3)}
        self.assertEqual(len(ids), 3)
        self.assertEqual(self.home.status()["active_leases"], 3)


class RoundTrip(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()

    def roundtrip(self, name, value):
        r = self.home.run("add", name, input=value)
        self.assert_ok(r, "secrets add")
        r = self.home.run("lease", name)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, value)
        res = self.home.lease_json(name)
        self.assertEqual(res["value"].encode("utf-8"), value)

    def test_multiline_tricky_value(self):
        self.roundtrip("tricky", TRICKY)

    def test_single_newline_and_whitespace_only(self):
        self.roundtrip("nl", b"\n")
        self.roundtrip("ws", b" \t ")

    def test_pem_like_value(self):
        pem = (b"-----BEGIN PRIVATE KEY-----\n" + b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n" * 20
               + b"-----END PRIVATE KEY-----\n")
        self.roundtrip("pem", pem)

    def test_large_value(self):
        # Larger than the CLI's 64 KiB read buffer and one age STREAM chunk.
        value = bytes((i * 7 + 32) % 95 + 32 for i in range(200_000)) + b"\n"
        self.roundtrip("big", value)

    def test_value_over_one_request_is_refused_before_sending(self):
        # More than a JSON-RPC line can carry: a clear error naming the size, nothing stored.
        r = self.home.run("add", "huge", input=b"x" * (1024 * 1024 + 1))
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("larger than 1024 KiB", r.out.decode() + r.err.decode())
        self.assertIsNotNone(r.env_err, r)
        self.assertTrue(r.env_err.get("fix"), r)
        self.assertNotIn("huge", json.dumps(self.home.run_json("list")))

    def test_control_characters_and_nul(self):
        # JSON strings carry \u0000 and the CLI reads and writes bytes.
        value = b"a\x00b\x01\x1b[31mred\x7f\x00\n"
        self.roundtrip("ctl", value)

    def test_invalid_utf8_is_refused_as_bad_input(self):
        # JSON strings carry UTF-8 only: a binary value is a usage error
        # with a fix, never an internal error (and never stored mangled).
        value = b"\xff\xfe-not-utf8-\xc3"
        r = self.home.run("add", "bin", input=value)
        env = self.assert_err(r, rc=2, code="invalid_params")
        self.assertIn("base64", env["fix"])
        self.assertNotIn(b"not-utf8", r.out + r.err)
        self.assertEqual(self.home.run("lease", "bin").rc, 4)
        self.assert_serving(self.home)


class Revoke(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("tok", b"v1")

    def test_revoke_then_again(self):
        lid = self.home.lease_json("tok")["lease_id"]
        self.assertEqual(self.home.status()["active_leases"], 1)
        r = self.home.run("revoke", lid)
        res = self.assert_ok(r, "secrets revoke")
        self.assertIs(res.get("success"), True, res)
        self.assertEqual(self.home.status()["active_leases"], 0)
        r = self.home.run("revoke", lid)
        self.assert_err(r, code="lease_ended")
        actions = [e["action"] for e in self.home.audit_entries() if e.get("lease_id") == lid]
        self.assertIn("lease_acquire", actions)
        self.assertIn("lease_revoke", actions)

    def test_revoke_unknown(self):
        r = self.home.run("revoke", "00000000-0000-4000-8000-000000000000")
        self.assert_err(r, rc=4, code="lease_not_found")

    def test_revoke_without_id(self):
        r = self.home.run("revoke")
        env = self.assert_err(r, rc=2)
        self.assertIn("--all", env["fix"] + env["error"]["message"])

    def test_revoke_all(self):
        self.home.add("other", b"v2")
        for name in ("tok", "tok", "other"):
            self.home.lease_json(name)
        r = self.home.run("revoke", "--all")
        res = self.assert_ok(r, "secrets revoke")
        self.assertEqual(res.get("leases_revoked"), 3, res)
        self.assertIs(res.get("success"), True, res)
        self.assertEqual(self.home.status()["active_leases"], 0)
        kills = [e for e in self.home.audit_entries() if e.get("action") == "killswitch"]
        self.assertEqual(len(kills), 1, kills)
        res = self.home.run_json("revoke", "--all")
        self.assertEqual(res.get("leases_revoked"), 0, res)
        # Secrets are not touched by the killswitch.
        self.assertEqual(self.home.run("lease", "tok").out, b"v1")


class Remove(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()

    def test_remove_revokes_that_secrets_leases(self):
        self.home.add("x", b"xv")
        self.home.add("y", b"yv")
        x1 = self.home.lease_json("x")["lease_id"]
        x2 = self.home.lease_json("x")["lease_id"]
        y1 = self.home.lease_json("y")["lease_id"]
        r = self.home.run("remove", "x")
        res = self.assert_ok(r, "secrets remove")
        self.assertEqual(res.get("leases_revoked"), 2, res)
        self.assertEqual(self.home.status()["active_leases"], 1)
        self.assertEqual([s["name"] for s in self.home.run_json("list")["secrets"]], ["y"])
        self.assertEqual(self.home.run("lease", "x").rc, 4)
        self.assertNotEqual(self.home.run("revoke", x1).rc, 0)
        self.assertNotEqual(self.home.run("revoke", x2).rc, 0)
        self.assert_ok(self.home.run("revoke", y1))
        entries = self.home.audit_entries()
        self.assertTrue(any(e["action"] == "secret_delete" and e.get("secret_name") == "x" for e in entries))
        ended = {e.get("lease_id") for e in entries if e["action"] in ("lease_end", "lease_revoke")}
        self.assertTrue({x1, x2} <= ended, entries)

    def test_remove_missing(self):
        r = self.home.run("remove", "nope")
        self.assert_err(r, rc=4, code="not_found")

    def test_removed_secret_can_be_added_again(self):
        self.home.add("x", b"one")
        self.assert_ok(self.home.run("remove", "x"))
        self.home.add("x", b"two")
        self.assertEqual(self.home.run("lease", "x").out, b"two")


class Audit(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("tok", b"s3cret-VALUE-zz91")
        self.lid = self.home.lease_json("tok", "--client-id", "bot")["lease_id"]
        self.home.run_json("revoke", self.lid)

    def test_tail(self):
        r = self.home.run("audit", "--tail", "2")
        res = self.assert_ok(r, "secrets audit")
        entries = res["entries"]
        self.assertEqual(len(entries), 2, entries)
        self.assertEqual([e["action"] for e in entries], ["lease_acquire", "lease_revoke"])
        self.assertEqual(entries[0]["lease_id"], self.lid)
        self.assertEqual(entries[0]["client_id"], "bot")
        self.assertEqual(entries[1]["seq"], entries[0]["seq"] + 1)
        for e in entries:
            for field in ("seq", "timestamp", "action", "success", "prev", "hash"):
                self.assertIn(field, e, e)
            self.assertRegex(e["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertLess(abs((parse_time(e["timestamp"]) - now_utc()).total_seconds()), 120)
            self.assertIn("peer", e, e)
            self.assertEqual(e["peer"].get("uid"), os.geteuid(), e)
            self.assertIsInstance(e["peer"].get("pid"), int, e)
            self.assertGreater(e["peer"]["pid"], 0, e)
        self.assertNotIn(b"s3cret-VALUE", r.out)

    def test_all(self):
        res = self.home.run_json("audit")
        actions = [e["action"] for e in res["entries"]]
        # A new home's first line records its audit key (test_audit.py), then the daemon's start.
        self.assertEqual(actions[:2], ["audit_key_created", "daemon_start"], actions)
        for a in ("secret_add", "lease_acquire", "lease_revoke"):
            self.assertIn(a, actions)
        self.assertEqual([e["seq"] for e in res["entries"]], list(range(1, len(actions) + 1)))
        self.assertEqual(res["entries"][0]["prev"], "0" * 64)

    def test_tail_longer_than_log(self):
        res = self.home.run_json("audit", "--tail", "1000")
        self.assertEqual(len(res["entries"]), len(self.home.audit_lines()))

    def test_negative_tail(self):
        self.assert_err(self.home.run("audit", "--tail", "-1"), rc=2)

    def test_verify(self):
        r = self.home.run("audit", "--verify")
        res = self.assert_ok(r, "secrets audit")
        self.assertIs(res.get("ok"), True, res)
        self.assertEqual(res.get("entries"), len(self.home.audit_lines()), res)

    def test_failures_are_audited(self):
        self.home.run("lease", "missing")
        self.home.run("add", "tok", input=b"again")
        entries = self.home.audit_entries()
        self.assertTrue(any(e["action"] == "lease_acquire" and e.get("secret_name") == "missing"
                            and e["success"] is False for e in entries), entries[-3:])
        self.assertTrue(any(e["action"] == "secret_add" and e.get("secret_name") == "tok"
                            and e["success"] is False for e in entries), entries[-3:])


class StatusHealth(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()

    def test_status(self):
        self.home.add("a", b"1")
        self.home.add("b", b"2")
        self.home.lease_json("a")
        r = self.home.run("status")
        res = self.assert_ok(r, "secrets status")
        self.assertIs(res["running"], True)
        self.assertEqual(res["secrets_count"], 2)
        self.assertEqual(res["active_leases"], 1)
        self.assertIs(res["heartbeat"]["enabled"], False)
        self.assertEqual(res["pid"], self.home.daemon.pid)
        self.assertTrue(res["version"])
        go_duration_seconds(res["uptime"])
        self.assertEqual(res["socket"], self.home.socket)
        self.assertIs(res["killswitch_tripped"], False)
        self.assertLessEqual(parse_time(res["started_at"]), now_utc())

    def test_health(self):
        self.home.add("a", b"1")
        self.home.lease_json("a", "--ttl", "2m")
        self.home.lease_json("a", "--ttl", "2h")
        r = self.home.run("health")
        res = self.assert_ok(r, "secrets health")
        self.assertEqual(res["total_secrets"], 1)
        self.assertEqual(res["active_leases"], 2)
        self.assertEqual(res["expiring_soon"], 1)
        self.assertEqual(res["never_rotated"], 1)
        self.assertEqual(res["stale_secrets"], 0)
        self.assertIsInstance(res["warnings"], list)


if __name__ == "__main__":
    harness.main()
