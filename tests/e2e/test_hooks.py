"""End-to-end tests of what a rotation hook may do (DESIGN.md sections 8 and 16).

- A hook is code execution: any socket client can record a rotate_via
  (secrets.add, as the Go CLI does), but it runs only when the user's
  hooks.json allows exactly that command for that secret. `secrets hook allow`
  writes the file from the CLI process; no RPC method does.
- A hook's stderr never carries the old or the new value, in any encoding.
- A hook's descendants never outlive it: a cgroup of its own where one can
  be made, else the reaper (a child subreaper) kills every descendant.

Each attack is replayed against the daemon; on the old binary the marker
file appears, the value shows up, or the setsid process survives."""

import base64
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import BIN, E2ETestCase  # noqa: E402


def listed(home, name):
    for s in home.run_json("list")["secrets"]:
        if s["name"] == name:
            return s
    raise AssertionError("%s not in secrets list" % name)


def entries(home, action, name=None):
    return [e for e in home.audit_entries()
            if e.get("action") == action and (name is None or e.get("secret_name") == name)]


def pid_gone(pid):
    """True if the process no longer runs (gone, or a zombie nobody reaps)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def write_hooks(home, hooks):
    """hooks.json as `secrets hook allow` writes it, written here so that the
    redaction and descendant tests replay their attack on a binary without
    the allowlist too (it ignores the file and runs every hook)."""
    path = home.file("hooks.json")
    with open(path, "w") as f:
        json.dump({"version": 1, "hooks": hooks}, f)
    os.chmod(path, 0o600)


def cgroup_available():
    """Whether this process could make a cgroup v2 child of its own cgroup (as the daemon does)."""
    try:
        own = [l[3:].strip() for l in open("/proc/self/cgroup") if l.startswith("0::")][0]
        for line in open("/proc/self/mountinfo"):
            fields = line.split()
            dash = fields.index("-")
            if fields[dash + 1] == "cgroup2" and fields[3] == "/":
                path = fields[4] + ("" if own == "/" else own)
                return os.access(path, os.W_OK) and os.path.exists(os.path.join(fields[4], "cgroup.procs"))
    except (OSError, IndexError, ValueError):
        pass
    return False


class Allowlist(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.tmp = tempfile.mkdtemp(prefix="as-hooks-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.tmp]))
        self.marker = os.path.join(self.tmp, "pwned")
        self.evil = "touch %s; echo owned" % self.marker

    def assert_refused(self, reply, name, command):
        err = self.assert_rpc_error(reply, -32006)
        self.assertIn("nothing ran", err["message"], reply)
        fix = err["data"]["fix"]
        self.assertIn("secrets hook allow %s '%s'" % (name, command), fix, reply)
        self.assertFalse(os.path.exists(self.marker), "the hook ran")
        return err

    def test_a_socket_client_cannot_run_a_command(self):
        # The attack: any client on the socket records a hook and rotates.
        h = self.home
        with h.connect() as c:
            c.result("secrets.add", {"name": "k", "value": "old-value", "rotate_via": self.evil})
            reply = c.call("secrets.rotate", {"secret_name": "k"}, timeout=15)
        self.assert_refused(reply, "k", self.evil)
        # Recorded (the Go CLI's add --rotate-via still works), not run.
        self.assertEqual(listed(h, "k")["rotate_via"], self.evil)
        self.assertEqual(h.run("lease", "k").out, b"old-value")
        # Both the recording and the refusal are audited with the command text.
        add = entries(h, "secret_add", "k")
        self.assertEqual(add[-1].get("rotate_via"), self.evil, add)
        rot = entries(h, "secret_rotate", "k")
        self.assertEqual(len(rot), 1, rot)
        self.assertIs(rot[0]["success"], False, rot)
        self.assertIs(rot[0].get("ran"), False, rot)
        self.assertEqual(rot[0].get("rotate_via"), self.evil, rot)

    def test_the_cli_rotate_refuses_with_the_fix(self):
        h = self.home
        h.add("k", "old-value", "--rotate-via", self.evil)
        r = h.run("rotate", "k")
        env = self.assert_err(r, rc=5, code="unauthorized")
        self.assertEqual(env["fix"], "check the command, then: secrets hook allow k '%s'" % self.evil)
        self.assertFalse(os.path.exists(self.marker))

    def test_from_another_user_namespace(self):
        # The same attack from `unshare -Urmpf`, a namespace the daemon does not share.
        if subprocess.run(["unshare", "-Urmpf", "true"], capture_output=True).returncode != 0:
            self.skipTest("unprivileged user namespaces are not available")
        script = (
            "import json, socket, sys\n"
            "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rwb')\n"
            "def call(m, p, i):\n"
            "    f.write(json.dumps({'jsonrpc': '2.0', 'id': i, 'method': m, 'params': p}).encode() + b'\\n'); f.flush()\n"
            "    return json.loads(f.readline())\n"
            "print(json.dumps(call('secrets.add', {'name': 'ns', 'value': 'v-123456', 'rotate_via': sys.argv[2]}, 1)))\n"
            "print(json.dumps(call('secrets.rotate', {'secret_name': 'ns'}, 2)))\n")
        p = subprocess.run(["unshare", "-Urmpf", sys.executable, "-c", script, self.home.socket, self.evil],
                           capture_output=True, timeout=60)
        self.assertFalse(os.path.exists(self.marker), "a hook set from another namespace ran: %r" % (p,))
        # Refused at the door (a peer from another namespace) or at rotate:
        # either way nothing ran, and the daemon still serves.
        self.assert_serving(self.home)

    def test_revoke_all_rotate_refuses_unlisted_hooks(self):
        h = self.home
        h.rpc("secrets.add", {"name": "evil", "value": "v1-abcdef", "rotate_via": self.evil})
        good = "printf 'g2-%s' rotated"
        h.add("good", "g1-abcdef", "--rotate-via", good)
        write_hooks(h, {"good": good})
        res = self.assert_ok(h.run("revoke", "--all", "--rotate"), "secrets revoke")
        self.assertFalse(os.path.exists(self.marker))
        by_name = {o["secret_name"]: o for o in res["rotated"]}
        self.assertIs(by_name["good"]["success"], True, res)
        self.assertIs(by_name["evil"]["success"], False, res)
        self.assertIn("secrets hook allow evil", by_name["evil"]["fix"], res)
        self.assertEqual(h.run("lease", "good").out, b"g2-rotated")

    def test_an_allowed_hook_runs_until_its_command_changes(self):
        h = self.home
        hook = "printf 'new-%s' value"
        h.add("k", "old-value", "--rotate-via", hook)
        allowed = h.allow_hook("k", hook)
        self.assertIs(allowed.get("matches_secret"), True, allowed)
        self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        self.assertEqual(h.run("lease", "k").out, b"new-value")
        # A socket client swaps the command on the secret: the entry no longer matches.
        h.rpc("secrets.add", {"name": "k", "value": "x-value", "rotate_via": self.evil, "force": True})
        reply = h.rpc("secrets.rotate", {"secret_name": "k"}, timeout=15)
        err = self.assert_refused(reply, "k", self.evil)
        self.assertIn("differs from its entry", err["message"])
        # And `hook remove` ends the permission for the old command too.
        h.add("k", "old-value", "--rotate-via", hook, "--force")
        self.assert_ok(h.run("hook", "remove", "k"), "secrets hook remove")
        self.assert_err(h.run("rotate", "k"), rc=5, code="unauthorized")
        self.assert_err(h.run("hook", "remove", "k"), rc=4)

    def test_hook_allow_says_when_the_secret_records_another_command(self):
        h = self.home
        h.add("k", "old-value", "--rotate-via", "printf a")
        res = h.allow_hook("k", "printf b")
        self.assertIs(res.get("matches_secret"), False, res)
        self.assertIn("different rotate_via", res.get("warning", ""), res)

    def test_add_rotate_via_records_and_hints_but_does_not_allow(self):
        h = self.home
        hook = 'printf "it\'s new"'
        r = h.run("add", "k", "--rotate-via", hook, input=b"old-value")
        self.assert_ok(r, "secrets add")
        hint = r.env_out["next_actions"][0]["command"]
        self.assertEqual(hint, "secrets hook allow k '" + hook.replace("'", "'\\''") + "'")
        self.assertIn(b"secrets hook allow k", r.err)
        self.assertFalse(os.path.exists(h.file("hooks.json")))
        # The hint, run by a shell, allows exactly the recorded command.
        allowed = subprocess.run(["sh", "-c", hint.replace("secrets", BIN, 1)], env=h.env, capture_output=True)
        self.assertEqual(allowed.returncode, 0, allowed)
        self.assertEqual(h.run_json("hook", "list")["hooks"], [{"name": "k", "command": hook}])
        r = h.run("add", "k", "--rotate-via", hook, "--force", input=b"old-value")
        self.assertNotIn("hook allow", json.dumps(r.env_out["next_actions"]))
        self.assertNotIn(b"hint", r.err)
        self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        self.assertEqual(h.run("lease", "k").out, b"it's new")

    def test_set_hook_records_a_hook_keeping_the_value(self):
        # Adding a hook to an existing secret used to mean typing its value again.
        h = self.home
        h.add("k", "old-value")
        before = listed(h, "k")
        r = h.run("set-hook", "k", "printf new-value")
        res = self.assert_ok(r, "secrets set-hook")
        self.assertNotIn("old-value", r.out.decode() + r.err.decode())
        self.assertEqual(listed(h, "k")["rotate_via"], "printf new-value")
        self.assertEqual(listed(h, "k")["created_at"], before["created_at"])
        self.assertEqual(h.run("lease", "k").out, b"old-value")
        self.assertEqual(h.run_json("versions", "k")["versions"], [], res)
        # Recorded, not allowed: the hint says how, and rotate refuses until then.
        self.assertIn("secrets hook allow k 'printf new-value'", r.env_out["next_actions"][0]["command"])
        self.assertFalse(os.path.exists(h.file("hooks.json")))
        self.assert_err(h.run("rotate", "k"), rc=5)
        h.allow_hook("k", "printf new-value")
        self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        self.assertEqual(h.run("lease", "k").out, b"new-value")
        # '' clears the hook; a missing secret is not found; the change is audited.
        self.assert_ok(h.run("set-hook", "k", ""), "secrets set-hook")
        self.assertFalse(listed(h, "k").get("rotate_via"))
        self.assert_err(h.run("set-hook", "missing", "true"), rc=4)
        audited = entries(h, "secret_set_hook", "k")
        self.assertEqual([e.get("rotate_via") for e in audited], ["printf new-value", ""], audited)

    def test_hook_allow_points_to_set_hook_not_to_a_new_value(self):
        h = self.home
        h.add("k", "old-value", "--rotate-via", "printf a")
        r = h.run("hook", "allow", "k", "printf b")
        self.assertEqual(r.env_out["next_actions"][0]["command"], "secrets set-hook k 'printf b'")

    def test_no_rpc_method_writes_hooks_json(self):
        h = self.home
        with h.connect() as c:
            for method in ("secrets.hookAllow", "secrets.allowHook", "hooks.allow", "secrets.hooks"):
                self.assert_rpc_error(c.call(method, {"name": "k", "command": self.evil}), -32601)
            for params in ({"name": "k", "value": "v-123456", "rotate_via": self.evil, "allow": True},
                           {"name": "k", "value": "v-123456", "rotate_via": self.evil, "force": True,
                            "hooks": {"k": self.evil}}):
                c.call("secrets.add", params)
            c.result("secrets.add", {"name": "k", "value": "v-123456", "rotate_via": self.evil, "force": True})
        self.assertFalse(os.path.exists(h.file("hooks.json")))
        self.assert_err(h.run("rotate", "k"), rc=5)
        self.assertFalse(os.path.exists(self.marker))

    def test_an_unsafe_hooks_json_allows_nothing(self):
        h = self.home
        hook = "printf 'new-%s' value"
        h.add("k", "old-value", "--rotate-via", hook)
        elsewhere = os.path.join(self.tmp, "hooks.json")
        with open(elsewhere, "w") as f:
            json.dump({"version": 1, "hooks": {"k": hook}}, f)
        os.chmod(elsewhere, 0o600)
        os.symlink(elsewhere, h.file("hooks.json"))
        env = self.assert_err(h.run("rotate", "k"), rc=5, code="unauthorized")
        self.assertIn("is a symlink", env["error"]["message"], env)
        self.assertIn("rm " + h.file("hooks.json"), env["fix"], env)
        os.unlink(h.file("hooks.json"))
        h.allow_hook("k", hook)
        os.chmod(h.file("hooks.json"), 0o620)
        env = self.assert_err(h.run("rotate", "k"), rc=5, code="unauthorized")
        self.assertEqual(env["fix"], "chmod 600 " + h.file("hooks.json"))
        os.chmod(h.file("hooks.json"), 0o600)
        self.assert_ok(h.run("rotate", "k"), "secrets rotate")
        self.assertEqual(h.run("lease", "k").out, b"new-value")

    def test_allowlist_changes_are_audited_at_the_next_rotation(self):
        h = self.home
        a = "printf 'a-%s' new"
        h.add("a", "a-old-value", "--rotate-via", a)
        h.add("b", "b-old-value", "--rotate-via", "printf b")
        h.allow_hook("a", a)
        h.allow_hook("b", "printf b")
        self.assert_ok(h.run("rotate", "a"), "secrets rotate")
        lists = entries(h, "hook_allowlist")
        self.assertEqual(len(lists), 1, lists)
        self.assertEqual(lists[0]["allowed"], {"a": a, "b": "printf b"}, lists)
        self.assert_ok(h.run("rotate", "a"), "secrets rotate")
        self.assertEqual(len(entries(h, "hook_allowlist")), 1, "an unchanged allowlist is audited once")
        h.run_json("hook", "remove", "b")
        h.allow_hook("c", "printf c")
        self.assert_ok(h.run("rotate", "a"), "secrets rotate")
        lists = entries(h, "hook_allowlist")
        self.assertEqual(len(lists), 2, lists)
        self.assertEqual(lists[1]["allowed"], {"c": "printf c"}, lists)
        self.assertEqual(lists[1]["removed"], ["b"], lists)
        ran = entries(h, "secret_rotate", "a")
        self.assertTrue(all(e.get("rotate_via") == a and e.get("ran") is True for e in ran), ran)


class Redaction(E2ETestCase):
    """A failing hook's stderr: no form of the old or the new value leaves the runner."""

    OLD = "old-SECRET-4b1d9e"
    NEW = "NEW-SECRET-77c0a3"

    def setUp(self):
        self.home = self.new_home(serve=False)
        self.home.env["AGENT_SECRETS_LOG_LEVEL"] = "debug"
        self.home.serve()

    def forms(self, value):
        raw = value.encode()
        return [raw, base64.b64encode(raw).rstrip(b"="), raw.hex().encode(), raw.hex().upper().encode()]

    def assert_nowhere(self, value, *outputs):
        self.home.stop()
        places = list(outputs) + [self.home.read("audit.log"), self.home.read("daemon.log"),
                                  self.home.daemon_output().encode()]
        for form in self.forms(value):
            for i, text in enumerate(places):
                self.assertNotIn(form, text, "form %r of the value in place %d" % (form, i))

    def rotate_everywhere(self, name):
        h = self.home
        r = h.run("rotate", name)
        self.assert_err(r, code="rotation_failed")
        reply = h.rpc("secrets.rotate", {"secret_name": name}, timeout=15)
        self.assertIn("error", reply, reply)
        audit = h.run("audit", "--tail", "50")
        return [r.out + r.err, json.dumps(reply).encode(), audit.out + audit.err]

    def test_old_value_echoed_raw_base64_and_hex(self):
        h = self.home
        hook = ("v=$(cat); echo \"vault said: $v\" >&2; printf %s \"$v\" | base64 >&2; "
                "printf %s \"$v\" | od -An -tx1 | tr -d ' \\n' >&2; echo >&2; exit 1")
        h.add("k", self.OLD, "--rotate-via", hook)
        write_hooks(h, {"k": hook})
        outputs = self.rotate_everywhere("k")
        self.assert_nowhere(self.OLD, *outputs)
        self.assertIn(b"vault said: [redacted]", outputs[0])

    def test_new_value_on_stdout_and_stderr(self):
        h = self.home
        # The value is built at run time: the command text (audited) does not hold it.
        hook = "n=$(printf 'NEW-SECRET-%s' 77c0a3); echo \"$n\"; echo \"made $n\" >&2; exit 1"
        h.add("k", self.OLD, "--rotate-via", hook)
        write_hooks(h, {"k": hook})
        outputs = self.rotate_everywhere("k")
        self.assert_nowhere(self.NEW, *outputs)
        self.assertIn(b"made [redacted]", outputs[0])


class Descendants(E2ETestCase):
    """A hook's descendants do not outlive it: in its cgroup, and with the fallback."""

    CONTAINMENT = "cgroup"

    def setUp(self):
        self.home = self.new_home(serve=False)
        if self.CONTAINMENT == "reaper":
            self.home.env["AGENT_SECRETS_HOOK_CGROUP"] = "off"
        self.home.write_config({"rotation_timeout": "1s"})
        self.home.serve()
        self.tmp = tempfile.mkdtemp(prefix="as-hooks-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.tmp]))
        self.pidfile = os.path.join(self.tmp, "pids")
        self.addCleanup(self.kill_survivors)

    def kill_survivors(self):
        """On a binary that lets them escape, the test's own sleepers (and
        their process groups) are ended here."""
        try:
            pids = self.pids()
        except OSError:
            return
        for pid in pids:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if b"1000" not in f.read():
                        continue
                if os.getpgid(pid) == pid:
                    os.killpg(pid, 9)
                else:
                    os.kill(pid, 9)
            except OSError:
                pass

    def hooked(self, command):
        self.home.add("k", "old-value", "--rotate-via", command)
        write_hooks(self.home, {"k": command})

    def pids(self):
        with open(self.pidfile) as f:
            return [int(p) for p in f.read().split()]

    def check_containment(self):
        lines = [e for e in entries(self.home, "secret_rotate", "k") if e.get("ran")]
        self.assertTrue(lines, "no secret_rotate line")
        if self.CONTAINMENT == "cgroup" and not cgroup_available():
            return  # no delegated cgroup here: the daemon used the reaper, also fine
        self.assertEqual(lines[-1].get("containment"), self.CONTAINMENT, lines)

    def test_setsid_and_double_fork_die_with_the_hook(self):
        self.hooked("setsid sleep 1000 >/dev/null 2>&1 </dev/null & echo $! >> %s; "
                    "(sh -c 'sleep 1000 >/dev/null 2>&1 </dev/null & echo $! >> %s' &); "
                    "sleep 0.2; printf 'new-%%s' value" % (self.pidfile, self.pidfile))
        self.assert_ok(self.home.run("rotate", "k"), "secrets rotate")
        pids = self.pids()
        self.assertEqual(len(pids), 2, pids)
        for pid in pids:
            # No waiting: the reply comes after the reaper reaped them.
            self.assertTrue(pid_gone(pid), "descendant %d outlived its hook" % pid)
        self.check_containment()

    def test_a_setsid_process_dies_at_the_timeout(self):
        self.hooked("setsid sh -c 'trap \"\" TERM; sleep 1000' >/dev/null 2>&1 </dev/null & echo $! >> %s; "
                    "sleep 1000" % self.pidfile)
        env = self.assert_err(self.home.run("rotate", "k"), code="rotation_failed")
        self.assertIn("timed out", env["error"]["message"], env)
        for pid in self.pids():
            self.assertTrue(pid_gone(pid), "descendant %d outlived the timeout" % pid)
        self.check_containment()

    def test_the_hook_does_not_outlive_the_daemon(self):
        self.home.stop()
        self.home.write_config({"rotation_timeout": "5m"})
        self.home.serve()
        self.hooked("setsid sleep 1000 >/dev/null 2>&1 </dev/null & echo $$ $! >> %s; sleep 1000" % self.pidfile)
        rotate = subprocess.Popen([BIN, "rotate", "k"], env=self.home.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(rotate.kill)
        self.assertTrue(harness.wait_until(lambda: os.path.exists(self.pidfile) and self.pids(), 10.0))
        self.home.kill()
        pids = self.pids()
        self.assertEqual(len(pids), 2, pids)
        self.assertTrue(harness.wait_until(lambda: all(pid_gone(p) for p in pids), 10.0),
                        "the hook %r outlived the daemon" % pids)


class DescendantsWithoutCgroup(Descendants):
    CONTAINMENT = "reaper"


if __name__ == "__main__":
    harness.main()
