"""secrets health: the Go report (expiring leases, missing hooks, stale
secrets) plus hooks that hooks.json does not allow, read from the daemon's last_leased index, which survives restarts
in state.json."""
import datetime as dt
import json
import os

import harness
from harness import E2ETestCase, now_utc


def go_time(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Health(E2ETestCase):
    def setUp(self):
        self.home = self.new_home()
        self.home.add("plain", b"v1")
        self.home.add("hooked", b"v2", "--rotate-via", "echo next")

    def warnings(self, *flags):
        r = self.home.run("health", *flags)
        return self.assert_ok(r, "secrets health")

    def test_report_names_missing_hooks_and_expiring_leases(self):
        lease_id = self.home.lease_json("plain", "--ttl", "30m")["lease_id"]
        self.home.lease_json("hooked", "--ttl", "2h")
        res = self.warnings()
        self.assertEqual(res["total_secrets"], 2)
        self.assertEqual(res["active_leases"], 2)
        self.assertEqual(res["expiring_soon"], 1)
        self.assertEqual(res["never_rotated"], 2)
        self.assertEqual(res["stale_secrets"], 0)
        kinds = {(w["type"], w.get("secret_name")) for w in res["warnings"]}
        self.assertIn(("no_rotation_hook", "plain"), kinds)
        self.assertNotIn(("no_rotation_hook", "hooked"), kinds)
        expiring = [w for w in res["warnings"] if w["type"] == "expiring_soon"]
        self.assertEqual([w["lease_id"] for w in expiring], [lease_id])
        self.assertEqual(res["warnings_count"], len(res["warnings"]))
        self.assertIn("warning(s) detected", res["status"])

    def test_warnings_only(self):
        res = self.warnings("--warnings")
        self.assertEqual(set(res), {"status", "warnings"})
        self.assertEqual(sorted(w["type"] for w in res["warnings"]), ["hook_not_allowed", "no_rotation_hook"])

    def test_a_hook_hooks_json_does_not_allow_is_named_with_its_fix(self):
        def not_allowed():
            return [w for w in self.warnings()["warnings"] if w["type"] == "hook_not_allowed"]
        w = not_allowed()
        self.assertEqual([x["secret_name"] for x in w], ["hooked"])
        self.assertEqual(w[0]["fix"], "secrets hook allow hooked 'echo next'")
        self.assertEqual(self.home.run("hook", "allow", "hooked", "echo next").rc, 0)
        self.assertEqual(not_allowed(), [])
        # An allowlist entry for another command allows nothing.
        self.assertEqual(self.home.run("hook", "allow", "hooked", "echo other").rc, 0)
        self.assertEqual([x["secret_name"] for x in not_allowed()], ["hooked"])

    def test_index_survives_restart_and_marks_stale_secrets(self):
        self.home.lease_json("plain")
        self.home.stop()
        path = self.home.file("state.json")
        with open(path) as f:
            snap = json.load(f)
        self.assertIn("plain", snap["last_leased"])
        self.assertNotIn("hooked", snap["last_leased"])
        # Pretend the last lease of "plain" was 40 days ago.
        snap["last_leased"]["plain"] = go_time(now_utc() - dt.timedelta(days=40))
        with open(path, "w") as f:
            json.dump(snap, f)
        os.chmod(path, 0o600)
        self.home.serve()
        res = self.warnings()
        stale = {w["secret_name"]: w["message"] for w in res["warnings"] if w["type"] == "stale_secret"}
        self.assertEqual(res["stale_secrets"], 1, res)
        self.assertIn("has not been leased", stale["plain"])


if __name__ == "__main__":
    harness.main()
