"""The first ten minutes: what the CLI says to someone using it wrongly, or
asking for help. Errors go to stderr (so $(secrets ...) never captures one),
typos get a "did you mean" with the corrected line as the fix, fixes are
shell-quoted, and the help a person gets is short."""

import json
import os
import pty
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BIN, E2ETestCase  # noqa: E402

VALUE = "guidance-value-7f3a"


class UsageErrors(E2ETestCase):
    def setUp(self):
        self.home = self.new_home(serve=False)

    def usage(self, *args):
        r = self.home.run(*args)
        env = self.assert_err(r, rc=2, code="usage")
        self.assertEqual(r.out, b"", "a usage error wrote to stdout: %r" % (r,))
        return env

    def test_a_captured_raw_lease_never_captures_a_usage_error(self):
        for args in (("lease",), ("lease", "api_key", "--tll", "5m"), ("lease", "api_key", "extra")):
            self.usage(*args)

    def test_unknown_command_suggests_the_closest_with_the_line_corrected(self):
        env = self.usage("leas", "api_key")
        self.assertIn('unknown command "leas"', env["error"]["message"])
        self.assertIn('did you mean "lease"', env["error"]["message"])
        self.assertEqual(env["fix"], "secrets lease api_key")
        env = self.usage("rvoke", "--all")
        self.assertEqual(env["fix"], "secrets revoke --all")

    def test_unknown_command_with_nothing_close_points_to_help(self):
        env = self.usage("xyzzy")
        self.assertNotIn("did you mean", env["error"]["message"])
        self.assertEqual(env["fix"], "secrets help")

    def test_unknown_option_suggests_the_closest_in_the_order_typed(self):
        env = self.usage("lease", "api_key", "--tll", "5m")
        self.assertEqual(env["error"]["message"], "unknown option --tll for secrets lease; did you mean --ttl?")
        self.assertEqual(env["fix"], "secrets lease api_key --ttl 5m")
        env = self.usage("lease", "api_key", "--tll=5m")
        self.assertEqual(env["fix"], "secrets lease api_key --ttl=5m")

    def test_fixes_quote_what_the_user_typed(self):
        env = self.usage("lease", "bad name", "--tll", "5m")
        self.assertEqual(env["fix"], "secrets lease 'bad name' --ttl 5m")
        env = self.usage("lease", "it's", "--tll", "5m")
        self.assertEqual(env["fix"], "secrets lease 'it'\\''s' --ttl 5m")

    def test_an_extra_argument_is_named(self):
        env = self.usage("lease", "api_key", "extra")
        self.assertEqual(env["error"]["message"], 'unexpected argument "extra" for secrets lease')
        self.assertEqual(env["fix"], "secrets lease --help")

    def test_a_bad_number_names_the_option_and_the_value(self):
        env = self.usage("audit", "--tail", "abc")
        self.assertEqual(env["error"]["message"], 'invalid value "abc" for --tail: expected a whole number')

    def test_exec_without_double_dash_before_a_command_named_like_ours(self):
        # `env` is also a command of ours: without `--` it was read as `secrets env`.
        env = self.usage("exec", "--secret", "api_key", "env")
        self.assertIn("put -- before the command", env["error"]["message"])
        self.assertEqual(env["fix"], "secrets exec --secret api_key -- env")
        self.assertFalse(os.path.exists(os.path.join(self.home.path, ".env")))

    def test_revoke_without_an_id_points_to_leases_not_the_killswitch(self):
        env = self.usage("revoke")
        self.assertIn("secrets leases", env["fix"])
        self.assertNotIn("--all", env["fix"])
        env = self.usage("revoke", "--wipe")
        self.assertIn("--all --wipe --yes", env["fix"])
        env = self.usage("revoke", "--rotate")
        self.assertEqual(env["fix"], "secrets revoke --all --rotate")


class Help(E2ETestCase):
    def setUp(self):
        self.home = self.new_home(serve=False)

    def test_help_is_short_text(self):
        r = self.home.run("help")
        self.assertEqual(r.rc, 0, r)
        text = r.out.decode()
        self.assertIn("usage: secrets COMMAND", text)
        self.assertIn("lease ", text)
        self.assertIn("secrets --json", text)
        self.assertLess(len(text.splitlines()), 45, text)
        self.assertIsNone(r.env_out)

    def test_help_for_a_command_lists_its_options(self):
        r = self.home.run("help", "lease")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("--ttl", r.out.decode())
        env = self.assert_err(self.home.run("help", "nosuch"), rc=2)
        self.assertEqual(env["fix"], "secrets help")

    def test_json_tree_for_agents(self):
        # Piped (an agent, or the Go CLI's callers) and with --json: the tree.
        for args in ((), ("--json",)):
            r = self.home.run(*args)
            self.assertEqual(r.rc, 0, r)
            result = self.assert_ok(r, command="secrets")
            usages = [c["usage"] for c in result["commands"]]
            self.assertTrue(any(u.startswith("secrets leases") for u in usages), usages)

    def test_bare_secrets_on_a_terminal_is_the_short_help(self):
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(BIN, [BIN], self.home.env)
        out = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)
        self.assertIn(b"usage: secrets COMMAND", out)
        self.assertNotIn(b'"ok": true', out)


class FirstSteps(E2ETestCase):
    def test_with_no_store_the_fix_is_init_first(self):
        home = self.new_home(init=False, serve=False)
        env = self.assert_err(home.run("status"), rc=3, code="daemon_not_running")
        self.assertTrue(env["fix"].startswith("secrets init"), env)
        home = self.new_home(serve=False)
        env = self.assert_err(home.run("status"), rc=3, code="daemon_not_running")
        self.assertEqual(env["fix"], "secrets serve &")

    def test_config_source_is_the_file_only_when_there_is_one(self):
        home = self.new_home(serve=False)
        result = home.run_json("config")
        self.assertEqual(result["source"], "defaults")
        home.write_config({"default_lease_ttl": "2h"})
        result = home.run_json("config")
        self.assertEqual(result["source"], home.file("config.json"))

    def test_an_invalid_name_is_invalid_params_not_not_found(self):
        home = self.new_home()
        for args in (("lease", "bad name"), ("lease", "bad name", "--json"), ("remove", "bad name"),
                     ("rotate", "$(id)"), ("versions", "a b")):
            env = self.assert_err(home.run(*args), rc=2, code="invalid_params")
            self.assertIn("invalid secret name", env["error"]["message"], env)
            self.assertEqual(env["fix"], "secrets list", env)
        env = self.assert_err(home.run("lease", "good_name"), rc=4, code="not_found")
        self.assertIn("secrets add good_name", env["fix"])

    def test_every_error_goes_to_stderr(self):
        home = self.new_home()
        home.add("tok", VALUE)
        for args, rc in ((("lease", "missing", "--json"), 4), (("remove", "missing"), 4), (("rotate", "missing"), 4),
                         (("renew", "no-such-lease"), None), (("versions", "missing"), 4)):
            r = home.run(*args)
            self.assert_err(r, rc=rc)
            self.assertEqual(r.out, b"", r)


class DaemonDown(E2ETestCase):
    def setUp(self):
        self.home = self.new_home(serve=False)

    def check_down(self, r, stream="stderr"):
        env = self.assert_err(r, rc=3, code="daemon_not_running", stream=stream)
        self.assertIn("secrets serve &", env["fix"])

    def test_every_client_command_exits_3(self):
        for args in (("status",), ("list",), ("health",), ("audit",), ("audit", "--verify"),
                     ("revoke", "--all"), ("revoke", "some-id"), ("remove", "x"), ("lease", "x", "--json")):
            self.check_down(self.home.run(*args))
        self.check_down(self.home.run("add", "x", input=b"value"))

    def test_raw_lease_error_on_stderr(self):
        r = self.home.run("lease", "x")
        self.assertEqual(r.out, b"")
        self.check_down(r, stream="stderr")

    def test_stale_socket_file_is_daemon_down(self):
        # A daemon that died hard leaves its socket file; nothing listens on it.
        self.home.serve()
        self.home.kill()
        self.assertTrue(os.path.exists(self.home.socket))
        self.check_down(self.home.run("status"))

    def test_socket_override(self):
        self.home.serve()
        r = self.home.run("status", env={"AGENT_SECRETS_SOCKET": os.path.join(self.home.logs, "none.sock")})
        self.check_down(r)
        r = self.home.run("status", env={"AGENT_SECRETS_SOCKET": self.home.socket})
        self.assert_ok(r, "secrets status")


class Leases(E2ETestCase):
    def test_leases_lists_live_leases_without_values(self):
        home = self.new_home()
        home.add("tok", VALUE)
        lease = home.lease_json("tok", "--client-id", "bot-1", "--bind", "none")
        r = home.run("leases")
        result = self.assert_ok(r, command="secrets leases")
        self.assertEqual(result["count"], 1)
        self.assertEqual(len(result["leases"]), 1, result)
        row = result["leases"][0]
        self.assertEqual(row["lease_id"], lease["lease_id"])
        self.assertEqual(row["secret_name"], "tok")
        self.assertEqual(row["client_id"], "bot-1")
        self.assertIn("expires_at", row)
        self.assertNotIn(VALUE, r.out.decode())
        self.assertIn("secrets revoke " + lease["lease_id"], [a["command"] for a in r.env_out["next_actions"]])
        self.assertNotIn("bind_pid", row)
        # A lease bound to a process shows the binding.
        home.run_json("revoke", lease["lease_id"])
        home.lease_json("tok", "--bind", str(os.getpid()))
        rows = home.run_json("leases")["leases"]
        self.assertEqual([r["bind_pid"] for r in rows], [os.getpid()])


if __name__ == "__main__":
    harness.main()
