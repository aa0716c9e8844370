"""The audit chain resists a rewrite (issue 15, item 7).

Replays the attacks that a plain SHA-256 chain lets through: a Python rewrite
of the chain after deleting a line, a cut of the log's last lines (daemon
stopped, or running), a deleted or forged anchor. Then the keyed format (the
MAC under the key in secrets.age), old and Go lines read as unkeyed, the
offline structure check, a wiped store's lost key, the head sent to the
journal or syslog, and a big log that is verified and streamed on a worker
without blocking a lease or loading into memory.

AUDIT_BIG_MB (default 64) sets the size of the big log; 300 reproduces the
issue's figure.
"""

import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import E2ETestCase, wait_until

HAVE_AGE = shutil.which("age") is not None
HASH_MEMBER = len(b',"hash":"') + 64 + 2  # the member and the closing brace
BIG_MB = int(os.environ.get("AUDIT_BIG_MB", "64"))


# ---------------------------------------------------------------- the attacker's tools

def body_and_hash(line):
    """The bytes a line's hash covers, and the hash it claims."""
    return line[:-HASH_MEMBER] + b"}", line[-66:-2]


def seal(body, digest):
    return body[:-1] + b',"hash":"' + digest + b'"}'


def with_prev(body, prev):
    # prev is the last member of the body: ..."prev":"<64 hex>"}
    assert body[-75:-66] == b',"prev":"', body[-80:]
    return body[:-66] + prev + b'"}'


def with_seq(body, seq):
    return re.sub(rb'^\{"seq":\d+,', b'{"seq":%d,' % seq, body)


def plain_rechain(lines, start, prev_rule="sha256-of-line"):
    """What anyone who can write audit.log can do in a few lines of Python:
    from `start` on, renumber seq and recompute prev and a plain SHA-256 hash,
    so that the old verify says ok. prev_rule "hash-member" follows the keyed
    lines' rule (prev = the previous line's hash) instead."""
    out = list(lines[:start])
    first_seq = json.loads(lines[start - 1])["seq"] + 1 if start > 0 else 1
    for i, line in enumerate(lines[start:]):
        body, _ = body_and_hash(line)
        body = with_seq(body, first_seq + i)
        if prev_rule == "hash-member":
            prev = body_and_hash(out[-1])[1] if out else b"0" * 64
        else:
            prev = hashlib.sha256(out[-1]).hexdigest().encode() if out else b"0" * 64
        body = with_prev(body, prev)
        out.append(seal(body, hashlib.sha256(body).hexdigest().encode()))
    return out


def write_lines(home, lines):
    with open(home.file("audit.log"), "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))
    os.chmod(home.file("audit.log"), 0o600)


def plain_lines(count, go_prefix=0, start_prev=None):
    """A log as the Go daemon and our daemon before issue 15 wrote it: Go lines
    (no seq, prev, hash), then plain SHA-256 lines."""
    lines = [json.dumps({"timestamp": "2025-01-01T00:00:%02dZ" % i, "action": "lease_acquire",
                         "secret_name": "db", "client_id": "go-%d" % i, "success": True},
                        separators=(",", ":")).encode() for i in range(go_prefix)]
    for seq in range(1, count + 1):
        prev = hashlib.sha256(lines[-1]).hexdigest() if lines else "0" * 64
        body = json.dumps({"seq": seq, "timestamp": "2025-06-01T00:00:00.000Z", "action": "secret_add",
                           "secret_name": "k%d" % seq, "success": True, "prev": prev},
                          separators=(",", ":")).encode()
        lines.append(seal(body, hashlib.sha256(body).hexdigest().encode()))
    return lines


def remove_anchor(home):
    # The attacker deletes it if there is one (the old daemon wrote none).
    if os.path.exists(home.file("audit.anchor")):
        os.unlink(home.file("audit.anchor"))


def audit_key(home):
    doc = harness.age_decrypt(home)
    return bytes.fromhex(doc["audit_key"]["key"]), doc["audit_key"]


class AuditCase(E2ETestCase):
    def activity(self, home):
        home.add("tok", b"s3cret-VALUE-zz91")
        for i in range(3):
            home.lease_json("tok", "--client-id", "c%d" % i)
        home.run_json("revoke", "--all")
        home.add("other", b"w")

    def assert_tampered(self, home, *needles):
        r = home.run("audit", "--verify")
        env = self.assert_err(r, rc=1, code="audit_tampered")
        for needle in needles:
            self.assertIn(needle, env["error"]["message"], env)
        reply = home.rpc("secrets.verifyAudit")["result"]
        self.assertIs(reply["ok"], False, reply)
        return env["error"]["message"]

    def assert_verifies(self, home):
        res = home.run_json("audit", "--verify")
        self.assertIs(res["ok"], True, res)
        return res


# ---------------------------------------------------------------- the attacks

class Rewrite(AuditCase):
    """Delete a line and recompute the chain: the old verify said ok."""

    def setUp(self):
        self.home = self.new_home()
        self.activity(self.home)
        self.home.stop()
        self.lines = self.home.audit_lines()

    def deleted_lease_index(self):
        return next(i for i, l in enumerate(self.lines) if b'"action":"lease_acquire"' in l)

    def test_deleted_line_rechained_with_sha256(self):
        idx = self.deleted_lease_index()
        forged = plain_rechain(self.lines[:idx] + self.lines[idx + 1:], idx)
        write_lines(self.home, forged)
        self.home.serve()
        self.assert_tampered(self.home)

    def test_deleted_line_rechained_with_the_keyed_prev_rule(self):
        idx = self.deleted_lease_index()
        forged = plain_rechain(self.lines[:idx] + self.lines[idx + 1:], idx, prev_rule="hash-member")
        write_lines(self.home, forged)
        self.home.serve()
        self.assert_tampered(self.home)

    def test_edited_line_rechained_while_the_daemon_runs(self):
        # In place, with the daemon up: same inode, its O_APPEND fd keeps writing at the end.
        self.home.serve()
        self.home.run_json("list")
        lines = self.home.audit_lines()
        idx = next(i for i, l in enumerate(lines) if b'"client_id":"c1"' in l)
        lines[idx] = lines[idx].replace(b'"client_id":"c1"', b'"client_id":"c9"')
        forged = plain_rechain(lines, idx)
        with open(self.home.file("audit.log"), "r+b") as f:
            f.write(b"".join(l + b"\n" for l in forged))
            f.truncate()
        self.assert_tampered(self.home, "line %d" % (idx + 1))


class Cut(AuditCase):
    """Cut lines off the end: the old verify said ok."""

    def setUp(self):
        self.home = self.new_home()
        self.activity(self.home)

    def test_cut_while_stopped(self):
        self.home.stop()
        lines = self.home.audit_lines()
        write_lines(self.home, lines[:-3])
        self.home.serve()
        msg = self.assert_tampered(self.home, "cut")
        self.assertIn("the daemon found the log tampered with when it started", msg)
        # The evidence is a keyed line: it stays, after any number of restarts.
        self.home.restart()
        self.assert_tampered(self.home, "cut")
        entry = [e for e in self.home.audit_entries() if e["action"] == "audit_tampered"]
        self.assertEqual(len(entry), 1, entry)
        self.assertIs(entry[0]["success"], False)

    def test_cut_while_running(self):
        self.home.run_json("list")
        with open(self.home.file("audit.log"), "rb") as f:
            data = f.read()
        lines = data.split(b"\n")[:-1]
        os.truncate(self.home.file("audit.log"), len(data) - len(lines[-1]) - 1 - len(lines[-2]) - 1)
        self.assert_tampered(self.home, "running daemon's last durable line", "cut")

    def test_cut_and_anchor_deleted(self):
        self.home.stop()
        write_lines(self.home, self.home.audit_lines()[:-3])
        remove_anchor(self.home)
        self.home.serve()
        self.assert_tampered(self.home, "audit.anchor is missing")

    def test_cut_and_anchor_forged(self):
        self.home.stop()
        lines = self.home.audit_lines()[:-3]
        write_lines(self.home, lines)
        last = json.loads(lines[-1])
        with open(self.home.file("audit.anchor"), "w") as f:
            json.dump({"version": 1, "seq": last["seq"], "hash": last["hash"], "written_at": "2030-01-01T00:00:00Z",
                       "mac": hashlib.sha256(b"guess").hexdigest()}, f)
        self.home.serve()
        self.assert_tampered(self.home, "valid MAC")

    def test_every_keyed_line_cut_and_anchor_deleted(self):
        # Down to nothing: the store's key says keyed lines began at seq 1.
        self.home.stop()
        write_lines(self.home, [])
        remove_anchor(self.home)
        self.home.serve()
        self.assert_tampered(self.home)

    def test_untouched_log_restarts_clean(self):
        self.home.restart()
        self.home.restart()
        res = self.assert_verifies(self.home)
        self.assertEqual(res["entries"], len(self.home.audit_lines()), res)
        self.assertFalse([e for e in self.home.audit_entries() if e["action"] == "audit_tampered"])


# ---------------------------------------------------------------- the format

@unittest.skipUnless(HAVE_AGE, "needs age")
class KeyedFormat(AuditCase):
    def test_lines_are_macd_under_the_key_in_the_store(self):
        home = self.new_home()
        self.activity(home)
        home.stop()
        key, record = audit_key(home)
        self.assertEqual(len(key), 32)
        self.assertEqual(record["first_seq"], 1)
        lines = home.audit_lines()
        self.assertEqual(json.loads(lines[0])["action"], "audit_key_created")
        previous = None
        for line in lines:
            body, digest = body_and_hash(line)
            self.assertEqual(hmac.new(key, body, hashlib.sha256).hexdigest().encode(), digest, line)
            self.assertNotEqual(hashlib.sha256(body).hexdigest().encode(), digest)
            prev = json.loads(line)["prev"].encode()
            self.assertEqual(prev, body_and_hash(previous)[1] if previous else b"0" * 64)
            previous = line
        # The anchor: the last line, MAC'd under the same key with its label.
        anchor = json.loads(home.read("audit.anchor"))
        last = json.loads(lines[-1])
        self.assertEqual((anchor["seq"], anchor["hash"]), (last["seq"], last["hash"]))
        self.assertEqual(last["action"], "daemon_stop")
        message = b"agent-secrets audit anchor v1\n%d\n%s\n%s" % (
            anchor["seq"], anchor["hash"].encode(), anchor["written_at"].encode())
        self.assertEqual(hmac.new(key, message, hashlib.sha256).hexdigest(), anchor["mac"])
        self.assertEqual(harness.file_mode(home.file("audit.anchor")), 0o600)
        self.assertNotIn(key.hex().encode(), home.read("audit.log"))

    def test_old_and_go_lines_stay_readable_and_count_as_unkeyed(self):
        home = self.new_home(serve=False)
        old = plain_lines(5, go_prefix=2)
        write_lines(home, old)
        home.serve()
        home.add("tok", b"v")
        res = self.assert_verifies(home)
        self.assertEqual(res["unkeyed_entries"], 7, res)
        self.assertEqual(res["legacy_entries"], 2, res)
        self.assertEqual(res["entries"], len(home.audit_lines()), res)
        self.assertEqual(res["keyed_entries"], len(home.audit_lines()) - 7, res)
        self.assertIn("unkeyed", res["message"])
        self.assertEqual(audit_key(home)[1]["first_seq"], 6)
        self.assertEqual(home.audit_lines()[:7], old)
        entries = home.run_json("audit", "--tail", "0")["entries"]
        self.assertEqual(len(entries), len(home.audit_lines()))
        # The first keyed line covers the unkeyed ones: rewriting those breaks it.
        home.stop()
        lines = home.audit_lines()
        forged = plain_rechain(lines[:3] + lines[4:7], 3) + lines[7:]
        write_lines(home, forged)
        home.serve()
        self.assert_tampered(home)

    def test_unkeyed_line_after_keyed_ones_is_tampering(self):
        home = self.new_home()
        self.activity(home)
        home.stop()
        lines = home.audit_lines()
        # Every line from the middle on turned into a valid plain line.
        forged = plain_rechain(lines, len(lines) // 2)
        write_lines(home, forged)
        remove_anchor(home)  # and no anchor to give it away
        home.serve()
        self.assert_tampered(home)


# ---------------------------------------------------------------- without the daemon, and after a wipe

class Offline(AuditCase):
    def test_verify_without_the_daemon_checks_the_structure_only(self):
        home = self.new_home()
        self.activity(home)
        home.stop()
        r = home.run("audit", "--verify")
        env = self.assert_err(r, rc=3, code="daemon_not_running")
        self.assertIn("secrets serve &", env["fix"])
        self.assertIn("--offline", env["fix"])
        res = home.run_json("audit", "--verify", "--offline")
        self.assertIs(res["ok"], True, res)
        self.assertIs(res["macs_checked"], False, res)
        self.assertEqual(res["unchecked_entries"], len(home.audit_lines()), res)
        self.assertIn("structure only", res["message"])
        # A deleted line is still found by the links alone; so is a plain rewrite.
        lines = home.audit_lines()
        write_lines(home, lines[:3] + lines[4:])
        self.assert_err(home.run("audit", "--verify", "--offline"), rc=1, code="audit_tampered")
        write_lines(home, plain_rechain(lines[:3] + lines[4:], 3))
        r = home.run("audit", "--verify", "--offline")
        env = self.assert_err(r, rc=1, code="audit_tampered")
        self.assertIn("unkeyed line after keyed lines", env["error"]["message"])


class Wipe(AuditCase):
    def test_a_wiped_key_leaves_lines_that_are_counted_not_checked(self):
        home = self.new_home()
        self.activity(home)
        home.run_json("revoke", "--all", "--wipe", "--yes")
        home.stop()
        before = len(home.audit_lines())
        r = home.run("init")
        self.assertEqual(r.rc, 0, r)
        home.serve()
        res = self.assert_verifies(home)
        self.assertEqual(res["unchecked_entries"], before, res)
        self.assertIn("earlier key that is gone", res["message"])
        created = [e for e in home.audit_entries() if e["action"] == "audit_key_created"]
        self.assertEqual(len(created), 2, created)
        self.assertIn("keyed under a key that is gone", created[-1]["details"])
        if HAVE_AGE:
            record = audit_key(home)[1]
            self.assertEqual(record["first_seq"], before + 1)
            self.assertIs(record["earlier_key_lost"], True)


# ---------------------------------------------------------------- the head, outside the home

class Datagrams:
    """A Unix datagram socket the test listens on, standing in for journald or /dev/log."""

    def __init__(self, directory, name):
        self.path = os.path.join(directory, name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages = []

    def poll(self):
        try:
            while True:
                self.messages.append(self.sock.recv(65536))
        except (socket.timeout, BlockingIOError):
            pass
        return self.messages

    def close(self):
        self.sock.close()


class Journal(AuditCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="as-journal-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def home_with(self, env):
        home = self.new_home(serve=False)
        home.env.update(env)
        home.serve()
        return home

    def line_with(self, home, seq, digest):
        return [e for e in home.audit_entries() if e.get("seq") == seq and e.get("hash") == digest]

    def test_head_goes_to_syslog_where_there_is_no_journal(self):
        syslog = Datagrams(self.dir, "log")
        self.addCleanup(syslog.close)
        home = self.home_with({"AGENT_SECRETS_TEST_JOURNAL_SOCKET": os.path.join(self.dir, "no-journal"),
                               "AGENT_SECRETS_TEST_SYSLOG_SOCKET": syslog.path})
        self.assertTrue(wait_until(syslog.poll, timeout=10), "no syslog message")
        text = syslog.messages[0].decode()
        m = re.match(r"^<14>\w{3} [ \d]\d \d\d:\d\d:\d\d agent-secrets\[(\d+)\]: audit head seq=(\d+) hash=([0-9a-f]{64}) "
                     r"log=(.*)$", text)
        self.assertIsNotNone(m, text)
        self.assertTrue(self.line_with(home, int(m.group(2)), m.group(3)), text)
        self.assertEqual(m.group(4), home.file("audit.log"))
        self.assertEqual(home.run_json("audit", "--verify")["head_published_to"], "syslog")

    def test_head_goes_to_the_journal(self):
        journal = Datagrams(self.dir, "journal")
        self.addCleanup(journal.close)
        home = self.home_with({"AGENT_SECRETS_TEST_JOURNAL_SOCKET": journal.path,
                               "AGENT_SECRETS_TEST_SYSLOG_SOCKET": os.path.join(self.dir, "no-syslog")})
        self.assertTrue(wait_until(journal.poll, timeout=10), "no journal message")
        fields = dict(l.split("=", 1) for l in journal.messages[0].decode().splitlines())
        self.assertEqual(fields["SYSLOG_IDENTIFIER"], "agent-secrets")
        self.assertTrue(self.line_with(home, int(fields["AGENT_SECRETS_AUDIT_SEQ"]), fields["AGENT_SECRETS_AUDIT_HASH"]),
                        fields)
        self.assertIn("audit head seq=" + fields["AGENT_SECRETS_AUDIT_SEQ"], fields["MESSAGE"])
        self.assertEqual(home.run_json("audit", "--verify")["head_published_to"], "journal")

    def test_neither_is_reported_as_none(self):
        home = self.home_with({"AGENT_SECRETS_TEST_JOURNAL_SOCKET": os.path.join(self.dir, "none1"),
                               "AGENT_SECRETS_TEST_SYSLOG_SOCKET": os.path.join(self.dir, "none2")})
        home.add("tok", b"v")
        res = self.assert_verifies(home)
        self.assertEqual(res["head_published_to"], "none", res)

    def test_this_machine_reports_what_it_has(self):
        home = self.new_home()
        res = self.assert_verifies(home)
        expected = ("journal" if os.path.exists("/run/systemd/journal/socket")
                    else "syslog" if os.path.exists("/dev/log") else "none")
        # A socket that exists but nobody reads may still refuse; only "more than expected" is wrong.
        self.assertIn(res["head_published_to"], (expected, "syslog", "none"), res)


# ---------------------------------------------------------------- a big log, on a worker, streamed

def rchar(pid):
    with open("/proc/%d/io" % pid) as f:
        return int(re.search(r"^rchar: (\d+)", f.read(), re.M).group(1))


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M).group(1))


def read_to_newline(sock):
    """The rest of one (long) reply line; chunks are joined once, not rescanned."""
    chunks = []
    while not chunks or not chunks[-1].endswith(b"\n"):
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise harness.Closed("the daemon closed the connection mid-reply")
        chunks.append(chunk)
    return b"".join(chunks)


def write_go_log(path, megabytes):
    """A Go daemon's log of about `megabytes` MB (no seq, prev or hash), written
    before our daemon first starts: readable, unkeyed, and only parsed by verify."""
    line = json.dumps({"timestamp": "2025-01-01T00:00:00Z", "action": "lease_acquire", "secret_name": "db",
                       "client_id": "agent", "lease_id": "00000000-0000-4000-8000-000000000000",
                       "details": "x" * 120, "success": True}, separators=(",", ":")).encode() + b"\n"
    block = line * 4096
    count = 0
    with open(path, "wb") as f:
        for _ in range(max(1, megabytes * 1024 * 1024 // len(block))):
            f.write(block)
            count += 4096
    os.chmod(path, 0o600)
    return count


class BigLog(AuditCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.home = harness.Home()
        cls.go_lines = write_go_log(cls.home.file("audit.log"), BIG_MB)
        cls.home.serve()
        cls.home.add("tok", b"v")

    @classmethod
    def tearDownClass(cls):
        cls.home.cleanup()

    def wait_reading(self, pid, before, at_least):
        self.assertTrue(wait_until(lambda: rchar(pid) - before >= at_least, timeout=60),
                        "the daemon did not start reading the log")

    def test_a_lease_completes_while_verify_runs(self):
        pid = self.home.daemon.pid
        with self.home.connect(timeout=300) as slow, self.home.connect() as fast:
            before = rchar(pid)
            slow.send(slow.request("secrets.verifyAudit"))
            self.wait_reading(pid, before, 4 * 1024 * 1024)
            lease = fast.call("secrets.lease", {"secret_name": "tok", "client_id": "during-verify"})
            self.assertIn("result", lease, lease)
            # The lease is done; verify, which started first, is not.
            slow.sock.setblocking(False)
            try:
                early = slow.sock.recv(1)
            except BlockingIOError:
                early = None
            self.assertIsNone(early, "verify answered before a lease sent after it: it blocks the io thread")
            slow.sock.setblocking(True)
            reply = slow.read_json(timeout=300)
        self.assertIs(reply["result"]["ok"], True, reply)
        self.assertGreaterEqual(reply["result"]["legacy_entries"], self.go_lines)

    def test_tail_all_is_streamed_not_built(self):
        pid = self.home.daemon.pid
        lines_now = len(self.home.audit_lines())
        hwm_before = vm_hwm_kib(pid)
        with self.home.connect(timeout=300) as reader, self.home.connect() as fast:
            reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            reader.send(reader.request("secrets.audit", {"tail": 0}))
            first = reader.sock.recv(64 * 1024)  # the reply has started; the rest waits for us
            self.assertTrue(first.startswith(b'{'), first[:80])
            lease = fast.call("secrets.lease", {"secret_name": "tok", "client_id": "during-tail"})
            self.assertIn("result", lease, lease)
            data = first + read_to_newline(reader.sock)
        reply = json.loads(data)
        self.assertGreaterEqual(len(reply["result"]["entries"]), lines_now)
        self.assertEqual(reply["result"]["entries"][0]["client_id"], "agent")
        growth_mb = (vm_hwm_kib(pid) - hwm_before) / 1024
        if not harness.binary_is_sanitized():
            self.assertLess(growth_mb, BIG_MB / 4, "the daemon's peak RSS grew by %.0f MB for a %d MB log"
                            % (growth_mb, BIG_MB))

    def cli_tail(self, n):
        """Runs `secrets audit --tail n`; returns (entries printed, peak RSS in MB)."""
        proc = subprocess.Popen([harness.BIN, "audit", "--tail", str(n)], env=self.home.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        count = 0
        for line in proc.stdout:
            if line.startswith(b'        "action": '):
                count += 1
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, err)
        return count, usage.ru_maxrss / 1024

    def test_cli_tail_all_prints_every_entry_with_little_memory(self):
        _, baseline_mb = self.cli_tail(1)
        count, peak_mb = self.cli_tail(0)
        self.assertGreaterEqual(count, self.go_lines)
        if not harness.binary_is_sanitized():
            self.assertLess(peak_mb - baseline_mb, BIG_MB / 4,
                            "the CLI held the log: %.0f MB more than for one entry" % (peak_mb - baseline_mb))

    def test_tail_n_holds_n(self):
        res = self.home.run_json("audit", "--tail", "3")
        self.assertEqual(len(res["entries"]), 3)
        self.assertEqual(res["entries"][-1]["seq"], json.loads(self.home.audit_lines()[-1])["seq"])


harness.main()
