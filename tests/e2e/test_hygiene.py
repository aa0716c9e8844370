"""Secret hygiene (issue 7, item 6; DESIGN.md 3 and 6): after a whole session
with random values, no value is in any file of the home but secrets.age, in
the daemon's output or command line, or in the CLI's stderr; the daemon is not
dumpable and has core dumps off; and a session under valgrind memcheck is
clean."""

import json
import os
import pwd
import secrets as pysecrets
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import E2ETestCase, Home, wait_until  # noqa: E402

ROTATE_HOOK = "head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \\n'"


def nobody_prefix():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return None
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return None
    # setpriv execs in place: the pid we start is the daemon's.
    return ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--clear-groups", "--"], pw


NOBODY = nobody_prefix()


class Leaks(E2ETestCase):
    def test_no_value_anywhere_after_a_full_session(self):
        home = self.new_home()
        work = tempfile.mkdtemp(prefix="as-work-")
        self.addCleanup(shutil.rmtree, work, True)
        values = {}

        def val(label):
            values[label] = "V%s%s" % (label, pysecrets.token_hex(16))
            return values[label]

        stderr = []

        def run(*args, **kw):
            r = home.run(*args, **kw)
            stderr.append(r.err)
            return r

        def ok(*args, **kw):
            r = run(*args, **kw)
            self.assertEqual(r.rc, 0, r)
            return r

        ok("add", "api", input=val("api"))
        multi = "%s\n%s\n" % (val("multi1"), val("multi2"))
        ok("add", "multi", input=multi)
        self.assertNotEqual(run("add", "api", input=val("refused")).rc, 0)
        ok("add", "api", "--force", input=val("forced"))
        self.assertNotEqual(run("add", "bad name", input=val("badname")).rc, 0)
        ok("add", "rot", "--rotate-via", ROTATE_HOOK, input=val("rot0"))
        ok("hook", "allow", "rot", ROTATE_HOOK)
        ok("rotate", "rot")
        values["rotated"] = ok("lease", "rot").out.decode()
        self.assertRegex(values["rotated"], "^[0-9a-f]{48}$")
        with open(os.path.join(work, "legacy.env"), "w") as f:
            f.write("IMP_ONE=%s\nexport IMP_TWO='%s'\n" % (val("imp1"), val("imp2")))
        ok("import", os.path.join(work, "legacy.env"), "--prefix", "imp_")
        os.unlink(os.path.join(work, "legacy.env"))
        self.assertEqual(ok("lease", "api").out.decode(), values["forced"])
        lease = json.loads(ok("lease", "api", "--json", "--client-id", "agent").out)["result"]["lease_id"]
        self.assertNotEqual(run("lease", "api", "--ttl", "99h").rc, 0)
        self.assertNotEqual(run("lease", "missing").rc, 0)
        self.assertNotEqual(run("lease", "api", "--ttl", "nonsense").rc, 0)
        r = home.run("exec", "--secret", "api=API", "--", "sh", "-c", 'echo "$API"; echo "$API" >&2')
        stderr.append(r.err)
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn(values["forced"].encode(), r.out + r.err, "exec masking")
        with open(os.path.join(work, ".secrets.json"), "w") as f:
            json.dump({"client_id": "envbot", "secrets": [{"name": "multi", "env_var": "MULTI"}]}, f)
        env_file = os.path.join(work, ".env")
        ok("env", "--file", os.path.join(work, ".secrets.json"), "--output", env_file)  # a deliberate copy
        home.rpc("secrets.add", {"name": "viarpc", "value": val("rpc")})
        home.rpc("secrets.get", {"name": "api"})
        # The daemon's command line, while it holds every value.
        pid = home.daemon.pid
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read()
        ok("revoke", lease)
        for cmd in (["list"], ["status"], ["health"], ["audit"], ["audit", "--verify"], ["config"]):
            ok(*cmd)
        ok("revoke", "--all")
        self.assertTrue(wait_until(lambda: not os.path.exists(env_file), 10), "the daemon deletes the .env")
        ok("remove", "multi")
        home.restart()
        self.assertEqual(ok("lease", "api").out.decode(), values["forced"])
        self.assertEqual(ok("lease", "imp_imp_two").out.decode(), values["imp2"])
        home.stop()

        haystacks = {"daemon output": home.daemon_output().encode(), "daemon cmdline": cmdline,
                     "CLI stderr": b"\n".join(stderr)}
        for root, _dirs, files in os.walk(home.path):
            for name in files:
                path = os.path.join(root, name)
                if path == home.file("secrets.age") or not os.path.isfile(path):
                    continue
                with open(path, "rb") as f:
                    haystacks[os.path.relpath(path, home.path)] = f.read()
        self.assertIn("daemon.log", haystacks)
        self.assertIn("audit.log", haystacks)
        for where, data in haystacks.items():
            for label, value in values.items():
                self.assertNotIn(value.encode(), data, "the value %r is in %s" % (label, where))
        # The session did reach the daemon (not a vacuous pass).
        actions = {e["action"] for e in home.audit_entries()}
        for a in ("secret_add", "secret_rotate", "lease_acquire", "lease_revoke", "killswitch", "secret_delete",
                  "denied", "env_file_removed"):
            self.assertIn(a, actions)


class ProcessHardening(E2ETestCase):
    def test_core_dumps_off(self):
        home = self.new_home()
        with open("/proc/%d/limits" % home.daemon.pid) as f:
            core = [l for l in f if l.startswith("Max core file size")]
        self.assertEqual(core[0].split()[4:6], ["0", "0"], core)

    @unittest.skipUnless(NOBODY is not None, "needs root, setpriv and a nobody user")
    def test_not_dumpable(self):
        """The kernel makes /proc/PID/* of a non-dumpable process root's, and
        refuses its environ and mem to other processes of the same uid."""
        prefix, pw = NOBODY
        home = Home(init=False, as_user=prefix)
        self.addCleanup(home.cleanup)
        os.chown(home.path, pw.pw_uid, pw.pw_gid)
        r = home.run("init")
        self.assertEqual(r.rc, 0, r)
        home.serve(probe="connect")
        pid = home.daemon.pid
        with open("/proc/%d/status" % pid) as f:
            uid_line = [l for l in f if l.startswith("Uid:")][0]
        self.assertEqual(int(uid_line.split()[1]), pw.pw_uid, "the daemon runs as nobody")
        # A control: an ordinary process of nobody's.
        control = subprocess.Popen(prefix + ["sleep", "60"])
        self.addCleanup(control.wait)
        self.addCleanup(control.kill)
        self.assertTrue(wait_until(lambda: os.stat("/proc/%d/status" % control.pid).st_uid == pw.pw_uid, 5))
        self.assertEqual(os.stat("/proc/%d/status" % pid).st_uid, 0, "the daemon is dumpable")
        for target, readable in ((control.pid, True), (pid, False)):
            p = subprocess.run(prefix + ["cat", "/proc/%d/environ" % target], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=10)
            self.assertEqual(p.returncode == 0, readable, (target, p.stderr))


VALGRIND = shutil.which("valgrind")


@unittest.skipUnless(VALGRIND, "needs valgrind (scripts/deps.sh installs it)")
@unittest.skipIf(harness.binary_is_sanitized(), "an AddressSanitizer binary cannot run under valgrind")
class Valgrind(E2ETestCase):
    def test_session_under_memcheck(self):
        logs = tempfile.mkdtemp(prefix="as-vg-")
        self.addCleanup(shutil.rmtree, logs, True)
        vg = [VALGRIND, "--tool=memcheck", "--error-exitcode=99", "--leak-check=full",
              "--errors-for-leak-kinds=definite", "--child-silent-after-fork=yes", "--log-file=%s/vg.%%p.log" % logs]
        home = Home(init=False, as_user=vg)
        self.addCleanup(home.cleanup)
        r = home.run("init", timeout=300)
        self.assertEqual(r.rc, 0, r)
        d = home.start()
        home.wait_ready(d, timeout=180)
        home.daemon = d
        value = pysecrets.token_hex(20)
        # The daemon does the work; a few CLI commands run under memcheck too.
        r = home.run("add", "api", input=value, timeout=300)
        self.assertEqual(r.rc, 0, r)
        r = home.run("list", timeout=300)
        self.assertEqual(r.rc, 0, r)
        reply = home.rpc("secrets.lease", {"secret_name": "api", "client_id": "vg", "ttl": "5m"}, timeout=60)
        self.assertEqual(reply["result"]["value"], value, reply)
        for args in (["add", "rot", "--rotate-via", "printf rotated"], ["hook", "allow", "rot", "printf rotated"],
                     ["rotate", "rot"], ["list"], ["status"],
                     ["health"], ["lease", "missing"], ["audit", "--tail", "5"],
                     ["audit", "--verify"], ["revoke", "--all"], ["remove", "rot"]):
            home.run(*args, input=b"seed", user=False, timeout=120)
        # Leases over raw RPC: Debian 12's valgrind 3.19 lacks pidfd_open, which a CLI lease's
        # holder binding needs in the daemon.
        for _ in range(3):
            reply = home.rpc("secrets.lease", {"secret_name": "api", "client_id": "vg", "ttl": "5m"}, timeout=60)
            self.assertEqual(reply["result"]["value"], value, reply)
            self.assertIn("result", home.rpc("secrets.revoke", {"lease_id": reply["result"]["lease_id"]}, timeout=60))
        with home.connect(timeout=60) as c:
            c.send_raw(b'{"jsonrpc":"2.0","method":"secrets.add","params":{"name":"x","name":"y"},"id":1}\n')
            self.assertIn("error", c.read_json(timeout=60))
            c.send_raw(b"\xff\xfe not json\n")
            self.assertIn("error", c.read_json(timeout=60))
        rc = d.terminate(timeout=180)
        reports = []
        for name in sorted(os.listdir(logs)):
            with open(os.path.join(logs, name), errors="replace") as f:
                reports.append((name, f.read()))
        self.assertGreaterEqual(len(reports), 4, "valgrind wrote no logs")
        for name, text in reports:
            self.assertIn("ERROR SUMMARY: 0 errors", text, "%s:\n%s" % (name, text[-6000:]))
        self.assertEqual(rc, 0, home.daemon_output()[-3000:])
        print("\nvalgrind: %d processes (the daemon and %d CLI runs), 0 errors" % (len(reports), len(reports) - 1))


if __name__ == "__main__":
    harness.main()
