"""End-to-end tests of `secrets exec` (issue 4 item 2): leased values in the
child's environment, output masking, exit codes, signal forwarding, and the
child stopped when its lease ends."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import BIN, E2ETestCase, wait_until  # noqa: E402

VALUE = "tok-VALUE-8c1f2e"
MARKER = b"<concealed by agent-secrets>"
DENIED = 5  # exec's exit code when a lease was revoked under the child


class Exec(E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.home = harness.Home()
        cls.home.serve()
        cls.home.add("tok", VALUE)
        cls.home.add("other", "other-value-77")

    @classmethod
    def tearDownClass(cls):
        cls.home.cleanup()

    def exec(self, *args, **kw):
        return self.home.run("exec", *args, **kw)

    def popen(self, *args):
        return subprocess.Popen([BIN, "exec"] + list(args), env=self.home.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def active_leases(self):
        return self.home.status()["active_leases"]

    def live_lease_ids(self):
        return [l["lease_id"] for l in self.home.rpc("secrets.leases")["result"]["leases"]]

    def wait_for_lease(self):
        ids = wait_until(self.live_lease_ids, timeout=5.0)
        self.assertTrue(ids, "exec took no lease")
        return ids[0]

    def test_value_in_env_is_masked_on_stdout_and_stderr(self):
        r = self.exec("--secret", "tok=TOKEN", "--", "sh", "-c", 'printf %s "$TOKEN"; printf "e:%s" "$TOKEN" >&2')
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, MARKER, r)
        self.assertEqual(r.err, b"e:" + MARKER, r)
        self.assertNotIn(VALUE.encode(), r.out + r.err)

    def test_env_dump_is_masked(self):
        r = self.exec("--secret", "tok=TOKEN", "--secret", "other=OTHER", "--", "env")
        self.assertEqual(r.rc, 0, r)
        self.assertIn(b"TOKEN=" + MARKER, r.out, r)
        self.assertIn(b"OTHER=" + MARKER, r.out, r)
        self.assertNotIn(VALUE.encode(), r.out)
        self.assertNotIn(b"other-value-77", r.out)

    def test_no_masking_prints_the_value(self):
        r = self.exec("--no-masking", "--secret", "tok=TOKEN", "--", "sh", "-c", 'printf %s "$TOKEN"')
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, VALUE.encode(), r)

    def test_value_split_across_two_writes_is_masked(self):
        r = self.exec("--secret", "tok=TOKEN", "--", "sh", "-c",
                      'printf %s "${TOKEN%???}"; sleep 0.3; printf %s "${TOKEN#${TOKEN%???}}"')
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, MARKER, r)

    def test_value_not_in_argv_of_the_command(self):
        r = self.exec("--no-masking", "--secret", "tok=TOKEN", "--", "sh", "-c",
                      "cat /proc/$PPID/cmdline | tr '\\0' ' '")
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn(VALUE.encode(), r.out)

    def test_secrets_json_file_and_client_id(self):
        path = os.path.join(self.home.logs, "project.secrets.json")
        with open(path, "w") as f:
            f.write('{"secrets":[{"name":"tok","env_var":"FROM_FILE"}],"client_id":"file-agent"}\n')
        r = self.exec("--file", path, "--", "sh", "-c", 'printf "%s|%s" "$FROM_FILE" "${#FROM_FILE}"')
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, MARKER + b"|" + str(len(VALUE)).encode(), r)
        clients = [e.get("client_id") for e in self.home.audit_entries() if e.get("action") == "lease_acquire"]
        self.assertIn("file-agent", clients)

    def test_command_words_after_dashdash_are_not_parsed(self):
        # "env" is also a secrets subcommand; "-c" looks like an option.
        r = self.exec("--secret", "tok=TOKEN", "--", "env", "sh", "-c", 'printf %s "$TOKEN"')
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, MARKER, r)

    def test_exit_code_propagates(self):
        r = self.exec("--secret", "tok=TOKEN", "--", "sh", "-c", "exit 7")
        self.assertEqual(r.rc, 7, r)
        self.assertEqual(r.out, b"", r)  # no envelope on the child's stdout

    def test_killed_child_gives_128_plus_signal(self):
        r = self.exec("--secret", "tok=TOKEN", "--", "sh", "-c", "kill -9 $$")
        self.assertEqual(r.rc, 137, r)

    def test_missing_secret_runs_nothing(self):
        marker = os.path.join(self.home.logs, "ran")
        r = self.exec("--secret", "tok=TOKEN", "--secret", "nope=NOPE", "--", "touch", marker)
        self.assertEqual(r.rc, 4, r)
        self.assertFalse(os.path.exists(marker))
        env = self.assert_err(r, rc=4, stream="stderr")
        self.assertIn("nope", env["error"]["message"], env)
        self.assertIn("secrets add nope", env["fix"], env)
        self.assertEqual(r.out, b"", r)
        self.assertEqual(self.active_leases(), 0)  # the lease on tok was given back

    def test_command_not_found(self):
        r = self.exec("--secret", "tok=TOKEN", "--", "no-such-command-xyz")
        self.assertEqual(r.rc, 127, r)
        self.assert_err(r, stream="stderr")
        self.assertEqual(self.active_leases(), 0)

    def test_leases_revoked_after_normal_exit(self):
        r = self.exec("--secret", "tok=TOKEN", "--client-id", "exec-test", "--", "true")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.active_leases(), 0)
        actions = [e.get("action") for e in self.home.audit_entries() if e.get("client_id") == "exec-test"]
        self.assertIn("lease_acquire", actions)

    def test_revoke_stops_the_child(self):
        p = self.popen("--secret", "tok=TOKEN", "--", "sleep", "60")
        try:
            lease_id = self.wait_for_lease()
            start = time.monotonic()
            self.home.run_json("revoke", lease_id)
            rc = p.wait(timeout=6)
            self.assertLess(time.monotonic() - start, 6.0)
            err = p.stderr.read()
            self.assertEqual(rc, DENIED, err)
            self.assertIn(("lease %s for tok ended (revoked)" % lease_id).encode(), err)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def test_ttl_ends_the_child(self):
        p = self.popen("--ttl", "2s", "--secret", "tok=TOKEN", "--", "sleep", "60")
        try:
            rc = p.wait(timeout=8)
            err = p.stderr.read()
            self.assertEqual(rc, 1, err)
            self.assertIn(b"ended (expired)", err)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def test_sigterm_is_forwarded(self):
        p = self.popen("--secret", "tok=TOKEN", "--", "sh", "-c",
                       'trap "echo trapped; exit 3" TERM; sleep 30 & wait')
        try:
            self.wait_for_lease()
            time.sleep(0.2)  # let sh set its trap
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=5)
            self.assertEqual(p.returncode, 3)
            self.assertEqual(out, b"trapped\n")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(wait_until(lambda: self.active_leases() == 0, timeout=3), True)

    def test_sigint_and_sighup_are_forwarded(self):
        for sig, code in ((signal.SIGINT, 4), (signal.SIGHUP, 5)):
            with self.subTest(signal=sig.name):
                name = sig.name[3:]
                p = self.popen("--secret", "tok=TOKEN", "--", "sh", "-c",
                               'trap "echo trapped-%s; exit %d" %s; echo ready; sleep 30 & wait' % (name, code, name))
                try:
                    self.assertEqual(p.stdout.readline(), b"ready\n")  # the trap is set
                    p.send_signal(sig)
                    out, _ = p.communicate(timeout=5)
                    self.assertEqual(p.returncode, code)
                    self.assertEqual(out, ("trapped-%s\n" % name).encode())
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                self.assertEqual(wait_until(lambda: self.active_leases() == 0, timeout=3), True)

    def test_child_ignoring_sigterm_is_killed_after_the_grace(self):
        # SIGTERM first: the trap reports it and the child carries on; only the
        # SIGKILL --kill-grace later ends the group. The grace is short so the
        # test does not wait the default 5 s.
        p = self.popen("--kill-grace", "1s", "--secret", "tok=TOKEN", "--", "sh", "-c",
                       'trap "echo term" TERM; echo ready; while :; do sleep 60 & wait; done')
        try:
            self.assertEqual(p.stdout.readline(), b"ready\n")
            lease_id = self.wait_for_lease()
            self.home.run_json("revoke", lease_id)
            out, err = p.communicate(timeout=15)
            self.assertEqual(p.returncode, DENIED, err)
            self.assertIn(b"term\n", out)  # SIGTERM came first and was survived
            self.assertIn(("lease %s for tok ended (revoked)" % lease_id).encode(), err)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def test_invalid_kill_grace_is_a_usage_error(self):
        r = self.exec("--kill-grace", "soon", "--secret", "tok=TOKEN", "--", "true")
        self.assertEqual(r.rc, 2, r)
        self.assertIn(b"--kill-grace", r.err)


class ExecClosedStdio(E2ETestCase):
    """exec started with some of fds 0-2 closed (a daemon, cron, `cmd <&- 2>&-`):
    the pipes and sockets it opens must not land there, or the child's output
    is written into exec's own signal pipe (read back as signals to forward)
    or into its connection to the daemon."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.home = harness.Home()
        cls.home.serve()
        cls.home.add("tok", VALUE)

    @classmethod
    def tearDownClass(cls):
        cls.home.cleanup()

    def exec_closed(self, redirections, script):
        # The shell closes the descriptors, then becomes `secrets exec`.
        argv = ["sh", "-c", 'exec "$@" ' + redirections, "sh", BIN, "exec", "--secret", "tok=TOKEN", "--",
                "sh", "-c", script]
        p = subprocess.run(argv, env=self.home.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        return p.returncode, p.stdout, p.stderr

    def test_closed_stdin_and_stderr_keep_the_childs_stdout(self):
        # The pause lets exec handle the stderr line before the child goes on.
        rc, out, err = self.exec_closed("0<&- 2>&-", 'echo err >&2; sleep 0.5; printf "out:%s\\n" "$TOKEN"')
        self.assertEqual(rc, 0, (out, err))
        self.assertEqual(out, b"out:" + MARKER + b"\n")

    def test_closed_stdout_and_stderr_leave_the_child_running(self):
        marker = os.path.join(self.home.logs, "closed-out-err")
        rc, out, err = self.exec_closed("1>&- 2>&-", 'echo err >&2; echo out; sleep 0.5; echo done > "%s"' % marker)
        self.assertEqual(rc, 0)
        with open(marker, "rb") as f:
            self.assertEqual(f.read(), b"done\n")

    def test_all_stdio_closed_the_child_gets_dev_null(self):
        # Where exec's own stdio was closed the child finds /dev/null (as a
        # setuid program would), never a pipe or socket of exec's.
        marker = os.path.join(self.home.logs, "closed-all")
        probe = ("import os, sys\n"
                 "fds = ['/proc/self/fd/' + str(i) for i in range(3)]\n"
                 "t = [os.readlink(f) if os.path.exists(f) else 'closed' for f in fds]\n"
                 "open(sys.argv[1], 'w').write(' '.join(t))\n")
        argv = ["sh", "-c", 'exec "$@" 0<&- 1>&- 2>&-', "sh", BIN, "exec", "--secret", "tok=TOKEN", "--",
                sys.executable, "-c", probe, marker]
        p = subprocess.run(argv, env=self.home.env, stdin=subprocess.DEVNULL, timeout=30)
        self.assertEqual(p.returncode, 0)
        with open(marker) as f:
            stdin, stdout, stderr = f.read().split(" ")
        self.assertEqual(stdin, "/dev/null")
        # stdout and stderr: the masking pipes, which exec writes to its /dev/null.
        self.assertTrue(stdout.startswith("pipe:") and stderr.startswith("pipe:"), (stdout, stderr))


class ExecDaemonGone(E2ETestCase):
    def test_lost_watch_connection_stops_the_child(self):
        home = self.new_home()
        home.add("tok", VALUE)
        p = subprocess.Popen([BIN, "exec", "--secret", "tok=TOKEN", "--", "sh", "-c", "echo ready; exec sleep 60"],
                             env=home.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # exec starts the child once its watch is registered: stopping the
            # daemon before that would fail exec itself, not stop the child.
            self.assertEqual(p.stdout.readline(), b"ready\n")
            home.stop()
            rc = p.wait(timeout=8)
            err = p.stderr.read()
            self.assertEqual(rc, 1, err)
            self.assertIn(b"lost the watch connection", err)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def test_killswitch_stops_the_child_as_denied(self):
        home = self.new_home()
        home.add("tok", VALUE)
        p = subprocess.Popen([BIN, "exec", "--secret", "tok=TOKEN", "--", "sh", "-c", "echo ready; exec sleep 60"],
                             env=home.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertEqual(p.stdout.readline(), b"ready\n")  # leased and watched
            home.run_json("revoke", "--all")
            rc = p.wait(timeout=6)
            err = p.stderr.read()
            self.assertEqual(rc, DENIED, err)
            self.assertIn(b"ended (killswitch)", err)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    harness.main()
