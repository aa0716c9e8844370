"""End-to-end tests of never-see mode, continued from test_proxy.py:
streaming both ways (SSE, 100 MB uploads and downloads, streams cut when
the lease ends), keep-alive, hop-by-hop headers and pipelining, then the
rest: connection floods, Expect: 100-continue, scrubbing of the value from
responses, hostile input, audit lines, status counts and no way out to
another host. The base class and HTTP helpers are in proxy_case.py."""

import hashlib
import http.client
import json
import os
import re
import secrets as pysecrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import BIN, binary_is_sanitized, wait_until  # noqa: E402
from upstream import PATTERN, PIECE, pattern_sha256  # noqa: E402
from proxy_case import MIB, PH_RE, VALUE, ProxyTestCase, bearer, raw_exchange, read_response, request, vm_kib  # noqa: E402


# ---------------------------------------------------------------- streaming

class ProxyStreaming(ProxyTestCase):
    def test_sse_is_streamed(self):
        h = self.proxy_home()
        self.add_proxy(h, "sse")
        ph = self.ph(h, "sse")
        tag = "sse-" + pysecrets.token_hex(4)
        c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=15)
        try:
            c.request("GET", "/sse/sse?n=50&delay=0.05&tag=" + tag, headers=bearer(ph))
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertTrue((r.getheader("Content-Type") or "").startswith("text/event-stream"), r.getheaders())
            first = r.readline()
            while first in (b"\n", b"\r\n"):
                first = r.readline()
            t_first = time.monotonic()
            self.assertEqual(first, b"data: 0\n")
            rest = r.read()
        finally:
            c.close()
        events = re.findall(rb"data: (\d+)\n\n", first + b"\n" + rest)
        self.assertEqual([int(e) for e in events], list(range(50)))
        times = self.up.sse_times[tag]
        self.assertEqual(len(times), 50)
        self.assertLess(t_first, times[-1], "the first event arrived only after the upstream sent the last one "
                        "(%.2fs after)" % (t_first - times[-1]))
        self.assertLess(t_first - times[0], 1.0, "the first event took %.2fs" % (t_first - times[0]))

    def memory_check(self, h, work):
        if binary_is_sanitized():
            self.skipTest("RSS checks do not apply to a sanitized binary")
        pid = h.status()["pid"]
        hwm0, rss0 = vm_kib(pid, "VmHWM"), vm_kib(pid, "VmRSS")
        work()
        hwm1, rss1 = vm_kib(pid, "VmHWM"), vm_kib(pid, "VmRSS")
        self.assertLess(hwm1 - hwm0, 40 * 1024, "VmHWM grew by %d KiB (%d -> %d)" % (hwm1 - hwm0, hwm0, hwm1))
        self.assertLess(rss1 - rss0, 40 * 1024, "VmRSS grew by %d KiB (%d -> %d)" % (rss1 - rss0, rss0, rss1))

    def test_100mb_upload_streams(self):
        h = self.proxy_home(total_timeout="120s")
        self.add_proxy(h, "upl")
        ph = self.ph(h, "upl")
        self.assertEqual(request(h.port, "POST", "/upl/upload", bearer(ph), b"warm-up").status, 200)
        n = 100 * MIB

        def gen():
            for _ in range(n // PIECE):
                yield PATTERN

        def upload(**kw):
            c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=120)
            try:
                c.request("POST", "/upl/upload", body=gen(), **kw)
                r = c.getresponse()
                data = r.read()
            finally:
                c.close()
            self.assertEqual(r.status, 200, data[:2000])
            echo = json.loads(data)
            self.assertEqual(echo["body_len"], n, echo)
            self.assertEqual(echo["body_sha256"], pattern_sha256(n), echo)

        def work():
            upload(headers=dict(bearer(ph), **{"Content-Length": str(n)}))
            # and chunked, no length announced
            upload(headers=bearer(ph), encode_chunked=True)

        self.memory_check(h, work)

    def test_100mb_download_streams(self):
        h = self.proxy_home(total_timeout="120s")
        self.add_proxy(h, "dl")
        ph = self.ph(h, "dl")
        self.assertEqual(request(h.port, "GET", "/dl/download?bytes=1000", bearer(ph)).status, 200)
        n = 100 * MIB

        def fetch(chunked):
            c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=120)
            try:
                c.request("GET", "/dl/download?bytes=%d&chunked=%d" % (n, chunked), headers=bearer(ph))
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                hsh, got = hashlib.sha256(), 0
                while True:
                    b = r.read(PIECE)
                    if not b:
                        break
                    hsh.update(b)
                    got += len(b)
            finally:
                c.close()
            self.assertEqual(got, n)
            self.assertEqual(hsh.hexdigest(), pattern_sha256(n))

        self.memory_check(h, lambda: (fetch(0), fetch(1)))

    def test_inflight_stream_cut_on_revoke(self):
        self.inflight_cut(lambda h, res: self.assert_ok(h.run("revoke", res["lease_id"])))

    def test_inflight_stream_cut_on_revoke_all(self):
        self.inflight_cut(lambda h, res: self.assert_ok(h.run("revoke", "--all")))

    def inflight_cut(self, revoke):
        h = self.proxy_home(total_timeout="60s")
        self.add_proxy(h, "cut")
        res = self.lease(h, "cut")
        tag = "cut-" + pysecrets.token_hex(4)
        c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
        try:
            c.request("GET", "/cut/sse?n=100&delay=0.1&tag=" + tag, headers=bearer(res["value"]))
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.readline(), b"data: 0\n")
            revoke(h, res)
            t_revoked = time.monotonic()
            got = b""
            try:
                while True:
                    line = r.readline()
                    if not line:
                        break
                    got += line
            except (http.client.IncompleteRead, ConnectionError):
                pass
            except socket.timeout:
                self.fail("the stream was still open %.1fs after the revoke" % (time.monotonic() - t_revoked))
            ended = time.monotonic() - t_revoked
        finally:
            c.close()
        self.assertLess(ended, 1.5, "the stream ended %.2fs after the revoke" % ended)
        self.assertLess(len(re.findall(rb"data: \d+", got)), 90, got)

    def test_keep_alive(self):
        h = self.proxy_home()
        self.add_proxy(h, "ka")
        ph = self.ph(h, "ka")
        c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
        try:
            c.request("GET", "/ka/echo?i=1", headers=bearer(ph))
            r1 = c.getresponse()
            b1 = r1.read()
            self.assertEqual(r1.status, 200, b1)
            self.assertFalse(r1.will_close, r1.getheaders())
            sock = c.sock
            self.assertIsNotNone(sock)
            c.request("POST", "/ka/echo?i=2", body=b"second", headers=bearer(ph))
            r2 = c.getresponse()
            b2 = r2.read()
            self.assertEqual(r2.status, 200, b2)
            self.assertIs(c.sock, sock, "the second request needed a new connection")
            self.assertEqual(json.loads(b1)["query"], "i=1")
            self.assertEqual(json.loads(b2)["query"], "i=2")
            self.assertEqual(json.loads(b2)["body_len"], 6)
        finally:
            c.close()

    def test_hop_by_hop_headers_dropped(self):
        h = self.proxy_home()
        self.add_proxy(h, "hop")
        ph = self.ph(h, "hop")
        resp = request(h.port, "GET", "/hop/hop", bearer(ph))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("x-kept"), "kept", resp)
        self.assertEqual(resp.json(), {"hop": True})
        self.assertNotEqual(resp.header("keep-alive"), "timeout=99", resp)
        self.assertIsNone(resp.header("proxy-connection"), resp)
        self.assertIsNone(resp.header("x-custom-hop"), "a header named in Connection was forwarded: %r" % (resp,))
        # and on the way up
        tag = pysecrets.token_hex(6)
        self.assertEqual(request(h.port, "GET", "/hop/echo?t=" + tag,
                                 dict(bearer(ph), **{"Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1",
                                                     "Keep-Alive": "timeout=42", "X-Kept": "1"})).status, 200)
        seen = self.seen(tag)[2]
        self.assertEqual(seen.get("x-kept"), "1", seen)
        self.assertNotEqual(seen.get("keep-alive"), "timeout=42", seen)
        self.assertNotIn("x-drop-me", seen, seen)

    def test_pipelining(self):
        h = self.proxy_home()
        self.add_proxy(h, "pl")
        ph = self.ph(h, "pl")
        req = ("GET /pl/echo?i=%d HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + ph + "\r\n\r\n")
        data = (req % 1).encode() + (("POST /pl/echo?i=2 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                                      "Content-Length: 5\r\n\r\nhello") % ph).encode() + (req % 3).encode()
        resps = raw_exchange(h.port, data, count=3)
        for i, resp in enumerate(resps, 1):
            self.assertIsNotNone(resp, "response %d missing" % i)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json()["query"], "i=%d" % i, resps)
        self.assertEqual(resps[1].json()["body_len"], 5)


# ---------------------------------------------------------------- scrubbing, hostile input, audit, status

class ProxyMisc(ProxyTestCase):
    def test_connection_flood_leaves_fds_for_the_daemon(self):
        # 2,000 idle proxy connections against a 1,024-fd daemon: the proxy closes
        # those that land in its reserve, so adds and leases over the socket go on.
        import resource
        limit = 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 2300:
            if hard < 2300:
                self.skipTest("needs RLIMIT_NOFILE above 2300 for the client side")
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        h = self.proxy_home()
        self.add_proxy(h, "fl")
        pid = h.status()["pid"]
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(2000):
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", h.port))
                socks.append(s)
            except OSError:
                s.close()
        time.sleep(0.5)
        self.assertLess(len(os.listdir("/proc/%d/fd" % pid)), limit - 200)
        h.add("during_flood", "v2")
        ph = self.ph(h, "fl")
        for s in socks[:100]:
            s.close()
        del socks[:100]
        time.sleep(0.2)
        resp = request(h.port, "GET", "/fl/echo", bearer(ph))
        self.assertEqual(resp.status, 200, resp)

    def test_expect_100_continue(self):
        # The agent waits for "100 Continue" before it sends its body.
        h = self.proxy_home()
        self.add_proxy(h, "ex")
        ph = self.ph(h, "ex")
        s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(("POST /ex/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n" % ph).encode())
        f = s.makefile("rb")
        self.assertEqual(f.readline(), b"HTTP/1.1 100 Continue\r\n")
        self.assertEqual(f.readline(), b"\r\n")
        s.sendall(b"hello")
        resp = read_response(f)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["body"], "hello")

    def test_scrubbing_response(self):
        h = self.proxy_home()
        self.add_proxy(h, "sb")
        self.add_proxy(h, "sh", VALUE, None, "--inject", "header:x-api-key")
        for name in ("sb", "sh"):
            with self.subTest(name=name):
                ph = self.ph(h, name)
                resp = request(h.port, "GET", "/%s/echo-key" % name, bearer(ph))
                self.assertEqual(resp.status, 200, resp)
                self.assertNotIn(VALUE.encode(), resp.body)
                for k, v in resp.headers:
                    self.assertNotIn(VALUE, v, (k, v))
                self.assertIn(ph.encode(), resp.body)
                self.assertIsNotNone(resp.header("x-echo"), resp)
                self.assertIn(ph, resp.header("x-echo"))
                body = resp.json()  # still valid JSON with a correct length
                if name == "sb":
                    self.assertEqual(body["authorization"], "Bearer " + ph, body)
                else:
                    self.assertEqual(body["x-api-key"], ph, body)
        # the upstream's echo of the injected Authorization header comes back scrubbed
        ph = self.ph(h, "sb")
        resp = request(h.port, "GET", "/sb/echo", bearer(ph))
        self.assertNotIn(VALUE.encode(), resp.body)
        self.assertIn(("Bearer " + ph).encode(), resp.body)

    def test_scrubbing_across_chunks(self):
        h = self.proxy_home()
        self.add_proxy(h, "sp")
        ph = self.ph(h, "sp")
        resp = request(h.port, "GET", "/sp/echo-key?split=1", bearer(ph))
        self.assertEqual(resp.status, 200, resp)
        self.assertNotIn(VALUE.encode(), resp.body)
        self.assertNotIn(VALUE[:len(VALUE) // 2].encode(), resp.body)
        self.assertEqual(resp.body, ("key=Bearer %s;end" % ph).encode())

    def test_hostile_input(self):
        h = self.proxy_home()
        self.add_proxy(h, "ho")
        ph = self.ph(h, "ho")
        cases = [
            ("garbage request line", b"GARBAGE\r\n\r\n"),
            ("binary request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
            ("header without colon", b"GET /ho/echo HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"),
            ("header with NUL", b"GET /ho/echo HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
            ("bad content-length", b"POST /ho/echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
        ]
        for label, data in cases:
            with self.subTest(label):
                resp = raw_exchange(h.port, data)[0]
                self.assertIsNotNone(resp, "%s: closed without a response" % label)
                self.assert_refused(resp, 400, "bad_request")
        # over 64 KiB of headers
        big = b"GET /ho/echo HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(100)) + b"\r\n"
        resp = raw_exchange(h.port, big)[0]
        if resp is not None:
            self.assert_refused(resp, 400, "bad_request")
        # a header block that never ends does not hang the proxy for others
        s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
        try:
            s.sendall(b"GET /ho/echo HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            resp = request(h.port, "GET", "/ho/echo", bearer(ph))
            self.assertEqual(resp.status, 200, resp)
        finally:
            s.close()
        self.assertEqual(request(h.port, "GET", "/ho/echo", bearer(ph)).status, 200)
        self.assert_serving(h)
        self.assertTrue(h.daemon.alive())

    def test_audit_lines(self):
        h = self.proxy_home()
        self.add_proxy(h, "au", VALUE, None, "--allow-method", "POST")
        res = self.lease(h, "au")
        ph = res["value"]
        self.assertEqual(request(h.port, "POST", "/au/echo?secret=query", bearer(ph), b"some body bytes").status, 200)
        # Without a valid placeholder: counted in status, not audited (anyone could send it).
        self.assertEqual(request(h.port, "GET", "/au/echo", bearer("as_" + "0" * 32)).status, 407)
        # With one, out of scope: audited.
        self.assertEqual(request(h.port, "GET", "/au/echo", bearer(ph)).status, 407)
        proxy_lines = lambda: [e for e in h.audit_entries() if e.get("action") == "proxy_request"]  # noqa: E731
        wait_until(lambda: len(proxy_lines()) >= 2, timeout=5)
        lines = proxy_lines()
        self.assertEqual(len(lines), 2, lines)
        # By status, not by order: a relayed request is audited once its
        # response has been sent, which may come after the refusal's line.
        ok, bad = sorted(lines, key=lambda e: e.get("status") != 200)
        self.assertEqual(ok.get("lease_id"), res["lease_id"], ok)
        self.assertEqual(ok.get("secret_name"), "au", ok)
        self.assertEqual(ok.get("method"), "POST", ok)
        self.assertIn("127.0.0.1", ok.get("host", ""), ok)
        self.assertEqual(ok.get("path"), "/v1/echo" if ok.get("path", "").startswith("/v1") else "/au/echo", ok)
        self.assertNotIn("?", ok["path"], ok)
        self.assertIs(type(ok.get("status")), int, ok)
        self.assertEqual(ok["status"], 200, ok)
        for f in ("bytes_in", "bytes_out"):
            self.assertIs(type(ok.get(f)), int, ok)
        self.assertGreaterEqual(ok["bytes_in"], len(b"some body bytes"), ok)
        self.assertGreater(ok["bytes_out"], 0, ok)
        self.assertIsInstance(ok.get("latency_ms"), (int, float), ok)
        self.assertIs(ok.get("success"), True, ok)
        self.assertEqual(bad.get("status"), 407, bad)
        self.assertIs(bad.get("success"), False, bad)
        self.assertEqual(bad.get("method"), "GET", bad)
        self.assertEqual(bad.get("details"), "out_of_scope", bad)
        self.assertEqual(bad.get("lease_id"), res["lease_id"], bad)
        self.assertEqual(h.status()["proxy"].get("refused_by_code"), {"unknown_placeholder": 1})
        log = h.read("audit.log")
        out = h.daemon_output().encode()
        for needle in (VALUE, ph, "some body bytes", "secret=query"):
            self.assertNotIn(needle.encode(), log, needle)
            self.assertNotIn(needle.encode(), out, needle)
        self.assert_ok(h.run("audit", "--verify"))

    def test_status_counts(self):
        h = self.proxy_home()
        st = h.status()["proxy"]
        self.assertEqual((st.get("requests"), st.get("errors"), st.get("active")), (0, 0, 0), st)
        self.add_proxy(h, "st")
        ph = self.ph(h, "st")
        self.assertEqual(request(h.port, "GET", "/st/echo", bearer(ph)).status, 200)
        self.assertEqual(request(h.port, "GET", "/st/echo", bearer(ph)).status, 200)
        self.assertEqual(request(h.port, "GET", "/st/echo").status, 407)
        self.assertEqual(request(h.port, "GET", "/nope/echo").status, 404)
        st = wait_until(lambda: (lambda p: p if p.get("requests") == 4 else None)(h.status()["proxy"]), timeout=5) \
            or h.status()["proxy"]
        self.assertEqual(st.get("requests"), 4, st)
        self.assertEqual(st.get("errors"), 2, st)
        self.assertEqual(st.get("active"), 0, st)
        self.assertEqual(st.get("listen"), "127.0.0.1:%d" % h.port, st)
        rpc = h.rpc("secrets.status")["result"]["proxy"]
        self.assertEqual(rpc.get("requests"), 4, rpc)

    def test_no_way_out(self):
        h = self.proxy_home()
        self.add_proxy(h, "tok")
        leak = VALUE.encode()
        seen = []

        def check(label, data):
            if isinstance(data, str):
                data = data.encode()
            seen.append(label)
            self.assertNotIn(leak, data, "%s leaked the value" % label)

        r = h.run("lease", "tok")
        check("lease", r.out + r.err)
        self.assertRegex(r.out.decode().strip(), PH_RE)
        r = h.run("lease", "tok", "--json")
        check("lease --json", r.out + r.err)
        for method, params in (("secrets.lease", {"secret_name": "tok", "client_id": "t", "ttl": "1m"}),
                               ("secrets.get", {"secret_name": "tok"}),
                               ("secrets.get", {"name": "tok"}),
                               ("secrets.list", None), ("secrets.leases", None),
                               ("secrets.audit", {"tail": 0}), ("secrets.status", None)):
            check("rpc " + method, json.dumps(h.rpc(method, params)))
        work = tempfile.mkdtemp(prefix="as-proxy-out-")
        self.addCleanup(shutil.rmtree, work, True)
        sj = os.path.join(work, ".secrets.json")
        with open(sj, "w") as f:
            f.write('{"secrets":[{"name":"tok","env_var":"TOK"}]}\n')
        r = h.run("exec", "--no-masking", "--file", sj, "--", "env")
        check("exec --file -- env", r.out + r.err)
        r = h.run("exec", "--no-masking", "--secret", "tok=TOK", "--", "sh", "-c", 'printf %s "$TOK"')
        check("exec --secret", r.out + r.err)
        if r.rc == 0:
            self.assertRegex(r.out.decode(), PH_RE, r)
        envf = os.path.join(work, ".env")
        r = h.run("env", "--output", envf, "--secret", "tok=TOK")
        check("env", r.out + r.err)
        if os.path.exists(envf):
            with open(envf, "rb") as f:
                content = f.read()
            check("env file", content)
            self.assertRegex(content.decode(), r"(?m)^(export )?TOK=['\"]?as_[0-9a-f]{32}['\"]?$", content)
        p = subprocess.run([BIN, "openclaw-resolve"], env=h.env, timeout=30, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE,
                           input=json.dumps({"protocolVersion": 1, "provider": "agent-secrets", "ids": ["tok"]}).encode())
        check("openclaw-resolve", p.stdout + p.stderr)
        if p.returncode == 0 and p.stdout.strip():
            got = json.loads(p.stdout).get("values", {}).get("tok")
            if got is not None:
                self.assertRegex(got, PH_RE, p.stdout)
        mcp_in = "\n".join(json.dumps(m) for m in (
            {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
             "params": {"name": "secrets_lease", "arguments": {"name": "tok", "reveal": True}}},
            {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "secrets_list", "arguments": {}}},
        )) + "\n"
        p = subprocess.run([BIN, "mcp"], env=h.env, timeout=30, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           input=mcp_in.encode())
        check("mcp", p.stdout + p.stderr)
        self.assertIn(b'"id":2', p.stdout.replace(b" ", b""), p.stdout)
        for cmd in (("list",), ("status",), ("health",), ("config",), ("audit", "--tail", "0")):
            r = h.run(*cmd)
            check(" ".join(cmd), r.out + r.err)
        check("audit.log", h.read("audit.log"))
        check("daemon output", h.daemon_output())
        # the value is still usable through the proxy only
        tag = pysecrets.token_hex(6)
        self.assertEqual(request(h.port, "GET", "/tok/echo?t=" + tag, bearer(self.ph(h, "tok"))).status, 200)
        self.assertEqual(self.seen(tag)[2].get("authorization"), "Bearer " + VALUE)

if __name__ == "__main__":
    harness.main()
