"""The e2e tests' helpers that need no daemon of their own: times and
durations as the daemon writes them, JSON walking, the stock `age` CLI, a
way to run as `nobody`, polling for a condition, and a raw JSON-RPC client
over the daemon's socket. harness.py re-exports every name here, so a test
imports them from harness as before (stdlib only)."""

import datetime as _dt
import json
import os
import re
import shutil
import socket
import subprocess
import time

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339_RE = re.compile(r"^(\d{4}-\d\d-\d\d)[Tt](\d\d:\d\d:\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


# ---------------------------------------------------------------- utilities

def parse_time(s):
    """RFC 3339 (any number of fraction digits, Z or offset) -> aware datetime (micro precision)."""
    m = RFC3339_RE.match(s)
    if not m:
        raise ValueError("not an RFC 3339 time: %r" % (s,))
    date, clock, frac, tz = m.groups()
    frac = (frac or ".0")[1:][:6].ljust(6, "0")
    tz = "+00:00" if tz in ("Z", "z") else tz
    return _dt.datetime.fromisoformat("%sT%s.%s%s" % (date, clock, frac, tz))


def now_utc():
    return _dt.datetime.now(_dt.timezone.utc)


def go_duration_seconds(s):
    """Parses a Go duration like 1h0m0s, 30m, 1.5s -> float seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)", s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise ValueError("not a Go duration: %r" % (s,))
    for num, unit in parts:
        total += float(num) * units[unit]
    return total


def walk_json(obj):
    """Yields (key, value) for every member at any depth."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from walk_json(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk_json(v)



def age_decrypt(home):
    """The store decrypted by Debian's stock `age` CLI: it must read our file."""
    p = subprocess.run(["age", "-d", "-i", home.file("identity.age"), home.file("secrets.age")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if p.returncode != 0:
        raise AssertionError("age -d failed: %r" % (p.stderr,))
    return json.loads(p.stdout)

def nobody_prefix():
    """(argv prefix that runs a command as `nobody`, its pwd entry), or None
    when we are not root or have no way to switch."""
    import pwd
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return None
    if shutil.which("setpriv"):
        return ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--clear-groups", "--"], pw
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"], pw
    return None


def wait_until(predicate, timeout=5.0, interval=0.05):
    """Polls predicate() until it returns a truthy value or timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def file_mode(path):
    return os.stat(path).st_mode & 0o777


# ---------------------------------------------------------------- raw JSON-RPC

class Closed(Exception):
    """The daemon closed the connection."""


class RpcConn:
    """A raw client: send bytes, read reply lines with timeouts."""

    def __init__(self, path, timeout=10.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def request(self, method, params=None, id=Ellipsis, **extra):
        """Builds a request object. id=Ellipsis allocates one; id=None omits it."""
        req = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            req["params"] = params
        if id is Ellipsis:
            id = self.next_id
            self.next_id += 1
        if id is not None:
            req["id"] = id
        req.update(extra)
        return req

    def send(self, obj):
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def read_line(self, timeout=10.0):
        """The next line without its newline. Raises Closed on EOF/reset, TimeoutError on timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                raise Closed("connection closed; %d unterminated bytes" % len(self.buf))
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply line within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                raise TimeoutError("no reply line within %.1fs" % timeout)
            except (ConnectionResetError, BrokenPipeError):
                self.eof = True
                continue
            if not chunk:
                self.eof = True
                continue
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def read_json(self, timeout=10.0):
        return json.loads(self.read_line(timeout))

    def call(self, method, params=None, id=Ellipsis, timeout=10.0):
        """Sends one request and returns the whole reply object (result or error)."""
        req = self.request(method, params, id)
        self.send(req)
        return self.read_json(timeout)

    def result(self, method, params=None, timeout=10.0):
        reply = self.call(method, params, timeout=timeout)
        if "error" in reply:
            raise AssertionError("%s failed: %r" % (method, reply))
        return reply["result"]

    def wait_closed(self, timeout=5.0):
        """True if the daemon closes the connection within timeout (pending lines are discarded)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.read_line(max(0.01, deadline - time.monotonic()))
            except Closed:
                return True
            except TimeoutError:
                return False
