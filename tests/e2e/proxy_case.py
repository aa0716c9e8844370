"""The shared part of the proxy's end-to-end tests (test_proxy*.py): the
value and placeholder shape, raw HTTP helpers (one request, a raw exchange,
a response reader) and ProxyTestCase, whose class set-up starts the local
upstreams (plain and TLS) that every proxy test sends to."""

import http.client
import json
import os
import re
import shutil
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import E2ETestCase  # noqa: E402
from upstream import Upstream, make_ca  # noqa: E402

VALUE = "sk-live-REALVALUE-7f3a9c51"
PH_RE = re.compile(r"^as_[0-9a-f]{32}$")
MIB = 1024 * 1024


# ---------------------------------------------------------------- HTTP helpers

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (lowercased name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "Resp(%r, %r, %r)" % (self.status, self.headers, self.body[:2000])


def request(port, method, path, headers=None, body=None, timeout=15.0):
    """One request on a new http.client connection to the proxy."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return Resp(r.status, [(k.lower(), v) for k, v in r.getheaders()], data)
    finally:
        c.close()


def bearer(ph):
    return {"Authorization": "Bearer " + ph}


def read_response(f):
    """Parses one HTTP/1.x response from a binary file object; None on a clean EOF before it."""
    line = f.readline(70000)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise AssertionError("not an HTTP status line: %r" % (line,))
    status = int(parts[1])
    headers = []
    while True:
        l = f.readline(70000)
        if l in (b"\r\n", b"\n", b""):
            break
        k, _, v = l.decode("latin-1").partition(":")
        headers.append((k.strip().lower(), v.strip()))
    hd = dict(headers)
    if "chunked" in hd.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size_line = f.readline(1000)
            if not size_line:
                break
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline(70000) not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += f.read(size)
            f.readline(3)
    elif "content-length" in hd:
        body = f.read(int(hd["content-length"]))
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = f.read()
    return Resp(status, headers, body)


def raw_exchange(port, data, timeout=10.0, count=1):
    """Sends raw bytes, reads `count` responses. Returns a list (a None entry: closed
    before a response). A send failing because the peer closed is not an error."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        f = s.makefile("rb")
        out = []
        for _ in range(count):
            try:
                out.append(read_response(f))
            except (ConnectionResetError, BrokenPipeError):
                out.append(None)
        return out
    finally:
        s.close()


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


# ---------------------------------------------------------------- the test base

class ProxyTestCase(E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="as-proxy-")
        cls.tls = make_ca(cls.tmp, "good")
        cls.other_tls = make_ca(cls.tmp, "other")
        cls.up = Upstream()
        cls.tls_up = Upstream(cls.tls)

    @classmethod
    def tearDownClass(cls):
        cls.up.close()
        cls.tls_up.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # homes
    def proxy_home(self, ca_file=None, **proxy):
        cfg = {"listen": "127.0.0.1:0", "connect_timeout": "2s", "total_timeout": "10s",
               "max_body_bytes": 256 * MIB, "max_concurrent": 16}
        if ca_file:
            cfg["ca_file"] = ca_file
        cfg.update(proxy)
        home = self.new_home(serve=False)
        home.write_config({"proxy": cfg})
        home.serve()
        st = home.status()
        self.assertIn("proxy", st, st)
        self.assertIs(st["proxy"].get("enabled"), True, st)
        listen = st["proxy"]["listen"]
        host, _, port = listen.rpartition(":")
        self.assertEqual(host, "127.0.0.1", st)
        home.port = int(port)
        self.assertNotEqual(home.port, 0, st)
        return home

    def add_proxy(self, home, name, value=VALUE, base_url=None, *flags):
        base_url = base_url if base_url is not None else self.up.url + "/v1"
        return home.add(name, value, "--proxy-only", "--base-url", base_url, *flags)

    def lease(self, home, name, *flags):
        """lease --json on a proxy-only secret; checks the envelope; returns the result."""
        res = home.lease_json(name, *flags)
        self.assertRegex(res.get("value", ""), PH_RE, res)
        self.assertNotEqual(res["value"], VALUE)
        self.assertIs(res.get("proxy"), True, res)
        self.assertEqual(res.get("proxy_url"), "http://127.0.0.1:%d/%s" % (home.port, name), res)
        self.assertIsInstance(res.get("lease_id"), str, res)
        return res

    def ph(self, home, name, *flags):
        return self.lease(home, name, *flags)["value"]

    def seen(self, tag, up=None):
        """The request the upstream received whose path contains tag: (method, path, headers)."""
        up = up or self.up
        hits = [r for r in up.requests if tag in r[1]]
        self.assertEqual(len(hits), 1, "upstream saw %d requests with %s: %r" % (len(hits), tag, up.requests[-5:]))
        return hits[0]

    def assert_refused(self, resp, status, code):
        self.assertEqual(resp.status, status, resp)
        try:
            body = resp.json()
        except ValueError:
            self.fail("refusal body is not JSON: %r" % (resp,))
        err = body.get("error")
        self.assertIsInstance(err, dict, body)
        self.assertEqual(err.get("type"), "agent_secrets_proxy", body)
        self.assertEqual(err.get("code"), code, body)
        self.assertIsInstance(err.get("message"), str, body)
        self.assertTrue(err["message"], body)
        self.assertIsInstance(err.get("fix"), str, body)
        self.assertTrue(err["fix"].strip(), body)
        self.assertNotIn(VALUE.encode(), resp.body)
        return err

    def assert_no_placeholder_upstream(self, seen, ph):
        method, path, headers = seen
        self.assertNotIn(ph, path, seen)
        for k, v in headers.items():
            self.assertNotIn(ph, v, "placeholder reached upstream in header %s: %r" % (k, seen))
