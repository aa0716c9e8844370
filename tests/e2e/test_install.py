"""End-to-end tests of install.sh: PREFIX into a temporary directory, with a
temporary HOME and AGENT_SECRETS_HOME. SECRETS_BIN (the binary under test)
is handed to install.sh, so it installs that binary instead of building; one
test goes through the build path on the existing build directory, which is
up to date, so nothing is rebuilt."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import BIN, E2ETestCase  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
INSTALL = os.path.join(REPO, "install.sh")

# A stand-in for systemctl that records its arguments: the machine has no user
# service manager to enable units in.
FAKE_SYSTEMCTL = """#!/bin/sh
printf '%s\\n' "$*" >> "$SYSTEMCTL_LOG"
exit 0
"""
# One that fails as it does without a user bus.
NO_BUS_SYSTEMCTL = """#!/bin/sh
echo "Failed to connect to bus: No medium found" >&2
exit 1
"""


class Install(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp(prefix="as-install-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.home = os.path.join(self.root, "home")
        self.prefix = os.path.join(self.root, "prefix dir")  # a space, to check quoting
        self.store = os.path.join(self.root, "store")
        self.fakebin = os.path.join(self.root, "fakebin")
        os.makedirs(self.home)
        os.makedirs(self.fakebin)
        self.systemctl_log = os.path.join(self.root, "systemctl.log")

    def fake_systemctl(self, script):
        path = os.path.join(self.fakebin, "systemctl")
        with open(path, "w") as f:
            f.write(script)
        os.chmod(path, 0o755)

    def env(self, **extra):
        e = dict(os.environ)
        e.pop("AGENT_SECRETS_SOCKET", None)
        e.pop("XDG_CONFIG_HOME", None)
        e.update({"HOME": self.home, "PREFIX": self.prefix, "AGENT_SECRETS_HOME": self.store,
                  "SECRETS_BIN": BIN, "SYSTEMCTL_LOG": self.systemctl_log,
                  "PATH": self.fakebin + os.pathsep + e.get("PATH", "")})
        for k, v in extra.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return e

    def install(self, *args, **extra):
        p = subprocess.run(["bash", INSTALL] + list(args), env=self.env(**extra), cwd=self.root,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def installed(self, *parts):
        return os.path.join(self.prefix, *parts)

    def test_install_puts_the_binary_completions_and_creates_the_store(self):
        self.fake_systemctl(NO_BUS_SYSTEMCTL)
        rc, out, err = self.install()
        self.assertEqual(rc, 0, out + err)
        exe = self.installed("bin", "secrets")
        self.assertTrue(os.access(exe, os.X_OK), out)
        self.assertEqual(stat.S_IMODE(os.stat(exe).st_mode), 0o755)
        # The binary under test, stripped of its debug info (the 99 MB were mostly DWARF).
        self.assertLess(os.path.getsize(exe), os.path.getsize(BIN))
        sections = subprocess.run(["readelf", "-S", "-W", exe], stdout=subprocess.PIPE, check=True).stdout
        self.assertNotIn(b".debug_info", sections)
        r = subprocess.run([exe, "completion", "bash"], stdout=subprocess.PIPE)
        self.assertEqual(r.returncode, 0)
        # The store was created by `secrets init`, and only there.
        self.assertTrue(os.path.isfile(os.path.join(self.store, "identity.age")), out)
        self.assertTrue(os.path.isfile(os.path.join(self.store, "secrets.age")), out)
        self.assertIn("created the store", out)
        for rel in (("share", "bash-completion", "completions", "secrets"),
                    ("share", "zsh", "site-functions", "_secrets"),
                    ("share", "fish", "vendor_completions.d", "secrets.fish")):
            self.assertTrue(os.path.isfile(self.installed(*rel)), rel)
        self.assertIn("is not in PATH", out)
        # No --service: no unit, and systemctl was never asked.
        self.assertFalse(os.path.exists(os.path.join(self.home, ".config", "systemd")))
        # The installed binary works against the store.
        r = subprocess.run([exe, "list"], env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(r.returncode, 3, r)  # no daemon yet: exit 3, daemon_not_running

    def test_reinstall_keeps_an_existing_store(self):
        rc, out, err = self.install()
        self.assertEqual(rc, 0, out + err)
        with open(os.path.join(self.store, "identity.age"), "rb") as f:
            identity = f.read()
        rc, out, err = self.install()
        self.assertEqual(rc, 0, out + err)
        self.assertIn("store found", out)
        with open(os.path.join(self.store, "identity.age"), "rb") as f:
            self.assertEqual(f.read(), identity)

    def test_service_without_user_systemd_says_so_and_prints_the_manual_command(self):
        self.fake_systemctl(NO_BUS_SYSTEMCTL)
        rc, out, err = self.install("--service")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("systemctl --user is not available", out)
        self.assertIn("serve", out)
        self.assertIn("nohup", out)
        unit = os.path.join(self.home, ".config", "systemd", "user", "agent-secrets.service")
        with open(unit) as f:
            text = f.read()
        exe = self.installed("bin", "secrets")
        self.assertIn('ExecStart="%s" serve\n' % exe, text)
        self.assertIn("LimitCORE=0\n", text)
        self.assertIn("Delegate=yes\n", text)  # hooks make cgroups of their own under it
        self.assertIn("Restart=on-failure\n", text)
        self.assertIn('Environment="AGENT_SECRETS_HOME=%s"' % self.store, text)
        with open(os.path.join(os.path.dirname(unit), "agent-secrets.socket")) as f:
            sock = f.read()
        self.assertIn("ListenStream=%s/agent-secrets.sock\n" % self.store, sock)
        self.assertIn("SocketMode=0600\n", sock)

    def test_service_with_user_systemd_enables_the_unit(self):
        self.fake_systemctl(FAKE_SYSTEMCTL)
        rc, out, err = self.install("--service")
        self.assertEqual(rc, 0, out + err)
        with open(self.systemctl_log) as f:
            calls = f.read().splitlines()
        self.assertIn("--user daemon-reload", calls)
        self.assertIn("--user enable --now agent-secrets.service", calls)
        self.assertIn("enabled and started", out)

    def test_uninstall_removes_what_it_installed_and_never_the_store(self):
        self.fake_systemctl(FAKE_SYSTEMCTL)
        rc, out, err = self.install("--service")
        self.assertEqual(rc, 0, out + err)
        before = sorted(os.listdir(self.store))
        # Something of the user's own next to our files stays.
        own = self.installed("bin", "mine")
        with open(own, "w") as f:
            f.write("x")
        rc, out, err = self.install("--uninstall")
        self.assertEqual(rc, 0, out + err)
        self.assertFalse(os.path.exists(self.installed("bin", "secrets")))
        self.assertFalse(os.path.exists(self.installed("share", "bash-completion", "completions", "secrets")))
        self.assertFalse(os.path.exists(self.installed("share", "agent-secrets")))
        units = os.path.join(self.home, ".config", "systemd", "user")
        self.assertFalse(os.path.exists(os.path.join(units, "agent-secrets.service")))
        self.assertFalse(os.path.exists(os.path.join(units, "agent-secrets.socket")))
        self.assertTrue(os.path.exists(own))
        self.assertEqual(sorted(os.listdir(self.store)), before)
        # No empty folder of ours is left behind; the user's own file keeps bin/.
        empty = [d for d, subdirs, files in os.walk(self.prefix) if not subdirs and not files]
        self.assertEqual(empty, [])
        self.assertFalse(os.path.exists(self.installed("share")))
        self.assertFalse(os.path.exists(units))
        self.assertTrue(os.path.isdir(os.path.join(self.home, ".config")))
        self.assertIn("left as it is", out)
        with open(self.systemctl_log) as f:
            self.assertIn("--user disable --now agent-secrets.socket agent-secrets.service", f.read())
        # A second uninstall has nothing to do and still succeeds.
        rc, out, err = self.install("--uninstall")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("nothing to remove", out)

    def test_build_path_reuses_an_existing_build_directory(self):
        build_dir = os.path.dirname(os.path.abspath(BIN))
        if not os.path.isfile(os.path.join(build_dir, "CMakeCache.txt")):
            self.skipTest("SECRETS_BIN is not in a CMake build directory")
        mtime = os.stat(BIN).st_mtime_ns
        rc, out, err = self.install(SECRETS_BIN=None, BUILD_DIR=build_dir)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(os.stat(BIN).st_mtime_ns, mtime, "an up-to-date build was rebuilt")
        self.assertTrue(os.access(self.installed("bin", "secrets"), os.X_OK))
        # The debug info stays beside the build, and the stripped binary names it.
        self.assertTrue(os.path.isfile(BIN + ".debug"))
        sections = subprocess.run(["readelf", "-S", "-W", self.installed("bin", "secrets")], stdout=subprocess.PIPE,
                                  check=True).stdout
        self.assertIn(b".gnu_debuglink", sections)

    def test_bad_arguments_and_a_bad_prebuilt_binary(self):
        rc, out, err = self.install("--frobnicate")
        self.assertNotEqual(rc, 0)
        self.assertIn("unknown argument", err)
        rc, out, err = self.install(SECRETS_BIN=os.path.join(self.root, "nope"))
        self.assertNotEqual(rc, 0)
        self.assertIn("not an executable", err)
        self.assertFalse(os.path.exists(self.installed("bin", "secrets")))


if __name__ == "__main__":
    harness.main()
