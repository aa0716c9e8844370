"""End-to-end tests of whom the proxy serves and what it lets back (issue 15,
items 3, 5 and the base_url line of 8), each replaying an attack that worked
against the proxy before:

- another local uid (`nobody`; the daemon runs as root in CI) connects to the
  loopback proxy with a placeholder it has seen: it must get 403 before its
  request is read, with nothing forwarded and nothing audited per request;
- another uid pipelines long paths to fill the owner's disk through
  proxy_request audit lines: audit.log must not grow;
- an upstream that echoes the key base64'd, percent-encoded, \\u-escaped,
  hex'd or inside a Basic header, or gzips it although we asked for identity:
  the agent must never get the value in any of those forms;
- the configured port is taken: status, lease and serve must say so, and
  `serve --require-proxy` must not run without the proxy;
- `http://127.evil.example` is a name, not a loopback address.
"""

import base64
import gzip
import json
import os
import socket
import subprocess
import sys
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import wait_until  # noqa: E402
from upstream import FORMS, free_port  # noqa: E402
from proxy_case import VALUE, ProxyTestCase, bearer, raw_exchange, request  # noqa: E402

NOBODY = harness.nobody_prefix()

# Runs as nobody: sends stdin (raw HTTP bytes as a JSON string) to the proxy on port
# argv[1], then reads until the proxy closes (argv[2]: the socket timeout) and
# prints {"responses": [[status, body], ...], "error": ...}.
CLIENT = r"""
import json, socket, sys
port, timeout, data = int(sys.argv[1]), float(sys.argv[2]), json.loads(sys.stdin.read()).encode("latin-1")
out = {"responses": [], "error": None}
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
    except OSError as e:
        out["error"] = "send: %s" % e
    buf = b""
    while True:
        try:
            chunk = s.recv(65536)
        except OSError as e:
            out["error"] = "recv: %s" % e
            break
        if not chunk:
            break
        buf += chunk
    while buf.startswith(b"HTTP/1."):
        head, _, rest = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        out["responses"].append([status, rest[:length].decode("latin-1")])
        buf = rest[length:]
except OSError as e:
    out["error"] = "connect: %s" % e
print(json.dumps(out))
"""


def value_forms(value):
    """Every form util::encoded_forms makes of `value` (the C++ list, rebuilt here):
    raw, percent (upper, lower, form), base64 and base64url cores at three
    alignments, hex (lower, upper), JSON short and \\u escapes."""
    b = value.encode()
    forms = {value}

    def pct(upper):
        return "".join(chr(c) if chr(c).isalnum() and c < 128 or chr(c) in "-._~"
                       else ("%%%02X" if upper else "%%%02x") % c for c in b)
    forms |= {pct(True), pct(False), pct(True).replace("%20", "+")}
    for align in range(3):
        padded = b"\0" * align + b
        first, last = (align * 8 + 5) // 6, len(padded) * 8 // 6
        for f in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(f(padded).decode()[first:last])
    forms |= {b.hex(), b.hex().upper()}
    short = json.dumps(value)[1:-1].replace("/", "\\/")
    forms |= {short, "".join("\\u%04x" % c for c in b), "".join("\\u%04X" % c for c in b)}
    return forms


class TrustCase(ProxyTestCase):
    def audit_size(self, h):
        return len(h.read("audit.log"))

    def proxy_lines(self, h):
        return [e for e in h.audit_entries() if e.get("action") == "proxy_request"]


@unittest.skipUnless(NOBODY is not None, "needs root, a nobody user and setpriv or runuser")
class OtherUser(TrustCase):
    """Our daemon (root); an agent running as nobody that saw a placeholder."""

    def as_nobody(self, port, data, timeout=10.0):
        prefix, _ = NOBODY
        p = subprocess.run(prefix + [sys.executable, "-c", CLIENT, str(port), str(timeout)],
                           input=json.dumps(data.decode("latin-1")).encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout + 30)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        return json.loads(p.stdout)

    def test_other_uid_with_a_seen_placeholder_gets_403_and_nothing_else(self):
        h = self.proxy_home()
        self.add_proxy(h, "api")
        ph = self.ph(h, "api")
        before = len(self.proxy_lines(h))
        tag = "nobody-%d" % time.monotonic_ns()
        req = ("GET /api/echo?t=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
               "Connection: close\r\n\r\n" % (tag, ph)).encode()
        out = self.as_nobody(h.port, req)
        self.assertEqual(len(out["responses"]), 1, out)
        status, body = out["responses"][0]
        self.assertEqual(status, 403, out)
        err = json.loads(body)["error"]
        self.assertEqual(err.get("type"), "agent_secrets_proxy", err)
        self.assertEqual(err.get("code"), "other_user", err)
        self.assertTrue(err.get("fix"), err)
        self.assertNotIn(VALUE, body)
        self.assertFalse([r for r in self.up.requests if tag in r[1]], "nobody's request reached the upstream")
        # The owner's agent still gets through, on the same placeholder.
        self.assertEqual(request(h.port, "GET", "/api/echo", bearer(ph)).status, 200)
        wait_until(lambda: len(self.proxy_lines(h)) > before, timeout=5)
        lines = self.proxy_lines(h)[before:]
        self.assertEqual(len(lines), 1, lines)  # the owner's request only
        self.assertEqual(lines[0].get("status"), 200, lines)
        st = h.status()["proxy"]
        self.assertGreaterEqual(st.get("refused_by_code", {}).get("other_user", 0), 1, st)
        self.assertGreaterEqual(st.get("refused", 0), 1, st)

    def test_other_uid_cannot_grow_the_audit_log(self):
        h = self.proxy_home()
        self.add_proxy(h, "api")
        self.ph(h, "api")
        h.add("plain", "plain-value-123")
        h.lease_json("plain")  # every line so far is durable once this returns
        size = self.audit_size(h)
        lines = self.proxy_lines(h)
        long_path = "/nosuch/" + "A" * 8000
        one = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % long_path).encode()
        unknown = self.as_nobody(h.port, one * 200, timeout=20)
        # The same to a known route.
        known = self.as_nobody(h.port, ("GET /api/%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("B" * 8000)).encode() * 50,
                               timeout=20)
        h.lease_json("plain")  # lines queued by the proxy before this are durable now
        grown = self.audit_size(h) - size
        self.assertLess(grown, 4096, "nobody grew audit.log by %d bytes" % grown)
        self.assertEqual(self.proxy_lines(h), lines, "nobody's requests were audited")
        self.assertNotIn(b"AAAAAAAAAA", h.read("audit.log"))
        for out in (unknown, known):
            self.assertEqual([status for status, _ in out["responses"]], [403], "one 403, then the proxy closed")


class Unauthenticated(TrustCase):
    """Our own uid: refusals before a valid placeholder are counted, not audited;
    audited paths are cut."""

    def test_refusals_without_a_placeholder_are_counted_not_audited(self):
        h = self.proxy_home()
        self.add_proxy(h, "api")
        ph = self.ph(h, "api")
        h.add("plain", "plain-value-123")
        h.lease_json("plain")
        size = self.audit_size(h)
        fake = "Authorization: Bearer as_%s\r\n" % ("0" * 32)
        reqs = b"".join(("GET /%s/%s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (route, "C" * 4000, auth)).encode()
                        for route, auth in (("nosuch", ""), ("api", fake), ("api", "")) for _ in range(30))
        got = raw_exchange(h.port, reqs + b"GET /api/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", count=91)
        statuses = [r.status for r in got if r is not None]
        self.assertEqual(statuses.count(404), 30, statuses)
        self.assertEqual(statuses.count(407), 61, statuses)
        h.lease_json("plain")
        self.assertEqual(self.proxy_lines(h), [], "unauthenticated refusals were audited")
        self.assertLess(self.audit_size(h) - size, 4096)
        st = h.status()["proxy"]
        by = st.get("refused_by_code", {})
        self.assertEqual(by.get("unknown_route"), 30, st)
        self.assertEqual(by.get("unknown_placeholder"), 30, st)
        self.assertEqual(by.get("missing_placeholder"), 31, st)
        self.assertEqual(st.get("refused"), 91, st)
        self.assertEqual(request(h.port, "GET", "/api/echo", bearer(ph)).status, 200)

    def test_audited_path_is_cut_to_256_bytes(self):
        h = self.proxy_home()
        self.add_proxy(h, "api", VALUE, self.up.url + "/v1", "--allow-method", "GET")
        res = self.lease(h, "api")
        ph = res["value"]
        long = "/" + "D" * 10000 + "/echo"
        self.assertEqual(request(h.port, "GET", "/api" + long, bearer(ph)).status, 200)
        resp = request(h.port, "POST", "/api" + long, bearer(ph), b"x")  # out of scope: audited too
        self.assert_refused(resp, 407, "out_of_scope")
        wait_until(lambda: len(self.proxy_lines(h)) >= 2, timeout=5)
        lines = self.proxy_lines(h)
        self.assertEqual(len(lines), 2, lines)
        for line in lines:
            self.assertLessEqual(len(line["path"].encode()), 256, line)
            self.assertTrue(line["path"].startswith("/v1/DDDD"), line)
            self.assertTrue(line["path"].endswith("..."), line)
        self.assertEqual(lines[1].get("details"), "out_of_scope", lines)
        self.assertEqual(lines[1].get("lease_id"), res["lease_id"], lines)


class Restart(TrustCase):
    def test_a_placeholder_still_works_after_a_restart(self):
        # Restored placeholders belong to the daemon's uid (the only one that can lease).
        h = self.proxy_home()
        self.add_proxy(h, "api")
        ph = self.ph(h, "api")
        h.restart()
        port = int(h.status()["proxy"]["listen"].rpartition(":")[2])
        self.assertEqual(request(port, "GET", "/api/echo", bearer(ph)).status, 200)


class PortTaken(TrustCase):
    def taken_home(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        port = blocker.getsockname()[1]
        h = self.new_home(serve=False)
        h.write_config({"proxy": {"listen": "127.0.0.1:%d" % port}})
        return h, port

    def test_status_lease_and_serve_say_the_proxy_is_not_running(self):
        h, port = self.taken_home()
        h.serve()
        r = h.run("status")
        st = self.assert_ok(r)
        self.assertIs(st["proxy"].get("enabled"), False, st)
        self.assertTrue(st.get("warnings"), st)
        self.assertIn(str(port), st["warnings"][0], st)
        self.assertIn(str(port), st.get("proxy_error", ""), st)
        self.assertIn(b"warning", r.err)
        self.assertIn(b"proxy", r.err)
        h.add("plain", "plain-value-123")
        for args in (("lease", "plain", "--json"), ("lease", "plain")):
            with self.subTest(args=args):
                r = h.run(*args)
                self.assertEqual(r.rc, 0, r)
                self.assertIn(b"warning: the proxy is not running", r.err, r)
                if "--json" in args:
                    res = r.env_out["result"]
                    self.assertTrue(res.get("warnings"), res)
                    self.assertIn(str(port), res.get("proxy_error", ""), res)
                else:
                    self.assertEqual(r.out.strip(), b"plain-value-123", r)
        self.add_proxy(h, "api")
        r = h.run("lease", "api", "--json")
        self.assert_err(r)
        self.assertIn(str(port), r.err.decode())
        out = h.daemon.output()
        self.assertIn("THE PROXY IS NOT RUNNING", out)
        self.assertIn(str(port), out)

    def test_require_proxy_refuses_to_serve_without_it(self):
        h, port = self.taken_home()
        d = h.start(["--require-proxy"])
        rc = d.proc.wait(timeout=20)
        self.assertNotEqual(rc, 0, d.output())
        with open(d.err_path, "rb") as f:
            err = f.read()
        # The error envelope is the last thing serve wrote to stderr (the log comes before it).
        env = json.loads(err[err.rindex(b'{\n  "ok": false'):])
        self.assertIs(env.get("ok"), False, env)
        self.assertIn(str(port), env["error"]["message"], env)
        self.assertTrue(env.get("fix"), env)
        self.assertFalse(os.path.exists(h.socket), "the socket file was left behind")
        self.assertNotEqual(h.run("status").rc, 0)
        # With the port free, --require-proxy serves.
        h.write_config({"proxy": {"listen": "127.0.0.1:%d" % free_port()}})
        d = h.start(["--require-proxy"])
        h.wait_ready(d)
        h.daemon = d
        st = h.status()
        self.assertIs(st["proxy"].get("enabled"), True, st)
        self.assertNotIn("warnings", st, st)


# A value whose encodings differ from it: '/', '+', '=' and '"' change under
# percent, base64 and JSON escaping.
ODD_VALUE = 'sk-live/REAL+val=ue"7f3a9c51'


class Scrubbing(TrustCase):
    def setUp(self):
        self.h = self.proxy_home()

    def assert_no_form(self, resp, value, label):
        texts = [resp.body.decode("latin-1")] + ["%s: %s" % kv for kv in resp.headers]
        for form in value_forms(value):
            for text in texts:
                self.assertNotIn(form, text, "%s: the %r form of the value came back" % (label, form))

    def test_echoed_encodings_are_scrubbed(self):
        for value in (VALUE, ODD_VALUE):
            name = "enc%d" % len(value)
            self.add_proxy(self.h, name, value)
            ph = self.ph(self.h, name)
            for enc in FORMS + ["all"]:
                for split in (0, 1, 5):
                    label = "%s enc=%s split=%d" % (name, enc, split)
                    with self.subTest(label):
                        resp = request(self.h.port, "GET", "/%s/echo-forms?enc=%s&split=%d" % (name, enc, split),
                                       bearer(ph))
                        self.assertEqual(resp.status, 200, resp)
                        self.assert_no_form(resp, value, label)
                        if enc in ("raw", "percent", "unicode", "hex"):
                            self.assertIn(ph.encode(), resp.body, label)

    def test_basic_header_echo_is_scrubbed(self):
        self.add_proxy(self.h, "bas", "user:" + VALUE, None, "--inject", "basic")
        ph = self.ph(self.h, "bas")
        for split in (0, 3):
            resp = request(self.h.port, "GET", "/bas/echo-forms?enc=basic&split=%d" % split, bearer(ph))
            self.assertEqual(resp.status, 200, resp)
            sent = "Basic " + base64.b64encode(("user:" + VALUE).encode()).decode()
            self.assertNotIn(sent.encode(), resp.body)
            self.assertNotIn(sent, resp.header("x-echo-form") or "")
            self.assert_no_form(resp, "user:" + VALUE, "basic split=%d" % split)

    def test_compressed_answers_are_decoded_and_scrubbed(self):
        self.add_proxy(self.h, "gz")
        ph = self.ph(self.h, "gz")
        for coding in ("gzip", "x-gzip", "deflate", "raw-deflate"):
            for chunked in (0, 1):
                label = "coding=%s chunked=%d" % (coding, chunked)
                with self.subTest(label):
                    resp = request(self.h.port, "GET", "/gz/gzip-key?coding=%s&chunked=%d" % (coding, chunked),
                                   bearer(ph))
                    self.assertEqual(resp.status, 200, resp)
                    body = resp.body
                    enc = resp.header("content-encoding")
                    if enc:  # passed on compressed: look inside, as the agent's client would
                        body = gzip.decompress(body) if "gzip" in enc else zlib.decompress(body, -15 if coding == "raw-deflate" else 15)
                    self.assertNotIn(VALUE.encode(), body, label)
                    self.assertIsNone(enc, "%s: passed on compressed" % label)
                    self.assertEqual(json.loads(body)["authorization"], "Bearer " + ph, label)

    def test_a_coding_the_proxy_cannot_decode_is_refused(self):
        self.add_proxy(self.h, "br")
        ph = self.ph(self.h, "br")
        for chunked in (0, 1):
            resp = request(self.h.port, "GET", "/br/gzip-key?coding=br&chunked=%d" % chunked, bearer(ph))
            self.assertNotIn(VALUE.encode(), resp.body)
            self.assert_refused(resp, 502, "upstream_encoding")
        # The connection and the proxy go on.
        self.assertEqual(request(self.h.port, "GET", "/br/echo", bearer(ph)).status, 200)


class BaseUrl(TrustCase):
    def test_http_base_url_must_be_a_literal_loopback_address(self):
        h = self.proxy_home()
        for i, url in enumerate(["http://127.evil.example/v1", "http://127.0.0.1.nip.io", "http://127.1",
                                 "http://localhost.evil.example"]):
            with self.subTest(url=url):
                r = h.run("add", "bad%d" % i, "--proxy-only", "--base-url", url, input=VALUE)
                err = self.assert_err(r)
                self.assertIn("loopback", err["error"]["message"], err)
        names = [s["name"] for s in h.run_json("list")["secrets"]]
        self.assertEqual([n for n in names if n.startswith("bad")], [], names)
        for i, url in enumerate(["http://127.0.0.1:1/x", "http://127.9.8.7:1", "http://localhost:1",
                                 "http://[::1]:1/v", "https://127.evil.example"]):
            with self.subTest(url=url):
                self.add_proxy(h, "good%d" % i, VALUE, url)


if __name__ == "__main__":
    harness.main()
