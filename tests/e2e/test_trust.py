"""Trust holes of issue 15 that live in the daemon's socket and files, each
replayed as the attack that found it:

- a process of our uid in its own user namespace (`unshare -Urmpf`) reaches
  the daemon through the socket file (Namespace);
- a client that half-closes after sending gets no reply (HalfClose);
- a regular file at socket_path is deleted, symlinks planted at daemon.pid or
  daemon.log make the daemon truncate or append to their targets
  (PlantedFiles);
- the CLI sends a value to a listener of another user (ServerUid);
- a directory swapped in while the daemon deletes a `.env` file makes it
  delete another file of that name (EnvFileSwap).
"""

import ctypes
import ctypes.util
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import harness
from harness import E2ETestCase, wait_until


def can_unshare():
    unshare = shutil.which("unshare")
    if not unshare:
        return None
    p = subprocess.run([unshare, "-Urmpf", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return unshare if p.returncode == 0 else None


class Namespace(E2ETestCase):
    def setUp(self):
        self.unshare = can_unshare()
        if not self.unshare:
            self.skipTest("unprivileged user namespaces are not available here (unshare -Urmpf failed)")

    def test_cli_in_another_user_namespace_is_refused(self):
        home = self.new_home()
        home.add("api_key", "ns-secret-value-1")
        r = subprocess.run([self.unshare, "-Urmpf", harness.BIN, "lease", "api_key", "--json", "--bind", "none"], env=home.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertNotIn(b"ns-secret-value-1", r.stdout + r.stderr)
        env = json.loads(r.stderr or r.stdout)
        self.assertIn("namespace", env["error"]["message"], env)
        denied = [e for e in home.audit_entries() if e.get("action") == "denied"]
        self.assertTrue(denied, home.audit_entries())
        self.assertEqual(denied[-1].get("reason"), "namespace", denied[-1])
        self.assertFalse([e for e in home.audit_entries() if e.get("action") == "lease_acquire"])

    def test_raw_rpc_from_a_namespace_cannot_add_or_lease(self):
        home = self.new_home()
        home.add("api_key", "ns-secret-value-2")
        script = (
            "import json, socket, sys\n"
            "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
            "f = s.makefile('rwb')\n"
            "for i, (m, p) in enumerate([('secrets.add', {'name': 'planted', 'value': 'x' * 16}),\n"
            "                            ('secrets.lease', {'secret_name': 'api_key', 'client_id': 'ns'})]):\n"
            "    f.write((json.dumps({'jsonrpc': '2.0', 'id': i, 'method': m, 'params': p}) + '\\n').encode()); f.flush()\n"
            "    line = f.readline()\n"
            "    print(line.decode().strip())\n"
            "    if not line: break\n")
        r = subprocess.run([self.unshare, "-Urmpf", "python3", "-c", script, home.socket], env=home.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertNotIn(b"ns-secret-value-2", r.stdout)
        first = json.loads(r.stdout.splitlines()[0])
        self.assert_rpc_error(first, -32006)
        names = [s["name"] for s in home.run_json("list")["secrets"]]
        self.assertNotIn("planted", names)

    def test_the_same_namespace_is_still_served(self):
        home = self.new_home()
        home.add("api_key", "ns-secret-value-3")
        r = home.run("lease", "api_key")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, b"ns-secret-value-3")


class HalfClose(E2ETestCase):
    def test_every_line_before_eof_gets_its_reply(self):
        home = self.new_home()
        home.add("api_key", "half-close-value")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(home.socket)
        lines = [{"jsonrpc": "2.0", "id": 1, "method": "secrets.lease",
                  "params": {"secret_name": "api_key", "client_id": "nc", "ttl": "5m"}},
                 {"jsonrpc": "2.0", "id": 2, "method": "secrets.status"}]
        s.sendall(b"".join(json.dumps(l).encode() + b"\n" for l in lines))
        s.shutdown(socket.SHUT_WR)  # what `nc -N` and a pipe into socat do
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        replies = [json.loads(l) for l in data.splitlines()]
        self.assertEqual([r.get("id") for r in replies], [1, 2], data)
        self.assertEqual(replies[0]["result"]["value"], "half-close-value")
        self.assertIs(replies[1]["result"]["running"], True)

    def test_a_request_without_id_then_eof(self):
        home = self.new_home()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(home.socket)
        s.sendall(b'{"jsonrpc":"2.0","method":"secrets.status"}\n')
        s.shutdown(socket.SHUT_WR)
        data = s.makefile("rb").read()
        reply = json.loads(data)
        self.assertIsNone(reply["id"])
        self.assertIn("result", reply)


class PlantedFiles(E2ETestCase):
    def victim(self):
        d = tempfile.mkdtemp(prefix="as-victim-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "precious.txt")
        with open(path, "w") as f:
            f.write("do not touch\n")
        return path

    def assert_untouched(self, path):
        with open(path) as f:
            self.assertEqual(f.read(), "do not touch\n")

    def test_a_regular_file_at_socket_path_is_not_deleted(self):
        home = self.new_home(serve=False)
        path = self.victim()
        home.write_config({"socket_path": path})
        r = home.serve_expect_exit()
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn(b"not a socket", r.err + r.out)
        self.assert_untouched(path)

    def test_a_regular_file_put_at_the_socket_path_survives_shutdown(self):
        home = self.new_home()
        os.unlink(home.socket)
        with open(home.socket, "w") as f:
            f.write("do not touch\n")
        self.assertEqual(home.stop(), 0)
        self.assert_untouched(home.socket)

    def test_a_symlink_at_daemon_pid_truncates_nothing(self):
        home = self.new_home(serve=False)
        path = self.victim()
        os.symlink(path, home.file("daemon.pid"))
        r = home.serve_expect_exit()
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn(b"daemon.pid", r.err + r.out)
        self.assert_untouched(path)

    def test_a_symlink_at_daemon_log_gets_no_lines(self):
        home = self.new_home(serve=False)
        path = self.victim()
        os.symlink(path, home.file("daemon.log"))
        r = home.serve_expect_exit()
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn(b"daemon.log", r.err + r.out)
        self.assert_untouched(path)


class ServerUid(E2ETestCase):
    def test_the_cli_sends_no_value_to_another_users_listener(self):
        nobody = harness.nobody_prefix()
        if nobody is None:
            self.skipTest("needs root and a nobody user")
        prefix, pw = nobody
        d = tempfile.mkdtemp(prefix="as-fake-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o777)
        sock = os.path.join(d, "fake.sock")
        got = os.path.join(d, "got")
        script = (
            "import os, socket, sys\n"
            "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(4)\n"
            "open(sys.argv[2] + '.ready', 'w').close()\n"
            "c, _ = s.accept(); c.settimeout(5); data = b''\n"
            "try:\n"
            "    while not data.endswith(b'\\n'):\n"
            "        chunk = c.recv(65536)\n"
            "        if not chunk: break\n"
            "        data += chunk\n"
            "except OSError: pass\n"
            "open(sys.argv[2], 'wb').write(data)\n")
        fake = subprocess.Popen(prefix + ["python3", "-c", script, sock, got], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.addCleanup(fake.kill)
        self.assertTrue(wait_until(lambda: os.path.exists(got + ".ready"), 10))
        home = self.new_home(serve=False)
        r = home.run("add", "api_key", input="value-for-the-thief", env={"AGENT_SECRETS_SOCKET": sock})
        self.assertNotEqual(r.rc, 0, r)
        env = r.env
        self.assertIsNotNone(env, r)
        self.assertEqual(env["error"]["code"], "unauthorized", env)
        self.assertIn("uid %d" % pw.pw_uid, env["error"]["message"])
        fake.wait(timeout=10)
        with open(got, "rb") as f:
            self.assertNotIn(b"value-for-the-thief", f.read())


# ------------------------------------------------------------ .env directory swap

IN_OPEN = 0x20
RENAME_EXCHANGE = 2
AT_FDCWD = -100


class EnvFileSwap(E2ETestCase):
    """`secrets env` wrote A/.env; B/.env is a file of the user's that
    happens to share the name. When the daemon opens A/.env to check its
    header, the attacker exchanges A and B (renameat2 RENAME_EXCHANGE). A
    daemon that then unlinks by path deletes B's file."""

    def setUp(self):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if not hasattr(self.libc, "renameat2") or not hasattr(self.libc, "inotify_init1"):
            self.skipTest("libc without renameat2 or inotify")

    def test_a_swapped_directory_does_not_get_its_file_deleted(self):
        home = self.new_home()
        home.add("api_key", "swap-secret-value")
        base = tempfile.mkdtemp(prefix="as-swap-")
        self.addCleanup(shutil.rmtree, base, True)
        a, b = os.path.join(base, "a"), os.path.join(base, "b")
        os.mkdir(a)
        os.mkdir(b)
        with open(os.path.join(b, ".env"), "w") as f:
            f.write("PRECIOUS=1\n")
        r = home.run("env", "--secret", "api_key", "--output", os.path.join(a, ".env"))
        env = self.assert_ok(r)
        lease_ids = [l["lease_id"] for l in env["leases"]] if "leases" in env else env["lease_ids"]
        # Makes reading the whole file slow, so the window between checking
        # and unlinking by path is wide (the fixed daemon reads only the
        # header block).
        with open(os.path.join(a, ".env"), "a") as f:
            chunk = "# padding " + "x" * 4086 + "\n"
            for _ in range(64 * 256):
                f.write(chunk)

        fd = self.libc.inotify_init1(0)
        self.assertGreaterEqual(fd, 0)
        self.addCleanup(os.close, fd)
        wd = self.libc.inotify_add_watch(fd, os.path.join(a, ".env").encode(), IN_OPEN)
        self.assertGreaterEqual(wd, 0)
        swapped = threading.Event()

        def swap_on_open():
            os.read(fd, 4096)  # the daemon opened A/.env
            rc = self.libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE)
            if rc == 0:
                swapped.set()

        t = threading.Thread(target=swap_on_open, daemon=True)
        t.start()
        for lease_id in lease_ids:
            self.assertEqual(home.run("revoke", lease_id).rc, 0)
        self.assertTrue(swapped.wait(10), "the daemon never opened the env file")
        removed = wait_until(lambda: [e for e in home.audit_entries() if e.get("action") == "env_file_removed"], 10)
        self.assertTrue(removed)
        # The user's file (now at a/.env after the swap) must be intact.
        with open(os.path.join(a, ".env")) as f:
            self.assertEqual(f.read(), "PRECIOUS=1\n")
        # And the file `secrets env` wrote (now under b/) is the one deleted.
        self.assertFalse(os.path.exists(os.path.join(b, ".env")))


if __name__ == "__main__":
    harness.main()
