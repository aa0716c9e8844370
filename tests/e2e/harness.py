"""Shared helpers for the end-to-end tests of `secrets` (stdlib only).

Every test drives the real binary (env SECRETS_BIN, default build/secrets of
this checkout, where `make build` puts it) in a throw-away AGENT_SECRETS_HOME:

    home = Home()                 # mkdtemp, chmod 0700, `secrets init`
    home.serve()                  # `secrets serve` in the background, waits for the socket
    r = home.run("lease", "x")    # Result(rc, out, err, env)
    with home.connect() as c:     # raw JSON-RPC over the Unix socket
        c.call("secrets.status")
    home.stop()                   # SIGTERM and wait
    home.cleanup()                # always kills the daemon, removes the dirs

The daemon's stdout/stderr go to files in a separate temp dir (never the
home). A test file ends with `harness.main()`, which runs the module's
TestCases, prints a final line `N passed, M failed` and exits non-zero on any
failure. The helpers that need no Home (times, Go durations, polling, the raw
JSON-RPC client RpcConn) live in harness_util.py; they are imported from here.
"""

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Re-exported: tests import these from harness.
from harness_util import (  # noqa: E402,F401
    RFC3339_RE,
    UUID4_RE,
    Closed,
    RpcConn,
    age_decrypt,
    file_mode,
    go_duration_seconds,
    nobody_prefix,
    now_utc,
    parse_time,
    walk_json,
    wait_until,
)

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.environ.get("SECRETS_BIN", os.path.join(REPO, "build", "secrets"))

SOCKET_NAME = "agent-secrets.sock"
READY_TIMEOUT = 10.0
CMD_TIMEOUT = 30.0


_live_procs = []  # every daemon we started; killed at exit whatever happens


def _kill_all():
    for p in _live_procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except Exception:
                pass


atexit.register(_kill_all)


def _parse_envelope(data):
    if not data:
        return None
    text = data.decode("utf-8", "replace").strip()
    try:
        v = json.loads(text)
        return v if isinstance(v, dict) else None
    except ValueError:
        pass
    # stderr may carry other lines (warnings) around the envelope.
    start = text.find("{")
    while start != -1:
        try:
            v, _ = json.JSONDecoder().raw_decode(text[start:])
            if isinstance(v, dict) and "ok" in v:
                return v
        except ValueError:
            pass
        start = text.find("{", start + 1)
    return None


class Result:
    """A finished CLI command."""

    def __init__(self, args, rc, out, err):
        self.args = args
        self.rc = rc
        self.out = out
        self.err = err
        self.env_out = _parse_envelope(out)
        self.env_err = _parse_envelope(err)

    @property
    def env(self):
        """The JSON envelope: from stdout, else from stderr."""
        return self.env_out if self.env_out is not None else self.env_err

    def __repr__(self):
        return "Result(args=%r, rc=%r, stdout=%r, stderr=%r)" % (
            self.args, self.rc, self.out[:2000], self.err[:2000])


# ---------------------------------------------------------------- the home and its daemon

class Daemon:
    def __init__(self, proc, out_path, err_path):
        self.proc = proc
        self.out_path = out_path
        self.err_path = err_path

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        text = ""
        for p in (self.out_path, self.err_path):
            try:
                with open(p, "rb") as f:
                    text += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return text

    def terminate(self, timeout=10.0):
        """SIGTERM and wait; returns the exit code (kills and fails loudly on timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("daemon did not stop within %.0fs after SIGTERM; output:\n%s"
                                 % (timeout, self.output()))

    def kill(self):
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        return self.proc.returncode


class Home:
    """A temporary AGENT_SECRETS_HOME plus a separate temp dir for daemon output.

    `as_user` is an argv prefix (e.g. setpriv ...) used for init/serve/run when
    the daemon must run as another user; `bin` is the binary to run instead of
    SECRETS_BIN (test_deb.py: the one unpacked from the .deb).
    """

    def __init__(self, init=True, as_user=None, bin=None):
        self.bin = bin or BIN
        self.path = tempfile.mkdtemp(prefix="as-home-")
        os.chmod(self.path, 0o700)
        self.logs = tempfile.mkdtemp(prefix="as-logs-")
        self.as_user = list(as_user or [])
        self.daemon = None
        self._daemons = []
        self._serial = 0
        self.env = dict(os.environ)
        self.env.pop("AGENT_SECRETS_SOCKET", None)
        self.env["AGENT_SECRETS_HOME"] = self.path
        if init:
            r = self.run("init")
            if r.rc != 0:
                raise AssertionError("secrets init failed: %r" % (r,))

    # paths
    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def socket(self):
        return self.file(SOCKET_NAME)

    # CLI
    def run(self, *args, input=b"", timeout=CMD_TIMEOUT, env=None, user=True, pass_fds=()):
        if isinstance(input, str):
            input = input.encode()
        argv = (self.as_user if user else []) + [self.bin] + [str(a) for a in args]
        e = dict(self.env)
        if env:
            for k, v in env.items():
                if v is None:
                    e.pop(k, None)
                else:
                    e[k] = v
        p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=e, timeout=timeout, pass_fds=pass_fds)
        return Result(list(args), p.returncode, p.stdout, p.stderr)

    def run_json(self, *args, **kw):
        """Runs a command that must succeed; returns its envelope's result."""
        r = self.run(*args, **kw)
        if r.rc != 0 or r.env_out is None or r.env_out.get("ok") is not True:
            raise AssertionError("secrets %s failed: %r" % (" ".join(map(str, args)), r))
        return r.env_out["result"]

    def add(self, name, value, *flags):
        r = self.run("add", name, *flags, input=value)
        if r.rc != 0:
            raise AssertionError("secrets add %s failed: %r" % (name, r))
        return r

    def allow_hook(self, name, command):
        """`secrets hook allow`: a recorded rotate_via runs only once hooks.json allows it."""
        return self.run_json("hook", "allow", name, command)

    def lease_json(self, name, *flags):
        return self.run_json("lease", name, "--json", *flags)

    def status(self):
        return self.run_json("status")

    # daemon
    def start(self, extra_args=(), stdin=subprocess.DEVNULL):
        """Starts `secrets serve` without waiting for it (`stdin`: a file or fd for
        `serve --passphrase-fd 0`)."""
        self._serial += 1
        out_path = os.path.join(self.logs, "serve-%d.out" % self._serial)
        err_path = os.path.join(self.logs, "serve-%d.err" % self._serial)
        with open(out_path, "wb") as fo, open(err_path, "wb") as fe:
            proc = subprocess.Popen(self.as_user + [self.bin, "serve"] + list(extra_args), env=self.env,
                                    stdin=stdin, stdout=fo, stderr=fe,
                                    start_new_session=True)
        _live_procs.append(proc)
        d = Daemon(proc, out_path, err_path)
        self._daemons.append(d)
        return d

    def start_with_passphrase(self, passphrase, extra_args=()):
        """Starts `secrets serve --passphrase-fd 0` with `passphrase` on a pipe
        (then EOF) for a passphrase-protected identity.age, without waiting."""
        r, w = os.pipe()
        os.write(w, passphrase.encode())
        os.close(w)
        try:
            return self.start(["--passphrase-fd", "0"] + list(extra_args), stdin=r)
        finally:
            os.close(r)

    def serve(self, probe="rpc"):
        """Starts the daemon and waits until it answers (probe="rpc": secrets.status
        over the socket; "connect": a bare connect, for a daemon that refuses us)."""
        d = self.start()
        self.wait_ready(d, probe)
        self.daemon = d
        return d

    def wait_ready(self, d, probe="rpc", timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if d.proc.poll() is not None:
                raise AssertionError("secrets serve exited with %s before it was ready; output:\n%s"
                                     % (d.proc.returncode, d.output()))
            try:
                with RpcConn(self.socket, timeout=2.0) as c:
                    if probe == "connect":
                        return
                    reply = c.call("secrets.status", timeout=max(0.5, deadline - time.monotonic()))
                    if "result" in reply and reply["result"].get("pid") in (None, d.pid):
                        return
                    last = reply
            except (OSError, TimeoutError, Closed, ValueError) as e:
                last = e
            time.sleep(0.05)
        d.kill()
        raise AssertionError("daemon not ready within %.0fs (last: %r); output:\n%s" % (timeout, last, d.output()))

    def stop(self, timeout=10.0):
        """SIGTERM the current daemon and wait; returns its exit code."""
        d, self.daemon = self.daemon, None
        return d.terminate(timeout) if d else None

    def kill(self):
        """SIGKILL the current daemon (leaves a stale socket behind)."""
        d, self.daemon = self.daemon, None
        return d.kill() if d else None

    def restart(self):
        self.stop()
        return self.serve()

    def serve_expect_exit(self, timeout=10.0):
        """Runs `secrets serve` expecting it to refuse to start. Returns a Result;
        rc is None if it was still running after timeout (then it is killed)."""
        d = self.start()
        try:
            rc = d.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            d.kill()
            rc = None
        with open(d.out_path, "rb") as f:
            out = f.read()
        with open(d.err_path, "rb") as f:
            err = f.read()
        return Result(["serve"], rc, out, err)

    def connect(self, timeout=10.0):
        return RpcConn(self.socket, timeout)

    def rpc(self, method, params=None, timeout=10.0):
        """One request on a fresh connection; returns the whole reply."""
        with self.connect() as c:
            return c.call(method, params, timeout=timeout)

    # files
    def write_config(self, config, mode=0o600):
        """Writes config.json (a dict is dumped as JSON, a str/bytes is written as is)."""
        if isinstance(config, dict):
            config = json.dumps(config, indent=2)
        if isinstance(config, str):
            config = config.encode()
        path = self.file("config.json")
        with open(path, "wb") as f:
            f.write(config)
        os.chmod(path, mode)
        return path

    def read(self, name):
        with open(self.file(name), "rb") as f:
            return f.read()

    def audit_lines(self):
        """audit.log as raw lines (bytes, without newline)."""
        data = self.read("audit.log")
        return data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")

    def audit_entries(self):
        return [json.loads(l) for l in self.audit_lines() if l.strip()]

    def daemon_output(self):
        return "".join(d.output() for d in self._daemons)

    def cleanup(self):
        for d in self._daemons:
            d.kill()
        self.daemon = None
        shutil.rmtree(self.path, ignore_errors=True)
        shutil.rmtree(self.logs, ignore_errors=True)


# ---------------------------------------------------------------- test base

class E2ETestCase(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
            raise AssertionError("no secrets binary at %s (set SECRETS_BIN)" % BIN)

    def new_home(self, init=True, serve=True, as_user=None, bin=None):
        home = Home(init=init, as_user=as_user, bin=bin)
        self.addCleanup(home.cleanup)
        if serve:
            home.serve()
        return home

    # envelopes
    def assert_actions(self, env):
        self.assertIn("next_actions", env, env)
        self.assertIsInstance(env["next_actions"], list, env)
        for a in env["next_actions"]:
            self.assertIsInstance(a, dict, env)
            self.assertIsInstance(a.get("command"), str, env)
            self.assertIsInstance(a.get("description"), str, env)
            self.assertTrue(a["command"], env)

    def assert_ok(self, r, command=None):
        """A successful command: exit 0 and a success envelope on stdout. Returns result."""
        self.assertEqual(r.rc, 0, r)
        env = r.env_out
        self.assertIsNotNone(env, "no JSON envelope on stdout: %r" % (r,))
        self.assertIs(env.get("ok"), True, env)
        self.assertIs(env.get("success"), True, env)
        if command is not None:
            self.assertEqual(env.get("command"), command, env)
        self.assertIn("result", env, env)
        self.assertNotIn("error", env, env)
        self.assert_actions(env)
        return env["result"]

    def assert_err(self, r, rc=None, code=None, stream="stderr"):
        """A failed command: non-zero exit, an error envelope on `stream` (stderr:
        $(secrets ...) never captures an error). Returns the envelope."""
        self.assertNotEqual(r.rc, 0, r)
        if rc is not None:
            self.assertEqual(r.rc, rc, r)
        env = r.env_out if stream == "stdout" else r.env_err
        self.assertIsNotNone(env, "no JSON error envelope on %s: %r" % (stream, r))
        if stream == "stderr":
            self.assertIsNone(r.env_out, "an envelope on stdout as well: %r" % (r,))
        self.assertIs(env.get("ok"), False, env)
        self.assertIs(env.get("success"), False, env)
        self.assertIsInstance(env.get("command"), str, env)
        self.assertIsInstance(env.get("error"), dict, env)
        self.assertIsInstance(env["error"].get("message"), str, env)
        self.assertTrue(env["error"]["message"], env)
        self.assertIsInstance(env["error"].get("code"), str, env)
        self.assertTrue(env["error"]["code"], env)
        self.assertIsInstance(env.get("fix"), str, env)
        self.assertTrue(env["fix"].strip(), env)
        self.assertNotIn("result", env, env)
        if code is not None:
            self.assertEqual(env["error"]["code"], code, env)
        return env

    def assert_rpc_error(self, reply, code, id=Ellipsis):
        self.assertEqual(reply.get("jsonrpc"), "2.0", reply)
        self.assertIn("error", reply, reply)
        self.assertNotIn("result", reply, reply)
        self.assertEqual(reply["error"].get("code"), code, reply)
        self.assertIsInstance(reply["error"].get("message"), str, reply)
        if id is not Ellipsis:
            self.assertIn("id", reply, reply)
            self.assertEqual(reply["id"], id, reply)
        return reply["error"]

    def assert_serving(self, home):
        """The daemon still answers secrets.status on a new connection."""
        reply = home.rpc("secrets.status")
        self.assertIn("result", reply, reply)
        self.assertIs(reply["result"].get("running"), True, reply)


# ---------------------------------------------------------------- runner

def main():
    """Runs the TestCases of the calling (__main__) module; prints `N passed, M failed`."""
    module = sys.modules["__main__"]
    argv = sys.argv[1:]
    loader = unittest.defaultTestLoader
    if argv:
        suite = unittest.TestSuite(loader.loadTestsFromName(name, module) for name in argv)
    else:
        suite = loader.loadTestsFromModule(module)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2)
    start = time.monotonic()
    result = runner.run(suite)
    _kill_all()
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    sys.stdout.flush()
    print("binary: %s; %.1fs; %d skipped" % (BIN, time.monotonic() - start, skipped))
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    sys.exit(1 if failed or result.testsRun == 0 else 0)


def binary_is_sanitized(path=None):
    """True if the binary links AddressSanitizer (`make asan`): valgrind cannot run
    it, and its allocator keeps freed memory (quarantine), so RSS checks do not apply."""
    try:
        with open(path or BIN, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False
