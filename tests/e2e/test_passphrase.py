"""Passphrase-protected identity, the CLI side (issue 19, DESIGN.md 11):
`init --passphrase`, `passphrase set|change|remove`, and where the passphrase
comes from (--passphrase-fd, the terminal, pinentry), checked against the
stock `age` CLI. scrypt at logN 18 costs about 1 s per operation: each test
keeps its count small."""

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import E2ETestCase  # noqa: E402

PASS = "pp-old-7QxvZr2m"
NEW = "pp-new-Kd93LwpT"
# How long a pty conversation may take before the test gives up (a guard
# against a hang, not a timing assertion).
PTY_GUARD = 60.0


def fds_with(*values):
    """Pipes holding each value (closed for writing); returns (fds, close)."""
    fds = []
    for v in values:
        r, w = os.pipe()
        os.write(w, v.encode() if isinstance(v, str) else v)
        os.close(w)
        fds.append(r)

    def close():
        for fd in fds:
            os.close(fd)
    return fds, close


def run_fds(home, *args, values=(), env=None):
    """Runs the CLI with values[i] readable on descriptor fds[i]; `args` may
    use "{0}", "{1}" for those descriptor numbers."""
    fds, close = fds_with(*values)
    try:
        argv = [a.format(*fds) for a in args]
        return home.run(*argv, pass_fds=fds, env=env)
    finally:
        close()


def read_until(master, needle, seen):
    """Appends what the pty says to `seen` until `needle` shows up (True) or
    the other side is gone (False)."""
    deadline = time.monotonic() + PTY_GUARD
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no %r on the terminal; it said %r" % (needle, bytes(seen)))
        ready, _, _ = select.select([master], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        seen.extend(chunk)
    return True


def drain(master, seen):
    while read_until(master, b"\x00never\x00", seen):
        pass


def in_pty(argv, env, conversation):
    """Runs argv with a pty as its controlling terminal; `conversation` is a
    list of (prompt, answer). Returns (exit code, everything the pty showed)."""
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    seen = bytearray()
    done = False
    try:
        for prompt, answer in conversation:
            if not read_until(master, prompt, seen):
                raise AssertionError("the terminal closed before %r: %r" % (prompt, bytes(seen)))
            os.write(master, answer + b"\n")
        drain(master, seen)
        done = True
    finally:
        if not done:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(master)
    return os.waitstatus_to_exitcode(status), bytes(seen)


def age_header(data):
    """The stanza lines of an age file's header."""
    lines = data.split(b"\n")
    stanzas = [line for line in lines if line.startswith(b"-> ")]
    return lines[0], stanzas


class PassphraseTest(E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # One protected identity, made once, copied into the homes that need it.
        home = harness.Home(init=False)
        try:
            r = run_fds(home, "init", "--passphrase-fd", "{0}", values=[PASS + "\n"])
            if r.rc != 0:
                raise AssertionError("init --passphrase-fd failed: %r" % (r,))
            cls.init_result = r
            with open(home.file("identity.age"), "rb") as f:
                cls.protected_identity = f.read()
            with open(home.file("secrets.age"), "rb") as f:
                cls.store_bytes = f.read()
        finally:
            home.cleanup()

    def protected_home(self):
        home = self.new_home(init=False, serve=False)
        for name, data in (("identity.age", self.protected_identity), ("secrets.age", self.store_bytes)):
            with open(home.file(name), "wb") as f:
                f.write(data)
            os.chmod(home.file(name), 0o600)
        return home

    def identity_bytes(self, home):
        with open(home.file("identity.age"), "rb") as f:
            return f.read()

    def opens_with(self, home, passphrase):
        """Whether identity.age opens with `passphrase` (checked on a copy)."""
        copy = self.new_home(init=False, serve=False)
        shutil.copyfile(home.file("identity.age"), copy.file("identity.age"))
        r = run_fds(copy, "passphrase", "remove", "--passphrase-fd", "{0}", values=[passphrase])
        if r.rc == 0:
            return True
        self.assertEqual(r.rc, 5, r)
        return False

    def test_init_writes_an_age_scrypt_file_that_stock_age_opens(self):
        self.assert_ok(self.init_result, "secrets init")
        self.assertIs(self.init_result.env_out["result"]["protected"], True)
        first, stanzas = age_header(self.protected_identity)
        self.assertEqual(first, b"age-encryption.org/v1")
        self.assertEqual(len(stanzas), 1, stanzas)
        self.assertTrue(stanzas[0].startswith(b"-> scrypt "), stanzas)
        self.assertTrue(stanzas[0].endswith(b" 18"), stanzas)  # logN 18, as `age -p`
        home = self.protected_home()
        out = os.path.join(home.logs, "plain.json")
        env = dict(home.env)
        rc, said = in_pty([shutil.which("age"), "-d", "-i", home.file("identity.age"), "-o", out,
                           home.file("secrets.age")], env, [(b"passphrase", PASS.encode())])
        self.assertEqual(rc, 0, said)
        with open(out, "rb") as f:
            plain = f.read()
        self.assertTrue(plain.strip().startswith(b"{"), plain[:40])

    def test_an_identity_from_stock_age_p_is_accepted(self):
        home = self.new_home(init=False, serve=False)
        plain = os.path.join(home.logs, "key.txt")
        subprocess.run(["age-keygen", "-o", plain], check=True, capture_output=True)
        rc, said = in_pty([shutil.which("age"), "-p", "-o", home.file("identity.age"), plain], dict(home.env),
                          [(b"passphrase", PASS.encode()), (b"onfirm", PASS.encode())])
        self.assertEqual(rc, 0, said)
        self.assertTrue(self.identity_bytes(home).startswith(b"age-encryption.org/v1\n-> scrypt "))
        r = run_fds(home, "passphrase", "remove", "--passphrase-fd", "{0}", values=[PASS])
        self.assert_ok(r, "secrets passphrase remove")
        with open(plain, "rb") as f:
            self.assertEqual(self.identity_bytes(home), f.read())

    def test_set_then_change_then_remove(self):
        home = self.new_home(init=True, serve=False)
        public = [line for line in self.identity_bytes(home).split(b"\n") if line.startswith(b"AGE-SECRET-KEY-")]
        r = run_fds(home, "passphrase", "set", "--new-passphrase-fd", "{0}", values=[PASS])
        self.assert_ok(r, "secrets passphrase set")
        self.assertIn("running daemon is unaffected", r.env_out["result"]["message"])
        self.assertTrue(self.identity_bytes(home).startswith(b"age-encryption.org/v1\n-> scrypt "))
        env = self.assert_err(run_fds(home, "passphrase", "set", "--new-passphrase-fd", "{0}", values=[NEW]))
        self.assertEqual(env["fix"], "secrets passphrase change")
        r = run_fds(home, "passphrase", "change", "--passphrase-fd", "{0}", "--new-passphrase-fd", "{1}",
                    values=[PASS, NEW])
        self.assert_ok(r, "secrets passphrase change")
        r = run_fds(home, "passphrase", "remove", "--passphrase-fd", "{0}", values=[NEW])
        self.assert_ok(r, "secrets passphrase remove")
        keys = [line for line in self.identity_bytes(home).split(b"\n") if line.startswith(b"AGE-SECRET-KEY-")]
        self.assertEqual(keys, public)  # the same key, back in the clear
        for sub in (("remove", "--passphrase-fd", "{0}"), ("change", "--passphrase-fd", "{0}")):
            env = self.assert_err(run_fds(home, "passphrase", *sub, values=[PASS]))
            self.assertEqual(env["fix"], "secrets passphrase set")

    def test_a_wrong_current_passphrase_changes_nothing(self):
        home = self.protected_home()
        before = self.identity_bytes(home)
        r = run_fds(home, "passphrase", "change", "--passphrase-fd", "{0}", "--new-passphrase-fd", "{1}",
                    values=["not-" + PASS, NEW])
        self.assert_err(r, rc=5, code="unauthorized")
        r = run_fds(home, "passphrase", "remove", "--passphrase-fd", "{0}", values=["not-" + PASS])
        env = self.assert_err(r, rc=5, code="unauthorized")
        self.assertNotIn(PASS, env["error"]["message"])
        self.assertEqual(self.identity_bytes(home), before)
        self.assertEqual(sorted(os.listdir(home.path)), ["identity.age", "secrets.age"])

    def test_empty_and_missing_passphrases_are_refused(self):
        home = self.new_home(init=False, serve=False)
        for value in ("", "\n"):
            r = run_fds(home, "init", "--passphrase-fd", "{0}", values=[value])
            self.assert_err(r, rc=2, code="invalid_params")
            self.assertFalse(os.path.exists(home.file("identity.age")))
        # No fd, no terminal, no pinentry on PATH: the error says how to pass it.
        empty_path = tempfile.mkdtemp(prefix="as-nopin-")
        self.addCleanup(shutil.rmtree, empty_path, True)
        env = dict(home.env, PATH=empty_path)
        p = subprocess.run([home.bin, "init", "--passphrase"], stdin=subprocess.DEVNULL, capture_output=True,
                           env=env, start_new_session=True, timeout=30)
        r = harness.Result(["init", "--passphrase"], p.returncode, p.stdout, p.stderr)
        env = self.assert_err(r, rc=2)
        self.assertIn("--passphrase-fd 3 3<file", env["fix"])
        self.assertFalse(os.path.exists(home.file("identity.age")))

    def test_the_terminal_asks_twice_without_echo(self):
        home = self.new_home(init=False, serve=False)
        argv = [home.bin, "init", "--passphrase"]
        rc, said = in_pty(argv, dict(home.env), [(b"new passphrase", b"mis-" + NEW.encode()),
                                                 (b"repeat", NEW.encode())])
        self.assertEqual(rc, 2, said)
        self.assertIn(b"differ", said)
        self.assertFalse(os.path.exists(home.file("identity.age")))
        rc, said = in_pty(argv, dict(home.env), [(b"new passphrase", NEW.encode()), (b"repeat", NEW.encode())])
        self.assertEqual(rc, 0, said)
        self.assertNotIn(NEW.encode(), said)  # never echoed
        self.assertTrue(self.opens_with(home, NEW))

    def test_ctrl_c_at_the_prompt_gives_the_echo_back(self):
        home = self.new_home(init=False, serve=False)
        pid, master = pty.fork()
        if pid == 0:
            try:
                os.execve(home.bin, [home.bin, "init", "--passphrase"], dict(home.env))
            finally:
                os._exit(127)
        seen = bytearray()
        try:
            self.assertTrue(read_until(master, b"new passphrase", seen), seen)
            self.assertFalse(termios.tcgetattr(master)[3] & termios.ECHO)  # off while it asks
            os.write(master, b"\x03")  # ^C: SIGINT from the line discipline
            drain(master, seen)
            _, status = os.waitpid(pid, 0)
            pid = 0
            self.assertEqual(os.waitstatus_to_exitcode(status), -signal.SIGINT)
            self.assertTrue(termios.tcgetattr(master)[3] & termios.ECHO, "echo left off after ^C")
        finally:
            if pid:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            os.close(master)
        self.assertFalse(os.path.exists(home.file("identity.age")))

    @unittest.skipUnless(os.path.exists("/usr/bin/pinentry-tty"), "pinentry-tty is not installed (make deps)")
    def test_pinentry_without_a_terminal(self):
        home = self.protected_home()
        bindir = tempfile.mkdtemp(prefix="as-pin-")
        self.addCleanup(shutil.rmtree, bindir, True)
        os.symlink("/usr/bin/pinentry-tty", os.path.join(bindir, "pinentry"))
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        env = dict(home.env, GPG_TTY=os.ttyname(slave), PATH=bindir + ":" + os.environ.get("PATH", ""),
                   TERM="dumb")
        fds, close = fds_with(PASS)
        try:
            p = subprocess.Popen([home.bin, "passphrase", "change", "--passphrase-fd", str(fds[0])],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=env, start_new_session=True, pass_fds=fds)
        finally:
            close()
        seen = bytearray()
        try:
            self.assertTrue(read_until(master, b"Passphrase:", seen), seen)
            os.write(master, NEW.encode() + b"\n")
            self.assertTrue(read_until(master, b"Repeat:", seen), seen)
            os.write(master, NEW.encode() + b"\n")
            out, err = p.communicate(timeout=PTY_GUARD)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        r = harness.Result(["passphrase", "change"], p.returncode, out, err)
        self.assert_ok(r, "secrets passphrase change")
        self.assertNotIn(NEW.encode(), bytes(seen))
        self.assertTrue(self.opens_with(home, NEW))

    def test_sigkill_during_change_leaves_the_old_or_the_new(self):
        outcomes = set()
        for delay in (0.2, 0.9, 1.6, 2.3, 3.0):
            home = self.protected_home()
            fds, close = fds_with(PASS, NEW)
            try:
                p = subprocess.Popen([home.bin, "passphrase", "change", "--passphrase-fd", str(fds[0]),
                                      "--new-passphrase-fd", str(fds[1])], env=home.env, pass_fds=fds,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            finally:
                close()
            time.sleep(delay)  # the kill lands at a different step of each run
            p.kill()
            p.wait()
            if self.opens_with(home, PASS):
                outcomes.add("old")
            else:
                self.assertTrue(self.opens_with(home, NEW), "neither passphrase opens identity.age after %ss" % delay)
                outcomes.add("new")
        self.assertIn("old", outcomes)  # the early kills did land before the rename

    def test_the_passphrase_is_nowhere(self):
        home = self.new_home(init=False, serve=False)
        fds, close = fds_with(PASS, NEW)
        try:
            p = subprocess.Popen([home.bin, "init", "--passphrase-fd", str(fds[0])], env=home.env, pass_fds=fds,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        finally:
            close()
        seen = []

        def look():
            for name in ("cmdline", "environ"):
                try:
                    with open("/proc/%d/%s" % (p.pid, name), "rb") as f:
                        seen.append(f.read())
                except OSError:
                    pass
        look()
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        r = run_fds(home, "passphrase", "change", "--passphrase-fd", "{0}", "--new-passphrase-fd", "{1}",
                    values=[PASS, NEW])
        self.assert_ok(r)
        r2 = run_fds(home, "passphrase", "remove", "--passphrase-fd", "{0}", values=["wrong-" + NEW])
        for blob in seen + [out, err, r.out, r.err, r2.out, r2.err]:
            for secret in (PASS, NEW):
                self.assertNotIn(secret.encode(), blob)
        for root, _, files in os.walk(home.path):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
                for secret in (PASS, NEW):
                    self.assertNotIn(secret.encode(), data, name)


if __name__ == "__main__":
    harness.main()
