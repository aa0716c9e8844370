"""End-to-end tests of systemd socket activation in `secrets serve`: a bound,
listening Unix socket is passed as fd 3 with LISTEN_FDS=1 and LISTEN_PID set
to the daemon's pid (as systemd does), through a small sh wrapper that execs
the daemon so that its pid is the shell's $$."""

import os
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import BIN, E2ETestCase  # noqa: E402

# Moves fd $1 to 3, sets the variables, and execs the daemon (same pid as $$).
WRAPPER = r'''fd=$1; pid=$2; shift 2
if [ "$fd" != 3 ]; then eval "exec 3<&$fd $fd<&-"; fi
[ "$pid" = self ] && pid=$$
LISTEN_FDS=1 LISTEN_PID=$pid LISTEN_FDNAMES=agent-secrets.socket exec "$@"
'''


class SocketActivation(E2ETestCase):
    def start_with_fd(self, home, fd, pid="self"):
        home._serial += 1
        out_path = os.path.join(home.logs, "act-%d.out" % home._serial)
        err_path = os.path.join(home.logs, "act-%d.err" % home._serial)
        with open(out_path, "wb") as fo, open(err_path, "wb") as fe:
            proc = subprocess.Popen(["sh", "-c", WRAPPER, "sh", str(fd), pid, BIN, "serve"], env=home.env,
                                    pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                    start_new_session=True)
        harness._live_procs.append(proc)
        d = harness.Daemon(proc, out_path, err_path)
        home._daemons.append(d)
        return d

    def listening_socket(self, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(path)
        os.chmod(path, 0o600)
        s.listen(16)
        return s

    def test_serves_on_the_passed_socket(self):
        home = self.new_home(serve=False)
        s = self.listening_socket(home.socket)
        inode = os.stat(home.socket).st_ino
        d = self.start_with_fd(home, s.fileno())
        home.wait_ready(d)
        home.daemon = d
        self.assertEqual(home.status()["pid"], d.pid)
        home.add("k", "v1")
        self.assertEqual(home.run("lease", "k").out, b"v1")
        # It used our socket: the file is the one we bound, not a new one.
        self.assertEqual(os.stat(home.socket).st_ino, inode)
        self.assertIn("socket passed by systemd", d.output())
        self.assertNotIn("binding", d.output())
        # On SIGTERM it leaves the socket file to its owner (systemd).
        self.assertEqual(home.stop(), 0)
        self.assertTrue(os.path.exists(home.socket))
        self.assertEqual(os.stat(home.socket).st_ino, inode)
        # And the socket still queues connections for the next activation.
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(5)
        c.connect(home.socket)
        c.close()

    def test_children_do_not_inherit_the_variables(self):
        home = self.new_home(serve=False)
        s = self.listening_socket(home.socket)
        d = self.start_with_fd(home, s.fileno())
        home.wait_ready(d)
        home.daemon = d
        hook = 'printf "%s/%s/%s" "${LISTEN_PID:-none}" "${LISTEN_FDS:-none}" "${LISTEN_FDNAMES:-none}"'
        home.add("k", "old", "--rotate-via", hook)
        home.allow_hook("k", hook)
        r = home.run("rotate", "k")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(home.run("lease", "k").out, b"none/none/none")

    def test_another_pids_socket_is_ignored(self):
        home = self.new_home(serve=False)
        other = os.path.join(tempfile.mkdtemp(prefix="as-act-"), "other.sock")
        s = self.listening_socket(other)
        d = self.start_with_fd(home, s.fileno(), pid="1")
        home.wait_ready(d)
        home.daemon = d
        # It bound its own socket as usual.
        self.assertEqual(home.status()["pid"], d.pid)
        self.assertNotEqual(os.stat(home.socket).st_ino, os.stat(other).st_ino)
        self.assertEqual(home.stop(), 0)
        self.assertFalse(os.path.exists(home.socket))  # its own socket: removed on exit

    def test_fd_3_that_is_not_a_listening_unix_socket_is_refused(self):
        home = self.new_home(serve=False)
        tmp = tempfile.mkdtemp(prefix="as-act-")
        with open(os.path.join(tmp, "plain"), "w+") as f:
            d = self.start_with_fd(home, f.fileno())
            home.wait_ready(d)
        home.daemon = d
        self.assertIn("socket activation", d.output())
        self.assertEqual(home.status()["pid"], d.pid)
        home.stop()
        # A Unix socket that is bound but not listening is refused too.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(os.path.join(tmp, "idle.sock"))
        d = self.start_with_fd(home, s.fileno())
        home.wait_ready(d)
        home.daemon = d
        self.assertIn("socket activation", d.output())
        # A datagram socket too.
        home.stop()
        g = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(g.close)
        g.bind(os.path.join(tmp, "dgram.sock"))
        d = self.start_with_fd(home, g.fileno())
        home.wait_ready(d)
        home.daemon = d
        self.assertIn("socket activation", d.output())


if __name__ == "__main__":
    harness.main()
