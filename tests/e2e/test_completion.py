"""End-to-end tests of `secrets completion bash|zsh|fish`: bash sources the
generated script and its completion function answers for a few command lines;
zsh and fish scripts are checked for the whole command tree, and parsed by
those shells when they are installed."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import BIN, E2ETestCase  # noqa: E402


def help_subcommands(home):
    """The subcommands `secrets --help` lists: the tree the scripts must cover."""
    text = home.run("--help").out.decode()
    section = text.split("Subcommands:", 1)[1]
    names = []
    for m in re.finditer(r"^  ([a-z][a-z-]*(?:, [a-z][a-z-]*)*)\s", section, re.M):
        names += m.group(1).split(", ")
    return sorted(set(names))


def help_options(home, sub):
    """The option names `secrets SUB --help` lists, e.g. ["--help", "-h", "--ttl"]."""
    text = home.run(sub, "--help").out.decode()
    section = text.split("Options:", 1)[1]
    names = []
    for m in re.finditer(r"^  (-[^ ]+)", section, re.M):
        names += m.group(1).split(",")
    return sorted(names)


class Completion(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.home = self.new_home(serve=False)
        self.cwd = tempfile.mkdtemp(prefix="as-compl-")
        self.addCleanup(shutil.rmtree, self.cwd, True)
        r = self.home.run("completion", "bash")
        self.assertEqual(r.rc, 0, r)
        self.script = os.path.join(self.cwd, "secrets.bash")
        with open(self.script, "wb") as f:
            f.write(r.out)
        # The scripts call `secrets` by name (for secret names): put ours first in PATH.
        self.bindir = os.path.join(self.cwd, "bin")
        os.makedirs(self.bindir)
        os.symlink(BIN, os.path.join(self.bindir, "secrets"))

    def complete(self, line):
        """COMPREPLY for `line` (the cursor at its end), from the sourced script."""
        words = line.split(" ")
        script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
                  'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; _secrets 2>/dev/null; '
                  'printf "%s\\n" "${COMPREPLY[@]}"')
        env = dict(self.home.env)
        env["PATH"] = self.bindir + os.pathsep + env.get("PATH", "")
        p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", self.script] + words,
                           cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p)
        return sorted(w for w in p.stdout.decode().split("\n") if w)

    def test_bash_registers_the_function(self):
        p = subprocess.run(["bash", "--norc", "-c", 'source "$1" && complete -p secrets', "bash", self.script],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p)
        self.assertIn(b"complete -F _secrets secrets", p.stdout)

    def test_bash_subcommands(self):
        subs = help_subcommands(self.home)
        for name in ("init", "serve", "add", "lease", "revoke", "exec", "openclaw-resolve", "completion"):
            self.assertIn(name, subs)
        got = self.complete("secrets ")
        for name in subs:
            self.assertIn(name, got)
        self.assertIn("delete", subs)  # remove's alias
        self.assertIn("--help", got)
        self.assertIn("--version", got)
        self.assertEqual(self.complete("secrets le"), ["lease", "leases"])
        self.assertEqual(self.complete("secrets re"), [n for n in subs if n.startswith("re")])
        self.assertIn("revoke", self.complete("secrets re"))
        self.assertEqual(self.complete("secrets op"), ["openclaw-resolve"])

    def test_bash_options(self):
        for sub in ("lease", "revoke", "audit", "exec", "env", "add", "status", "openclaw-resolve"):
            with self.subTest(sub=sub):
                want = help_options(self.home, sub)
                self.assertIn("--help", want)
                self.assertEqual(self.complete("secrets %s -" % sub), want)
                self.assertEqual(self.complete("secrets %s --" % sub), [o for o in want if o.startswith("--")])
        for opt in ("--ttl", "--client-id", "--json"):
            self.assertIn(opt, self.complete("secrets lease --"))
        self.assertEqual(self.complete("secrets revoke --a"), ["--all"])
        self.assertIn("-o", self.complete("secrets env -"))
        # Options are the subcommand's, even after other words.
        self.assertEqual(self.complete("secrets lease --json --t"), ["--ttl"])

    def test_bash_option_values(self):
        # A value-taking option completes no words; a path option completes files.
        self.assertEqual(self.complete("secrets lease --ttl "), [])
        with open(os.path.join(self.cwd, "prod.env"), "w") as f:
            f.write("A=1\n")
        self.assertEqual(self.complete("secrets env --output pro"), ["prod.env"])
        self.assertEqual(self.complete("secrets import pro"), ["prod.env"])

    def test_bash_secret_names_from_the_daemon(self):
        self.home.serve()
        self.home.add("alpha_key", "1")
        self.home.add("alpine", "2")
        self.home.add("beta", "3")
        self.assertEqual(self.complete("secrets lease al"), ["alpha_key", "alpine"])
        self.assertEqual(self.complete("secrets rotate b"), ["beta"])
        self.assertEqual(self.complete("secrets delete "), ["alpha_key", "alpine", "beta"])
        # No daemon: no names, and no error text in the completions.
        self.home.stop()
        self.assertEqual(self.complete("secrets lease al"), [])

    def test_bash_exec_command_after_double_dash(self):
        got = self.complete("secrets exec --secret x -- ech")
        self.assertIn("echo", got)

    def test_zsh_and_fish_cover_the_tree(self):
        subs = help_subcommands(self.home)
        for shell in ("zsh", "fish"):
            r = self.home.run("completion", shell)
            self.assertEqual(r.rc, 0, r)
            text = r.out.decode()
            for name in subs:
                self.assertRegex(text, r"[' ]%s[:' |)]" % re.escape(name), (shell, name))
            for opt in ("ttl", "client-id", "json", "all", "verify", "no-masking"):
                self.assertIn(opt, text, (shell, opt))
            exe = shutil.which(shell)
            if exe:
                path = os.path.join(self.cwd, "script." + shell)
                with open(path, "w") as f:
                    f.write(text)
                p = subprocess.run([exe, "-n", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
                self.assertEqual(p.returncode, 0, (shell, p))
        self.assertTrue(self.home.run("completion", "zsh").out.startswith(b"#compdef secrets\n"))

    def test_bad_shell(self):
        self.assert_err(self.home.run("completion", "powershell"), rc=2)
        self.assert_err(self.home.run("completion"), rc=2)


if __name__ == "__main__":
    harness.main()
