#!/usr/bin/env python3
"""`make bench`: runs bench_loadgen against fresh daemons in temporary homes,
prints a table and writes bench/results/latest.json.

Every figure is the median of RUNS (>= 3) runs with min and max, and is also
given as a ratio to a floor measured in the same run:
  fsync  one write(200-byte append) + fdatasync in the bench's temp dir (p50)
  rtt    a Unix-socket ping-pong round trip between two processes (p50)
  exec   wall time of a C++ hello-world process (p50 of 200)
Throughput is given as leases per fsync floor (per_second * fsync_s).

The proxy suite has its own floors: the same requests sent straight to the
same local upstream ('direct'), and through a bare relay ('relay': one epoll
thread copying bytes, no parsing, no credential, no audit, the least any
proxy must do), interleaved run by run with the proxied ones.

usage: bench/run.py [--build DIR] [--tmp DIR] [--seconds S] [--runs N] [--only SUITE,...]
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEVELS = (0, 10_000, 100_000)
CLIENTS = (1, 8, 64)
MODES = ("persistent", "connect")
SUITES = ("leases", "store", "proxy", "identity")
PROXY_CLIENTS = (1, 16)

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--build", default=os.path.join(REPO, "build"))
ap.add_argument("--tmp", default="/var/tmp", help="where the temp homes go (a real disk, not tmpfs)")
ap.add_argument("--seconds", type=float, default=1.0, help="length of one throughput run")
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--out", help="default bench/results/latest.json, or bench/results/only-SUITES.json with --only")
ap.add_argument("--only", help="comma-separated suites to run (%s); default all" % ", ".join(SUITES))
opts = ap.parse_args()
if opts.runs < 3:
    sys.exit("bench: --runs must be at least 3")
only = SUITES
if opts.only:
    only = tuple(s.strip() for s in opts.only.split(","))
    if not only or any(s not in SUITES for s in only):
        sys.exit("bench: --only takes a comma-separated list of %s" % ", ".join(SUITES))
if not opts.out:
    # A partial run must not overwrite the full report.
    name = "latest.json" if set(only) == set(SUITES) else "only-%s.json" % "-".join(only)
    opts.out = os.path.join(REPO, "bench", "results", name)

SECRETS = os.path.join(os.path.abspath(opts.build), "secrets")
LOADGEN = os.path.join(os.path.abspath(opts.build), "bench", "bench_loadgen")
HELLO = os.path.join(os.path.abspath(opts.build), "bench", "bench_hello")
for b in (SECRETS, LOADGEN, HELLO):
    if not os.access(b, os.X_OK):
        sys.exit("bench: %s is missing; build first (make bench does)" % b)

os.environ["SECRETS_BIN"] = SECRETS
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
import harness  # noqa: E402  (Home: temp home, init, serve, add, cleanup)

tempfile.tempdir = opts.tmp
T0 = time.monotonic()


def log(msg):
    print("[%5.1fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def loadgen(mode, *args, env=None, rest=()):
    argv = [LOADGEN, mode] + [str(a) for a in args]
    if rest:
        argv += ["--"] + list(rest)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=600)
    if p.returncode != 0:
        raise SystemExit("bench: %s failed: %s" % (" ".join(argv[:2]), p.stderr.decode(errors="replace")))
    return json.loads(p.stdout)


# ---------------------------------------------------------------- figures

figures = {}  # key -> figure dict, in insertion order


def figure(key, label, unit, values, floor=None, invert=False, target=None, met=None):
    """values: one per run. floor: (name, value) -> ratio = median/floor
    (invert: median*floor/1e6, for a rate against a time in us)."""
    med = statistics.median(values)
    f = {"label": label, "unit": unit, "median": med, "min": min(values), "max": max(values),
         "runs": values}
    if floor:
        name, fv = floor
        f["floor"] = name
        f["ratio"] = med * fv / 1e6 if invert else med / fv
    if target:
        f["target"] = target
        f["met"] = met(med) if met else None
    figures[key] = f
    return f


def floors():
    log("floors: socket RTT, fdatasync, process start")
    rtt = [loadgen("floor-rtt", "--iters", 20000)["rtt_us"]["p50"] for _ in range(opts.runs)]
    figure("floor.rtt", "floor: Unix-socket ping-pong RTT p50", "us", rtt)
    floor_fsync()
    ex = [loadgen("spawn", "--runs", 200, rest=[HELLO])["wall_us"]["p50"] for _ in range(opts.runs)]
    figure("floor.exec", "floor: C++ hello-world exec wall p50", "us", ex)


def floor_fsync(key="floor.fsync", label="floor: fdatasync of a 200-byte append p50"):
    fs = [loadgen("floor-fsync", "--dir", opts.tmp, "--iters", 200)["fsync_us"]["p50"] for _ in range(opts.runs)]
    figure(key, label, "us", fs)


def F(name):
    return name, figures["floor." + name]["median"]


# ---------------------------------------------------------------- daemon helpers

def new_home():
    home = harness.Home()
    # The bench daemon must not collide with a real one on the proxy port.
    home.write_config({"proxy": {"listen": "off"}})
    return home


def call(home, method, params=None):
    args = ["--socket", home.socket, "--method", method]
    if params is not None:
        args += ["--params", json.dumps(params)]
    return loadgen("call", *args)


def active(home):
    return call(home, "secrets.status")["result"]["active_leases"]


def fill_to(home, n):
    have = active(home)
    if n > have:
        loadgen("fill", "--socket", home.socket, "--secret", "bench", "--count", n - have, "--ttl", "24h")
    got = active(home)
    if got != n:
        raise SystemExit("bench: wanted %d live leases, the daemon has %d" % (n, got))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("bench: no VmRSS for pid %d" % pid)


def cli_wall(home, *args, runs):
    """p50 wall time (us) of `secrets ARGS` as whole processes, `runs` times."""
    return loadgen("spawn", "--runs", runs, env=home.env, rest=[SECRETS] + list(args))["wall_us"]["p50"]


def start_runs(home):
    """Cold starts of `secrets serve` until secrets.status answers; also idle RSS."""
    ready, rss = [], []
    for i in range(opts.runs):
        r = loadgen("start", "--socket", home.socket, "--log", os.path.join(home.logs, "start-%d.log" % i),
                    env=home.env, rest=[SECRETS, "serve"])
        ready.append(r["ready_us"] / 1000)
        rss.append(r["idle_rss_kib"] / 1024)
    return ready, rss


# ---------------------------------------------------------------- the suite

def lease_matrix(home, level):
    for mode in MODES:
        for clients in CLIENTS:
            rates, p50s, p99s = [], [], []
            for _ in range(opts.runs):
                r = loadgen("lease", "--socket", home.socket, "--secret", "bench", "--clients", clients,
                            "--mode", mode, "--seconds", opts.seconds)
                rates.append(r["per_second"])
                p50s.append(r["latency_us"]["p50"])
                p99s.append(r["latency_us"]["p99"])
            key = "lease.%s.c%d.live%d" % (mode, clients, level)
            what = "lease %s, %d client%s, %d live" % (mode, clients, "s" if clients > 1 else "", level)
            tgt = {}
            if mode == "persistent" and clients == 8 and level == 0:
                tgt = {"target": ">= 10000/s", "met": lambda v: v >= 10000}
            figure(key + ".rate", what + ": leases/s", "1/s", rates, F("fsync"), invert=True, **tgt)
            tgt = {}
            if mode == "persistent" and clients == 1 and level == 0:
                tgt = {"target": "<= 2x fsync floor",
                       "met": lambda v: v <= 2 * figures["floor.fsync"]["median"]}
            figure(key + ".p50", what + ": p50", "us", p50s, F("fsync"), **tgt)
            figure(key + ".p99", what + ": p99", "us", p99s, F("fsync"))
            log("%s: %.0f/s p50 %.0fus p99 %.0fus" % (what, statistics.median(rates),
                                                     statistics.median(p50s), statistics.median(p99s)))
        if active(home) != level:
            raise SystemExit("bench: live leases drifted from %d to %d" % (level, active(home)))


def revoke_all_runs(home, n):
    times = []
    for _ in range(opts.runs):
        fill_to(home, n)
        times.append(cli_wall(home, "revoke", "--all", runs=1) / 1000)
        if active(home) != 0:
            raise SystemExit("bench: revoke --all left leases behind")
    return times


def suite_leases():
    home = new_home()
    try:
        log("cold starts, 1 secret")
        home.serve()
        home.add("bench", "b" * 32)
        home.stop()
        ready, rss = start_runs(home)
        figure("start.empty", "daemon start, 1 secret", "ms", ready, ("exec", F("exec")[1] / 1000))
        figure("rss.idle", "daemon RSS idle", "MiB", rss, target="<= 6 MiB", met=lambda v: v <= 6)
        home.serve()
        pid = home.daemon.pid

        for level in LEVELS:
            fill_to(home, level)
            log("lease throughput at %d live leases" % level)
            lease_matrix(home, level)
            if level == 100_000:
                rss = []
                for _ in range(opts.runs):
                    rss.append(rss_kib(pid) / 1024)
                    time.sleep(0.3)
                figure("rss.100k", "daemon RSS, 100,000 live leases", "MiB", rss)
            if level == 0:
                log("CLI: secrets lease bench (200 runs each)")
                runs = [cli_wall(home, "lease", "bench", "--ttl", "1h", runs=200) / 1000 for _ in range(opts.runs)]
                exec_ms = F("exec")[1] / 1000
                figure("cli.lease", "CLI `secrets lease` wall p50 of 200", "ms", runs, ("exec", exec_ms),
                       target="<= exec floor + 2 ms", met=lambda v: v <= exec_ms + 2)
                call(home, "secrets.revokeAll")
                log("revoke --all at 1,000 live leases")
                figure("revoke_all.1k", "CLI `revoke --all`, 1,000 live", "ms", revoke_all_runs(home, 1000),
                       ("exec", F("exec")[1] / 1000))
        # Rate at 100k against rate at 0, per configuration.
        for mode in MODES:
            for clients in CLIENTS:
                a = figures["lease.%s.c%d.live0.rate" % (mode, clients)]["median"]
                b = figures["lease.%s.c%d.live100000.rate" % (mode, clients)]["median"]
                figures["lease.%s.c%d.live100000.rate" % (mode, clients)]["vs_live0"] = b / a
        flat = figures["lease.persistent.c8.live100000.rate"]
        flat["target"] = ">= 90% of 0 live"
        flat["met"] = flat["vs_live0"] >= 0.9

        log("revoke --all at 100,000 live leases")
        figure("revoke_all.100k", "CLI `revoke --all`, 100,000 live", "ms", revoke_all_runs(home, 100_000),
               ("exec", F("exec")[1] / 1000), target="< 200 ms", met=lambda v: v < 200)
        home.stop()
    finally:
        home.cleanup()


def write_store(home, n):
    """secrets.age with n secrets, encrypted by Debian's age to identity.age's recipient."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    secrets = {}
    for i in range(n):
        name = "BENCH_%05d" % i
        secrets[name] = {"name": name, "created_at": now, "updated_at": now,
                         "last_rotated": "0001-01-01T00:00:00Z", "value": "v%031d" % i}
    plain = json.dumps({"version": 1, "secrets": secrets}).encode()
    out = home.file("secrets.age")
    tmp = out + ".bench"
    subprocess.run(["age", "-e", "-i", home.file("identity.age"), "-o", tmp], input=plain, check=True)
    os.chmod(tmp, 0o600)
    os.replace(tmp, out)


def suite_store():
    home = new_home()
    try:
        log("a store of 10,000 secrets: cold starts")
        write_store(home, 10_000)
        ready, rss = start_runs(home)
        figure("start.10k", "daemon start, 10,000 secrets", "ms", ready, ("exec", F("exec")[1] / 1000),
               target="< 300 ms", met=lambda v: v < 300)
        figure("rss.10k_secrets", "daemon RSS idle, 10,000 secrets", "MiB", rss)
        home.serve()
        log("secrets.add with 10,000 secrets")
        times = [call(home, "secrets.add", {"name": "NEW_%d" % i, "value": "n" * 32})["us"] / 1000
                 for i in range(opts.runs)]
        figure("add.10k", "`secrets.add` RPC, 10,000 secrets", "ms", times, ("fsync", F("fsync")[1] / 1000))
        home.stop()
    finally:
        home.cleanup()


def cpu_ticks(pid):
    """utime + stime of all of a process's threads, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def start_upstream(tmp, mode="upstream", *args):
    port_file = os.path.join(tmp, mode + ".port")
    log_path = os.path.join(tmp, mode + ".log")
    with open(log_path, "wb") as err:
        p = subprocess.Popen([LOADGEN, mode, "--port-file", port_file] + [str(a) for a in args],
                             stdout=subprocess.PIPE, stderr=err)
    deadline = time.monotonic() + 10
    while not os.path.exists(port_file):
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            raise SystemExit("bench: the %s did not start; see %s" % (mode, log_path))
        time.sleep(0.01)
    with open(port_file) as f:
        return p, int(f.read())


def stop_upstream(p):
    p.terminate()
    out, _ = p.communicate(timeout=10)
    return json.loads(out) if out.strip() else {}


def suite_proxy():
    """Proxy overhead: the same GET to the same local upstream, straight and through
    the daemon's proxy with a placeholder to swap for the credential."""
    tmp = tempfile.mkdtemp(prefix="as-bench-proxy-")
    upstream = relay = None
    try:
        upstream, up_port = start_upstream(tmp)
        relay, relay_port = start_upstream(tmp, "relay", "--to", up_port)
    except BaseException:
        for p in (upstream, relay):
            if p:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    home = harness.Home()
    try:
        home.write_config({"proxy": {"listen": "127.0.0.1:0", "max_concurrent": 16}})
        home.serve()
        home.add("bench", "b" * 40, "--proxy-only", "--base-url", "http://127.0.0.1:%d" % up_port,
                 "--inject", "bearer")
        placeholder = home.run_json("lease", "bench", "--json", "--ttl", "1h")["value"]
        proxy = call(home, "secrets.status")["result"]["proxy"]["listen"]
        pid = home.daemon.pid
        direct_target = "127.0.0.1:%d" % up_port
        # The placeholder header goes both ways, so the requests differ only in route prefix and Host.
        header = "Authorization: Bearer " + placeholder
        tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
        # Each proxied request appends a durable audit line, and this disk's fdatasync
        # drifts by 10x within minutes, so the floor for the overhead is taken now.
        floor_fsync("proxy.floor.fsync", "proxy: fdatasync floor, measured just before, p50")
        fsync_floor = ("fsync", figures["proxy.floor.fsync"]["median"])
        for clients in PROXY_CLIENTS:
            got = {"direct": ([], [], []), "relay": ([], [], []), "proxied": ([], [], [])}
            cpu = []
            for _ in range(opts.runs):
                # Interleaved, so drift in the machine's load hits both sides alike.
                for way, target, path in (("direct", direct_target, "/v1/bench?q=1"),
                                          ("relay", "127.0.0.1:%d" % relay_port, "/v1/bench?q=1"),
                                          ("proxied", proxy, "/bench/v1/bench?q=1")):
                    before = cpu_ticks(pid)
                    r = loadgen("http", "--target", target, "--path", path, "--header", header,
                                "--clients", clients, "--seconds", opts.seconds)
                    if way == "proxied":
                        cpu.append((cpu_ticks(pid) - before) * tick_us / max(r["requests_with_warmup"], 1))
                    if r["reconnects"]:
                        raise SystemExit("bench: %s connections were not kept alive (%d reconnects)"
                                         % (way, r["reconnects"]))
                    rates, p50s, p99s = got[way]
                    rates.append(r["per_second"])
                    p50s.append(r["latency_us"]["p50"])
                    p99s.append(r["latency_us"]["p99"])
            what = "proxy GET, %d client%s" % (clients, "s" if clients > 1 else "")
            key = "proxy.c%d" % clients
            d_rates, d_p50s, d_p99s = got["direct"]
            p_rates, p_p50s, p_p99s = got["proxied"]
            d = {"rate": figure(key + ".direct.rate", what + ", direct: requests/s", "1/s", d_rates)["median"],
                 "p50": figure(key + ".direct.p50", what + ", direct: p50", "us", d_p50s)["median"],
                 "p99": figure(key + ".direct.p99", what + ", direct: p99", "us", d_p99s)["median"]}
            r_rate = figure(key + ".relay.rate", what + ", bare relay: requests/s", "1/s", got["relay"][0],
                            ("direct", d["rate"]))["median"]
            figure(key + ".relay.p50", what + ", bare relay: p50", "us", got["relay"][1], ("direct", d["p50"]))
            tgt = {}
            if clients == 16:
                tgt = {"target": ">= 50% of direct", "met": lambda v, floor=d["rate"]: v >= 0.5 * floor}
            figure(key + ".proxied.rate", what + ", proxied: requests/s", "1/s", p_rates, ("direct", d["rate"]), **tgt)
            figure(key + ".proxied.p50", what + ", proxied: p50", "us", p_p50s, ("direct", d["p50"]))
            figure(key + ".proxied.p99", what + ", proxied: p99", "us", p_p99s, ("direct", d["p99"]))
            # Overhead run by run (each proxied run minus the direct run just before it).
            tgt = {}
            if clients == 1:
                tgt = {"target": "< 300 us", "met": lambda v: v < 300}
            figure(key + ".overhead.p50", what + ": proxy overhead p50", "us",
                   [p - q for p, q in zip(p_p50s, d_p50s)], fsync_floor, **tgt)
            figure(key + ".overhead.p99", what + ": proxy overhead p99", "us",
                   [p - q for p, q in zip(p_p99s, d_p99s)])
            # Where the time goes: the daemon's own CPU (all threads, user + system) per proxied request.
            figure(key + ".daemon_cpu", what + ": daemon CPU per proxied request", "us", cpu)
            log("%s: direct %.0f/s p50 %.0fus p99 %.0fus; relay %.0f/s; proxied %.0f/s (%.0f%% of relay) p50 %.0fus "
                "p99 %.0fus; daemon CPU %.0fus/req"
                % (what, d["rate"], d["p50"], d["p99"], r_rate, statistics.median(p_rates),
                   100 * statistics.median(p_rates) / r_rate, statistics.median(p_p50s),
                   statistics.median(p_p99s), statistics.median(cpu)))
        home.stop()
    finally:
        home.cleanup()
        stop_upstream(relay)
        served = stop_upstream(upstream)
        if served:
            log("upstream served %d requests on %d connections" % (served["requests"], served["connections"]))
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- report

def fs_type(path):
    p = subprocess.run(["stat", "-f", "-c", "%T", path], stdout=subprocess.PIPE, text=True)
    return p.stdout.strip()


def machine():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_mib": mem, "kernel": platform.release(),
            "tmp": opts.tmp, "tmp_fs": fs_type(opts.tmp)}


def fmt(v):
    if abs(v) >= 1000:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def table():
    rows = [("figure", "unit", "median", "min", "max", "x floor", "target")]
    for f in figures.values():
        ratio = ""
        if "ratio" in f:
            ratio = "%s %s" % (fmt(f["ratio"]), f["floor"])
        if "vs_live0" in f:
            ratio += " (%.0f%% of 0 live)" % (100 * f["vs_live0"])
        tgt = ""
        if "target" in f:
            tgt = "%s %s" % ("MET" if f.get("met") else "MISSED", f["target"])
        rows.append((f["label"], f["unit"], fmt(f["median"]), fmt(f["min"]), fmt(f["max"]), ratio, tgt))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def suite_identity():
    """A passphrase-protected identity.age (scrypt, work factor 2^18, as `age -p`):
    the start of `serve --passphrase-fd 0` until secrets.status answers (the
    unwrap is most of it), the daemon's idle RSS after it (scrypt's 256 MiB
    must be given back), `secrets unlock`'s wall time, and the idle RSS of a
    locked daemon."""
    home = new_home()
    passphrase = "bench passphrase, not a secret"
    try:
        home.run_json("passphrase", "set", "--new-passphrase-fd", "0", input=passphrase)
        log("a protected identity: cold starts with the passphrase on a pipe")
        ready, rss = [], []
        for _ in range(opts.runs):
            t0 = time.monotonic()
            d = home.start_with_passphrase(passphrase)
            home.wait_ready(d, timeout=60)
            ready.append((time.monotonic() - t0) * 1000)
            time.sleep(1.0)  # idle: what it keeps once the start is over
            rss.append(rss_kib(d.pid) / 1024)
            home.daemon = d
            home.stop()
        figure("start.protected", "daemon start, passphrase-protected identity", "ms", ready)
        figure("rss.protected", "daemon RSS idle after unwrapping the identity", "MiB", rss)
        log("lock and unlock: `secrets unlock` wall time, and the locked daemon's idle RSS")
        d = home.start_with_passphrase(passphrase)
        home.wait_ready(d, timeout=60)
        home.daemon = d
        home.add("bench", "v" * 32)
        unlock, locked_rss = [], []
        for _ in range(opts.runs):
            home.run_json("lock")
            time.sleep(1.0)
            locked_rss.append(rss_kib(d.pid) / 1024)
            t0 = time.monotonic()
            home.run_json("unlock", "--passphrase-fd", "0", input=passphrase)
            unlock.append((time.monotonic() - t0) * 1000)
        home.stop()
        figure("unlock", "`secrets unlock` (scrypt 2^18 on a daemon worker), whole CLI process", "ms", unlock)
        figure("rss.locked", "daemon RSS idle while locked", "MiB", locked_rss)
    finally:
        home.cleanup()


def main():
    os.makedirs(opts.tmp, exist_ok=True)
    if "leases" in only or "store" in only:
        floors()
    if "leases" in only:
        suite_leases()
    if "store" in only:
        suite_store()
    if "proxy" in only:
        log("proxy overhead against the same upstream, direct")
        suite_proxy()
    if "identity" in only:
        suite_identity()
    report = {"when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "runs": opts.runs, "seconds_per_run": opts.seconds,
              "elapsed_s": round(time.monotonic() - T0, 1), "figures": figures}
    os.makedirs(os.path.dirname(opts.out), exist_ok=True)
    with open(opts.out, "w") as f:
        json.dump(report, f, indent=2)
    m = report["machine"]
    print("machine: %s, %d cores, %d MiB, Linux %s, temp homes on %s (%s)"
          % (m["cpu"], m["cores"], m["mem_mib"], m["kernel"], m["tmp"], m["tmp_fs"]))
    print("floors: 'fsync' = fdatasync of a 200-byte append; 'exec' = C++ hello-world process;"
          " a rate's 'x fsync' = leases per fsync floor")
    if "proxy" in only:
        print("proxy: 'direct' = the same GETs straight to the same local upstream; 'x direct' = proxied / direct;"
              " 'bare relay' = through a byte-copying relay (one epoll thread), the floor under any proxy")
    print(table())
    print("wrote %s in %.0fs" % (os.path.relpath(opts.out), report["elapsed_s"]))


if __name__ == "__main__":
    main()
