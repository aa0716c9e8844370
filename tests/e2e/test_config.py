"""End-to-end tests of config.json (DESIGN.md section 2): `secrets config`,
Go-compatible durations (strings and integer nanoseconds), strict errors that
name the key, TTL bounds from config, and socket_path used by daemon and CLI."""

import os
import shutil
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import E2ETestCase, go_duration_seconds, now_utc, parse_time  # noqa: E402

NS = 1000000000


class CustomSocketHome(harness.Home):
    """A Home whose daemon listens where config.json says."""

    def __init__(self, socket_path, **kw):
        self._socket_path = socket_path
        super().__init__(**kw)

    @property
    def socket(self):
        return self._socket_path


def text_of(r):
    return (r.out + r.err).decode("utf-8", "replace")


class ConfigCommand(E2ETestCase):
    def test_defaults(self):
        home = self.new_home(serve=False)  # no daemon needed, no config.json
        self.assertFalse(os.path.exists(home.file("config.json")))
        r = home.run("config")
        res = self.assert_ok(r, "secrets config")
        self.assertEqual(res["default_lease_ttl"], "1h0m0s", res)
        self.assertEqual(res["max_lease_ttl"], "24h0m0s", res)
        self.assertEqual(res["rotation_timeout"], "30s", res)
        self.assertEqual(os.path.realpath(res["directory"]), os.path.realpath(home.path), res)
        self.assertEqual(res["socket_path"], home.socket, res)
        hb = res["heartbeat"]
        self.assertIs(hb["enabled"], False, hb)
        self.assertEqual(hb["url"], "", hb)
        self.assertEqual(hb["interval"], "1m0s", hb)
        self.assertEqual(hb["timeout"], "10s", hb)
        self.assertEqual(hb["fail_action"], {"revoke_all": True, "rotate_all": False, "wipe_store": False}, hb)
        for key in ("default_lease_ttl", "max_lease_ttl", "rotation_timeout"):
            go_duration_seconds(res[key])
        # Printing the config creates nothing.
        self.assertFalse(os.path.exists(home.file("config.json")))

    def test_go_integer_nanoseconds(self):
        home = self.new_home(serve=False)
        home.write_config({"default_lease_ttl": 600 * NS, "max_lease_ttl": 7200 * NS,
                           "rotation_timeout": 5 * NS,
                           "heartbeat": {"interval": 90 * NS, "timeout": 2 * NS}})
        res = home.run_json("config")
        self.assertEqual(res["default_lease_ttl"], "10m0s", res)
        self.assertEqual(res["max_lease_ttl"], "2h0m0s", res)
        self.assertEqual(res["rotation_timeout"], "5s", res)
        self.assertEqual(res["heartbeat"]["interval"], "1m30s", res)
        self.assertEqual(res["heartbeat"]["timeout"], "2s", res)
        home.serve()
        home.add("k", "v")
        t0 = now_utc()
        lease = home.lease_json("k")  # no --ttl: the configured default
        self.assertEqual(lease.get("ttl"), "10m0s", lease)
        left = (parse_time(lease["expires_at"]) - t0).total_seconds()
        self.assertGreater(left, 600 - 15, lease)
        self.assertLess(left, 600 + 15, lease)
        # And the configured maximum.
        self.assert_err(home.run("lease", "k", "--ttl", "3h", "--json"), rc=2, code="invalid_params")

    def test_go_readme_strings_and_zero(self):
        home = self.new_home(serve=False)
        # Integer 0 is Go's zero value: the default.
        home.write_config({"default_lease_ttl": "1h30m", "max_lease_ttl": "48h", "rotation_timeout": 0,
                           "heartbeat": {"interval": "5m", "timeout": "500ms"}})
        res = home.run_json("config")
        self.assertEqual(res["default_lease_ttl"], "1h30m0s", res)
        self.assertEqual(res["max_lease_ttl"], "48h0m0s", res)
        self.assertEqual(res["rotation_timeout"], "30s", res)
        self.assertEqual(res["heartbeat"]["interval"], "5m0s", res)
        self.assertEqual(res["heartbeat"]["timeout"], "500ms", res)

    def test_round_trip(self):
        home = self.new_home(serve=False)
        home.write_config({"default_lease_ttl": "20m", "rotation_timeout": 7 * NS,
                           "heartbeat": {"fail_action": {"rotate_all": True}}})
        first = home.run_json("config")
        first.pop("source", None)
        home.write_config(first)
        second = home.run_json("config")
        second.pop("source", None)
        self.assertEqual(first, second)
        home.serve()
        self.assertIs(home.status().get("running"), True)

    def test_go_config_save_path_keys_are_accepted(self):
        home = self.new_home(serve=False)
        cfg = {"directory": home.path, "socket_path": home.socket,
               "identity_path": home.file("identity.age"), "secrets_path": home.file("secrets.age"),
               "audit_path": home.file("audit.log"), "leases_path": home.file("leases.json"),
               "default_lease_ttl": 3600 * NS, "max_lease_ttl": 86400 * NS, "rotation_timeout": 30 * NS,
               "heartbeat": {"enabled": False, "url": "", "interval": 60 * NS, "timeout": 10 * NS,
                             "fail_action": {"revoke_all": True, "rotate_all": False, "wipe_store": False}}}
        home.write_config(cfg)
        self.assert_ok(home.run("config"), "secrets config")
        home.serve()
        home.add("k", "v")
        self.assertEqual(home.run("lease", "k").out, b"v")


class ConfigErrors(E2ETestCase):
    def assert_refused(self, home, *needles):
        """serve exits non-zero naming the problem, and no daemon runs; so does `secrets config`."""
        r = home.serve_expect_exit()
        self.assertIsNotNone(r.rc, "serve kept running with a bad config.json")
        self.assertNotEqual(r.rc, 0, r)
        text = text_of(r)
        for n in needles:
            self.assertIn(n, text, r)
        self.assertFalse(os.path.exists(home.socket), "a socket exists: a daemon runs")
        self.assertFalse(os.path.exists(home.file("daemon.pid")))
        with self.assertRaises(OSError):
            socket.socket(socket.AF_UNIX).connect(home.socket)
        c = home.run("config")
        env = self.assert_err(c)
        for n in needles:
            self.assertIn(n, env["error"]["message"], env)
        self.assertIn("config.json", env["error"]["message"] + env["fix"], env)
        return r

    def test_unknown_key(self):
        home = self.new_home(serve=False)
        home.write_config({"default_lease_ttl": "1h", "default_lease_tll": "2h"})
        self.assert_refused(home, "default_lease_tll")
        # The other commands read it too, and say so.
        r = home.run("status")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("default_lease_tll", text_of(r))

    def test_unknown_nested_key(self):
        home = self.new_home(serve=False)
        home.write_config({"heartbeat": {"enabled": False, "intervall": "1s"}})
        self.assert_refused(home, "heartbeat.intervall")
        home.write_config({"heartbeat": {"fail_action": {"wipe": True}}})
        self.assert_refused(home, "heartbeat.fail_action.wipe")

    def test_bad_durations(self):
        home = self.new_home(serve=False)
        for cfg, key in (({"rotation_timeout": "5 minutes"}, "rotation_timeout"),
                         ({"max_lease_ttl": "2x"}, "max_lease_ttl"),
                         ({"default_lease_ttl": 1.5}, "default_lease_ttl"),
                         ({"default_lease_ttl": -5}, "default_lease_ttl"),
                         ({"rotation_timeout": "0s"}, "rotation_timeout"),
                         ({"rotation_timeout": True}, "rotation_timeout"),
                         ({"heartbeat": {"timeout": "soon"}}, "heartbeat.timeout"),
                         ({"heartbeat": {"interval": "10ms"}}, "heartbeat.interval")):
            with self.subTest(cfg=cfg):
                home.write_config(cfg)
                c = home.run("config")
                env = self.assert_err(c)
                self.assertIn(key, env["error"]["message"], env)
        home.write_config({"rotation_timeout": "5 minutes"})
        self.assert_refused(home, "rotation_timeout")

    def test_bad_values(self):
        home = self.new_home(serve=False)
        for cfg, key in (({"heartbeat": {"enabled": "yes"}}, "heartbeat.enabled"),
                         ({"heartbeat": {"enabled": True}}, "heartbeat.url"),
                         ({"heartbeat": {"url": "ftp://127.0.0.1/x"}}, "heartbeat.url"),
                         ({"socket_path": "relative.sock"}, "socket_path"),
                         ({"socket_path": 5}, "socket_path"),
                         ({"default_lease_ttl": "2h", "max_lease_ttl": "1h"}, "max_lease_ttl"),
                         ({"heartbeat": []}, "heartbeat")):
            with self.subTest(cfg=cfg):
                home.write_config(cfg)
                env = self.assert_err(home.run("config"))
                self.assertIn(key, env["error"]["message"], env)
        home.write_config("[1, 2]")
        self.assert_err(home.run("config"))

    def test_duplicate_key(self):
        home = self.new_home(serve=False)
        home.write_config('{"heartbeat": {"enabled": false, "enabled": true, "url": "http://127.0.0.1:9/"}}')
        self.assert_refused(home, "heartbeat.enabled")

    def test_invalid_json_names_the_line(self):
        home = self.new_home(serve=False)
        home.write_config('{\n  "default_lease_ttl": "1h",\n  "max_lease_ttl": "2h"\n  "rotation_timeout": "5s"\n}\n')
        self.assert_refused(home, "line 4")
        home.write_config('{\n  "default_lease_ttl": "1h",\n')
        env = self.assert_err(home.run("config"))
        self.assertRegex(env["error"]["message"], r"line \d+", env)
        self.assertIn("JSON", env["error"]["message"], env)

    def test_empty_file_is_an_error(self):
        home = self.new_home(serve=False)
        home.write_config("")
        self.assert_err(home.run("config"))

    def test_exposed_config_is_refused(self):
        home = self.new_home(serve=False)
        home.write_config({"rotation_timeout": "5s"}, mode=0o644)
        r = home.serve_expect_exit()
        self.assertNotEqual(r.rc, 0, r)
        self.assertIsNotNone(r.rc, r)
        self.assertIn("chmod 600", text_of(r), r)
        self.assertIn("config.json", text_of(r), r)
        self.assertFalse(os.path.exists(home.socket))


class LeaseBounds(E2ETestCase):
    def test_max_lease_ttl_bounds_leases(self):
        home = self.new_home(serve=False)
        home.write_config({"max_lease_ttl": "2h"})
        home.serve()
        home.add("k", "v")
        r = home.run("lease", "k", "--ttl", "3h")
        env = self.assert_err(r, rc=2, code="invalid_params", stream="stderr")
        self.assertEqual(r.out, b"")
        msg = env["error"]["message"]
        self.assertIn("3h", msg, env)
        self.assertIn("2h0m0s", msg, env)  # the allowed range
        self.assertIn("between", msg, env)
        r = home.run("lease", "k", "--ttl", "2h1s", "--json")
        self.assert_err(r, rc=2, code="invalid_params")
        lease = home.lease_json("k", "--ttl", "2h")
        self.assertEqual(lease["ttl"], "2h0m0s", lease)
        # The default (1h) is within the maximum and used without --ttl.
        self.assertEqual(home.lease_json("k")["ttl"], "1h0m0s")
        self.assertEqual(home.status()["active_leases"], 2)

    def test_default_lease_ttl_from_config(self):
        home = self.new_home(serve=False)
        home.write_config({"default_lease_ttl": "90s"})
        home.serve()
        home.add("k", "v")
        t0 = now_utc()
        lease = home.lease_json("k")
        self.assertEqual(lease["ttl"], "1m30s", lease)
        left = (parse_time(lease["expires_at"]) - t0).total_seconds()
        self.assertTrue(75 < left < 105, lease)


class SocketPath(E2ETestCase):
    def setUp(self):
        self.sockdir = tempfile.mkdtemp(prefix="as-sock-")
        os.chmod(self.sockdir, 0o700)
        self.addCleanup(shutil.rmtree, self.sockdir, True)

    def test_custom_socket_used_by_daemon_and_cli(self):
        path = os.path.join(self.sockdir, "custom.sock")
        home = CustomSocketHome(path, init=True)
        self.addCleanup(home.cleanup)
        home.write_config({"socket_path": path})
        self.assertEqual(home.run_json("config")["socket_path"], path)
        home.serve()  # waits for secrets.status on the custom path
        self.assertTrue(os.path.exists(path))
        self.assertEqual(harness.file_mode(path), 0o600)
        self.assertFalse(os.path.exists(home.file(harness.SOCKET_NAME)), "the default socket exists too")
        # The CLI finds the daemon through config.json.
        st = home.status()
        self.assertEqual(st.get("socket"), path, st)
        self.assertEqual(st.get("pid"), home.daemon.pid, st)
        home.add("k", "custom-socket-value")
        self.assertEqual(home.run("lease", "k").out, b"custom-socket-value")
        # AGENT_SECRETS_SOCKET overrides config.json for the CLI.
        r = home.run("status", env={"AGENT_SECRETS_SOCKET": os.path.join(self.sockdir, "nothing.sock")})
        self.assert_err(r, rc=3, code="daemon_not_running")
        # A stop removes it.
        self.assertIn(home.stop(), (0, None))
        self.assertFalse(os.path.exists(path))
        self.assert_err(home.run("status"), rc=3)


if __name__ == "__main__":
    harness.main()
