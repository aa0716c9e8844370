"""End-to-end tests of `secrets man`, the man page secrets(1) generated from
the CLI11 tree (what `make deb` installs as /usr/share/man/man1/secrets.1.gz):
man renders it without a warning, it holds every command of `secrets --json`
with its usage line and description, it is the same bytes every time, and the
command itself is hidden from every list of commands.

render_man() and assert_man_lists_commands() are also used by test_deb.py on
the page inside the package."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import E2ETestCase  # noqa: E402


def render_man(path):
    """`man -l PATH` as plain text, 80 columns; returns (rc, text, stderr).
    --warnings has groff report every problem it finds in the roff (-ww)."""
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
    env.pop("MANPAGER", None)
    env.pop("PAGER", None)
    p = subprocess.run(["man", "--warnings", "-l", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=60)
    # No bold or underline by overstriking (a pager's business, not ours).
    text = re.sub(r".\x08", "", p.stdout.decode("utf-8", "replace"))
    return p.returncode, text, p.stderr.decode("utf-8", "replace")


def flat(text):
    """Whitespace collapsed to single spaces, so a wrapped line reads as one."""
    return " ".join(text.split())


def assert_man_lists_commands(test, rendered, commands):
    """Every command of `secrets --json` is in the rendered page: its whole
    usage line as --json gives it (man's wrapping aside), and its description."""
    text = flat(rendered)
    test.assertGreater(len(commands), 20)
    for c in commands:
        test.assertIn(flat(c["usage"]), text, "usage of %s missing from the man page" % c["usage"])
        test.assertIn(flat(c["description"]), text, "description of %s missing" % c["usage"])


class Man(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.home = self.new_home(init=False, serve=False)

    def page(self):
        r = self.home.run("man")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.err, b"", r)
        return r.out

    def commands(self):
        return self.home.run_json("--json")["commands"]

    def test_man_renders_every_command_of_the_json_tree(self):
        path = os.path.join(self.home.logs, "secrets.1")
        with open(path, "wb") as f:
            f.write(self.page())
        rc, text, err = render_man(path)
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, "", "man/groff warnings on the generated page")
        self.assertTrue(text.startswith("SECRETS(1)"), text[:200])
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "ENVIRONMENT", "FILES",
                        "EXIT STATUS", "SEE ALSO"):
            self.assertRegex(text, r"(?m)^%s$" % section)
        assert_man_lists_commands(self, text, self.commands())
        # Nested commands are there under their full path, e.g. `hook allow`.
        self.assertIn("secrets hook allow", text)
        # Options with their descriptions: one per command is enough to show
        # the options are read from the tree, not written by hand.
        self.assertIn("--ttl TTL", text)
        self.assertIn("KILLSWITCH: revoke every lease", text)
        # A minus is rendered as the ASCII hyphen a user can paste into a shell.
        self.assertIn("secrets revoke [LEASE_ID] [--all]", flat(text))
        self.assertNotIn("\u2212", text)

    def test_the_page_is_reproducible_and_carries_no_date(self):
        first = self.page()
        self.assertEqual(first, self.page())
        th = [line for line in first.decode().splitlines() if line.startswith(".TH ")]
        self.assertEqual(len(th), 1, th)
        version = self.home.run("--version").out.decode().strip()
        self.assertEqual(th[0], '.TH SECRETS 1 "" "agent\\-secrets %s" "User Commands"' % version)

    def test_roff_escapes_what_it_must(self):
        page = self.page().decode()
        for line in page.splitlines():
            if line.startswith('.\\"'):
                continue  # the comment line
            # Every minus is \-, and no text line starts with ' (a request in roff).
            self.assertNotRegex(line, r"(?<!\\)-", line)
            self.assertFalse(line.startswith("'"), line)
            if line.startswith("."):
                self.assertRegex(line, r"^\.(TH|SH|SS|TP|PP|br|nh|ad|BR)( |$)", line)

    def test_man_is_hidden_from_every_command_list(self):
        self.assertNotIn("secrets man", [c["usage"].split(" [")[0] for c in self.commands()])
        piped = self.home.run()  # bare `secrets` to a pipe prints the tree
        self.assertEqual(piped.rc, 0, piped)
        self.assertNotIn(b'"secrets man', piped.out)
        for args in (["--help"], ["help"]):
            out = self.home.run(*args).out.decode()
            self.assertNotRegex(out, r"(?m)^  man\b", args)
        for shell in ("bash", "zsh", "fish"):
            script = self.home.run("completion", shell).out.decode()
            self.assertNotRegex(script, r"\bman\b", shell)
        # Hidden, not gone: `secrets help man` still says what it is.
        r = self.home.run("help", "man")
        self.assertEqual(r.rc, 0, r)
        self.assertIn(b"man page", r.out)


if __name__ == "__main__":
    harness.main()
