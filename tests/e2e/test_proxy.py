"""End-to-end tests of never-see mode: the credential-injecting HTTP proxy in
the daemon. A proxy-only secret is leased as a placeholder (`as_` + 32 hex);
requests to http://127.0.0.1:PORT/NAME/... carrying it go to the secret's
base_url with the real value injected, and the value never comes back.

Every upstream is a local server from upstream.py on 127.0.0.1; the proxy
always listens on 127.0.0.1:0 and its port is read from `secrets status`.

This file: the CLI surface, injection (every way a value goes upstream) and
refusals (scope, ended placeholders, limits). Streaming, keep-alive and the
rest are in test_proxy_streams.py; the base class in proxy_case.py."""

import base64
import hashlib
import http.client
import json
import os
import secrets as pysecrets
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from upstream import free_port  # noqa: E402
from proxy_case import PH_RE, VALUE, ProxyTestCase, Resp, bearer, raw_exchange, request  # noqa: E402


# ---------------------------------------------------------------- CLI surface

class ProxyCli(ProxyTestCase):
    def test_lease_prints_placeholder_not_value(self):
        h = self.proxy_home()
        self.add_proxy(h, "api")
        r = h.run("lease", "api")
        self.assertEqual(r.rc, 0, r)
        ph = r.out.decode().strip()
        self.assertRegex(ph, PH_RE, r)
        self.assertNotIn(VALUE.encode(), r.out + r.err)
        res = self.lease(h, "api")
        self.assertNotEqual(res["value"], ph, "two leases share a placeholder")

    def test_list_shows_proxy_fields(self):
        h = self.proxy_home()
        self.add_proxy(h, "api", VALUE, self.up.url + "/v1", "--allow-method", "GET,POST",
                       "--allow-path", "/v1/a", "--allow-path", "/v1/b", "--inject", "header:x-api-key")
        self.add_proxy(h, "plain-default", VALUE, self.up.url)
        h.add("normal", "normal-value")
        res = h.run_json("list")
        by = {s["name"]: s for s in res["secrets"]}
        self.assertIs(by["api"].get("proxy_only"), True, by["api"])
        p = by["api"]["proxy"]
        self.assertEqual(p["base_url"], self.up.url + "/v1", p)
        self.assertIn(p["host"], ("127.0.0.1", "127.0.0.1:%d" % self.up.port), p)
        self.assertEqual(sorted(p["allow_methods"]), ["GET", "POST"], p)
        self.assertEqual(sorted(p["allow_paths"]), ["/v1/a", "/v1/b"], p)
        self.assertEqual(p["inject"], "header:x-api-key", p)
        d = by["plain-default"]["proxy"]
        self.assertEqual(d["inject"], "bearer", d)
        self.assertEqual(d["allow_paths"], ["/"], d)
        self.assertNotEqual(by["normal"].get("proxy_only"), True, by["normal"])
        self.assertNotIn(VALUE, json.dumps(res))

    def test_add_validation(self):
        h = self.proxy_home()
        bad = [
            ["--proxy-only", "--base-url", "ftp://127.0.0.1/x"],
            ["--proxy-only", "--base-url", "http://example.com/v1"],  # plain http, not loopback
            ["--proxy-only", "--base-url", "https://user:pw@127.0.0.1/v1"],
            ["--proxy-only", "--base-url", "https://127.0.0.1/v1?x=1"],
            ["--proxy-only", "--base-url", "https://127.0.0.1/v1#frag"],
            ["--proxy-only", "--base-url", "not a url"],
            ["--proxy-only", "--base-url", self.up.url, "--inject", "smoke-signal"],
            ["--base-url", self.up.url],  # scope flags without --proxy-only
            ["--allow-method", "GET"],
            ["--allow-path", "/v1"],
            ["--inject", "bearer"],
        ]
        for i, flags in enumerate(bad):
            with self.subTest(flags=flags):
                r = h.run("add", "bad%d" % i, *flags, input=VALUE)
                self.assert_err(r)
                self.assertNotIn(VALUE.encode(), r.out + r.err)
        names = [s["name"] for s in h.run_json("list")["secrets"]]
        self.assertEqual([n for n in names if n.startswith("bad")], [], names)
        for i, url in enumerate(["http://127.0.0.1:1/x", "http://localhost:1", "http://[::1]:1/v", "https://example.com"]):
            with self.subTest(url=url):
                self.add_proxy(h, "good%d" % i, VALUE, url)

    def test_value_with_a_line_break_cannot_go_into_a_header(self):
        # It would let the secret smuggle a second header (or request) upstream.
        h = self.proxy_home()
        smuggler = VALUE + "\r\nX-Evil: 1"
        for inject in ("bearer", "basic", "header:x-api-key"):
            with self.subTest(inject=inject):
                r = h.run("add", "nl", "--proxy-only", "--base-url", self.up.url, "--inject", inject, input=smuggler)
                self.assert_err(r)
                self.assertIn("line break", r.err.decode(), r)
        # In the query (percent-encoded) or the body it is harmless.
        self.add_proxy(h, "nlq", smuggler, None, "--inject", "query:key")
        # Replacing an existing header-injected secret's value is checked too.
        self.add_proxy(h, "nlb", VALUE)
        r = h.run("add", "nlb", "--force", input=smuggler)
        self.assert_err(r)


# ---------------------------------------------------------------- injection

class ProxyInject(ProxyTestCase):
    def setUp(self):
        self.h = self.proxy_home(ca_file=self.tls["ca"])

    def get(self, path, headers=None, method="GET", body=None):
        return request(self.h.port, method, path, headers, body)

    def test_upstream_gets_value_client_only_holds_placeholder(self):
        self.add_proxy(self.h, "api")
        r = self.h.run("lease", "api")
        self.assertEqual(r.rc, 0, r)
        ph = r.out.decode().strip()
        self.assertRegex(ph, PH_RE)
        self.assertNotEqual(ph, VALUE)
        tag = pysecrets.token_hex(6)
        resp = self.get("/api/rest/of/echo?t=%s&x=a%%20b" % tag, bearer(ph))
        self.assertEqual(resp.status, 200, resp)
        seen = self.seen(tag)
        self.assertEqual(seen[2].get("authorization"), "Bearer " + VALUE, seen)
        self.assertEqual(seen[1], "/v1/rest/of/echo?t=%s&x=a%%20b" % tag, seen)
        self.assert_no_placeholder_upstream(seen, ph)
        echo = resp.json()
        self.assertEqual(echo["method"], "GET")
        self.assertEqual(echo["path"], "/v1/rest/of/echo")
        self.assertNotIn(VALUE.encode(), resp.body)

    def test_inject_bearer_default(self):
        self.add_proxy(self.h, "b")
        ph = self.ph(self.h, "b")
        tag = pysecrets.token_hex(6)
        self.assertEqual(self.get("/b/echo?t=" + tag, {"x-api-key": ph}).status, 200)
        seen = self.seen(tag)
        self.assertEqual(seen[2].get("authorization"), "Bearer " + VALUE, seen)
        self.assertNotIn("x-api-key", seen[2], seen)
        self.assert_no_placeholder_upstream(seen, ph)

    def test_inject_basic(self):
        cred = "alice:s3cr3t pw:with colon"
        self.add_proxy(self.h, "basic", cred, None, "--inject", "basic")
        ph = self.ph(self.h, "basic")
        tag = pysecrets.token_hex(6)
        resp = self.get("/basic/echo?t=" + tag, bearer(ph))
        self.assertEqual(resp.status, 200, resp)
        seen = self.seen(tag)
        self.assertEqual(seen[2].get("authorization"), "Basic " + base64.b64encode(cred.encode()).decode(), seen)
        self.assert_no_placeholder_upstream(seen, ph)

    def test_inject_header(self):
        self.add_proxy(self.h, "hdr", VALUE, None, "--inject", "header:x-api-key")
        ph = self.ph(self.h, "hdr")
        tag = pysecrets.token_hex(6)
        resp = self.get("/hdr/echo?t=" + tag, {"x-api-key": ph, "x-other": "kept"})
        self.assertEqual(resp.status, 200, resp)
        seen = self.seen(tag)
        self.assertEqual(seen[2].get("x-api-key"), VALUE, seen)
        self.assertEqual(seen[2].get("x-other"), "kept", seen)
        self.assertNotIn("authorization", seen[2], seen)
        self.assert_no_placeholder_upstream(seen, ph)
        # The placeholder in Authorization also authorizes; x-api-key is injected.
        tag2 = pysecrets.token_hex(6)
        self.assertEqual(self.get("/hdr/echo?t=" + tag2, bearer(ph)).status, 200)
        seen2 = self.seen(tag2)
        self.assertEqual(seen2[2].get("x-api-key"), VALUE, seen2)
        self.assertNotIn("authorization", seen2[2], seen2)

    def test_inject_query(self):
        value = "q v&l=u/e+%?#"
        self.add_proxy(self.h, "qry", value, None, "--inject", "query:key")
        ph = self.ph(self.h, "qry")
        # placeholder in a header
        tag = pysecrets.token_hex(6)
        self.assertEqual(self.get("/qry/echo?t=%s&x=1" % tag, bearer(ph)).status, 200)
        seen = self.seen(tag)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(seen[1]).query)
        self.assertEqual(q.get("key"), [value], seen)
        self.assertEqual(q.get("x"), ["1"], seen)
        self.assertEqual(q.get("t"), [tag], seen)
        self.assertNotIn("authorization", seen[2], seen)
        self.assert_no_placeholder_upstream(seen, ph)
        # placeholder in a query parameter: that parameter is removed
        tag2 = pysecrets.token_hex(6)
        self.assertEqual(self.get("/qry/echo?t=%s&token=%s" % (tag2, ph)).status, 200)
        seen2 = self.seen(tag2)
        q2 = urllib.parse.parse_qs(urllib.parse.urlsplit(seen2[1]).query)
        self.assertEqual(q2.get("key"), [value], seen2)
        self.assertNotIn("token", q2, seen2)
        self.assert_no_placeholder_upstream(seen2, ph)

    def test_inject_body(self):
        self.add_proxy(self.h, "bdy", VALUE, None, "--inject", "body")
        ph = self.ph(self.h, "bdy")
        tag = pysecrets.token_hex(6)
        body = ('{"api_key":"%s","again":"%s","n":1}' % (ph, ph)).encode()
        resp = self.get("/bdy/echo?t=" + tag, dict(bearer(ph), **{"Content-Type": "application/json"}),
                        "POST", body)
        self.assertEqual(resp.status, 200, resp)
        expected = ('{"api_key":"%s","again":"%s","n":1}' % (VALUE, VALUE)).encode()
        seen = self.seen(tag)
        self.assertEqual(resp.json()["body_len"], len(expected), resp)
        self.assertEqual(resp.json()["body_sha256"], hashlib.sha256(expected).hexdigest(), resp)
        self.assert_no_placeholder_upstream(seen, ph)
        # body mode without the placeholder in a header or the query: refused
        resp2 = self.get("/bdy/echo", {"Content-Type": "application/json"}, "POST", body)
        self.assert_refused(resp2, 407, "missing_placeholder")

    def test_inject_body_chunked(self):
        self.add_proxy(self.h, "bdyc", VALUE, None, "--inject", "body")
        ph = self.ph(self.h, "bdyc")
        pieces = [b"head ", ph[:10].encode(), ph[10:].encode(), b" mid ", ph.encode(), b" tail"]
        expected = b"head " + VALUE.encode() + b" mid " + VALUE.encode() + b" tail"
        c = http.client.HTTPConnection("127.0.0.1", self.h.port, timeout=15)
        c.request("POST", "/bdyc/echo", body=iter(pieces), headers=bearer(ph), encode_chunked=True)
        r = c.getresponse()
        data = r.read()
        c.close()
        self.assertEqual(r.status, 200, data)
        echo = json.loads(data)
        self.assertEqual(echo["body_len"], len(expected), echo)
        self.assertEqual(echo["body_sha256"], hashlib.sha256(expected).hexdigest(), echo)

    def test_https_upstream_with_ca_file(self):
        self.add_proxy(self.h, "tls", VALUE, self.tls_up.url + "/v1")
        ph = self.ph(self.h, "tls")
        tag = pysecrets.token_hex(6)
        resp = self.get("/tls/echo?t=" + tag, bearer(ph))
        self.assertEqual(resp.status, 200, resp)
        seen = self.seen(tag, self.tls_up)
        self.assertEqual(seen[2].get("authorization"), "Bearer " + VALUE, seen)

    def test_https_upstream_with_unknown_ca_is_502(self):
        for label, ca in (("no ca_file", None), ("another CA", self.other_tls["ca"])):
            with self.subTest(label):
                h = self.proxy_home(ca_file=ca)
                self.add_proxy(h, "tls", VALUE, self.tls_up.url + "/v1")
                ph = self.ph(h, "tls")
                tag = pysecrets.token_hex(6)
                resp = request(h.port, "GET", "/tls/echo?t=" + tag, bearer(ph))
                self.assert_refused(resp, 502, "upstream_error")
                self.assertFalse([r for r in self.tls_up.requests if tag in r[1]], "request reached upstream")


# ---------------------------------------------------------------- refusals

class ProxyRefusals(ProxyTestCase):
    def setUp(self):
        self.h = self.proxy_home()

    def test_method_and_path_out_of_scope(self):
        self.add_proxy(self.h, "sc", VALUE, self.up.url, "--allow-method", "GET", "--allow-path", "/v1")
        ph = self.ph(self.h, "sc")
        self.assertEqual(request(self.h.port, "GET", "/sc/v1/echo", bearer(ph)).status, 200)
        tag = pysecrets.token_hex(6)
        self.assert_refused(request(self.h.port, "POST", "/sc/v1/echo?t=" + tag, bearer(ph), b"x"),
                            407, "out_of_scope")
        self.assert_refused(request(self.h.port, "DELETE", "/sc/v1/echo?t=" + tag, bearer(ph)),
                            407, "out_of_scope")
        self.assert_refused(request(self.h.port, "GET", "/sc/v2/echo?t=" + tag, bearer(ph)), 407, "out_of_scope")
        self.assert_refused(request(self.h.port, "GET", "/sc/echo?t=" + tag, bearer(ph)), 407, "out_of_scope")
        self.assertFalse([r for r in self.up.requests if tag in r[1]], "an out-of-scope request reached upstream")

    def test_repeated_scope_flags(self):
        self.add_proxy(self.h, "sc2", VALUE, self.up.url, "--allow-method", "GET", "--allow-method", "PUT",
                       "--allow-path", "/a,/b", "--allow-path", "/c")
        ph = self.ph(self.h, "sc2")
        for m, p, ok in (("GET", "/a/echo", True), ("PUT", "/c/echo", True), ("GET", "/b/echo", True),
                         ("POST", "/a/echo", False), ("GET", "/d/echo", False)):
            with self.subTest(m=m, p=p):
                resp = request(self.h.port, m, "/sc2" + p, bearer(ph), b"" if m == "PUT" else None)
                if ok:
                    self.assertEqual(resp.status, 200, resp)
                else:
                    self.assert_refused(resp, 407, "out_of_scope")

    def test_dotdot_path_is_400(self):
        self.add_proxy(self.h, "dd", VALUE, self.up.url, "--allow-path", "/v1")
        ph = self.ph(self.h, "dd")
        tag = pysecrets.token_hex(6)
        for path in ("/dd/v1/../v2/echo?t=" + tag, "/dd/v1/%2e%2e/v2/echo?t=" + tag, "/dd/v1/x/../../v2/echo?t=" + tag, "/dd/../echo?t=" + tag,
                     "/dd/v1/..?t=" + tag):
            with self.subTest(path=path):
                resp = raw_exchange(self.h.port, ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                                                  "Connection: close\r\n\r\n" % (path, ph)).encode())[0]
                self.assertIsNotNone(resp, "closed without a response")
                self.assert_refused(resp, 400, "bad_request")
        self.assertFalse([r for r in self.up.requests if tag in r[1]], "a .. request reached upstream")

    def test_expired_placeholder(self):
        self.add_proxy(self.h, "ex")
        ph = self.ph(self.h, "ex", "--ttl", "1s")
        time.sleep(2.5)
        self.assert_refused(request(self.h.port, "GET", "/ex/echo", bearer(ph)), 407, "expired")

    def test_revoked_placeholder(self):
        self.add_proxy(self.h, "rv")
        res = self.lease(self.h, "rv")
        other = self.ph(self.h, "rv")
        self.assertEqual(request(self.h.port, "GET", "/rv/echo", bearer(res["value"])).status, 200)
        self.assert_ok(self.h.run("revoke", res["lease_id"]))
        self.assert_refused(request(self.h.port, "GET", "/rv/echo", bearer(res["value"])), 407, "revoked")
        self.assertEqual(request(self.h.port, "GET", "/rv/echo", bearer(other)).status, 200)

    def test_keep_alive_connection_sees_every_change_at_once(self):
        """A keep-alive connection reuses what it resolved for its last request. A new
        value, a revoke and an expiry must still apply to its very next request."""
        self.add_proxy(self.h, "kc")
        res = self.lease(self.h, "kc", "--ttl", "1h")
        short = self.ph(self.h, "kc", "--ttl", "2s")
        c = http.client.HTTPConnection("127.0.0.1", self.h.port, timeout=10)

        def get(ph):
            tag = pysecrets.token_hex(6)
            c.request("GET", "/kc/echo?t=" + tag, headers=bearer(ph))
            r = c.getresponse()
            resp = Resp(r.status, [(k.lower(), v) for k, v in r.getheaders()], r.read())
            return resp, (self.seen(tag) if resp.status == 200 else None)

        try:
            for _ in range(3):
                resp, seen = get(res["value"])
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(seen[2].get("authorization"), "Bearer " + VALUE, seen)
            sock = c.sock
            # a new value (add --force keeps it proxy-only)
            self.h.add("kc", "sk-live-NEWVALUE-0b1d", "--force")
            resp, seen = get(res["value"])
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(seen[2].get("authorization"), "Bearer sk-live-NEWVALUE-0b1d", seen)
            self.assertNotIn(b"NEWVALUE", resp.body)
            # a revoke
            self.assert_ok(self.h.run("revoke", res["lease_id"]))
            resp, _ = get(res["value"])
            self.assert_refused(resp, 407, "revoked")
            self.assertIs(c.sock, sock, "the refusals were meant to come on the same connection")
        finally:
            c.close()
        # an expiry, on a connection that has used the lease before
        c = http.client.HTTPConnection("127.0.0.1", self.h.port, timeout=10)
        try:
            resp, _ = get(short)
            self.assertEqual(resp.status, 200, resp)
            time.sleep(2.5)
            resp, _ = get(short)
            self.assert_refused(resp, 407, "expired")
        finally:
            c.close()

    def test_revoke_all(self):
        self.add_proxy(self.h, "ra")
        self.add_proxy(self.h, "rb")
        pa, pb = self.ph(self.h, "ra"), self.ph(self.h, "rb")
        self.assertEqual(request(self.h.port, "GET", "/ra/echo", bearer(pa)).status, 200)
        self.assert_ok(self.h.run("revoke", "--all"))
        for name, ph in (("ra", pa), ("rb", pb)):
            err = self.assert_refused(request(self.h.port, "GET", "/%s/echo" % name, bearer(ph)), 407, "revoked")
            if "reason" in err:
                self.assertEqual(err["reason"], "killswitch", err)
        # a new lease works again
        self.assertEqual(request(self.h.port, "GET", "/ra/echo", bearer(self.ph(self.h, "ra"))).status, 200)

    def test_wrong_route(self):
        self.add_proxy(self.h, "wa")
        self.add_proxy(self.h, "wb")
        pa = self.ph(self.h, "wa")
        self.ph(self.h, "wb")
        tag = pysecrets.token_hex(6)
        self.assert_refused(request(self.h.port, "GET", "/wb/echo?t=" + tag, bearer(pa)), 407, "wrong_route")
        self.assertFalse([r for r in self.up.requests if tag in r[1]])

    def test_missing_placeholder(self):
        self.add_proxy(self.h, "mp")
        self.ph(self.h, "mp")
        self.assert_refused(request(self.h.port, "GET", "/mp/echo"), 407, "missing_placeholder")
        self.assert_refused(request(self.h.port, "GET", "/mp/echo", {"Authorization": "Bearer not-a-placeholder"}),
                            407, "missing_placeholder")

    def test_unknown_placeholder(self):
        self.add_proxy(self.h, "up")
        self.ph(self.h, "up")
        fake = "as_" + pysecrets.token_hex(16)
        self.assert_refused(request(self.h.port, "GET", "/up/echo", bearer(fake)), 407, "unknown_placeholder")
        self.assert_refused(request(self.h.port, "GET", "/up/echo?k=" + fake), 407, "unknown_placeholder")

    def test_unknown_route(self):
        self.add_proxy(self.h, "known")
        self.h.add("normal", "normal-secret-value")
        ph = self.ph(self.h, "known")
        for path in ("/nosuch/echo", "/normal/echo", "/knowx/echo", "/nosuch"):
            with self.subTest(path=path):
                self.assert_refused(request(self.h.port, "GET", path, bearer(ph)), 404, "unknown_route")

    def test_upstream_down_is_502(self):
        self.add_proxy(self.h, "down", VALUE, "http://127.0.0.1:%d/v1" % free_port())
        ph = self.ph(self.h, "down")
        self.assert_refused(request(self.h.port, "GET", "/down/echo", bearer(ph)), 502, "upstream_error")

    def test_slow_upstream_is_504(self):
        h = self.proxy_home(total_timeout="1s")
        self.add_proxy(h, "slow")
        ph = self.ph(h, "slow")
        t0 = time.monotonic()
        resp = request(h.port, "GET", "/slow/slow?seconds=4", bearer(ph))
        took = time.monotonic() - t0
        self.assert_refused(resp, 504, "upstream_timeout")
        self.assertLess(took, 3.5, "504 came after %.1fs" % took)

    def test_body_too_large_is_413(self):
        h = self.proxy_home(max_body_bytes=1000)
        self.add_proxy(h, "big")
        ph = self.ph(h, "big")
        self.assertEqual(request(h.port, "POST", "/big/upload", bearer(ph), b"x" * 1000).status, 200)
        tag = pysecrets.token_hex(6)
        self.assert_refused(request(h.port, "POST", "/big/upload?t=" + tag, bearer(ph), b"x" * 2000),
                            413, "body_too_large")
        # chunked, no length announced
        c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=15)
        try:
            c.request("POST", "/big/upload?t=c" + tag, body=iter([b"y" * 600, b"y" * 600]), headers=bearer(ph),
                      encode_chunked=True)
            r = c.getresponse()
            self.assert_refused(Resp(r.status, [(k.lower(), v) for k, v in r.getheaders()], r.read()),
                                413, "body_too_large")
        finally:
            c.close()


    def test_413_reaches_a_client_whose_body_is_still_coming(self):
        # The proxy answers 413 with most of the body unread. Closing at once
        # would make the kernel reset the connection (unread data), and the
        # client would get ECONNRESET or EPIPE instead of the answer: the
        # proxy must read and drop the rest first (a lingering close).
        h = self.proxy_home(max_body_bytes=1000)
        self.add_proxy(h, "big")
        ph = self.ph(h, "big")
        for n in range(5):
            c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=15)
            try:
                c.request("POST", "/big/upload?n=%d" % n, body=iter([b"z" * 600] * 40), headers=bearer(ph),
                          encode_chunked=True)
                r = c.getresponse()
                self.assert_refused(Resp(r.status, [(k.lower(), v) for k, v in r.getheaders()], r.read()),
                                    413, "body_too_large")
            finally:
                c.close()


if __name__ == "__main__":
    harness.main()
