"""End-to-end tests of the Debian package (`make deb`, cmake/Packaging.cmake).

The .deb is built once with cpack from the build directory's CPackConfig.cmake
(BUILD_DIR, default: the folder of SECRETS_BIN) into a temporary folder, so
the build directory's own .deb is left alone. Then it is read with dpkg-deb,
unpacked with `dpkg -x` into a clean tree, and its `secrets` runs from there:
init, serve, add, lease, revoke --all, in a temporary AGENT_SECRETS_HOME.

Only in CI (CI=true) as root is it also installed with `dpkg -i`, run from
/usr/bin/secrets, and removed with `dpkg -r`: never on a developer's machine.
"""

import gzip
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import BIN, REPO, E2ETestCase  # noqa: E402
from test_man import assert_man_lists_commands, render_man  # noqa: E402

BUILD_DIR = os.environ.get("BUILD_DIR") or os.path.dirname(os.path.abspath(BIN))

# Every file the package holds (directories aside), under /.
FILES = {
    "usr/bin/secrets",
    "usr/share/bash-completion/completions/secrets",
    "usr/share/zsh/vendor-completions/_secrets",
    "usr/share/fish/vendor_completions.d/secrets.fish",
    "usr/share/man/man1/secrets.1.gz",
    "usr/lib/systemd/user/agent-secrets.service",
    "usr/lib/systemd/user/agent-secrets.socket",
    "usr/share/agent-secrets/skills/secret-management/SKILL.md",
    "usr/share/doc/agent-secrets/copyright",
}

VALUE = "sk-deb-test-value-1f2e3d"


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300, **kw)


class Deb(E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        config = os.path.join(BUILD_DIR, "CPackConfig.cmake")
        if not os.path.isfile(config):
            raise AssertionError("no %s: configure the build with this checkout (cmake -S . -B build)" % config)
        cls.tmp = tempfile.mkdtemp(prefix="as-deb-")
        out = os.path.join(cls.tmp, "out")
        p = run(["cpack", "-G", "DEB", "--config", config, "-B", out])
        if p.returncode != 0:
            shutil.rmtree(cls.tmp, True)
            raise AssertionError("cpack failed (rc %d):\n%s\n%s" % (p.returncode, p.stdout.decode(), p.stderr.decode()))
        cls.debs = [os.path.join(out, f) for f in sorted(os.listdir(out)) if f.endswith(".deb")]
        cls.deb = cls.debs[0] if cls.debs else None
        cls.root = os.path.join(cls.tmp, "root")
        if cls.deb:
            subprocess.run(["dpkg", "-x", cls.deb, cls.root], check=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)
        super().tearDownClass()

    def path(self, rel):
        return os.path.join(self.root, rel)

    def field(self, name):
        return run(["dpkg-deb", "-f", self.deb, name]).stdout.decode().strip()

    def read(self, rel):
        with open(self.path(rel), "rb") as f:
            return f.read()

    def secrets(self):
        return self.path("usr/bin/secrets")

    # -- the package itself

    def test_one_deb_named_by_debian_rules(self):
        version = run([BIN, "--version"]).stdout.decode().strip()
        arch = run(["dpkg", "--print-architecture"]).stdout.decode().strip()
        self.assertEqual([os.path.basename(d) for d in self.debs], ["agent-secrets_%s_%s.deb" % (version, arch)])
        self.assertEqual(self.field("Package"), "agent-secrets")
        self.assertEqual(self.field("Version"), version)
        self.assertEqual(self.field("Architecture"), arch)
        self.assertTrue(self.field("Maintainer"))
        self.assertTrue(self.field("Description").startswith("credential broker for AI agents"))

    def test_depends_is_computed_from_the_binary(self):
        # dpkg-shlibdeps writes a versioned entry for each library the binary
        # needs: libsodium and the C++ runtime; libcurl is dlopened (net/), so absent.
        depends = [d.strip() for d in self.field("Depends").split(",")]
        names = {d.split()[0] for d in depends}
        self.assertTrue({"libc6", "libsodium23", "libstdc++6", "zlib1g"} <= names, depends)
        self.assertNotIn("libcurl4", names, depends)
        for d in depends:
            self.assertRegex(d, r"^[a-z0-9.+-]+ \(>= [^)]+\)$", depends)

    def test_contents_owned_by_root(self):
        listing = run(["dpkg-deb", "-c", self.deb]).stdout.decode().splitlines()
        files = {}
        for line in listing:
            perms, owner, _size, _date, _time, name = line.split(None, 5)
            self.assertEqual(owner, "root/root", line)
            if not perms.startswith("d"):
                files[name.removeprefix("./")] = perms
        self.assertEqual(set(files), FILES)
        self.assertEqual(files["usr/bin/secrets"], "-rwxr-xr-x")
        for name, perms in files.items():
            if name != "usr/bin/secrets":
                self.assertEqual(perms, "-rw-r--r--", name)

    def test_binary_is_stripped(self):
        p = run(["file", "-b", self.secrets()])
        self.assertIn("ELF", p.stdout.decode())
        self.assertIn(", stripped", p.stdout.decode())
        sections = run(["readelf", "-S", "-W", self.secrets()]).stdout.decode()
        self.assertNotIn(".debug_info", sections)
        self.assertNotIn(".symtab", sections)
        # CPack strips its staged copy: the build directory's binary keeps its symbols.
        self.assertIn(".symtab", run(["readelf", "-S", "-W", BIN]).stdout.decode())

    # -- the unpacked tree, run from its own paths

    def test_unpacked_binary_serves_and_leases(self):
        home = self.new_home(bin=self.secrets())  # init and serve from the unpacked tree
        self.assertEqual(os.path.realpath("/proc/%d/exe" % home.daemon.pid), os.path.realpath(self.secrets()))
        r = home.run("add", "deb_key", input=VALUE)  # the value on stdin, never argv
        self.assertEqual(r.rc, 0, r)
        lease = home.run("lease", "deb_key", "--ttl", "5m", "--client-id", "deb-test")
        self.assertEqual(lease.rc, 0, lease)
        self.assertEqual(lease.out.decode(), VALUE)
        self.assertEqual(len(home.run_json("leases")["leases"]), 1)
        killed = home.run_json("revoke", "--all")
        self.assertEqual(killed["leases_revoked"], 1, killed)
        self.assertEqual(home.run_json("leases")["leases"], [])
        self.assertEqual(home.stop(), 0)

    def test_man_page_renders_every_command(self):
        page = self.path("usr/share/man/man1/secrets.1.gz")
        with open(page, "rb") as f:
            header = f.read(10)
        # gzip -n: no file name and no time stamp in the header (reproducible).
        self.assertEqual(header[3] & 0x08, 0, "gzip header holds a file name")
        self.assertEqual(header[4:8], b"\0\0\0\0", "gzip header holds a time stamp")
        rc, text, err = render_man(page)
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, "")
        commands = harness.Home(init=False, bin=self.secrets())
        self.addCleanup(commands.cleanup)
        assert_man_lists_commands(self, text, commands.run_json("--json")["commands"])
        # The same page as the unpacked binary prints.
        self.assertEqual(gzip.decompress(self.read("usr/share/man/man1/secrets.1.gz")),
                         run([self.secrets(), "man"]).stdout)

    def test_units_start_the_packaged_binary(self):
        service = self.read("usr/lib/systemd/user/agent-secrets.service").decode()
        self.assertIn("\nExecStart=/usr/bin/secrets serve\n", service)
        self.assertNotIn(".local/bin", service)
        socket = self.read("usr/lib/systemd/user/agent-secrets.socket").decode()
        self.assertIn("\nListenStream=%h/.agent-secrets/agent-secrets.sock\n", socket)

    def test_completions_parse(self):
        checks = [(["bash", "-n"], "usr/share/bash-completion/completions/secrets"),
                  (["zsh", "-n"], "usr/share/zsh/vendor-completions/_secrets"),
                  (["fish", "--no-execute"], "usr/share/fish/vendor_completions.d/secrets.fish")]
        for argv, rel in checks:
            if shutil.which(argv[0]) is None and argv[0] != "bash":
                continue  # make deps installs zsh and fish; bash is always checked
            p = run(argv + [self.path(rel)])
            self.assertEqual(p.returncode, 0, (rel, p.stderr))
        self.assertEqual(self.read("usr/share/bash-completion/completions/secrets"),
                         run([self.secrets(), "completion", "bash"]).stdout)

    def test_skill_and_copyright(self):
        with open(os.path.join(REPO, "skills", "secret-management", "SKILL.md"), "rb") as f:
            self.assertEqual(self.read("usr/share/agent-secrets/skills/secret-management/SKILL.md"), f.read())
        copyright = self.read("usr/share/doc/agent-secrets/copyright").decode()
        self.assertTrue(copyright.startswith(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"), copyright)
        self.assertIn("\nFiles: *\n", copyright)
        self.assertIn("\nLicense: MIT\n", copyright)
        # The license text of LICENSE, every line indented by one space (" ." for an empty one).
        with open(os.path.join(REPO, "LICENSE")) as f:
            license_lines = f.read().split("\n\n", 2)[2].strip().splitlines()
        body = copyright.split("\nLicense: MIT\n")[-1]
        self.assertEqual(body.rstrip("\n").splitlines(), [" " + l if l else " ." for l in license_lines])

    # -- installed with dpkg, in CI only

    def test_dpkg_install_and_remove_in_ci(self):
        if os.environ.get("CI") != "true" or os.geteuid() != 0:
            self.skipTest("dpkg -i only in CI (CI=true) as root: never on a developer's machine")
        if run(["dpkg-query", "-W", "agent-secrets"]).returncode == 0:
            self.fail("agent-secrets is already installed here, and this test would remove it: dpkg -r agent-secrets")
        for name in FILES:
            # Not ours to overwrite, then remove (a copy installed by hand, say).
            self.assertFalse(os.path.exists("/" + name), "/%s exists: this test would replace it" % name)
        self.addCleanup(run, ["dpkg", "-r", "agent-secrets"])
        p = run(["dpkg", "-i", self.deb])
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(run(["dpkg-query", "-W", "-f", "${Status}", "agent-secrets"]).stdout,
                         b"install ok installed")
        self.assertEqual(run(["man", "-w", "secrets"]).stdout.decode().strip(), "/usr/share/man/man1/secrets.1.gz")
        home = self.new_home(bin="/usr/bin/secrets")
        self.assertEqual(os.path.realpath("/proc/%d/exe" % home.daemon.pid), "/usr/bin/secrets")
        self.assertEqual(home.run("add", "deb_key", input=VALUE).rc, 0)
        lease = home.run("lease", "deb_key", "--ttl", "5m")
        self.assertEqual(lease.out.decode(), VALUE, lease)
        self.assertEqual(home.run_json("revoke", "--all")["leases_revoked"], 1)
        self.assertEqual(home.stop(), 0)
        p = run(["dpkg", "-r", "agent-secrets"])
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        for name in FILES:
            self.assertFalse(os.path.exists("/" + name), name)
        self.assertNotEqual(run(["dpkg-query", "-W", "-f", "${Status}", "agent-secrets"]).stdout,
                            b"install ok installed")


if __name__ == "__main__":
    harness.main()
