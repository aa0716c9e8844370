"""End-to-end tests of issue 10: leases bound to a process, renewal up to
max_lease_ttl, `exec --renew`, and `exec --on-leak`."""

import os
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import BIN, E2ETestCase, parse_time, wait_until  # noqa: E402

VALUE = "bound-VALUE-51d0a7"
MARKER = b"<concealed by agent-secrets>"
DENIED = 5


def start_holder():
    """A process that lives until we end it: the holder a lease binds to."""
    return subprocess.Popen(["sleep", "600"])


class Bind(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("tok", VALUE)

    def live(self):
        return {l["lease_id"]: l for l in self.home.rpc("secrets.leases")["result"]["leases"]}

    def end_reasons(self, lease_id):
        """How the lease ended, per the audit log (waiting for the line: it may
        still be on its way to the disk when the lease is gone from the table)."""
        def reasons():
            return [e.get("reason") for e in self.home.audit_entries()
                    if e.get("lease_id") == lease_id and e["action"] in ("lease_end", "lease_revoke", "lease_expire")]
        wait_until(reasons, timeout=5)
        return reasons()

    def test_lease_bound_to_a_pid_ends_when_it_exits(self):
        holder = start_holder()
        try:
            res = self.home.lease_json("tok", "--bind", str(holder.pid))
            lease_id = res["lease_id"]
            self.assertEqual(self.live()[lease_id]["bind_pid"], holder.pid)
        finally:
            holder.kill()
            holder.wait()
        self.assertTrue(wait_until(lambda: lease_id not in self.live(), timeout=5), "lease outlived its holder")
        self.assertEqual(self.end_reasons(lease_id), ["holder_exited"])

    def test_default_binding_is_the_parent_when_captured(self):
        # $(secrets lease tok) in a shell: the lease follows that shell.
        shell = subprocess.Popen(["sh", "-c", 'x=$("$0" lease tok); echo "${#x}"; read line', BIN],
                                 env=self.home.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self.assertEqual(shell.stdout.readline(), str(len(VALUE)).encode() + b"\n")
            leases = list(self.live().values())
            self.assertEqual(len(leases), 1)
            self.assertEqual(leases[0]["bind_pid"], shell.pid)
        finally:
            shell.stdin.close()
            shell.wait(timeout=10)
        self.assertTrue(wait_until(lambda: not self.live(), timeout=5))

    def shell_lease_lives_until_the_shell_exits(self, argv, stdin_script=None, use_pty=False):
        """Runs a shell that takes a lease inside a command substitution, prints
        the value's length, then waits for a line on stdin. The lease must be
        bound to that shell (not to a fork of it that exits at once), live
        while it waits, and end when it exits."""
        env = dict(self.home.env, SECRETS=BIN)
        if use_pty:
            import pty
            pid, fd = pty.fork()
            if pid == 0:
                os.execvpe(argv[0], argv, env)
            shell_pid = pid
            os.write(fd, stdin_script.encode())
            out = b""
            deadline = time.monotonic() + 15
            while b"len=%d" % len(VALUE) not in out and time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    try:
                        out += os.read(fd, 4096)
                    except OSError:
                        break
            out2 = out
            self.assertIn(b"len=%d" % len(VALUE), out2)
        else:
            shell = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            shell_pid = shell.pid
            line = shell.stdout.readline()
            self.assertEqual(line, b"len=%d\n" % len(VALUE), line)
        try:
            leases = list(self.live().values())
            self.assertEqual(len(leases), 1, leases)
            self.assertEqual(leases[0]["bind_pid"], shell_pid, "bound to a fork of the shell, not the shell")
            lease_id = leases[0]["lease_id"]
            time.sleep(0.3)  # a lease bound to an exited fork would be gone by now
            self.assertIn(lease_id, self.live())
        finally:
            if use_pty:
                os.write(fd, b"exit\n")
                os.waitpid(shell_pid, 0)
                os.close(fd)
            else:
                shell.stdin.close()
                shell.wait(timeout=10)
        self.assertTrue(wait_until(lambda: lease_id not in self.live(), timeout=5), "lease outlived its shell")
        self.assertEqual(self.end_reasons(lease_id), ["holder_exited"])

    def test_captured_in_a_bash_script_through_a_pipeline(self):
        script = 'X=$("$SECRETS" lease tok | tr -d "\\n"); echo "len=${#X}"; read line\n'
        self.shell_lease_lives_until_the_shell_exits(["bash", "-c", script])

    def test_captured_in_a_script_file(self):
        path = os.path.join(self.home.logs, "take.sh")
        with open(path, "w") as f:
            f.write('#!/bin/bash\nX=$("$SECRETS" lease tok)\necho "len=${#X}"\nread line\n')
        os.chmod(path, 0o755)
        self.shell_lease_lives_until_the_shell_exits([path])

    def test_captured_in_a_subshell_and_json_pipeline(self):
        script = ('X=$( ( "$SECRETS" lease tok --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\'result\'][\'value\'])" ) ); '
                  'echo "len=${#X}"; read line')
        self.shell_lease_lives_until_the_shell_exits(["bash", "-c", script])

    def test_captured_in_an_interactive_shell_on_a_pty(self):
        self.shell_lease_lives_until_the_shell_exits(
            ["bash", "--norc", "--noprofile", "-i"],
            stdin_script='echo "le""n="; X=$("$SECRETS" lease tok | cat); echo "len=${#X}"\n', use_pty=True)

    def test_bind_none_and_a_dead_pid(self):
        lease_id = self.home.lease_json("tok", "--bind", "none")["lease_id"]
        self.assertNotIn("bind_pid", self.live()[lease_id])
        dead = subprocess.Popen(["true"])
        dead.wait()
        r = self.home.run("lease", "tok", "--bind", str(dead.pid), "--json")
        self.assert_err(r, code="invalid_params")
        self.assertIn(b"not running", r.err)
        r = self.home.run("lease", "tok", "--bind", "my-shell", "--json")
        self.assert_err(r, code="invalid_params")
        # RPC: a start time that does not match the process is a reused pid
        holder = start_holder()
        try:
            reply = self.home.rpc("secrets.lease", {"secret_name": "tok", "bind_pid": holder.pid, "bind_start": 1})
            self.assert_rpc_error(reply, -32602)
        finally:
            holder.kill()
            holder.wait()
        self.assertEqual(list(self.live()), [lease_id])

    def test_bound_lease_survives_restart_while_holder_lives_and_ends_after_once_gone(self):
        holder = start_holder()
        other = start_holder()
        try:
            kept = self.home.lease_json("tok", "--bind", str(holder.pid))["lease_id"]
            gone = self.home.lease_json("tok", "--bind", str(other.pid))["lease_id"]
            self.home.stop()
            other.kill()
            other.wait()
            self.home.serve()
            live = self.live()
            self.assertIn(kept, live)
            self.assertEqual(live[kept]["bind_pid"], holder.pid)
            self.assertNotIn(gone, live)
            self.assertEqual(self.end_reasons(gone), ["holder_exited"])
            # and after a restart (from the snapshot this time) it is still watched
            self.home.restart()
            self.assertIn(kept, self.live())
        finally:
            holder.kill()
            holder.wait()
        self.assertTrue(wait_until(lambda: kept not in self.live(), timeout=5))
        self.assertEqual(self.end_reasons(kept), ["holder_exited"])


class Renew(E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.home = harness.Home()
        cls.home.write_config({"max_lease_ttl": "10s", "default_lease_ttl": "4s"})
        cls.home.serve()
        cls.home.add("tok", VALUE)

    @classmethod
    def tearDownClass(cls):
        cls.home.cleanup()

    def test_renew_up_to_the_cap_and_refused_past_it(self):
        res = self.home.lease_json("tok", "--ttl", "2s", "--bind", "none")
        lease_id = res["lease_id"]
        lifetime = parse_time(res["max_expires_at"]) - parse_time(res["expires_at"])
        self.assertEqual(lifetime.total_seconds(), 8.0)  # created + 10s, and expires_at is created + 2s
        renewed = self.home.run_json("renew", lease_id, "--ttl", "5s")
        self.assertGreater(parse_time(renewed["expires_at"]), parse_time(res["expires_at"]))
        self.assertEqual(renewed["max_expires_at"], res["max_expires_at"])
        # 10s from now ends past created + 10s: refused, not capped, and the lease is unchanged
        r = self.home.run("renew", lease_id, "--ttl", "10s")
        env = self.assert_err(r, code="invalid_params")
        self.assertIn(b"at most", r.err)
        # The fix is the largest renewal allowed, and it works as given.
        self.assertTrue(env["fix"].startswith("secrets renew %s --ttl " % lease_id), env)
        allowed = env["fix"].split("--ttl ")[1]
        self.assertLessEqual(harness.go_duration_seconds(allowed), 10.0)
        self.assert_ok(self.home.run("renew", lease_id, "--ttl", allowed), "secrets renew")
        renewed = self.home.run_json("renew", lease_id, "--ttl", "1s")
        now = {l["lease_id"]: l for l in self.home.rpc("secrets.leases")["result"]["leases"]}
        self.assertEqual(now[lease_id]["expires_at"], renewed["expires_at"])
        # without --ttl, by the lease's own TTL (2s)
        again = self.home.run_json("renew", lease_id)
        self.assertEqual(again["ttl"], "2s")
        actions = [e for e in self.home.audit_entries() if e.get("lease_id") == lease_id and e["action"] == "lease_renew"]
        self.assertEqual([e["success"] for e in actions], [True, False, True, True, True])

    def test_renewing_an_ended_lease_is_32002(self):
        lease_id = self.home.lease_json("tok", "--bind", "none")["lease_id"]
        self.home.run_json("revoke", lease_id)
        reply = self.home.rpc("secrets.renew", {"lease_id": lease_id})
        self.assert_rpc_error(reply, -32002)
        self.assert_rpc_error(self.home.rpc("secrets.renew", {"lease_id": "no-such-lease"}), -32001)

    def test_renewal_survives_a_restart(self):
        lease_id = self.home.lease_json("tok", "--ttl", "2s", "--bind", "none")["lease_id"]
        renewed = self.home.run_json("renew", lease_id, "--ttl", "8s")
        self.home.kill()  # no snapshot: the renewal comes back from the audit log
        self.home.serve()
        live = {l["lease_id"]: l for l in self.home.rpc("secrets.leases")["result"]["leases"]}
        self.assertEqual(live[lease_id]["expires_at"], renewed["expires_at"])

    def test_exec_renew_keeps_a_2s_lease_alive_for_a_6s_child(self):
        r = self.home.run("exec", "--ttl", "2s", "--renew", "--secret", "tok=TOKEN", "--",
                          "sh", "-c", 'sleep 6; test -n "$TOKEN" && echo done', timeout=30)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, b"done\n")
        renewals = [e for e in self.home.audit_entries() if e["action"] == "lease_renew" and e.get("success")
                    and e.get("client_id") == "exec"]
        self.assertGreaterEqual(len(renewals), 2, renewals)

    def test_exec_without_renew_is_stopped_by_a_2s_ttl(self):
        r = self.home.run("exec", "--ttl", "2s", "--secret", "tok=TOKEN", "--", "sleep", "6", timeout=30)
        self.assertEqual(r.rc, 1, r)
        self.assertIn(b"ended (expired)", r.err)

    def test_exec_renew_stops_at_max_lifetime(self):
        r = self.home.run("exec", "--ttl", "2s", "--renew", "--max-lifetime", "3s", "--secret", "tok=TOKEN", "--",
                          "sleep", "9", timeout=30)
        self.assertEqual(r.rc, 1, r)
        self.assertIn(b"ended (expired)", r.err)


class Leak(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("tok", VALUE, "--rotate-via", "echo rotated-VALUE-0001")
        self.home.allow_hook("tok", "echo rotated-VALUE-0001")

    def leak_lines(self):
        return [e for e in self.home.audit_entries() if e["action"] == "leak_detected"]

    def test_on_leak_revoke_stops_the_child_and_audits_without_the_value(self):
        p = subprocess.Popen([BIN, "exec", "--on-leak", "revoke", "--secret", "tok=TOKEN", "--", "sh", "-c",
                              'printf "token: %s\\n" "$TOKEN"; sleep 30'],
                             env=self.home.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=15)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, DENIED, err)
        self.assertEqual(out, b"token: " + MARKER + b"\n")
        self.assertIn(b"ended (revoked)", err)
        lines = self.leak_lines()
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(lines[0]["secret_name"], "tok")
        self.assertIn("stdout", lines[0]["details"])
        self.assertIn(lines[0]["lease_id"], err.decode())
        self.assertNotIn(VALUE.encode(), self.home.read("audit.log"))
        self.assertNotIn(VALUE.encode(), out + err)

    def test_on_leak_warn_audits_and_lets_the_child_finish(self):
        r = self.home.run("exec", "--secret", "tok=TOKEN", "--", "sh", "-c",
                          'printf %s "$TOKEN" >&2; printf %s "$TOKEN" >&2; echo finished')
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, b"finished\n")
        lines = self.leak_lines()
        self.assertEqual(len(lines), 1, lines)  # reported once per lease
        self.assertIn("stderr", lines[0]["details"])
        self.assertIn("warn", lines[0]["details"])

    def test_on_leak_rotate_changes_the_value(self):
        r = self.home.run("exec", "--on-leak", "rotate", "--secret", "tok=TOKEN", "--", "sh", "-c",
                          'echo "$TOKEN"; sleep 30', timeout=30)
        self.assertEqual(r.rc, DENIED, r)
        self.assertTrue(wait_until(lambda: any(e["action"] == "secret_rotate" and e.get("success")
                                               for e in self.home.audit_entries()), timeout=10))
        self.assertEqual(self.home.run("lease", "tok", "--bind", "none").out, b"rotated-VALUE-0001")

    def test_on_leak_needs_masking(self):
        r = self.home.run("exec", "--no-masking", "--on-leak", "revoke", "--secret", "tok=TOKEN", "--", "true")
        self.assertEqual(r.rc, 2, r)
        self.assertIn(b"--no-masking", r.err)


if __name__ == "__main__":
    harness.main()
