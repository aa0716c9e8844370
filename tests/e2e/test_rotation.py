"""End-to-end tests of rotation hooks (DESIGN.md section 8): `secrets rotate`,
`add --rotate-via [--force]`, the hook's contract (stdin, SECRET_NAME, trimmed
stdout, stderr in errors), rotation_timeout from config.json, process-group
killing, concurrency, and that a new value never leaks into logs or replies."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import age_decrypt, BIN, E2ETestCase, parse_time  # noqa: E402

GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def add_hooked(home, name, value, command, *flags):
    """Records a hook (add --rotate-via) and allows it (hook allow): it runs only with both."""
    home.add(name, value, "--rotate-via", command, *flags)
    home.allow_hook(name, command)


def lease_value(test, home, name):
    r = home.run("lease", name)
    test.assertEqual(r.rc, 0, r)
    return r.out


def listed(home, name):
    for s in home.run_json("list")["secrets"]:
        if s["name"] == name:
            return s
    raise AssertionError("%s not in secrets list" % name)


def rotate_lines(home, name):
    return [e for e in home.audit_entries() if e.get("action") == "secret_rotate" and e.get("secret_name") == name]


def pid_gone(pid):
    """True if the process no longer runs (gone, or a zombie nobody reaps)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


class Rotate(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()

    def test_rotate_replaces_the_value(self):
        h = self.home
        # Built at run time: the command text (audited, listed) does not hold the value.
        hook = "printf 'NEW%s\\n' VALUE"
        add_hooked(h, "k", "old-value", hook)
        self.assertEqual(lease_value(self, h, "k"), b"old-value")
        before = listed(h, "k")
        self.assertEqual(before.get("rotate_via"), hook, before)
        r = h.run("rotate", "k")
        res = self.assert_ok(r, "secrets rotate")
        self.assertIs(res.get("success"), True, res)
        self.assertIs(res.get("changed"), True, res)
        self.assertEqual(res.get("secret_name"), "k", res)
        self.assertIsInstance(res.get("output"), str, res)
        parse_time(res["executed_at"])
        self.assertNotIn(b"NEWVALUE", r.out + r.err)
        # A following lease returns the new value, byte-exact.
        self.assertEqual(lease_value(self, h, "k"), b"NEWVALUE")
        # The stock age tool sees it too, with last_rotated set.
        plain = age_decrypt(h)["secrets"]["k"]
        self.assertEqual(plain["value"], "NEWVALUE")
        self.assertNotEqual(plain["last_rotated"], GO_ZERO_TIME, plain)
        rotated_at = parse_time(plain["last_rotated"])
        self.assertLess(abs((harness.now_utc() - rotated_at).total_seconds()), 60, plain)
        self.assertEqual(plain["rotate_via"], hook)
        after = listed(h, "k")
        self.assertNotEqual(after["last_rotated"], GO_ZERO_TIME, after)
        self.assertEqual(after["created_at"], before["created_at"])
        # Audited once, success, without the value.
        lines = rotate_lines(h, "k")
        self.assertEqual(len(lines), 1, lines)
        self.assertIs(lines[0]["success"], True, lines)
        self.assertNotIn(b"NEWVALUE", h.read("audit.log"))
        # The value survives a restart (it was stored, not just cached).
        h.restart()
        self.assertEqual(lease_value(self, h, "k"), b"NEWVALUE")

    def test_hook_printing_nothing_keeps_the_value(self):
        h = self.home
        add_hooked(h, "k", "keep-me", "true")
        res = self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        self.assertIs(res.get("success"), True, res)
        self.assertIs(res.get("changed"), False, res)
        self.assertEqual(lease_value(self, h, "k"), b"keep-me")
        plain = age_decrypt(h)["secrets"]["k"]
        self.assertEqual(plain["value"], "keep-me")
        # The rotation is recorded all the same.
        self.assertNotEqual(plain["last_rotated"], GO_ZERO_TIME, plain)
        lines = rotate_lines(h, "k")
        self.assertEqual(len(lines), 1, lines)
        self.assertIs(lines[0]["success"], True, lines)

    def test_hook_printing_only_whitespace_keeps_the_value(self):
        h = self.home
        add_hooked(h, "k", "keep-me", "printf '\\n  \\t\\r\\n'")
        res = self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        self.assertIs(res.get("changed"), False, res)
        self.assertEqual(lease_value(self, h, "k"), b"keep-me")

    def test_failing_hook_reports_stderr_and_keeps_the_value(self):
        h = self.home
        add_hooked(h, "k", "old-value", "echo 'hook-broke: upstream said 418' >&2; printf 'half-%s\\n' new; exit 3")
        r = h.run("rotate", "k")
        env = self.assert_err(r, code="rotation_failed")
        self.assertEqual(r.rc, 1, r)
        msg = env["error"]["message"]
        self.assertIn("hook-broke: upstream said 418", msg, env)
        self.assertIn("3", msg, env)
        self.assertTrue(msg.endswith("418"), msg)  # the stderr's last line break is not in the message
        self.assertIn("sh -c", env["fix"], env)  # how to run the hook by hand to see why
        self.assertNotIn(b"half-new", r.out + r.err)
        self.assertEqual(lease_value(self, h, "k"), b"old-value")
        plain = age_decrypt(h)["secrets"]["k"]
        self.assertEqual(plain["value"], "old-value")
        self.assertEqual(plain["last_rotated"], GO_ZERO_TIME, plain)
        # The audit log has the failure with the hook's stderr, never its stdout.
        lines = rotate_lines(h, "k")
        self.assertTrue(lines, "no secret_rotate line")
        self.assertTrue(all(l["success"] is False for l in lines), lines)
        self.assertTrue(any("hook-broke: upstream said 418" in l.get("details", "") for l in lines), lines)
        self.assertNotIn(b"half-new", h.read("audit.log"))
        self.assert_serving(h)

    def test_failed_rotation_is_audited_once(self):
        # Every failed `secrets rotate` is one event: one secret_rotate line.
        h = self.home
        add_hooked(h, "bad", "v", "echo nope >&2; exit 3")
        h.add("nohook", "v")
        for name in ("bad", "nohook"):
            self.assertNotEqual(h.run("rotate", name).rc, 0)
            lines = rotate_lines(h, name)
            self.assertEqual(len(lines), 1, "secret_rotate lines for %s: %r" % (name, lines))

    def test_hook_stderr_is_truncated(self):
        h = self.home
        add_hooked(h, "k", "v", "head -c 20000 /dev/zero | tr '\\0' E >&2; exit 1")
        env = self.assert_err(h.run("rotate", "k"), code="rotation_failed")
        self.assertIn("EEEE", env["error"]["message"])
        self.assertLess(len(env["error"]["message"]), 6000, len(env["error"]["message"]))
        for line in h.audit_lines():
            self.assertLess(len(line), 8000)

    def test_successful_hook_stderr_is_the_output(self):
        h = self.home
        add_hooked(h, "k", "old-value", "echo 'note: rotated at vendor' >&2; printf 'fresh-%s\\n' value")
        res = self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        self.assertIn("note: rotated at vendor", res["output"], res)
        self.assertNotIn("fresh-value", json.dumps(res))
        self.assertEqual(lease_value(self, h, "k"), b"fresh-value")

    def test_secret_without_hook_is_an_error(self):
        h = self.home
        h.add("plain", "plain-value")
        r = h.run("rotate", "plain")
        env = self.assert_err(r)
        self.assertIn("plain", env["error"]["message"], env)
        self.assertIn("rotat", env["error"]["message"] + env["fix"], env)
        self.assertEqual(env["fix"], "secrets set-hook plain 'COMMAND'", env)  # keeps the value: no add --force
        self.assertEqual(lease_value(self, h, "plain"), b"plain-value")
        self.assertEqual(age_decrypt(h)["secrets"]["plain"]["last_rotated"], GO_ZERO_TIME)

    def test_rotating_a_missing_secret_is_not_found(self):
        # DESIGN.md 4 and 7: -32000 secret not found, CLI exit 4, as for lease.
        h = self.home
        r = h.run("rotate", "ghost")
        self.assert_err(r, rc=4, code="not_found")
        reply = h.rpc("secrets.rotate", {"secret_name": "ghost"})
        err = self.assert_rpc_error(reply, -32000)
        self.assertEqual(err["data"]["code"], "not_found", reply)

    def test_rotate_needs_a_name(self):
        self.assert_err(self.home.run("rotate"), rc=2)

    def test_rpc_bad_params_get_a_reply(self):
        # secrets.rotate is an async method: a bad param must still be a -32602
        # reply, and the connection must keep serving.
        h = self.home
        add_hooked(h, "k", "v", "echo w")
        with h.connect() as c:
            for i, params in enumerate(({}, {"secret_name": 5}, {"secret_name": ""}, None), 300):
                reply = c.call("secrets.rotate", params, id=i, timeout=5)
                self.assert_rpc_error(reply, -32602, id=i)
            reply = c.call("secrets.status", id=399, timeout=5)
            self.assertIn("result", reply, reply)
        self.assertEqual(lease_value(self, h, "k"), b"v")

    def test_rpc_rotate_result(self):
        h = self.home
        add_hooked(h, "k", "v", "echo note >&2; echo w")
        with h.connect() as c:
            reply = c.call("secrets.rotate", {"secret_name": "k"}, id="r1")
            self.assertEqual(reply.get("id"), "r1", reply)
            res = reply["result"]
            self.assertIs(res["success"], True, res)
            self.assertIn("note", res["output"], res)
            self.assertNotIn("w\n", res["output"])
            parse_time(res["executed_at"])

    def test_force_replaces_the_hook(self):
        h = self.home
        add_hooked(h, "k", "v1", "echo from-hook-A")
        r = h.run("add", "k", "--rotate-via", "echo from-hook-B", input=b"v2")
        self.assert_err(r, code="already_exists")
        self.assertEqual(listed(h, "k")["rotate_via"], "echo from-hook-A")
        add_hooked(h, "k", "v2", "echo from-hook-B", "--force")
        self.assertEqual(listed(h, "k")["rotate_via"], "echo from-hook-B")
        self.assertEqual(lease_value(self, h, "k"), b"v2")
        self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        self.assertEqual(lease_value(self, h, "k"), b"from-hook-B")
        self.assertEqual(age_decrypt(h)["secrets"]["k"]["rotate_via"], "echo from-hook-B")

    def test_hook_gets_secret_name_and_current_value_on_stdin(self):
        h = self.home
        add_hooked(h, "k", "old", 'cat; printf -- "-$SECRET_NAME\\n\\n"')
        self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        self.assertEqual(lease_value(self, h, "k"), b"old-k")
        # It chains: the next run reads the rotated value.
        self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        self.assertEqual(lease_value(self, h, "k"), b"old-k-k")

    def test_multiline_value_on_stdin_and_trimmed_output(self):
        h = self.home
        add_hooked(h, "ml", "line one\nline two", "printf '\\n \\t'; tr a-z A-Z; printf '  \\r\\n\\n'")
        self.assert_ok(h.run("rotate", "ml"), "secrets rotate")
        # Leading and trailing whitespace trimmed; the inner newline and spaces kept.
        self.assertEqual(lease_value(self, h, "ml"), b"LINE ONE\nLINE TWO")

    def test_hook_that_ignores_stdin(self):
        h = self.home
        big = "x" * 300000  # more than a pipe buffer: the write must not block
        add_hooked(h, "k", big, "echo small")
        self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        self.assertEqual(lease_value(self, h, "k"), b"small")

    def test_new_value_never_leaks(self):
        # The hook builds the token at run time, so the command itself does not contain it.
        token = "TOK-9f8e7d"
        h = self.home
        h.stop()
        h.env["AGENT_SECRETS_LOG_LEVEL"] = "debug"
        h.serve()
        add_hooked(h, "tok", "before", "printf 'TOK-%s%s\\n' 9f8e 7d; echo rotating tok >&2")
        outputs = []
        r = h.run("rotate", "tok")
        self.assert_ok(r, "secrets rotate")
        outputs.append(r.out + r.err)
        with h.connect() as c:
            reply = c.call("secrets.rotate", {"secret_name": "tok"})
            self.assertIn("result", reply, reply)
            outputs.append(json.dumps(reply).encode())
        for args in (("list",), ("status",), ("audit",), ("health",), ("revoke", "--all", "--rotate")):
            r = h.run(*args)
            self.assertEqual(r.rc, 0, r)
            outputs.append(r.out + r.err)
        for out in outputs:
            self.assertNotIn(token.encode(), out)
        # It did become the value.
        self.assertEqual(lease_value(self, h, "tok"), token.encode())
        h.stop()
        for name in ("audit.log", "daemon.log", "leases.json"):
            self.assertNotIn(token.encode(), h.read(name), name)
        self.assertNotIn(token, h.daemon_output())
        self.assertIn(token, age_decrypt(h)["secrets"]["tok"]["value"])


class Concurrency(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()

    def test_same_secret_twice_at_once(self):
        h = self.home
        add_hooked(h, "k", "v1", "sleep 2; echo v2")
        env = dict(h.env)
        first = subprocess.Popen([BIN, "rotate", "k"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)  # the first hook is running now
        t0 = time.monotonic()
        r2 = h.run("rotate", "k")
        second_took = time.monotonic() - t0
        out1, err1 = first.communicate(timeout=30)
        r1 = harness.Result(["rotate", "k"], first.returncode, out1, err1)
        self.assert_ok(r1, "secrets rotate")
        env2 = self.assert_err(r2, code="rotation_failed")
        self.assertIn("already running", env2["error"]["message"], env2)
        self.assertLess(second_took, 1.5, "the refused rotation waited for the running one")
        self.assertEqual(lease_value(self, h, "k"), b"v2")
        # Once it is done, the secret rotates again.
        add_hooked(h, "k", "v3", "echo v4", "--force")
        self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        self.assertEqual(lease_value(self, h, "k"), b"v4")

    def test_different_secrets_rotate_in_parallel(self):
        h = self.home
        add_hooked(h, "a", "a1", "sleep 2; echo a2")
        add_hooked(h, "b", "b1", "sleep 2; echo b2")
        t0 = time.monotonic()
        procs = [subprocess.Popen([BIN, "rotate", n], env=h.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for n in ("a", "b")]
        # Meanwhile the daemon serves other requests promptly.
        t1 = time.monotonic()
        self.assert_serving(h)
        self.assertLess(time.monotonic() - t1, 1.0)
        for p in procs:
            out, err = p.communicate(timeout=30)
            self.assertEqual(p.returncode, 0, (out, err))
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 3.5, "two 2 s hooks took %.2fs: not parallel" % elapsed)
        self.assertEqual(lease_value(self, h, "a"), b"a2")
        self.assertEqual(lease_value(self, h, "b"), b"b2")


class Timeouts(E2ETestCase):
    """rotation_timeout comes from config.json (1s here)."""

    def setUp(self):
        self.home = self.new_home(serve=False)
        self.home.write_config({"rotation_timeout": "1s"})
        self.home.serve()
        self.tmp = tempfile.mkdtemp(prefix="as-rot-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.tmp]))

    def test_config_shows_the_timeout(self):
        self.assertEqual(self.home.run_json("config")["rotation_timeout"], "1s")

    def test_slow_hook_times_out_and_the_daemon_keeps_serving(self):
        h = self.home
        add_hooked(h, "slow", "old", "sleep 30; echo never")
        result = {}

        def rotate():
            t0 = time.monotonic()
            result["r"] = h.run("rotate", "slow")
            result["took"] = time.monotonic() - t0

        t = threading.Thread(target=rotate)
        t.start()
        time.sleep(0.3)
        # During the hook: status answers at once.
        t1 = time.monotonic()
        st = h.status()
        self.assertLess(time.monotonic() - t1, 1.0)
        self.assertIs(st.get("running"), True, st)
        t.join(timeout=30)
        self.assertFalse(t.is_alive())
        r = result["r"]
        env = self.assert_err(r, code="rotation_failed")
        self.assertIn("timed out", env["error"]["message"], env)
        self.assertLess(result["took"], 5.0, "the 1 s timeout took %.2fs" % result["took"])
        self.assertEqual(lease_value(self, h, "slow"), b"old")
        self.assert_serving(h)
        lines = rotate_lines(h, "slow")
        self.assertTrue(any("timed out" in l.get("details", "") for l in lines), lines)

    def test_hook_ignoring_sigterm_is_killed(self):
        h = self.home
        pidfile = os.path.join(self.tmp, "pid")
        add_hooked(h, "stubborn", "old", "trap '' TERM; sleep 300 & echo $! > %s; wait; wait" % pidfile)
        t0 = time.monotonic()
        env = self.assert_err(h.run("rotate", "stubborn"), code="rotation_failed")
        took = time.monotonic() - t0
        self.assertIn("timed out", env["error"]["message"], env)
        self.assertLess(took, 6.0)
        pid = int(open(pidfile).read().strip())
        self.assertTrue(harness.wait_until(lambda: pid_gone(pid), 3.0), "sleep %d survived" % pid)
        self.assertEqual(lease_value(self, h, "stubborn"), b"old")

    def test_timed_out_hook_grandchildren_are_killed(self):
        h = self.home
        pidfile = os.path.join(self.tmp, "pid")
        add_hooked(h, "k", "old", "sleep 300 & echo $! > %s; sleep 30" % pidfile)
        env = self.assert_err(h.run("rotate", "k"), code="rotation_failed")
        self.assertIn("timed out", env["error"]["message"], env)
        pid = int(open(pidfile).read().strip())
        self.assertTrue(harness.wait_until(lambda: pid_gone(pid), 3.0), "grandchild %d survived" % pid)

    def test_grandchild_holding_stdout_does_not_hold_the_rotation(self):
        h = self.home
        pidfile = os.path.join(self.tmp, "pid")
        add_hooked(h, "k", "old", "sleep 300 & echo $! > %s; echo val" % pidfile)
        t0 = time.monotonic()
        res = self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        took = time.monotonic() - t0
        self.assertLess(took, 3.0, "rotation waited %.2fs for a grandchild" % took)
        self.assertIs(res.get("changed"), True, res)
        self.assertEqual(lease_value(self, h, "k"), b"val")
        pid = int(open(pidfile).read().strip())
        self.assertTrue(harness.wait_until(lambda: pid_gone(pid), 3.0), "grandchild %d survived" % pid)


if __name__ == "__main__":
    harness.main()
