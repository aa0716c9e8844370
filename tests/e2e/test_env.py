"""End-to-end tests of `secrets env`, `secrets cleanup` and `secrets import`
(issue 4) against the real daemon."""

import json
import os
import shutil
import subprocess
import tempfile
import time

import harness
from harness import BIN, E2ETestCase, Result, file_mode, wait_until

HEADER = "# written by secrets env (agent-secrets)"

HOSTILE = {
    "spaces": "  two  spaces  ",
    "quotes": "it's a \"quoted\" 'value'",
    "dollar": "$HOME ${PATH} $(id) `id`",
    "backslash": "back\\slash \\n \\\\ \\'",
    "newlines": "line1\nline2\n\nline4\n",
    "idiom": "'\\''",
}


class EnvTest(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.work = tempfile.mkdtemp(prefix="as-env-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    def run_in(self, cwd, *args):
        p = subprocess.run([BIN] + [str(a) for a in args], cwd=cwd, env=self.home.env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        return Result(list(args), p.returncode, p.stdout, p.stderr)

    def live_ids(self):
        return {l["lease_id"] for l in self.home.rpc("secrets.leases")["result"]["leases"]}

    def env_file(self, *secrets, name=".env", extra=()):
        args = ["env", "--output", self.path(name)]
        for s in secrets:
            args += ["--secret", s]
        return self.assert_ok(self.home.run(*args, *extra), "secrets env")

    def test_env_writes_private_file_with_header_and_round_trips_hostile_values(self):
        flags = []
        for i, (name, value) in enumerate(sorted(HOSTILE.items())):
            self.home.add(name, value)
            flags.append("%s=V%d" % (name, i))
        result = self.env_file(*flags)
        path = self.path(".env")
        self.assertEqual(result["path"], path)
        self.assertEqual(file_mode(path), 0o600)
        with open(path, "rb") as f:
            lines = f.read().decode().split("\n")
        self.assertEqual(lines[0], HEADER)
        ids = [l["lease_id"] for l in result["leases"]]
        self.assertEqual(len(ids), len(HOSTILE))
        for lease in result["leases"]:
            self.assertIn("# lease %s %s expires %s" % (lease["lease_id"], lease["secret_name"], lease["expires_at"]),
                          lines)
        out = json.dumps(result)
        for value in HOSTILE.values():
            self.assertNotIn(json.dumps(value)[1:-1], out)
        for i, (name, value) in enumerate(sorted(HOSTILE.items())):
            p = subprocess.run(["bash", "-c", 'set -a; . ./.env; printf %s "$V' + str(i) + '"'], cwd=self.work,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.decode(), value, name)
        # no temp file left behind
        self.assertEqual(os.listdir(self.work), [".env"])

    def test_env_refuses_to_overwrite_without_force(self):
        self.home.add("tok", "v1")
        first = self.env_file("tok")
        r = self.home.run("env", "--output", self.path(".env"), "--secret", "tok")
        env = self.assert_err(r, rc=1)
        self.assertIn("--force", env["fix"])
        with open(self.path(".env")) as f:
            self.assertIn(first["leases"][0]["lease_id"], f.read())
        second = self.env_file("tok", extra=["--force"])
        self.assertEqual(file_mode(self.path(".env")), 0o600)
        # the replaced file's lease was revoked; the new one lives
        self.assertEqual(second.get("revoked_previous"), [first["leases"][0]["lease_id"]])
        self.assertEqual(self.live_ids(), {second["leases"][0]["lease_id"]})

    def test_revoke_all_makes_the_daemon_delete_the_env_file(self):
        self.home.add("tok", "v")
        self.env_file("tok")
        self.assertTrue(os.path.exists(self.path(".env")))
        self.assert_ok(self.home.run("revoke", "--all"))
        self.assertTrue(wait_until(lambda: not os.path.exists(self.path(".env")), 5.0))

    def test_short_ttl_file_disappears_after_expiry(self):
        self.home.add("tok", "v")
        result = self.env_file("tok", extra=["--ttl", "2s"])
        self.assertTrue(os.path.exists(self.path(".env")))
        self.assertEqual(len(result["leases"]), 1)
        self.assertTrue(wait_until(lambda: not os.path.exists(self.path(".env")), 7.0))

    def test_missing_secret_writes_nothing_and_revokes_taken_leases(self):
        self.home.add("present", "v")
        r = self.home.run("env", "--output", self.path(".env"), "--secret", "present", "--secret", "absent")
        env = self.assert_err(r, rc=4)
        self.assertIn("absent", env["error"]["message"])
        self.assertFalse(os.path.exists(self.path(".env")))
        self.assertEqual(os.listdir(self.work), [])
        self.assertEqual(self.live_ids(), set())

    def test_output_in_a_missing_directory_takes_no_lease(self):
        self.home.add("tok", "v")
        env = self.assert_err(self.home.run("env", "--output", self.path("nope", ".env"), "--secret", "tok"), rc=2)
        self.assertIn("mkdir -p", env["fix"])
        self.assertEqual(self.live_ids(), set())

    def test_secrets_json_is_found_from_a_nested_directory(self):
        self.home.add("github-token", "gh")
        self.home.add("db.password", "pg")
        with open(self.path(".secrets.json"), "w") as f:
            json.dump({"client_id": "e2e", "secrets": [{"name": "github-token", "env_var": "GITHUB_TOKEN"},
                                                       {"name": "db.password", "env_var": "PGPASSWORD"}]}, f)
        nested = self.path("a", "b")
        os.makedirs(nested)
        result = self.assert_ok(self.run_in(nested, "env"), "secrets env")
        self.assertEqual(result["path"], os.path.join(nested, ".env"))
        self.assertEqual([l["env_var"] for l in result["leases"]], ["GITHUB_TOKEN", "PGPASSWORD"])
        p = subprocess.run(["bash", "-c", 'set -a; . ./.env; printf %s:%s "$GITHUB_TOKEN" "$PGPASSWORD"'],
                           cwd=nested, stdout=subprocess.PIPE, timeout=10)
        self.assertEqual(p.stdout, b"gh:pg")

    def test_schema_error_names_field_and_line(self):
        with open(self.path("bad.json"), "w") as f:
            f.write('{\n  "secrets": [\n    {"name": "a", "env_var": "A"},\n    {"name": "b", "env_var": 4}\n  ]\n}\n')
        env = self.assert_err(self.home.run("env", "--file", self.path("bad.json"), "--output", self.path(".env")),
                              rc=2)
        self.assertIn("line 4: secrets[1].env_var must be a string", env["error"]["message"])

    def test_cleanup_dry_run_then_removal_and_header_less_files_untouched(self):
        self.home.add("tok", "v")
        result = self.env_file("tok")
        lease_id = result["leases"][0]["lease_id"]
        # a copy elsewhere keeps the header but is not registered with the daemon
        other = self.path("other")
        os.makedirs(other)
        shutil.copy(self.path(".env"), os.path.join(other, ".env.copy"))
        plain = os.path.join(other, ".env")
        with open(plain, "w") as f:
            f.write("# my own env\nKEY=value\n")
        # leases still live: dry run keeps everything
        r = self.assert_ok(self.home.run("cleanup", "--dry-run", "--path", other), "secrets cleanup")
        self.assertEqual(r["would_remove"], [])
        self.assertEqual([k["path"] for k in r["kept"]], [os.path.join(other, ".env.copy")])
        self.assert_ok(self.home.run("revoke", lease_id))
        self.assertTrue(wait_until(lambda: not os.path.exists(self.path(".env")), 5.0))
        before = sorted(os.listdir(other))
        r = self.assert_ok(self.home.run("cleanup", "--dry-run", "--path", other), "secrets cleanup")
        self.assertEqual(r["would_remove"], [os.path.join(other, ".env.copy")])
        self.assertEqual(sorted(os.listdir(other)), before)
        r = self.assert_ok(self.run_in(other, "cleanup"), "secrets cleanup")
        self.assertEqual(r["removed"], [os.path.join(other, ".env.copy")])
        self.assertEqual(os.listdir(other), [".env"])
        # the daemon made the deletion, so it is in the audit log
        removals = [e for e in self.home.audit_entries() if e["action"] == "env_file_removed"]
        self.assertTrue(any(os.path.join(other, ".env.copy") in e["details"] and "secrets cleanup" in e["details"]
                            and e["success"] for e in removals), removals)
        with open(plain) as f:
            self.assertEqual(f.read(), "# my own env\nKEY=value\n")

    def test_remove_env_file_rpc_refuses_other_files_and_live_leases(self):
        self.home.add("tok", "v")
        result = self.env_file("tok")
        plain = self.path("plain.env")
        with open(plain, "w") as f:
            f.write("KEY=value\n")
        link = self.path("link.env")
        os.symlink(self.path(".env"), link)
        for p in (plain, link, "relative/.env"):
            reply = self.home.rpc("secrets.removeEnvFile", {"path": p})
            self.assert_rpc_error(reply, -32602)
            self.assertTrue(os.path.lexists(p) or p.startswith("relative"), p)
        reply = self.home.rpc("secrets.removeEnvFile", {"path": self.path(".env")})["result"]
        self.assertFalse(reply["removed"], reply)
        self.assertEqual(reply["live_leases"], [result["leases"][0]["lease_id"]])
        self.assertTrue(os.path.exists(self.path(".env")))

    def test_env_file_survives_restart_and_is_deleted_on_revoke(self):
        self.home.add("tok", "v")
        result = self.env_file("tok")
        self.home.stop()
        self.home.serve()
        self.assertTrue(os.path.exists(self.path(".env")))
        self.assert_ok(self.home.run("revoke", result["leases"][0]["lease_id"]))
        self.assertTrue(wait_until(lambda: not os.path.exists(self.path(".env")), 5.0))

    def test_import_messy_env(self):
        messy = (
            "# production settings -- do not commit\n"
            "\n"
            "export DATABASE_URL=postgres://user:p%40ss@db:5432/app   # primary\n"
            "API_KEY='sk-live-$NOT_EXPANDED \\n literal'\n"
            "   \n"
            "MULTI=\"first line\\nsecond \\\"quoted\\\" \\$HOME\"\n"
            "PEM='-----BEGIN KEY-----\n"
            "abc\n"
            "-----END KEY-----'\n"
            "DUP=first\n"
            "EMPTY=\n"
            "DUP=second\n"
            "Mixed_Case=yes\n"
        )
        expected = {
            "app_database_url": "postgres://user:p%40ss@db:5432/app",
            "app_api_key": "sk-live-$NOT_EXPANDED \\n literal",
            "app_multi": "first line\nsecond \"quoted\" $HOME",
            "app_pem": "-----BEGIN KEY-----\nabc\n-----END KEY-----",
            "app_dup": "second",
            "app_mixed_case": "yes",
        }
        src = self.path("messy.env")
        with open(src, "w") as f:
            f.write(messy)
        self.home.add("app_mixed_case", "already here")
        dry = self.assert_ok(self.home.run("import", src, "--prefix", "app_", "--dry-run"), "secrets import")
        self.assertEqual(sorted(i["name"] for i in dry["would_import"]), sorted(set(expected) - {"app_mixed_case"}))
        self.assertEqual(len(self.home.run_json("list")["secrets"]), 1)
        r = self.home.run("import", src, "--prefix", "app_")
        result = self.assert_ok(r, "secrets import")
        for value in list(expected.values()) + ["first"]:
            if len(value) > 3:
                self.assertNotIn(value.encode(), r.out + r.err)
        self.assertEqual(sorted(i["name"] for i in result["imported"]), sorted(set(expected) - {"app_mixed_case"}))
        reasons = {(s["key"], s["line"]): s["reason"] for s in result["skipped"]}
        self.assertIn("overridden by line 12", reasons[("DUP", 10)])
        self.assertEqual(reasons[("EMPTY", 11)], "empty value")
        self.assertIn("already present", reasons[("Mixed_Case", 13)])
        expected["app_mixed_case"] = "already here"
        for name, value in expected.items():
            got = self.home.run("lease", name)
            self.assertEqual(got.rc, 0, got)
            self.assertEqual(got.out.decode(), value, name)
        # The fix keeps --prefix (it used to drop it, and --force then imported
        # unprefixed names), and the plaintext file is pointed at for deletion
        # only once every value is in.
        commands = [a["command"] for a in r.env_out["next_actions"]]
        self.assertIn("secrets import %s --prefix app_ --force" % src, commands)
        self.assertFalse(any(c.startswith("rm ") for c in commands), commands)
        r = self.home.run("import", src, "--prefix", "app_", "--delete-source")
        kept = self.assert_ok(r, "secrets import")
        self.assertIs(kept["source_deleted"], False, kept)
        self.assertIn("not imported", kept["source_kept_because"])
        self.assertTrue(os.path.exists(src))
        forced = self.assert_ok(self.home.run("import", src, "--prefix", "app_", "--force", "--keep-case"))
        self.assertIn("app_Mixed_Case", [i["name"] for i in forced["imported"]])

    def test_import_delete_source_once_every_value_is_in(self):
        src = self.path("legacy env.env")  # a space: the suggested rm is quoted
        with open(src, "w") as f:
            f.write("A=1\nB=two\nEMPTY=\n")
        r = self.home.run("import", src)
        result = self.assert_ok(r, "secrets import")
        self.assertIs(result["source_deleted"], False)
        self.assertIn("rm '%s'" % src, [a["command"] for a in r.env_out["next_actions"]])
        self.assertTrue(os.path.exists(src))
        result = self.assert_ok(self.home.run("import", src, "--prefix", "x_", "--delete-source"), "secrets import")
        self.assertIs(result["source_deleted"], True, result)
        self.assertFalse(os.path.exists(src))
        self.assertEqual(self.home.run("lease", "x_b").out, b"two")

    def test_import_parse_error_names_the_line(self):
        src = self.path("bad.env")
        with open(src, "w") as f:
            f.write("A=1\nB='unterminated secret\n")
        env = self.assert_err(self.home.run("import", src))
        self.assertIn("line 2", env["error"]["message"])
        self.assertNotIn("unterminated secret", json.dumps(env))
        self.assertEqual(self.home.run_json("list")["secrets"], [])


if __name__ == "__main__":
    harness.main()
