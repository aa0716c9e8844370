"""skills/secret-management/SKILL.md: the Agent Skills front matter rules, and
every `secrets ...` command line in it is a valid invocation of our CLI.

A command is checked twice: its subcommand's `--help` must exist and list every
flag used, and the whole line is run against the real binary in an empty home
with no daemon, where a valid invocation gets past parsing and validation to
the connect (exit 3, daemon not running) and an invalid one exits 2 (usage).
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile

import yaml

import harness
from harness import BIN, E2ETestCase

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SKILL_DIR = os.path.join(ROOT, "skills", "secret-management")
SKILL = os.path.join(SKILL_DIR, "SKILL.md")
ALLOWED_KEYS = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
SHELL_PUNCTUATION = set("();<>|&")


def split_skill():
    text = open(SKILL, encoding="utf-8").read()
    m = re.match(r"\A---\n(.*?)\n---\n(.*)\Z", text, re.S)
    if not m:
        raise AssertionError("SKILL.md does not start with a --- front matter block")
    return m.group(1), m.group(2)


def command_lines(body):
    """Every `secrets ...` invocation in fenced code blocks and inline code, as
    (argv, reference) pairs. A bare `secrets SUB` in prose names the subcommand
    (a reference: it must exist) rather than being an invocation to run."""
    snippets = []
    fenced = re.findall(r"^```[a-z]*\n(.*?)^```", body, re.S | re.M)
    snippets += [(line, False) for block in fenced for line in block.splitlines()]
    prose = re.sub(r"^```.*?^```", "", body, flags=re.S | re.M)
    snippets += [(s, len(s.split()) == 2) for s in re.findall(r"`(secrets [^`]+)`", prose)]
    commands = []
    for snippet, reference in snippets:
        lex = shlex.shlex(snippet, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = "#"
        tokens = list(lex)
        i = 0
        while i < len(tokens):
            if tokens[i] == "secrets":
                j = i + 1
                while j < len(tokens) and not set(tokens[j]) <= SHELL_PUNCTUATION:
                    j += 1
                commands.append((tokens[i + 1:j], reference))
                i = j
            else:
                i += 1
    return commands


def help_text(argv):
    p = subprocess.run([BIN] + argv + ["--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout.decode()


class Skill(E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.front_text, cls.body = split_skill()
        cls.front = yaml.safe_load(cls.front_text)
        cls.work = tempfile.mkdtemp(prefix="secrets-skill-")
        cls.home = os.path.join(cls.work, "home")  # never created: no store, no daemon
        # `secrets exec` and `env` without --secret read the project's .secrets.json.
        with open(os.path.join(cls.work, ".secrets.json"), "w") as f:
            json.dump({"secrets": [{"name": "github_token", "env_var": "GITHUB_TOKEN"}]}, f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    # ------------------------------------------------------------ front matter

    def test_front_matter_follows_the_agent_skills_rules(self):
        fm = self.front
        self.assertIsInstance(fm, dict)
        self.assertLessEqual(set(fm), ALLOWED_KEYS)
        for key in ("name", "description", "license", "compatibility", "metadata"):
            self.assertIn(key, fm)
        name = fm["name"]
        self.assertIsInstance(name, str)
        self.assertRegex(name, r"^[a-z0-9]+(-[a-z0-9]+)*$")
        self.assertLessEqual(len(name), 64)
        self.assertEqual(name, os.path.basename(os.path.normpath(SKILL_DIR)))
        desc = fm["description"]
        self.assertIsInstance(desc, str)
        self.assertTrue(desc.strip())
        self.assertLessEqual(len(desc), 1024)
        self.assertIn("Use this skill when", desc, "say when to use it")
        self.assertIsInstance(fm["license"], str)
        self.assertTrue(fm["license"].strip())
        self.assertIsInstance(fm["compatibility"], str)
        self.assertTrue(0 < len(fm["compatibility"]) <= 500)

    def test_metadata_is_a_string_map_plus_what_openclaw_reads(self):
        md = self.front["metadata"]
        self.assertIsInstance(md, dict)
        for k, v in md.items():
            self.assertIsInstance(k, str)
            if k != "openclaw":  # the one nested value: OpenClaw's gating object
                self.assertIsInstance(v, str, k)
        self.assertEqual(md["openclaw"], {"requires": {"bins": ["secrets"]}})
        # OpenClaw's own line parser takes the metadata line's text and parses it as JSON.
        line = [l for l in self.front_text.splitlines() if l.startswith("metadata:")]
        self.assertEqual(len(line), 1)
        self.assertEqual(json.loads(line[0][len("metadata:"):]), md)
        version = re.search(r"project\(agent_secrets VERSION (\S+)", open(os.path.join(ROOT, "CMakeLists.txt")).read())
        self.assertEqual(md["version"], version.group(1))

    # ------------------------------------------------------------ body

    def test_body_says_what_the_cli_does(self):
        body = self.body
        concealed = re.search(r'k_concealed = "([^"]+)"', open(os.path.join(ROOT, "cmd", "mask.hpp")).read()).group(1)
        self.assertIn(concealed, body, "exec masking: the exact placeholder")
        self.assertIn("prints **only the raw value**", body, "the raw lease default")
        self.assertIn("secrets revoke --all", body, "the killswitch")
        self.assertIn("Never echo", body)
        self.assertIn("Never write a value to a file", body)
        self.assertIn("secrets audit --tail", body)
        self.assertIn("secrets audit --verify", body)
        # A hook is code the daemon runs: the skill forbids setting one and shows none.
        self.assertIn("Never set or allow a rotation hook", body)
        for hook_syntax in ("--rotate-via", "rotate_via", "hook allow"):
            self.assertNotIn(hook_syntax, body)
        # The exit codes it lists are DESIGN.md's.
        self.assertIn("0 ok, 1 error, 2 usage, 3 daemon not running, 4 not found,\n5 denied", body)

    # ------------------------------------------------------------ commands

    def check_invocation(self, argv, reference=False):
        """Raises AssertionError unless `secrets argv...` is a valid invocation."""
        self.assertTrue(argv, "a bare `secrets`")
        sub = argv[0]
        rc, top = help_text([])
        self.assertEqual(rc, 0)
        self.assertRegex(top, r"(?m)^\s+%s\b" % re.escape(sub), "no subcommand %r" % sub)
        rc, sub_help = help_text([sub])
        self.assertEqual(rc, 0, sub)
        flags = argv[1:argv.index("--")] if "--" in argv else argv[1:]
        for tok in flags:
            if tok.startswith("-"):
                self.assertRegex(sub_help, r"(^|[\s,])%s\b" % re.escape(tok.split("=")[0]),
                                 "secrets %s has no flag %s" % (sub, tok))
        if sub == "serve" or reference:
            return  # serve would start a daemon; --help above is the check
        env = dict(os.environ, AGENT_SECRETS_HOME=self.home)
        env.pop("AGENT_SECRETS_SOCKET", None)
        p = subprocess.run([BIN] + argv, cwd=self.work, env=env, input=b"placeholder-value\n",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        expected = {0} if sub in ("mcp", "config") else {3}
        self.assertIn(p.returncode, expected, "secrets %s: rc %d\n%s%s" % (
            " ".join(argv), p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")))

    def test_the_check_rejects_bad_invocations(self):
        for bad in (["lease", "x", "--bogus"], ["leese", "x"], ["revoke", "--rotate"], ["lease"],
                    ["exec", "--no-such-flag", "--", "true"]):
            with self.assertRaises(AssertionError, msg=bad):
                self.check_invocation(bad)

    def test_every_command_line_is_a_valid_invocation(self):
        commands = command_lines(self.body)
        self.assertGreaterEqual(len(commands), 15, commands)
        subs = {c[0] for c, _ in commands if c}
        for needed in ("lease", "exec", "revoke", "audit", "status", "list"):
            self.assertIn(needed, subs)
        for argv, reference in commands:
            with self.subTest(command=" ".join(argv)):
                self.check_invocation(argv, reference)


if __name__ == "__main__":
    harness.main()
