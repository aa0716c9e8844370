"""A local upstream HTTP/1.1 server for the proxy tests (stdlib only, plus the
`openssl` CLI for the test CA).

    up = Upstream()                 # plain http on 127.0.0.1:<free port>
    up = Upstream(tls=make_ca(d))   # https with a cert for IP 127.0.0.1
    up.url                          # "http://127.0.0.1:PORT" / "https://..."
    up.requests                     # [(method, path, headers-dict)] as received
    up.sse_times[tag]               # monotonic send time of each SSE event
    up.close()

Endpoints (matched on the last path segment, any prefix):
    */echo             JSON {method, path, query, headers, body_len, body_sha256, body}
    */sse?n=&delay=&tag=   text/event-stream, `data: i\\n\\n` one by one
    */download?bytes=N[&chunked=1]   N bytes of PATTERN, 64 KiB pieces
    */upload           consumes the body streaming; {body_len, body_sha256}
    */echo-key         the received Authorization / x-api-key / query in the body
                       and the Authorization (else x-api-key) in header x-echo;
                       ?split=1: text "key=<auth>;end", chunked, the key cut in two pieces
    */echo-forms?enc=E[&split=N]   the received key (Bearer token, x-api-key, or the whole
                       Authorization value with enc=basic) as a program might echo it:
                       E = raw, base64, base64url, base64-1, base64-2 (after 1 or 2 bytes of
                       prefix), percent, percent-lower, form, unicode (\\u00xx every byte),
                       unicode-upper, hex, hex-upper, basic, all; in the body and in header
                       x-echo-form; split=N: chunked, N bytes a piece
    */gzip-key?coding=C[&chunked=1]   ignores Accept-Encoding: the key in a JSON body encoded
                       with C = gzip, x-gzip, deflate (zlib), raw-deflate, or br (a fake: the
                       body is plain JSON labelled br, so passing it on would leak the key)
    */hop              a JSON answer with hop-by-hop headers (Connection: X-Custom-Hop,
                       X-Custom-Hop, Keep-Alive, Proxy-Connection) and an end-to-end X-Kept
    */slow?seconds=S   sleeps, then a small JSON answer
Anything else: 404 JSON.
"""

import base64
import gzip
import hashlib
import http.server
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import zlib

PIECE = 64 * 1024
PATTERN = bytes(range(256)) * (PIECE // 256)  # one 64 KiB piece, repeated


def encode_form(key, enc):
    """`key` (str) as an upstream might write it back; see echo-forms above."""
    b = key.encode()
    if enc == "raw":
        return key
    if enc in ("base64", "base64url", "base64-1", "base64-2"):
        prefix = b"x" * {"base64-1": 1, "base64-2": 2}.get(enc, 0)
        f = base64.urlsafe_b64encode if enc == "base64url" else base64.b64encode
        return f(prefix + b + b"!").decode()
    if enc == "percent":
        return urllib.parse.quote(key, safe="")
    if enc == "percent-lower":
        return "".join(c if c.isalnum() or c in "-._~" else "%%%02x" % ord(c) for c in key)
    if enc == "form":
        return urllib.parse.quote_plus(key, safe="")
    if enc == "unicode":
        return "".join("\\u%04x" % c for c in b)
    if enc == "unicode-upper":
        return "".join("\\u%04X" % c for c in b)
    if enc == "hex":
        return b.hex()
    if enc == "hex-upper":
        return b.hex().upper()
    raise ValueError(enc)


FORMS = ["raw", "base64", "base64url", "base64-1", "base64-2", "percent", "percent-lower", "form", "unicode",
         "unicode-upper", "hex", "hex-upper"]


def pattern_sha256(n):
    """sha256 hex of the first n bytes of the repeated PATTERN (what /download?bytes=n sends)."""
    h = hashlib.sha256()
    full, rest = divmod(n, PIECE)
    for _ in range(full):
        h.update(PATTERN)
    h.update(PATTERN[:rest])
    return h.hexdigest()


def make_ca(directory, name="test"):
    """Creates a CA and a server cert for IP:127.0.0.1 (and DNS:localhost) signed by it
    under `directory`. Returns dict(ca=ca.pem, cert=server.pem, key=server.key)."""
    p = lambda f: os.path.join(directory, "%s-%s" % (name, f))  # noqa: E731
    ca_key, ca_pem, key, csr, pem, ext = (p("ca.key"), p("ca.pem"), p("server.key"), p("server.csr"),
                                          p("server.pem"), p("ext.cnf"))

    def run(*argv):
        r = subprocess.run(["openssl"] + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (argv[0], r.stderr.decode(errors="replace")))

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_pem, "-days", "2",
        "-subj", "/CN=agent-secrets %s test CA" % name,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial", "-out", pem,
        "-days", "2", "-extfile", ext)
    return {"ca": ca_pem, "cert": pem, "key": key}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "upstream-test"

    def log_message(self, *a):  # quiet
        pass

    # ---------------------------------------------------------------- body reading
    def body_pieces(self):
        """Yields the request body in pieces (Content-Length or chunked)."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    return
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            return
                left = size
                while left:
                    b = self.rfile.read(min(left, PIECE))
                    if not b:
                        return
                    left -= len(b)
                    yield b
                self.rfile.readline(3)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                b = self.rfile.read(min(left, PIECE))
                if not b:
                    return
                left -= len(b)
                yield b

    def read_body(self, keep=4096):
        h, n, kept = hashlib.sha256(), 0, b""
        for b in self.body_pieces():
            h.update(b)
            n += len(b)
            if len(kept) <= keep:
                kept += b[:keep + 1 - len(kept)]
        return n, h.hexdigest(), kept

    # ---------------------------------------------------------------- replies
    def send_json(self, obj, status=200, extra=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.owner.requests.append((self.command, self.path, headers))
        ep = u.path.rstrip("/").rsplit("/", 1)[-1]
        if ep == "echo":
            n, sha, kept = self.read_body()
            body = kept.decode("utf-8", "replace") if n < 4096 else None
            self.send_json({"method": self.command, "path": u.path, "query": u.query, "headers": headers,
                            "body_len": n, "body_sha256": sha, "body": body})
        elif ep == "upload":
            n, sha, _ = self.read_body(keep=0)
            self.send_json({"body_len": n, "body_sha256": sha})
        elif ep == "echo-key":
            self.read_body()
            auth = headers.get("authorization") or headers.get("x-api-key") or ""
            if q.get("split") == "1":  # chunked, the key cut in two pieces sent 0.2 s apart
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                half = len(auth) // 2
                for piece in (b"key=" + auth[:half].encode(), auth[half:].encode() + b";end"):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                    time.sleep(0.2)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return
            self.send_json({"authorization": headers.get("authorization"), "x-api-key": headers.get("x-api-key"),
                            "query": u.query}, extra=[("x-echo", auth)])
        elif ep == "echo-forms":
            self.read_body()
            auth = headers.get("authorization") or ""
            key = headers.get("x-api-key") or (auth[7:] if auth.startswith("Bearer ") else "")
            enc = q.get("enc", "raw")
            if enc == "basic":
                text = auth
            elif enc == "all":
                text = json.dumps({f: encode_form(key, f) for f in FORMS})
            else:
                text = encode_form(key, enc)
            body = ("form=" + text + ";end").encode()
            header = text if enc != "all" else encode_form(key, "base64")
            split = int(q.get("split", "0"))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("X-Echo-Form", header)
            if split:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(body), split):
                    piece = body[i:i + split]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            self.wfile.flush()
        elif ep == "gzip-key":
            self.read_body()
            auth = headers.get("authorization") or headers.get("x-api-key") or ""
            plain = json.dumps({"authorization": auth, "pad": "p" * 300}).encode()
            coding = q.get("coding", "gzip")
            if coding in ("gzip", "x-gzip"):
                body = gzip.compress(plain)
            elif coding == "deflate":
                body = zlib.compress(plain)
            elif coding == "raw-deflate":
                c = zlib.compressobj(9, zlib.DEFLATED, -15)
                body = c.compress(plain) + c.flush()
            else:
                body = plain  # "br": not brotli at all; a proxy that passes it on leaks the key
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "deflate" if coding == "raw-deflate" else coding)
            if q.get("chunked") == "1":
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(body), 7):
                    piece = body[i:i + 7]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            self.wfile.flush()
        elif ep == "hop":
            self.read_body()
            self.send_json({"hop": True}, extra=[("Connection", "X-Custom-Hop"), ("X-Custom-Hop", "1"),
                                                 ("Keep-Alive", "timeout=99"), ("Proxy-Connection", "keep-alive"),
                                                 ("X-Kept", "kept")])
        elif ep == "slow":
            self.read_body()
            time.sleep(float(q.get("seconds", "3")))
            self.send_json({"slept": float(q.get("seconds", "3"))})
        elif ep == "sse":
            self.read_body()
            n, delay, tag = int(q.get("n", "50")), float(q.get("delay", "0.05")), q.get("tag", "sse")
            times = self.server.owner.sse_times.setdefault(tag, [])
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            try:
                for i in range(n):
                    ev = b"data: %d\n\n" % i
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                    self.wfile.flush()
                    times.append(time.monotonic())
                    if i + 1 < n:
                        time.sleep(delay)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                self.server.owner.sse_cut[tag] = time.monotonic()
                self.close_connection = True
        elif ep == "download":
            self.read_body()
            n = int(q.get("bytes", "0"))
            chunked = q.get("chunked") == "1"
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(n))
            self.end_headers()
            left = n
            try:
                while left > 0:
                    b = PATTERN[:min(left, PIECE)]
                    if chunked:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
                    else:
                        self.wfile.write(b)
                    left -= len(b)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                self.close_connection = True
        else:
            self.read_body()
            self.send_json({"error": "no such endpoint", "path": u.path}, status=404)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # failed TLS handshakes, resets: expected in tests
        pass


class Upstream:
    def __init__(self, tls=None):
        """tls: the dict from make_ca() (serve https), or None (plain http)."""
        self.requests = []
        self.sse_times = {}
        self.sse_cut = {}
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls["cert"], tls["key"])
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def free_port():
    """A 127.0.0.1 port nobody listens on (bound then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


if __name__ == "__main__":  # manual run: python3 upstream.py [tls-dir]
    import sys
    tls = make_ca(sys.argv[1]) if len(sys.argv) > 1 else None
    up = Upstream(tls)
    print(up.url, tls["ca"] if tls else "", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        up.close()
