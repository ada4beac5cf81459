#!/usr/bin/env python3
"""Runs the benchmark scenarios of docs/BENCHMARKS.md and writes their results.

Started by bench/run.sh, which builds the binaries first. Every scenario starts a fresh server
(`target/release/server`, pinned to one core) and runs `split_client stress` against it (pinned
to another core) with `--server-pid`, so the load tool itself reads the server's CPU time over
the measured phase and its resident memory from /proc. The loopback ceiling is measured with
iperf3 in the same run. Only the standard library is used.

Outputs: the table between the GENERATED markers of docs/BENCHMARKS.md, the raw results in
docs/benchmarks/results.json, the latency picture in docs/benchmarks/latency.svg (with
--smoke: the same files under target/bench-smoke/, and tiny scenarios).
"""

import argparse
import datetime
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release"
# The server under test; --server-bin replaces it (to compare with another build).
SERVER_BIN = BIN / "server"
BEGIN = "<!-- BEGIN GENERATED: bench/run.sh writes this part; do not edit by hand -->"
END = "<!-- END GENERATED -->"

# Targets of issue 3 (and the history line of issue 5).
TARGET_SAT_RATE = 3_000_000  # deliveries/s
TARGET_SAT_CPU_NS = 300  # server CPU per delivery
TARGET_SAT_CEILING = 0.45  # fraction of the loopback ceiling
TARGET_HISTORY_RATIO = 0.80  # history on / --ephemeral
TARGET_FIXED_P50_MS = 1.0
TARGET_FIXED_P99_MS = 5.0
TARGET_MANY_P99_MS = 5.0
TARGET_IDLE_BYTES = 1024
TARGET_HELD = 19_000
TARGET_SLOW_P99_RATIO = 1.20
# Issue 11: at saturation, TLS and WebSocket against plain frames.
TARGET_TLS_SHARE = 0.60
TARGET_WS_SHARE = 0.70
# Issue 12: our IRC port against InspIRCd on the same IRC load.
TARGET_IRC_VS_INSPIRCD = 2.0
TARGET_IRC_CPU_SHARE = 0.5
# Issue 13: the cluster.
TARGET_BIG_CLIENTS = 57_000
TARGET_CLUSTER_CPU_RATIO = 1.5
TARGET_CLUSTER_P99_MS = 2.0

FRAME = 200
# bench/run.sh stops this script after 900 s; it plans to be done a little before.
BUDGET_SECS = 880


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Pins:
    """taskset prefixes: the server on one core, the load tool on another (when there are two)."""

    def __init__(self):
        cpus = sorted(os.sched_getaffinity(0))
        self.pinned = len(cpus) >= 2 and shutil.which("taskset") is not None
        self.server_cpu = cpus[0] if self.pinned else None
        self.tool_cpu = cpus[1] if self.pinned else None

    def server(self):
        return ["taskset", "-c", str(self.server_cpu)] if self.pinned else []

    def tool(self):
        return ["taskset", "-c", str(self.tool_cpu)] if self.pinned else []


PINS = Pins()


class Server:
    """A fresh server on 127.0.0.1 with a free port; `taskset` execs it, so the pid is its own.
    `pin=False` leaves it to the scheduler (the cluster's 57,000-client run)."""

    def __init__(self, name, args, workdir, pin=True):
        self.name = name
        self.log_path = workdir / f"server-{name}.log"
        cmd = (PINS.server() if pin else []) + [str(SERVER_BIN), "0", "--bind", "127.0.0.1"]
        cmd += [str(a) for a in args]
        self.log = open(self.log_path, "w")
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self.log, cwd=workdir, env=env
        )
        self.pid = self.proc.pid
        line = self._first_line(15.0)
        if not line.startswith("Listening on "):
            self.stop()
            raise RuntimeError(f"server {name}: no 'Listening on' line (see {self.log_path})")
        self.port = int(line.rsplit(":", 1)[1])

    def _first_line(self, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
        return buf.split(b"\n", 1)[0].decode(errors="replace").strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def stress(server, args, limit_secs, during=None, port=None, mode="stress", ports=None,
           pids=None, pin=True):
    """One `split_client stress` run against `server` (on its plain port, or `port`); returns
    its JSON report. `during`, if given, is called while the load tool runs, and what it
    returns is kept in the report. `mode` "regflood" runs that mode instead. `ports` (a
    list) runs against several servers at once (`--server 127.0.0.1:PORT` each), and `pids`
    are the processes whose CPU time the tool adds up (default: the server's)."""
    cmd = stress_cmd(server, args, limit_secs, port, mode, ports, pids, pin)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    return stress_result(proc, cmd, args, limit_secs, mode, during, server)


def stress_cmd(server, args, limit_secs, port=None, mode="stress", ports=None, pids=None,
               pin=True):
    if ports is None:
        where = ["127.0.0.1", str(server.port if port is None else port)]
    else:
        where = [a for p in ports for a in ("--server", f"127.0.0.1:{p}")]
    pids = [server.pid] if pids is None else pids
    return (PINS.tool() if pin else []) + [
        str(BIN / "split_client"),
        mode,
        *where,
        *[str(a) for a in args],
        "--duration-secs",
        str(limit_secs),
        *[a for pid in pids for a in ("--server-pid", str(pid))],
        "--json",
    ]


def stress_result(proc, cmd, args, limit_secs, mode="stress", during=None, server=None):
    """Waits for a started load tool (bounded) and returns its JSON report."""
    extra = None
    try:
        if during is not None:
            extra = during(server)
        stdout, stderr = proc.communicate(timeout=limit_secs + 60)
    except subprocess.TimeoutExpired as e:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"stress run timed out: {' '.join(cmd)}") from e
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    if not lines:
        tail = "\n".join(stderr.splitlines()[-15:])
        raise RuntimeError(f"stress run failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    report = json.loads(lines[-1])
    if extra is not None:
        report["during"] = extra
    report["command"] = f"split_client {mode} 127.0.0.1 PORT " + " ".join(
        str(a) for a in args
    )
    return report


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_ceiling(secs):
    """iperf3 over 127.0.0.1, 128 KiB writes, one core each side: 200-byte frames per second."""
    port = free_port()
    srv = subprocess.Popen(
        PINS.server() + ["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        out = None
        for _ in range(10):
            done = subprocess.run(
                PINS.tool()
                + ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-l", "128K",
                   "-t", str(secs), "-J"],
                capture_output=True,
                text=True,
                timeout=secs + 30,
            )
            if done.returncode == 0:
                out = json.loads(done.stdout)
                break
            time.sleep(0.3)  # The server may not listen yet.
        if out is None:
            raise RuntimeError("iperf3 failed")
    finally:
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
    bps = out["end"]["sum_received"]["bits_per_second"]
    cpu = out["end"].get("cpu_utilization_percent", {})
    return {
        "bytes_per_sec": bps / 8,
        "frames_per_sec": bps / 8 / FRAME,
        "sender_cpu_percent": cpu.get("host_total"),
        "receiver_cpu_percent": cpu.get("remote_total"),
        "command": f"iperf3 -c 127.0.0.1 -l 128K -t {secs} (server on the other core)",
    }


# ---- Scenarios ----------------------------------------------------------------------------------


class Plan:
    """Sizes of every scenario: full, or tiny for --smoke."""

    def __init__(self, smoke):
        self.smoke = smoke
        self.ceiling_secs = 1 if smoke else 3
        self.sat_repeats = 1 if smoke else 3
        self.sat_messages = 500 if smoke else 20_000
        self.sat_window = 64
        self.fixed = dict(clients=500, senders=50, rate=2, messages=2 if smoke else 30)
        self.many = dict(clients=2000, channels=200, rate=5, messages=2 if smoke else 50)
        # The floor of each: the same writes by a program that does nothing else (no server).
        self.floor_fixed = dict(sockets=500, group=500, rate=100, rounds=50 if smoke else 1500)
        self.floor_many = dict(sockets=2000, group=10, rate=10_000,
                               rounds=2000 if smoke else 100_000)
        # The fixed-load and many-channels runs and their floors, interleaved, this many times:
        # their tails vary a lot from minute to minute here, so the medians are reported.
        self.latency_repeats = 1 if smoke else 3
        self.slow = dict(clients=100, senders=10, rate=500, messages=200 if smoke else 4000)
        self.slow_max_queue = 1 << 20
        self.slow_repeats = 1 if smoke else 3
        self.idle_clients = 300 if smoke else 10_000
        self.held_clients = 500 if smoke else 19_000
        self.idle_secs = 1 if smoke else 3
        # Past the open-file limit: how many connections to add to the held ones, and how long
        # the held ones wait for them.
        self.limit_extra = 50 if smoke else 1500
        self.limit_hold_secs = 4 if smoke else 8
        # Issue 9: bystander round trips through a flood of registrations.
        self.regflood = dict(flooders=200 if smoke else 4000, rounds=20 if smoke else 200)
        # Each transport beside a plain run of the same session (and InspIRCd beside IRC).
        self.transport_sat_messages = 300 if smoke else 5000
        self.transport_repeats = 1 if smoke else 3
        # The cluster (issue 13): the saturation layout and the fixed load over nodes, in
        # rounds beside one server; and 57,000 clients on three nodes (a third each).
        self.cluster_repeats = 1 if smoke else 3
        self.cluster_sat_messages = 300 if smoke else 5000
        self.big_clients = 600 if smoke else 57_000
        self.big_channels = 100
        self.big_messages = 1 if smoke else 5
        self.big_limit_secs = 60 if smoke else 420
        # When the whole run must end (bench/run.sh stops it at 900 s): set by main.
        self.deadline = float("inf")
        self.transport_fixed = dict(clients=500, senders=50, rate=2, messages=2 if smoke else 20)
        # Offered deliveries per second for the latency picture, per layout.
        self.sweep_secs = 0.5 if smoke else 2.5
        self.sweeps = [
            dict(name="100 clients, 10 senders (fan-out 99)", clients=100, senders=10,
                 offered=[50e3, 1e6] if smoke else
                 [25e3, 50e3, 100e3, 250e3, 500e3, 1e6, 2e6, 3e6, 4e6, 5e6]),
            dict(name="500 clients, 50 senders (fan-out 499)", clients=500, senders=50,
                 offered=[50e3] if smoke else
                 [25e3, 50e3, 100e3, 200e3, 400e3, 800e3, 1.6e6]),
        ]


def sat_args(plan):
    return ["--clients", 100, "--senders", 10, "--messages", plan.sat_messages,
            "--window", plan.sat_window]


def run_saturation(plan, workdir):
    """Rounds of: the loopback ceiling, an ephemeral run, a history-on run; so each run is
    compared with a ceiling measured next to it (this machine's speed drifts by tens of per
    cent over minutes)."""
    runs = {"ephemeral": [], "history": [], "ceilings": []}
    for i in range(plan.sat_repeats):
        ceiling = loopback_ceiling(plan.ceiling_secs)
        runs["ceilings"].append(ceiling)
        log(f"loopback ceiling #{i + 1}: {ceiling['frames_per_sec'] / 1e6:.2f} M frames/s")
        for mode in ("ephemeral", "history"):
            if mode == "ephemeral":
                storage = ["--ephemeral"]
            else:
                data = workdir / f"history-{i}"
                shutil.rmtree(data, ignore_errors=True)
                storage = ["--data-dir", str(data)]
            with Server(f"sat-{mode}-{i}", storage + ["--flood-rate", "0"], workdir) as srv:
                r = stress(srv, sat_args(plan), 120)
            r["storage"] = mode
            r["ceiling_frames_per_sec"] = ceiling["frames_per_sec"]
            runs[mode].append(r)
            log(f"saturation {mode} #{i + 1}: {r['deliveries_per_sec'] / 1e6:.2f} M/s, "
                f"{cpu_ns(r):.0f} ns CPU/delivery")
    return runs


def median_run(runs):
    ordered = sorted(runs, key=lambda r: r["deliveries_per_sec"])
    return ordered[len(ordered) // 2]


def run_rated(name, label, spec, workdir):
    """One fixed-rate scenario (the fixed load or many channels): `spec` holds its
    `split_client stress` options."""
    args = [a for key, value in spec.items() for a in (f"--{key}", value)]
    with Server(name, ["--ephemeral"], workdir) as srv:
        r = stress(srv, args + ["--window", 32], 120)
    log(f"{label}: p50 {ms(r, 'p50'):.2f} ms, p99 {ms(r, 'p99'):.2f} ms")
    return r


def run_floor(name, spec, limit_secs=60):
    """`split_client floor`: the writes of a scenario with no server at all, the writing thread
    on the server's core and the reading thread on the tool's; see src/split/floor.rs."""
    cmd = [str(BIN / "split_client"), "floor"]
    for key in ("sockets", "group", "rate", "rounds"):
        cmd += [f"--{key}", str(spec[key])]
    if PINS.pinned:
        cmd += ["--send-cpu", str(PINS.server_cpu), "--read-cpu", str(PINS.tool_cpu)]
    cmd += ["--duration-secs", str(limit_secs), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_secs + 60,
                          cwd=ROOT)
    lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
    if not lines:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise RuntimeError(f"floor run failed ({done.returncode}): {' '.join(cmd)}\n{tail}")
    r = json.loads(lines[-1])
    r["command"] = "split_client floor " + " ".join(cmd[2:])
    log(f"floor, {name}: {r['write_ns']:.0f} ns per write, sender {r['sender_share']:.0%} of "
        f"a core, p50 {ms(r, 'p50'):.2f} ms, p99 {ms(r, 'p99'):.2f} ms"
        + ("" if r["complete"] else " (INCOMPLETE)"))
    return r


LATENCY_KINDS = ("floor_fixed", "fixed", "floor_many", "many")


def run_latency(plan, workdir):
    """The fixed-load and many-channels scenarios, each just after its floor, `latency_repeats`
    times over: every run, by kind."""
    runs = {kind: [] for kind in LATENCY_KINDS}
    for i in range(plan.latency_repeats):
        runs["floor_fixed"].append(run_floor("fixed-load layout", plan.floor_fixed))
        runs["fixed"].append(run_rated(f"fixed-{i}", "fixed load", plan.fixed, workdir))
        runs["floor_many"].append(run_floor("many-channels layout", plan.floor_many))
        runs["many"].append(run_rated(f"many-{i}", "many channels", plan.many, workdir))
    return runs


def median_p99(runs):
    """The run with the median p99."""
    return sorted(runs, key=lambda r: r["latency_ns"]["p99"])[len(runs) // 2]


def latency_runs(res, kind):
    """Every run of one latency kind (results from before the repeats hold one)."""
    return res.get("latency_runs", {}).get(kind) or [res[kind]]


def med_ms(runs, key):
    return statistics.median(ms(r, key) for r in runs)


def spread(runs, key):
    return ", ".join(f"{ms(r, key):.2f}" for r in runs)


def run_slow_reader(plan, workdir):
    s = plan.slow
    args = ["--clients", s["clients"], "--senders", s["senders"], "--rate", s["rate"],
            "--messages", s["messages"], "--window", 256]
    runs = {"without": [], "with": []}
    # Interleaved, so that both see the same machine; the median p99 of each is compared.
    for i in range(plan.slow_repeats):
        for name, extra in (("without", []), ("with", ["--no-read", 1])):
            with Server(f"slow-{name}-{i}",
                        ["--ephemeral", "--max-queue", plan.slow_max_queue], workdir) as srv:
                r = stress(srv, args + extra, 120)
            runs[name].append(r)
            log(f"slow reader ({name}) #{i + 1}: p99 {ms(r, 'p99'):.2f} ms, "
                f"dropped {r['no_read_dropped']}")

    return {"without": median_p99(runs["without"]), "with": median_p99(runs["with"]),
            "runs": runs}


def channel_room(channels):
    """Room for `channels` channels on a server that limits them (`--max-channels`, 1,000 by
    default); a server without the flag has no limit."""
    if channels > 1000 and "--max-channels" in server_flags():
        return ["--max-channels", channels]
    return []


def run_idle(plan, workdir, clients, storage_mode, max_clients):
    channels = max(1, clients // 10)
    if storage_mode == "history":
        data = workdir / f"idle-{clients}"
        shutil.rmtree(data, ignore_errors=True)
        storage = ["--data-dir", str(data)]
    else:
        storage = ["--ephemeral"]
    with Server(f"idle-{clients}-{storage_mode}",
                storage + ["--max-clients", max_clients] + channel_room(channels),
                workdir) as srv:
        r = stress(srv, ["--clients", clients, "--channels", channels,
                         "--idle-secs", plan.idle_secs], 180)
    r["storage"] = storage_mode
    log(f"idle {clients} ({storage_mode}): {rss_per(r):.0f} bytes per client, "
        f"passed {r['passed']}")
    return r


SERVER_FULL = b"The server is full. Try again later."


def open_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def probe_past_the_limit(server, held, extra, wait_secs):
    """While `held` clients are connected, opens `extra` more connections (sending nothing)
    and sorts them: admitted (nothing to read) or refused (the server-full text, then the
    end of the stream)."""
    deadline = time.monotonic() + wait_secs
    while open_fds(server.pid) < held and time.monotonic() < deadline:
        time.sleep(0.2)
    fds_before = open_fds(server.pid)
    socks = []
    try:
        for _ in range(extra):
            s = socket.socket()
            s.settimeout(5)
            s.connect(("127.0.0.1", server.port))
            socks.append(s)
        time.sleep(1.0)
        admitted = refused = other = 0
        for s in socks:
            s.setblocking(False)
            try:
                data = s.recv(FRAME * 2)
            except BlockingIOError:
                admitted += 1
                continue
            except OSError:
                other += 1
                continue
            if data.rstrip() == SERVER_FULL:
                refused += 1
            else:
                other += 1
    finally:
        for s in socks:
            s.close()
    return {"server_fds_before": fds_before, "extra": extra, "admitted": admitted,
            "refused": refused, "other": other}


def run_limit(plan, workdir):
    """The held clients, and more past the open-file limit: the excess must get the
    server-full text while the held clients stay connected."""
    clients = plan.held_clients
    data = workdir / "limit"
    channels = max(1, clients // 10)
    with Server("limit", ["--data-dir", str(data), "--max-clients", 20_000]
                + channel_room(channels), workdir) as srv:
        r = stress(srv, ["--clients", clients, "--channels", channels,
                         "--idle-secs", plan.limit_hold_secs], 180,
                   during=lambda s: probe_past_the_limit(s, clients, plan.limit_extra, 120))
    d = r["during"]
    log(f"limit: {clients} held (passed {r['passed']}), {d['extra']} more: "
        f"{d['admitted']} admitted, {d['refused']} refused with the server-full text, "
        f"{d['other']} other")
    return r


def run_sweeps(plan, workdir, sat):
    """Latency against offered load, for the picture."""
    series = []
    for sw in plan.sweeps:
        points = []
        for offered in sw["offered"]:
            fanout = sw["clients"] - 1
            rate = offered / (sw["senders"] * fanout)
            messages = max(4, round(rate * plan.sweep_secs))
            with Server("sweep", ["--ephemeral", "--flood-rate", "0"], workdir) as srv:
                r = stress(srv, ["--clients", sw["clients"], "--senders", sw["senders"],
                                 "--rate", f"{rate:.4f}", "--messages", messages,
                                 "--window", 1024], 120)
            r["offered_per_sec"] = offered
            points.append(r)
            log(f"sweep {sw['clients']} clients, offered {offered / 1e6:.3g} M/s: "
                f"got {r['deliveries_per_sec'] / 1e6:.3g} M/s, p99 {ms(r, 'p99'):.2f} ms")
        if sw["clients"] == 100:
            # The saturation run (no rate limit) is the last point of this layout.
            s = dict(median_run(sat["ephemeral"]))
            s["offered_per_sec"] = None
            points.append(s)
        series.append({"name": sw["name"], "points": points})
    return series


# ---- The registration flood, transports, InspIRCd --------------------------------------------


def run_regflood(plan, workdir):
    """Issue 9: two bystanders chat while `flooders` new names send /register at once; the
    server keeps its registrations on disk as in normal use (`--data-dir`)."""
    spec = plan.regflood
    data = workdir / "regflood"
    shutil.rmtree(data, ignore_errors=True)
    with Server("regflood", ["--data-dir", str(data)], workdir) as srv:
        r = stress(srv, ["--flooders", spec["flooders"], "--rounds", spec["rounds"]], 300,
                   mode="regflood")
    log(f"regflood {spec['flooders']}: bystander p50 {ms(r, 'p50', 'rtt_ns'):.2f} ms, "
        f"p99 {ms(r, 'p99', 'rtt_ns'):.2f} ms (before: {ms(r, 'p99', 'baseline_rtt_ns'):.2f} "
        f"ms); {r['registered']} registered, {r['busy']} busy, {r['other']} other")
    return r


def server_flags():
    """The long options the server under test accepts, from its --help."""
    try:
        out = subprocess.run([str(SERVER_BIN), "--help"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(re.findall(r"--[a-z][a-z0-9-]*", out))


def make_certs(workdir):
    """A CA and a certificate for 127.0.0.1, made by bench/certs.rs (rcgen)."""
    certs = workdir / "certs"
    helper = BIN / "examples" / "bench-certs"
    subprocess.run([str(helper), str(certs)], check=True, timeout=30)
    return certs


# Each transport: the server flag that turns it on (its presence in `server --help` says the
# server has it), the server's options for a port, and the load tool's options.
TRANSPORTS = [
    dict(key="tls", name="TLS", flag="--tls-port",
         server=lambda port, certs: ["--tls-cert", certs / "cert.pem", "--tls-key",
                                     certs / "key.pem", "--tls-port", port],
         client=lambda certs: ["--tls", "--ca", certs / "ca.pem"]),
    dict(key="ws", name="WebSocket", flag="--web-port",
         server=lambda port, certs: ["--web-port", port],
         client=lambda certs: ["--proto", "ws"]),
    dict(key="irc", name="IRC", flag="--irc-port",
         server=lambda port, certs: ["--irc-port", port],
         client=lambda certs: ["--proto", "irc"]),
]


def wait_port(port, secs=10.0):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def transport_specs(plan):
    """The two scenarios run over every transport: (key, label, stress options, server
    options)."""
    sat = ["--clients", 100, "--senders", 10, "--messages", plan.transport_sat_messages,
           "--window", plan.sat_window]
    f = plan.transport_fixed
    fixed = ["--clients", f["clients"], "--senders", f["senders"], "--rate", f["rate"],
             "--messages", f["messages"], "--window", 32]
    return [("saturation", "Saturation: 100 clients, 10 senders, window "
             f"{plan.sat_window}, {plan.transport_sat_messages:,} messages each",
             sat, ["--ephemeral", "--flood-rate", "0"]),
            ("fixed", f"Fixed load: {f['clients']} clients, {f['senders']} senders × "
             f"{f['rate']} msg/s", fixed, ["--ephemeral", "--flood-rate", "0"])]


def run_transports(plan, workdir):
    """Every scenario of `transport_specs`, in rounds: over plain frames, over each transport
    the server has (a fresh server each run, started with that transport's port, so that only
    the client's path differs), and over IRC against InspIRCd, one after the other, so that
    each is compared with the runs of its own round (this machine's speed drifts over
    minutes). A transport the server lacks is recorded as skipped, with why."""
    flags = server_flags()
    certs = make_certs(workdir)
    out = {"skipped": {}, "runs": {}}
    for t in TRANSPORTS:
        if t["flag"] not in flags:
            out["skipped"][t["key"]] = f"the server has no `{t['flag']}`"
            log(f"transport {t['name']}: skipped, the server has no {t['flag']}")
    have_ircd = shutil.which("inspircd") is not None or Path("/usr/sbin/inspircd").exists()
    ircd = {"version": inspircd_version(), "runs": {}} if have_ircd else {
        "skipped": "inspircd is not installed (`scripts/setup.sh` installs it)"}
    for key, label, args, server_args in transport_specs(plan):
        repeats = plan.transport_repeats if key == "saturation" else 1
        for i in range(repeats):
            with Server(f"plain-{key}-{i}", server_args, workdir) as srv:
                r = stress(srv, args, 120)
            r["label"] = label
            out["runs"].setdefault("plain", {}).setdefault(key, []).append(r)
            log(f"{key} #{i + 1}, plain frames: {fmt_rate(r['deliveries_per_sec'])}, "
                f"{cpu_ns(r):.0f} ns CPU/delivery, p50 {ms(r, 'p50'):.2f} ms, "
                f"p99 {ms(r, 'p99'):.2f} ms")
            for t in TRANSPORTS:
                if t["key"] in out["skipped"]:
                    continue
                port = free_port()
                with Server(f"{t['key']}-{key}-{i}", server_args + t["server"](port, certs),
                            workdir) as srv:
                    if not wait_port(port):
                        raise RuntimeError(f"the server does not listen on {t['flag']} {port}")
                    r = stress(srv, args + t["client"](certs), 120, port=port)
                r["label"] = label
                out["runs"].setdefault(t["key"], {}).setdefault(key, []).append(r)
                log(f"{key} #{i + 1}, {t['name']}: {fmt_rate(r['deliveries_per_sec'])}, "
                    f"{cpu_ns(r):.0f} ns CPU/delivery, p50 {ms(r, 'p50'):.2f} ms, "
                    f"p99 {ms(r, 'p99'):.2f} ms")
            if have_ircd:
                with InspIrcd(f"inspircd-{key}-{i}") as d:
                    r = stress(d, args + ["--proto", "irc"], 120)
                r["label"] = label
                ircd["runs"].setdefault(key, []).append(r)
                log(f"{key} #{i + 1}, InspIRCd: {fmt_rate(r['deliveries_per_sec'])}, "
                    f"{cpu_ns(r):.0f} ns CPU/delivery, p50 {ms(r, 'p50'):.2f} ms, "
                    f"p99 {ms(r, 'p99'):.2f} ms")
    # The run shown of each: the median by throughput at saturation, by p99 at the fixed load.
    pick = {"saturation": median_run, "fixed": median_p99}
    for t, by_key in out["runs"].items():
        out[t] = {key: pick[key](runs) for key, runs in by_key.items()}
    for key, runs in ircd.get("runs", {}).items():
        ircd[key] = pick[key](runs)
    return out, ircd


IRC_WINDOWS = (16, 64, 256)


def run_irc_windows(plan, workdir):
    """The IRC saturation layout at several windows (messages in flight per sender), ours and
    InspIRCd's one after the other in each round: the window decides how full each server's
    queues run, and the two servers answer it in opposite ways."""
    if "--irc-port" not in server_flags():
        return {"skipped": "the server has no `--irc-port`"}
    if shutil.which("inspircd") is None and not Path("/usr/sbin/inspircd").exists():
        return {"skipped": "inspircd is not installed (`scripts/setup.sh` installs it)"}
    out = {"windows": list(IRC_WINDOWS), "rounds": []}
    for i in range(plan.transport_repeats):
        round_ = {}
        for w in IRC_WINDOWS:
            args = ["--clients", 100, "--senders", 10, "--messages",
                    plan.transport_sat_messages, "--window", w, "--proto", "irc"]
            port = free_port()
            with Server(f"irc-w{w}-{i}", ["--ephemeral", "--flood-rate", "0", "--irc-port",
                                          port], workdir) as srv:
                if not wait_port(port):
                    raise RuntimeError("the server does not listen on --irc-port")
                ours = stress(srv, args, 120, port=port)
            with InspIrcd(f"inspircd-w{w}-{i}") as d:
                theirs = stress(d, args, 120)
            round_[str(w)] = {"ours": ours, "inspircd": theirs}
            log(f"IRC window {w} #{i + 1}: ours {fmt_rate(ours['deliveries_per_sec'])} at "
                f"{cpu_ns(ours):.0f} ns, InspIRCd {fmt_rate(theirs['deliveries_per_sec'])} at "
                f"{cpu_ns(theirs):.0f} ns: "
                f"{ours['deliveries_per_sec'] / max(theirs['deliveries_per_sec'], 1):.2f}×")
        out["rounds"].append(round_)
    return out


def irc_windows_table(res):
    iw = res.get("irc_windows")
    if not iw:
        return []
    if "skipped" in iw:
        return ["", f"IRC against InspIRCd by window: **not run**: {iw['skipped']}."]
    lines = ["", "IRC against InspIRCd by window (the saturation layout, 100 clients, 10 "
             "senders; each window's two runs one after the other, in "
             f"{len(iw['rounds'])} round(s); the median round by our deliveries/s):", "",
             "| Window | Ours: deliveries/s, CPU per delivery | InspIRCd: deliveries/s, CPU per "
             "delivery | Ours / InspIRCd (rounds) | Lost/dup/reordered/corrupt (ours; theirs) |",
             "|---|---|---|---|---|"]
    for w in iw["windows"]:
        rounds = [rd[str(w)] for rd in iw["rounds"]]
        ratios = [r["ours"]["deliveries_per_sec"] / max(r["inspircd"]["deliveries_per_sec"], 1)
                  for r in rounds]
        m = sorted(rounds, key=lambda r: r["ours"]["deliveries_per_sec"])[len(rounds) // 2]
        lines.append(f"| {w} | {fmt_rate(m['ours']['deliveries_per_sec'])}, "
                     f"{cpu_ns(m['ours']):.0f} ns | {fmt_rate(m['inspircd']['deliveries_per_sec'])}"
                     f", {cpu_ns(m['inspircd']):.0f} ns | {statistics.median(ratios):.2f}× ("
                     + ", ".join(f"{x:.2f}×" for x in ratios) + f") | {faults(m['ours'])}; "
                     f"{faults(m['inspircd'])} |")
    return lines


def irc_windows_targets(res):
    iw = res.get("irc_windows")
    if not iw or "skipped" in iw:
        return []
    out = []
    for w in iw["windows"]:
        rounds = [rd[str(w)] for rd in iw["rounds"]]
        ratios = [r["ours"]["deliveries_per_sec"] / max(r["inspircd"]["deliveries_per_sec"], 1)
                  for r in rounds]
        out.append((f"IRC at window {w} ≥ 2× InspIRCd's deliveries/s, same load, same rounds "
                    "(issue 12)",
                    f"{statistics.median(ratios):.2f}× (rounds: "
                    + ", ".join(f"{x:.2f}×" for x in ratios) + ")",
                    statistics.median(ratios) >= TARGET_IRC_VS_INSPIRCD
                    and all(clean(r["ours"]) for r in rounds)))
    return out


def round_ratios(res, key, num, den):
    """Per round of the transport runs, `num`'s deliveries per second over `den`'s (a
    transport key, or "inspircd")."""
    def runs(t):
        if t == "inspircd":
            return res.get("inspircd", {}).get("runs", {}).get(key, [])
        return res.get("transports", {}).get("runs", {}).get(t, {}).get(key, [])
    return [a["deliveries_per_sec"] / max(b["deliveries_per_sec"], 1e-9)
            for a, b in zip(runs(num), runs(den))]


INSPIRCD_CONF = """<config format="xml">
<define name="dir" value="{dir}">
<path configdir="&dir;" datadir="&dir;/run" logdir="&dir;/run" runtimedir="&dir;/run">
<server name="inspircd.bench" description="Load-test reference server" network="Bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect name="bench" allow="127.0.0.1" timeout="60" pingfreq="2m"
         hardsendq="67108864" softsendq="16777216" recvq="1048576"
         threshold="1000000" commandrate="100000000" fakelag="yes"
         localmax="100000" globalmax="100000" maxconnwarn="no" limit="100000"
         maxchans="1000" resolvehostnames="no" useident="no">
<files motd="&dir;/motd.txt">
<channels users="1000" opers="1000">
<limits maxnick="32" maxchan="65" maxident="32" maxreal="130" maxquit="300" maxtopic="300" maxaway="200">
<performance netbuffersize="65534" softlimit="20000" somaxconn="1024" clonesonconnect="no">
<pid file="&dir;/run/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="&dir;/run/ircd.log">
<options casemapping="ascii" prefixquit="Quit: " syntaxhints="no" hostintopic="yes">
<security hideserver="" userstats="Pu" maxtargets="20">
<whowas groupsize="10" maxgroups="1000" maxkeep="1h">
"""


class InspIrcd:
    """Debian's InspIRCd on 127.0.0.1, pinned to the server's core, configured so that it does
    not throttle (no flood limits, large send queues, the largest read buffer it takes). It
    refuses to run as root: as root it runs as `nobody` (setpriv execs it, as taskset does, so
    the pid is InspIRCd's own)."""

    def __init__(self, name):
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix="chat-bench-ircd-"))
        os.chmod(self.dir, 0o755)
        run = self.dir / "run"
        run.mkdir()
        self.port = free_port()
        (self.dir / "inspircd.conf").write_text(INSPIRCD_CONF.format(dir=self.dir,
                                                                     port=self.port))
        (self.dir / "motd.txt").write_text("Load-test reference server.\n")
        cmd = PINS.server()
        if os.geteuid() == 0:
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.chown(run, nobody.pw_uid, nobody.pw_gid)
            cmd += ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                    "--clear-groups", "--"]
        cmd += [shutil.which("inspircd") or "/usr/sbin/inspircd", "--config",
                str(self.dir / "inspircd.conf"), "--nofork"]
        self.log = open(self.dir / "stdout.txt", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        if not wait_port(self.port, 15):
            self.stop()
            raise RuntimeError(f"InspIRCd did not listen on {self.port}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def inspircd_version():
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "inspircd"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out or "?"


# ---- The cluster (issue 13): its own redis-server and PostgreSQL -----------------------------


def pg_bin_dir():
    """The newest PostgreSQL server programs installed (Debian: /usr/lib/postgresql/N/bin)."""
    found = []
    for entry in Path("/usr/lib/postgresql").glob("*/bin"):
        if (entry / "initdb").is_file() and (entry / "pg_ctl").is_file():
            try:
                found.append((int(entry.parent.name), entry))
            except ValueError:
                pass
    return max(found)[1] if found else None


def service_user():
    """As root: the (uid, gid) PostgreSQL runs as (it refuses root): `postgres`, which
    Debian's package creates, else `nobody`. Otherwise None (it runs as we do)."""
    if os.geteuid() != 0:
        return None
    import pwd
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
    raise RuntimeError("as root, PostgreSQL needs a user to run as: no postgres or nobody")


def proc_children(pid):
    """The pids whose parent is `pid` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid):
            out.append(int(entry.name))
    return sorted(out)


class Redis:
    """redis-server on 127.0.0.1 and a free port, pinned to the server's core (unless
    `pin=False`), nothing saved (`--save "" --appendonly no`); a fresh one for every cluster
    run."""

    def __init__(self, workdir, name, pin=True):
        self.port = free_port()
        self.log = open(workdir / f"redis-{name}.log", "w")
        cmd = (PINS.server() if pin else []) + [shutil.which("redis-server") or "redis-server",
                                                "--port",
                               str(self.port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--protected-mode", "no",
                               "--maxclients", "1000"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        if not wait_port(self.port, 10):
            self.stop()
            raise RuntimeError(f"redis-server did not listen on {self.port}")
        self.url = f"redis://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Postgres:
    """A throwaway PostgreSQL cluster: `initdb` in a temporary directory, as the `postgres`
    user when we are root (it refuses root), listening on 127.0.0.1 and a free port (its
    socket in that directory), pinned to the server's core (taskset on pg_ctl: the postmaster
    and every backend inherit it). Settings for a benchmark box, not for data one keeps:
    fsync, synchronous_commit and full_page_writes off; autovacuum off, so that no worker
    comes and goes during a measured run (the CPU of every backend is counted). Stopped and
    removed by `stop`."""

    def __init__(self):
        self.bin = pg_bin_dir()
        self.user = service_user()
        self.dir = Path(tempfile.mkdtemp(prefix="chat-bench-pg-"))
        if self.user:
            os.chown(self.dir, *self.user)
        self.next_db = 0
        self.port = None
        try:
            self._run("initdb", "-D", str(self.dir / "data"), "-U", "chat", "-A", "trust",
                      "-E", "UTF8", "--locale=C", "-N")
            for attempt in range(5):
                self.port = free_port()
                opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                        "-c autovacuum=off -c max_connections=300")
                done = self._run("pg_ctl", "-D", str(self.dir / "data"), "-l",
                                 str(self.dir / "log"), "-w", "-t", "60", "-o", opts, "start",
                                 check=False, pin=True)
                if done.returncode == 0:
                    break
                if attempt == 4:
                    raise RuntimeError("PostgreSQL did not start: "
                                       + (self.dir / "log").read_text()[-2000:])
        except BaseException:
            self.stop()
            raise

    def _run(self, program, *args, check=True, pin=False):
        cmd = (PINS.server() if pin else []) + [str(self.bin / program), *args]
        kw = {}
        if self.user:
            kw = dict(user=self.user[0], group=self.user[1], extra_groups=[])
        done = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True, timeout=90,
                              stdin=subprocess.DEVNULL, **kw)
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}")
        return done

    def new_db(self):
        """A fresh database; its URL."""
        self.next_db += 1
        name = f"bench_{self.next_db}"
        self._run("psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "chat",
                  "-d", "postgres", "-c", f"CREATE DATABASE {name}")
        return f"postgres://chat@127.0.0.1:{self.port}/{name}"

    def pids(self):
        """The postmaster and its children (every backend, the writers)."""
        try:
            pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [pid] + proc_children(pid)

    def stop(self):
        if self.port is not None and (self.dir / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "-t", "60",
                      "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def cluster_missing():
    """Why the cluster runs cannot be run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (`scripts/setup.sh` installs it)"
    if pg_bin_dir() is None:
        return "PostgreSQL is not installed (`scripts/setup.sh` installs it)"
    if "--cluster" not in server_flags():
        return "the server has no `--cluster`"
    return None


def nodes(n, redis, db_url, workdir, name, extra=(), pin=True):
    """`n` cluster nodes on `redis` and the database `db_url`."""
    out = []
    try:
        for i in range(n):
            out.append(Server(f"{name}-node{i}", ["--cluster", redis.url, "--db", db_url,
                                                   "--flood-rate", "0", *extra], workdir,
                              pin=pin))
    except BaseException:
        for node in out:
            node.stop()
        raise
    return out


def usage_of(r, pids):
    """The CPU seconds the load tool measured for `pids`, added up."""
    by = ((r.get("server") or {}).get("cpu_secs_by_pid")) or {}
    return sum(by.get(str(p), 0.0) for p in pids)


def account(r, groups, deliveries=None):
    """CPU per delivery of each group of processes (name -> pids), in ns: over the run's own
    deliveries, or `deliveries` (a shard measures the CPU of every node for all shards)."""
    d = max(r["deliveries_received"] if deliveries is None else deliveries, 1)
    r["cpu_ns_by_group"] = {name: usage_of(r, pids) * 1e9 / d for name, pids in groups.items()}
    return r


def run_cluster(plan, workdir):
    """Issue 13's rows: the saturation layout over two nodes against one server, the fixed
    load with senders and readers on different nodes, and three nodes holding 57,000 clients
    with a broadcast in every channel. Redis and PostgreSQL are our own, on 127.0.0.1."""
    why = cluster_missing()
    if why:
        log(f"cluster: not run, {why}")
        return {"skipped": why}
    out = {"saturation": [], "fixed": [], "big": None}
    pg = Postgres()
    try:
        (_, _, _, single_args), (_, _, fixed_args, _) = transport_specs(plan)
        sat_args = ["--clients", 100, "--senders", 10, "--messages", plan.cluster_sat_messages,
                    "--window", plan.sat_window]
        for i in range(plan.cluster_repeats):
            round_ = {}
            with Server(f"cl-single-{i}", single_args, workdir) as srv:
                round_["single"] = account(stress(srv, sat_args, 120), {"server": [srv.pid]})
            # The nodes keep history (in PostgreSQL): the like-for-like single server keeps
            # it too (in SQLite), and the target is taken against it.
            data = workdir / f"cl-single-history-{i}"
            shutil.rmtree(data, ignore_errors=True)
            with Server(f"cl-single-history-{i}", ["--data-dir", str(data), "--flood-rate", "0"],
                        workdir) as srv:
                round_["single_history"] = account(stress(srv, sat_args, 120),
                                                   {"server": [srv.pid]})
            for n in (1, 2):
                with Redis(workdir, f"sat{n}-{i}") as redis:
                    ns = nodes(n, redis, pg.new_db(), workdir, f"cl-sat{n}-{i}")
                    try:
                        pgp = pg.pids()
                        pids = [x.pid for x in ns] + [redis.pid] + pgp
                        r = stress(ns[0], sat_args, 180, ports=[x.port for x in ns], pids=pids)
                    finally:
                        for x in ns:
                            x.stop()
                round_[f"nodes{n}"] = account(r, {"nodes": [x.pid for x in ns],
                                                  "redis": [redis.pid], "postgres": pgp})
            out["saturation"].append(round_)
            g2 = round_["nodes2"]["cpu_ns_by_group"]
            log(f"cluster saturation #{i + 1}: one server {cpu_ns(round_['single']):.0f} ns/"
                f"delivery at {fmt_rate(round_['single']['deliveries_per_sec'])} (with history "
                f"{cpu_ns(round_['single_history']):.0f} ns); two nodes "
                f"{g2['nodes']:.0f} + redis {g2['redis']:.0f} (+ postgres {g2['postgres']:.0f})"
                f" ns at {fmt_rate(round_['nodes2']['deliveries_per_sec'])}")
        for i in range(plan.cluster_repeats):
            round_ = {}
            with Server(f"cl-fixed-single-{i}", single_args, workdir) as srv:
                round_["single"] = stress(srv, fixed_args, 120)
            with Redis(workdir, f"fixed-{i}") as redis:
                ns = nodes(2, redis, pg.new_db(), workdir, f"cl-fixed-{i}")
                try:
                    pids = [x.pid for x in ns] + [redis.pid]
                    round_["split"] = stress(ns[0], fixed_args + ["--placement", "split"], 120,
                                             ports=[x.port for x in ns], pids=pids)
                finally:
                    for x in ns:
                        x.stop()
            out["fixed"].append(round_)
            cross = round_["split"].get("cross_server_latency_ns") or {}
            log(f"cluster fixed load #{i + 1}: one server p99 {ms(round_['single'], 'p99'):.2f}"
                f" ms; senders and readers on two nodes: p99 across "
                f"{cross.get('p99', float('nan')) / 1e6:.2f} ms")
        try:
            out["big"] = run_cluster_big(plan, workdir, pg)
        except RuntimeError as e:
            # Recorded as a missed target with its cause, not the end of the whole benchmark.
            log(f"cluster, {plan.big_clients:,} clients: FAILED: {e}")
            out["big"] = {"failed": str(e)[-1500:]}
    finally:
        pg.stop()
    return out


def raise_nofile():
    """Raises this process's soft open-file limit to the hard one (the servers and load tools
    it starts inherit it); returns the limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run_cluster_big(plan, workdir, pg):
    """Three nodes holding `plan.big_clients` clients (a third each, one load process per
    node: each process may open 20,000 files), in 100 channels spanning the nodes; every
    channel's sender broadcasts, and every member on every node must get it."""
    shards = 3
    clients = plan.big_clients
    # What is left of the benchmark's time bound (bench/run.sh stops it at 15 minutes), less
    # the time to start and stop the nodes.
    left = plan.deadline - time.monotonic() - 45
    if left < 60:
        log(f"cluster, {clients:,} clients: not run, {left:.0f} s left of the time bound")
        return {"skipped": f"only {max(left, 0):.0f} s were left of the benchmark's 15 minutes"}
    limit = raise_nofile()
    need = clients // shards + 200
    if limit < need:
        log(f"cluster, {clients:,} clients: not run, the open-file limit is {limit}")
        return {"skipped": f"the hard open-file limit is {limit}, each process needs {need} "
                           "(raise it with `ulimit -Hn` as root)"}
    args = ["--clients", clients, "--channels", plan.big_channels, "--senders",
            plan.big_channels, "--messages", plan.big_messages, "--window", 64]
    barrier = workdir / "barrier"
    shutil.rmtree(barrier, ignore_errors=True)
    barrier.mkdir()
    limit = int(min(plan.big_limit_secs, left))
    # Three nodes, Redis and three load processes on two cores: left to the scheduler (pinned,
    # the join notices of 57,000 clients took the servers' core twice as long).
    with Redis(workdir, "big", pin=False) as redis:
        ns = nodes(shards, redis, pg.new_db(), workdir, "cl-big",
                   extra=["--max-clients", 20_000], pin=False)
        try:
            pids = [x.pid for x in ns] + [redis.pid] + pg.pids()
            procs = []
            for k, node in enumerate(ns):
                a = args + ["--shard", f"{k}/{shards}", "--barrier", barrier]
                cmd = stress_cmd(node, a, limit, pids=pids if k == 0 else [], pin=False)
                procs.append((subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True, cwd=ROOT),
                              cmd, a))
            runs = []
            for proc, cmd, a in procs:
                runs.append(stress_result(proc, cmd, a, limit))
            fds = [open_fds(x.pid) for x in ns]
        finally:
            for x in ns:
                x.stop()
    total = sum(r["deliveries_received"] for r in runs)
    expected = sum(r["deliveries_expected"] for r in runs)
    big = {"shards": runs, "clients": clients, "channels": plan.big_channels,
           "messages": plan.big_messages, "deliveries_received": total,
           "deliveries_expected": expected, "node_fds_after": fds,
           "setup_secs": max(r["setup_secs"] for r in runs),
           "passed": all(r["passed"] for r in runs) and total == expected}
    account(runs[0], {"nodes": [x.pid for x in ns], "redis": [redis.pid],
                      "postgres": pids[shards + 1:]}, deliveries=total)
    log(f"cluster, {clients:,} clients on {shards} nodes: {total:,} of {expected:,} deliveries, "
        f"setup {big['setup_secs']:.1f} s, {'PASS' if big['passed'] else 'FAIL'}")
    return big


def cluster_runs(res):
    """Every stress run of the cluster rows."""
    cl = res.get("cluster") or {}
    for round_ in cl.get("saturation", []):
        yield from round_.values()
    for round_ in cl.get("fixed", []):
        yield from round_.values()
    if cl.get("big") and "shards" in cl["big"]:
        yield from cl["big"]["shards"]


# ---- Figures ------------------------------------------------------------------------------------


def ms(r, key, field="latency_ns"):
    return r[field][key] / 1e6


def cpu_ns(r):
    s = r.get("server") or {}
    return s.get("cpu_ns_per_delivery", float("nan"))


def rss_per(r):
    s = r.get("server") or {}
    return s.get("rss_bytes_per_connection", float("nan"))


def faults(r):
    return (f"{r['lost']}/{r['duplicates']}/{r['reordered']}/{r['corrupt']}"
            + ("" if r["disconnects"] == 0 else f", {r['disconnects']} disconnected"))


def clean(r):
    return r["passed"]


def machine():
    def read(path):
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    cpuinfo = read("/proc/cpuinfo")
    model = next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines()
                  if l.startswith("model name")), platform.processor() or "unknown")
    mem_kib = next((int(l.split()[1]) for l in read("/proc/meminfo").splitlines()
                    if l.startswith("MemTotal:")), 0)
    virt = "virtual machine" if " hypervisor" in cpuinfo else "bare metal (no hypervisor flag)"

    def cmd(*args):
        try:
            return subprocess.run(args, capture_output=True, text=True, cwd=ROOT,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    commit = cmd("git", "rev-parse", "--short", "HEAD")
    if cmd("git", "status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "virtualization": virt,
        "rustc": cmd("rustc", "--version"),
        "commit": commit,
        "pinned": PINS.pinned,
        "server_cpu": PINS.server_cpu,
        "tool_cpu": PINS.tool_cpu,
        "congestion_control": read("/proc/sys/net/ipv4/tcp_congestion_control").strip(),
    }


def busy_secs():
    """User, nice and system time of every CPU since boot, in seconds (interrupt time is left
    out: on this kernel it is not charged to the processes that cause it)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        ticks = sum(int(x) for x in fields[1:4])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def own_secs():
    """CPU time of this script and of the processes it ran and waited for (server, load tool,
    iperf3)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def loadavg():
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def yes(ok, floor_ok=None):
    if ok:
        return "yes"
    if floor_ok is False:
        return "**no**; nor does the floor (no server could have, on these runs)"
    return "**no**"


def fmt_rate(x):
    return f"{x / 1e6:.2f} M/s" if x >= 1e6 else f"{x / 1e3:.0f} k/s"


def fmt_lat(r, field="latency_ns"):
    top = ms(r, "max", field)
    return (f"{ms(r, 'p50', field):.2f} / {ms(r, 'p99', field):.2f} / "
            f"{top:.1f} ms" if top >= 10 else
            f"{ms(r, 'p50', field):.2f} / {ms(r, 'p99', field):.2f} / {top:.2f} ms")


def table(res):
    """The results table (Markdown) and the list of targets with their outcome."""
    ceiling = res["ceiling"]["frames_per_sec"]
    eph = median_run(res["saturation"]["ephemeral"])
    hist = median_run(res["saturation"]["history"])
    eph_rates = [r["deliveries_per_sec"] for r in res["saturation"]["ephemeral"]]
    hist_rates = [r["deliveries_per_sec"] for r in res["saturation"]["history"]]
    ratio = statistics.median(hist_rates) / statistics.median(eph_rates)
    ceil_ratio = statistics.median(
        r["deliveries_per_sec"] / r["ceiling_frames_per_sec"]
        for r in res["saturation"]["ephemeral"])
    fixed, many = res["fixed"], res["many"]
    slow = res["slow_reader"]
    slow_ratio = ms(slow["with"], "p99") / max(ms(slow["without"], "p99"), 1e-9)
    idle, idle_eph, held = res["idle"], res["idle_ephemeral"], res["held"]
    lim = res["limit"]

    rows = []

    def row(name, storage, r, rate=True, cpu=True, lat=True, rss=False, ceil=False):
        rows.append("| " + " | ".join([
            name,
            storage,
            fmt_rate(r["deliveries_per_sec"]) if rate else "–",
            f"{cpu_ns(r):.0f} ns" if cpu else "–",
            fmt_lat(r) if lat else "–",
            f"{rss_per(r):.0f} B" if rss else "–",
            f"{r['deliveries_per_sec'] / r['ceiling_frames_per_sec']:.0%}" if ceil else "–",
            faults(r) + ("" if clean(r) else " (FAIL)"),
        ]) + " |")

    row(f"Saturation: 100 clients, 1 channel, 10 senders, window {eph_window(eph)} "
        f"(median of {len(eph_rates)})", "`--ephemeral`", eph, ceil=True)
    row(f"Saturation, history on (median of {len(hist_rates)})", "`--data-dir` (temp)", hist,
        ceil=True)
    n_lat = len(latency_runs(res, "fixed"))
    of_n = f" (median p99 of {n_lat})" if n_lat > 1 else ""
    row("Fixed load: 500 clients, 50 senders × 2 msg/s" + of_n, "`--ephemeral`", fixed)
    row("Many channels: 2,000 clients, 200 channels of 10, all × 5 msg/s" + of_n,
        "`--ephemeral`", many)
    n_slow = len(slow["runs"]["with"])
    row(f"Busy channel, all reading: 100 clients, 10 senders × 500 msg/s (median p99 of "
        f"{n_slow})", "`--ephemeral`", slow["without"])
    row(f"Same, plus 1 client that never reads (median p99 of {n_slow})", "`--ephemeral`",
        slow["with"])
    row(f"Idle: {idle['clients']:,} clients named and joined", "`--data-dir` (temp)", idle,
        rate=False, cpu=False, lat=False, rss=True)
    row(f"Idle: {idle_eph['clients']:,} clients named and joined", "`--ephemeral`", idle_eph,
        rate=False, cpu=False, lat=False, rss=True)
    row(f"Held: {held['clients']:,} clients at once", "`--data-dir` (temp)", held,
        rate=False, cpu=False, lat=False, rss=True)
    reg = res.get("regflood")
    if reg is not None:
        rows.append("| " + " | ".join([
            f"Bystander round trip during a flood of {reg['flooders']:,} registrations "
            f"({reg['rtt_ns']['samples']:,} round trips; before the flood: "
            f"{fmt_lat(reg, 'baseline_rtt_ns')})",
            "`--data-dir` (temp)",
            "–",
            f"{reg['server_cpu_secs']:.2f} s over the flood"
            if reg.get("server_cpu_secs") is not None else "–",
            fmt_lat(reg, "rtt_ns"),
            "–",
            "–",
            f"{reg['bystander_faults']} bystander faults; {reg['registered']:,} registered, "
            f"{reg['busy']:,} busy, {reg['other']} other, {reg['unanswered']} unanswered"
            + ("" if reg["passed"] else " (FAIL)"),
        ]) + " |")

    def floor_row(name, r):
        rows.append("| " + " | ".join([
            name,
            "none (no server)",
            fmt_rate(r["writes"] / max(r["wall_secs"], 1e-9)),
            f"{r['write_ns']:.0f} ns per write ({r['sender_share']:.0%} of the core)",
            fmt_lat(r),
            "–",
            "–",
            f"{r['writes'] - r['received']}/–/{r['faults']}/–"
            + ("" if r["complete"] else " (FAIL)"),
        ]) + " |")

    floor_fixed, floor_many = res["floor_fixed"], res["floor_many"]
    n_lat = len(latency_runs(res, "fixed"))
    of_n = f" (median p99 of {n_lat})" if n_lat > 1 else ""
    floor_row("Floor of the fixed load: 100 writes/s of a frame to 499 of 500 sockets" + of_n,
              floor_fixed)
    floor_row("Floor of many channels: 10,000 writes/s of a frame to 9 of a group of 10, "
              "2,000 sockets" + of_n, floor_many)

    head = ("| Scenario | Storage | Deliveries/s | Server CPU per delivery | "
            "Latency p50 / p99 / max | RSS per connection | Of loopback ceiling | "
            "Lost/dup/reordered/corrupt |\n|---|---|---|---|---|---|---|---|")

    targets = [
        ("Saturation ≥ 3 M deliveries/s", fmt_rate(eph["deliveries_per_sec"]),
         eph["deliveries_per_sec"] >= TARGET_SAT_RATE),
        ("Saturation ≤ 0.3 µs server CPU per delivery", f"{cpu_ns(eph) / 1e3:.3f} µs",
         cpu_ns(eph) <= TARGET_SAT_CPU_NS),
        ("Saturation ≥ 45% of the loopback ceiling (each run against the ceiling measured "
         "just before it; median)", f"{ceil_ratio:.0%}", ceil_ratio >= TARGET_SAT_CEILING),
        ("History on ≥ 80% of `--ephemeral` (issue 5)",
         f"{ratio:.0%} ({fmt_rate(statistics.median(hist_rates))} vs "
         f"{fmt_rate(statistics.median(eph_rates))})", ratio >= TARGET_HISTORY_RATIO),
        latency_target("Fixed load p50 < 1 ms", res, "fixed", "p50", TARGET_FIXED_P50_MS),
        latency_target("Fixed load p99 < 5 ms", res, "fixed", "p99", TARGET_FIXED_P99_MS),
        ("Fixed load: no loss", faults(fixed), clean(fixed)),
        latency_target("Many channels p99 < 5 ms", res, "many", "p99", TARGET_MANY_P99_MS),
        ("Idle: ≤ 1 KiB RSS per client at 10,000", f"{rss_per(idle):.0f} B",
         rss_per(idle) <= TARGET_IDLE_BYTES and clean(idle)),
        ("19,000 clients held at once", f"{held['clients']:,} held" if clean(held)
         else "failed", clean(held) and held["clients"] >= TARGET_HELD),
        ("Past the open-file limit, new connections get the server-full text",
         f"{lim['during']['extra']:,} more while {lim['clients']:,} held: "
         f"{lim['during']['admitted']} admitted, {lim['during']['refused']} refused with the "
         f"text, {lim['during']['other']} other; held clients unaffected: "
         f"{'yes' if clean(lim) else 'no'}",
         clean(lim) and lim["during"]["other"] == 0
         and (lim["during"]["refused"] > 0 or plan_smoke(res))),
        ("Never-reading client: others' p99 within 20% (medians)",
         f"{ms(slow['with'], 'p99'):.2f} vs {ms(slow['without'], 'p99'):.2f} ms "
         f"({slow_ratio - 1:+.0%})", slow_ratio <= TARGET_SLOW_P99_RATIO),
        ("Never-reading client disconnected when its queue fills",
         f"dropped in {sum(r['no_read_dropped'] >= 1 for r in slow['runs']['with'])} of "
         f"{len(slow['runs']['with'])} runs",
         all(r["no_read_dropped"] >= 1 for r in slow["runs"]["with"])),
    ]
    reg = res.get("regflood")
    if reg is not None:
        targets.append(
            (f"Flood of {reg['flooders']:,} registrations (issue 9): each confirmed or refused "
             "with the busy text, every bystander message intact",
             f"{reg['registered']:,} confirmed, {reg['busy']:,} busy, {reg['other']} other, "
             f"{reg['unanswered']} unanswered in {reg['flood_secs']:.1f} s; bystander p99 "
             f"{ms(reg, 'p99', 'rtt_ns'):.2f} ms during, {ms(reg, 'p99', 'baseline_rtt_ns'):.2f}"
             " ms before", reg["passed"]))
    targets += [
        ("No loss, duplicate, reordering or corruption in any run",
         "all clean" if all_clean(res) else "see table", all_clean(res)),
    ]
    return head + "\n" + "\n".join(rows), targets


def latency_target(name, res, kind, key, limit_ms):
    """A latency target: the median over the runs, against the median of the floor's runs."""
    runs, floors = latency_runs(res, kind), latency_runs(res, "floor_" + kind)
    got, floor = med_ms(runs, key), med_ms(floors, key)
    if len(runs) > 1:
        text = (f"{got:.2f} ms, median of {spread(runs, key)} ms (floor, no server: "
                f"{floor:.2f} ms, median of {spread(floors, key)} ms)")
    else:
        text = f"{got:.2f} ms (floor, no server: {floor:.2f} ms)"
    return (name, text, got < limit_ms, floor < limit_ms)


def plan_smoke(res):
    return res.get("smoke", False)


def eph_window(r):
    cmd = r.get("command", "")
    parts = cmd.split()
    return parts[parts.index("--window") + 1] if "--window" in parts else "?"


def all_runs(res):
    yield from res["saturation"]["ephemeral"]
    yield from res["saturation"]["history"]
    yield from latency_runs(res, "fixed")
    yield from latency_runs(res, "many")
    yield from res["slow_reader"]["runs"]["without"]
    yield from res["slow_reader"]["runs"]["with"]
    yield res["idle"]
    yield res["idle_ephemeral"]
    yield res["held"]
    yield res["limit"]
    for s in res["sweeps"]:
        yield from s["points"]
    tr = res.get("transports", {})
    if "runs" in tr:
        for by_key in tr["runs"].values():
            for runs in by_key.values():
                yield from runs
    else:  # results from before the rounds
        for key, group in tr.items():
            if key != "skipped":
                yield from group.values()
    ircd = res.get("inspircd", {})
    if "runs" in ircd:
        for runs in ircd["runs"].values():
            yield from runs
    for key in ("saturation", "fixed"):
        if key in ircd and "runs" not in ircd:
            yield ircd[key]
    yield from cluster_runs(res)


def all_clean(res):
    return all(r["lost"] == 0 and r["duplicates"] == 0 and r["reordered"] == 0
               and r["corrupt"] == 0 for r in all_runs(res))


def markdown(res, svg_name):
    m = res["machine"]
    tbl, targets = table(res)
    load_note = ""
    before, after = res["loadavg_before"], res["loadavg_after"]
    other = res.get("other_cpu_share")
    if other is not None and other > 0.05:
        load_note = (f"\n\n**The machine was not quiet:** other processes used {other:.0%} "
                     "of its CPU time during the run, so throughput and tail latency are lower "
                     "and noisier than on a quiet machine.")
    lines = [
        BEGIN,
        "",
        f"Measured **{res['date']}** on {m['cpu']}, {m['cpus']} cores "
        f"({m['virtualization']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"{m['rustc']}, commit {m['commit']}. "
        + (f"Server pinned to core {m['server_cpu']}, load tool to core {m['tool_cpu']}."
           if m["pinned"] else "Not pinned (fewer than two cores)."),
        f"Load average before / after: {fmt_load(before)} / {fmt_load(after)}; "
        f"CPU time of other processes during the run: "
        + (f"{other:.1%} of the machine" if other is not None else "unknown")
        + f"; whole run {res['elapsed_secs']:.0f} s." + load_note,
        "",
        f"Loopback ceiling (iperf3, 128 KiB writes, one core each side, measured before each "
        f"round of saturation runs): median **{fmt_rate(res['ceiling']['frames_per_sec'])}** "
        f"200-byte frames ({res['ceiling']['bytes_per_sec'] / 1e9:.2f} GB/s); all: "
        + ", ".join(fmt_rate(c["frames_per_sec"]) for c in res["saturation"]["ceilings"])
        + ".",
        "",
        tbl,
        "",
        "| Target | Result | Met |",
        "|---|---|---|",
    ]
    targets += transport_targets(res) + irc_windows_targets(res) + cluster_targets(res)
    lines += [f"| {t[0]} | {t[1]} | {yes(*t[2:])} |" for t in targets]
    lines += transports_table(res)
    lines += irc_windows_table(res)
    lines += cluster_table(res)
    lines += [
        "",
        f"![Latency percentiles against offered load](benchmarks/{svg_name})",
        "",
        "Latency against load (each point one run; the last point of the fan-out-99 line is "
        "the saturation run, senders limited only by their window):",
        "",
        "| Layout | Offered | Delivered | p50 | p90 | p99 | p99.9 | max | CPU per delivery |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in res["sweeps"]:
        for p in s["points"]:
            offered = "unlimited" if p["offered_per_sec"] is None else fmt_rate(
                p["offered_per_sec"])
            lines.append(
                f"| {s['name']} | {offered} | {fmt_rate(p['deliveries_per_sec'])} | "
                f"{ms(p, 'p50'):.2f} ms | {ms(p, 'p90'):.2f} ms | {ms(p, 'p99'):.2f} ms | "
                f"{ms(p, 'p999'):.2f} ms | {ms(p, 'max'):.1f} ms | {cpu_ns(p):.0f} ns |")
    lines += ["", END]
    return "\n".join(lines), targets


def transports_table(res):
    """Each transport beside the plain run of the same session, and InspIRCd beside IRC."""
    tr = res.get("transports")
    if tr is None:
        return []
    n = {key: len(runs) for key, runs in tr.get("runs", {}).get("plain", {}).items()}
    lines = [
        "",
        "Transports, each run beside a plain run of the same round (same options, a fresh "
        "server each, `--ephemeral --flood-rate 0`), and the same runs over IRC against "
        "InspIRCd in the same rounds (pinned to the server's core like ours; configured not "
        "to throttle, see *InspIRCd* below). "
        f"Saturation: {n.get('saturation', 1)} rounds, the median run shown (by "
        "deliveries/s), the share of plain being the median of the rounds' ratios; fixed load: "
        f"{n.get('fixed', 1)} round(s):",
        "",
        "| Scenario | Over | Deliveries/s | Of plain (rounds) | Server CPU per delivery | "
        "Latency p50 / p99 / max | Lost/dup/reordered/corrupt |",
        "|---|---|---|---|---|---|---|",
    ]

    def run_row(label, over, r, share="–"):
        lines.append(f"| {label} | {over} | {fmt_rate(r['deliveries_per_sec'])} | {share} | "
                     f"{cpu_ns(r):.0f} ns | {fmt_lat(r)} | {faults(r)}"
                     + ("" if clean(r) else " (FAIL)") + " |")

    def share(key, t):
        ratios = round_ratios(res, key, t, "plain")
        if not ratios:
            return "–"
        return (f"{statistics.median(ratios):.0%} ("
                + ", ".join(f"{x:.0%}" for x in ratios) + ")")

    names = {t["key"]: t["name"] for t in TRANSPORTS}
    ircd = res.get("inspircd", {})
    for key, plain in tr["plain"].items():
        run_row(plain["label"], "plain frames", plain)
        for t in ("tls", "ws", "irc"):
            if t in tr.get("skipped", {}):
                lines.append(f"| {plain['label']} | {names[t]} | **not run**: "
                             f"{tr['skipped'][t]} | – | – | – | – |")
            elif key in tr.get(t, {}):
                run_row(plain["label"], names[t], tr[t][key], share(key, t))
        if key in ircd:
            ratios = round_ratios(res, key, "irc", "inspircd")
            ours = ("our IRC port: " + ", ".join(f"{x:.2f}×" for x in ratios)) if ratios else "–"
            run_row(plain["label"], f"IRC, against InspIRCd {ircd.get('version', '')}",
                    ircd[key], ours)
        elif "skipped" in ircd:
            lines.append(f"| {plain['label']} | IRC, against InspIRCd | **not run**: "
                         f"{ircd['skipped']} | – | – | – | – |")
    return lines


def transport_targets(res):
    """Issue 11's and 12's targets."""
    tr = res.get("transports")
    if tr is None or "runs" not in tr:
        return []
    out = []
    runs = tr["runs"]

    def sat_share(t, minimum, name):
        ratios = round_ratios(res, "saturation", t, "plain")
        if not ratios:
            out.append((name, f"not run: {tr.get('skipped', {}).get(t, '?')}", False))
            return
        med = statistics.median(ratios)
        out.append((name, f"{med:.0%} (rounds: " + ", ".join(f"{x:.0%}" for x in ratios)
                    + f"; median runs {fmt_rate(tr[t]['saturation']['deliveries_per_sec'])} vs "
                    f"{fmt_rate(tr['plain']['saturation']['deliveries_per_sec'])})",
                    med >= minimum))

    sat_share("tls", TARGET_TLS_SHARE, "TLS at saturation ≥ 60% of plain deliveries/s (issue 11)")
    sat_share("ws", TARGET_WS_SHARE,
              "WebSocket at saturation ≥ 70% of plain deliveries/s (issue 11)")
    moved = [r for t in ("tls", "ws", "irc") for rs in runs.get(t, {}).values() for r in rs]
    out.append(("TLS, WebSocket and IRC runs: no loss, duplicate, reordering or corruption",
                f"{sum(clean(r) for r in moved)} of {len(moved)} runs clean",
                bool(moved) and all(clean(r) for r in moved)))
    ircd = res.get("inspircd", {})
    ours = runs.get("irc", {}).get("saturation", [])
    theirs = ircd.get("runs", {}).get("saturation", [])
    if ours and theirs:
        ratios = round_ratios(res, "saturation", "irc", "inspircd")
        med = statistics.median(ratios)
        out.append(("IRC at saturation ≥ 2× InspIRCd's deliveries/s, same load, same rounds "
                    "(issue 12)",
                    f"{med:.2f}× (rounds: " + ", ".join(f"{x:.2f}×" for x in ratios)
                    + f"; {fmt_rate(tr['irc']['saturation']['deliveries_per_sec'])} vs "
                    f"{fmt_rate(ircd['saturation']['deliveries_per_sec'])})",
                    med >= TARGET_IRC_VS_INSPIRCD))
        cpu = [cpu_ns(a) / max(cpu_ns(b), 1e-9) for a, b in zip(ours, theirs)]
        med = statistics.median(cpu)
        out.append(("IRC at saturation ≤ ½ InspIRCd's CPU per delivery (issue 12)",
                    f"{med:.2f} of it (rounds: " + ", ".join(f"{x:.2f}" for x in cpu)
                    + f"; {cpu_ns(tr['irc']['saturation']):.0f} vs "
                    f"{cpu_ns(ircd['saturation']):.0f} ns)",
                    med <= TARGET_IRC_CPU_SHARE))
    else:
        out.append(("IRC against InspIRCd (issue 12)",
                    f"not run: {ircd.get('skipped') or tr.get('skipped', {}).get('irc', '?')}",
                    False))
    return out


def cluster_table(res):
    cl = res.get("cluster")
    if cl is None:
        return []
    if "skipped" in cl:
        return ["", f"Cluster (issue 13): **not run**: {cl['skipped']}."]
    lines = [
        "",
        "Cluster (issue 13): nodes started with `--cluster redis://… --db postgres://… "
        "--flood-rate 0`, each run on a fresh redis-server and a fresh database of one "
        "PostgreSQL, all started by the script on 127.0.0.1 (see *Cluster* below). "
        "CPU per delivery is split by process: the servers (one, or the nodes), redis-server, "
        "and PostgreSQL (the postmaster and every backend).",
        "",
        "| Scenario | Where | Deliveries/s | CPU per delivery: servers + Redis (+ PostgreSQL) | "
        "Latency p50 / p99 / max | Across nodes p50 / p99 / max | Lost/dup/reordered/corrupt |",
        "|---|---|---|---|---|---|---|",
    ]

    def cross(r):
        c = r.get("cross_server_latency_ns")
        return fmt_lat(r, "cross_server_latency_ns") if c and c.get("samples") else "–"

    def cpu(r):
        g = r.get("cpu_ns_by_group")
        if not g:
            return f"{cpu_ns(r):.0f} ns"
        servers = g.get("nodes", g.get("server", 0.0))
        return (f"{servers + g.get('redis', 0.0):.0f} ns = {servers:.0f} + "
                f"{g.get('redis', 0.0):.0f} (+ {g.get('postgres', 0.0):.0f})"
                if "redis" in g else f"{servers:.0f} ns")

    def row(label, where, r, with_cpu=True):
        lines.append(f"| {label} | {where} | {fmt_rate(r['deliveries_per_sec'])} | "
                     f"{cpu(r) if with_cpu else '–'} | {fmt_lat(r)} | {cross(r)} | {faults(r)}"
                     + ("" if clean(r) else " (FAIL)") + " |")

    sat = cl.get("saturation", [])
    if sat:
        m = median_round(sat, "nodes2")
        label = (f"Saturation: 100 clients, 10 senders, window 64, {plan_sat_messages(sat):,} "
                 f"messages each (the median of {len(sat)} round(s) by servers + Redis CPU)")
        row(label, "one server, `--ephemeral`", m["single"])
        if "single_history" in m:
            row(label, "one server, history in SQLite (`--data-dir`)", m["single_history"])
        row(label, "one node", m["nodes1"])
        row(label, "two nodes, clients round-robin", m["nodes2"])
    fixed = cl.get("fixed", [])
    if fixed:
        m = sorted(fixed, key=lambda rd: cross_p99(rd["split"]))[len(fixed) // 2]
        label = ("Fixed load: 500 clients, 50 senders × 2 msg/s (the median of "
                 f"{len(fixed)} round(s) by p99 across nodes)")
        row(label, "one server, `--ephemeral`", m["single"], with_cpu=False)
        row(label, "senders on one node, readers on another", m["split"], with_cpu=False)
    big = cl.get("big")
    if big and "shards" not in big:
        lines.append(f"| 57,000 clients on 3 nodes | – | **not run**: "
                     f"{big.get('skipped') or big.get('failed')} | – | – | – | – |")
    elif big:
        r0 = big["shards"][0]
        lat = max((r for r in big["shards"]), key=lambda r: r["latency_ns"]["p99"])
        lines.append(
            f"| {big['clients']:,} clients on 3 nodes (a third each, one load process each), "
            f"{big['channels']} channels spanning the nodes, each channel's sender "
            f"broadcasting {big['messages']} message(s) | three nodes, `--max-clients 20000` | "
            f"{big['deliveries_received']:,} of {big['deliveries_expected']:,} deliveries "
            f"(setup {big['setup_secs']:.0f} s) | {cpu(r0)} (the broadcast) | {fmt_lat(lat)} "
            "(slowest "
            f"process) | {cross(lat)} | "
            + "; ".join(faults(r) for r in big["shards"])
            + ("" if big["passed"] else " (FAIL)") + " |")
    return lines


def plan_sat_messages(rounds):
    return rounds[0]["single"]["messages_per_sender"]


def median_round(rounds, key):
    """The round whose `key` run has the median servers+Redis CPU per delivery."""
    return sorted(rounds, key=lambda rd: cluster_cpu(rd[key]))[len(rounds) // 2]


def cluster_cpu(r):
    """Servers plus Redis CPU per delivery, in ns."""
    g = r.get("cpu_ns_by_group") or {}
    return g.get("nodes", g.get("server", cpu_ns(r))) + g.get("redis", 0.0)


def cross_p99(r):
    c = r.get("cross_server_latency_ns") or {}
    return c.get("p99", float("inf"))


def cluster_targets(res):
    cl = res.get("cluster")
    if cl is None:
        return []
    if "skipped" in cl:
        return [("Cluster (issue 13)", f"not run: {cl['skipped']}", False)]
    out = []
    big = cl.get("big")
    if big and "shards" not in big:
        out.append(("57,000 clients on three nodes (issue 13)",
                    f"not run: {big.get('skipped') or big.get('failed')}", False))
    elif big:
        out.append((f"{big['clients']:,} clients on three nodes, named and joined, a broadcast "
                    f"in each of {big['channels']} channels reaching every member on every "
                    "node, nothing lost",
                    f"{big['deliveries_received']:,} of {big['deliveries_expected']:,} "
                    f"deliveries, setup {big['setup_secs']:.0f} s; "
                    + ", ".join(f"{r['local_clients']:,} clients in process {i}"
                                for i, r in enumerate(big["shards"])),
                    big["passed"] and (big["clients"] >= TARGET_BIG_CLIENTS or plan_smoke(res))))
    sat = cl.get("saturation", [])
    if sat:
        # Against the single server that keeps history too (the nodes do); the ephemeral one
        # is shown beside it.
        ref = "single_history" if all("single_history" in rd for rd in sat) else "single"
        ratios = [cluster_cpu(rd["nodes2"]) / max(cluster_cpu(rd[ref]), 1e-9) for rd in sat]
        eph = [cluster_cpu(rd["nodes2"]) / max(cluster_cpu(rd["single"]), 1e-9) for rd in sat]
        m = median_round(sat, "nodes2")
        g = m["nodes2"]["cpu_ns_by_group"]
        out.append(("Saturation over two nodes: CPU of the nodes and Redis per delivery ≤ 1.5× "
                    "one server's (history kept by both), same rounds (issue 13)",
                    f"{statistics.median(ratios):.2f}× (rounds: "
                    + ", ".join(f"{x:.2f}×" for x in ratios)
                    + f"; median round {cluster_cpu(m['nodes2']):.0f} ns = nodes "
                    f"{g['nodes']:.0f} + Redis {g['redis']:.0f}, vs {cluster_cpu(m[ref]):.0f}"
                    f" ns; against `--ephemeral` ({cluster_cpu(m['single']):.0f} ns) "
                    f"{statistics.median(eph):.2f}×; PostgreSQL adds {g['postgres']:.0f} ns)",
                    statistics.median(ratios) <= TARGET_CLUSTER_CPU_RATIO
                    and all(clean(rd["nodes2"]) for rd in sat)))
    fixed = cl.get("fixed", [])
    if fixed:
        diffs = [cross_p99(rd["split"]) / 1e6 - ms(rd["single"], "p99") for rd in fixed]
        med = statistics.median(diffs)
        out.append(("Fixed load, senders on one node and readers on another: p99 within 2 ms "
                    "of one server's, same rounds (issue 13)",
                    f"{med:+.2f} ms (rounds: " + ", ".join(
                        f"{cross_p99(rd['split']) / 1e6:.2f} vs {ms(rd['single'], 'p99'):.2f}"
                        for rd in fixed) + " ms)",
                    med <= TARGET_CLUSTER_P99_MS and all(clean(rd["split"]) for rd in fixed)))
    return out


def fmt_load(l):
    return " ".join(f"{x:.2f}" for x in l) if l else "?"


def svg(res):
    """Latency (p50, p99, max) against delivered load, log-log, one colour per layout. The
    rate-limited runs are joined by lines; the saturation run (senders limited by their window
    only) is a separate diamond."""
    import math

    w, h = 980, 540
    left, right, top, bottom = 80, 300, 44, 62
    pw, ph = w - left - right, h - top - bottom
    pts_all = [p for s in res["sweeps"] for p in s["points"]]
    xs = [p["deliveries_per_sec"] for p in pts_all]
    ys = [p["latency_ns"][k] / 1e6 for p in pts_all for k in ("p50", "p99", "max")]
    x0 = 10 ** math.floor(math.log10(max(min(xs), 1)))
    x1 = 10 ** math.ceil(math.log10(max(max(xs), res["ceiling"]["frames_per_sec"], 10)))
    y0 = 10 ** math.floor(math.log10(max(min(ys), 1e-3)))
    y1 = 10 ** math.ceil(math.log10(max(max(ys), 1e-2)))

    def px(x):
        return left + (math.log10(x) - math.log10(x0)) / (math.log10(x1) - math.log10(x0)) * pw

    def py(y):
        y = max(y, y0)
        return top + ph - (math.log10(y) - math.log10(y0)) / (
            math.log10(y1) - math.log10(y0)) * ph

    def esc(t):
        return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="24" font-size="15" font-weight="bold">End-to-end latency '
           f'against load: server on one core, load tool on the other '
           f'({esc(res["date"])})</text>']
    d = x0
    while d <= x1 * 1.0001:
        x = px(d)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" '
                   f'stroke="#ddd"/>')
        label = f"{d / 1e6:g}M" if d >= 1e6 else f"{d / 1e3:g}k"
        out.append(f'<text x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle">{label}</text>')
        d *= 10
    d = y0
    while d <= y1 * 1.0001:
        y = py(d)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                   f'stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{d:g} ms</text>')
        d *= 10
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               f'stroke="#444"/>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 18}" text-anchor="middle">deliveries per '
               f'second (200-byte frames to channel members), log scale</text>')
    out.append(f'<text x="18" y="{top + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 18 {top + ph / 2})">send to receive, log scale</text>')
    cx = px(res["ceiling"]["frames_per_sec"])
    out.append(f'<line x1="{cx:.1f}" y1="{top}" x2="{cx:.1f}" y2="{top + ph}" stroke="#999" '
               f'stroke-dasharray="2,3"/>')
    out.append(f'<text x="{cx - 4:.1f}" y="{top + 14}" text-anchor="end" fill="#666">'
               f'loopback ceiling (iperf3)</text>')
    colours = ["#1f77b4", "#d62728", "#2ca02c"]
    styles = [("p50", "", 2.2), ("p99", "6,3", 1.8), ("max", "1,3", 1.5)]
    lx = left + pw + 18
    ly = top + 8
    for i, s in enumerate(res["sweeps"]):
        c = colours[i % len(colours)]
        limited = sorted((p for p in s["points"] if p["offered_per_sec"] is not None),
                         key=lambda p: p["deliveries_per_sec"])
        free = [p for p in s["points"] if p["offered_per_sec"] is None]
        for key, dash, width in styles:
            path = " ".join(
                f"{'M' if j == 0 else 'L'}{px(p['deliveries_per_sec']):.1f},"
                f"{py(p['latency_ns'][key] / 1e6):.1f}" for j, p in enumerate(limited))
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="{width}"'
                       f'{dash_attr}/>')
            for p in limited:
                out.append(f'<circle cx="{px(p["deliveries_per_sec"]):.1f}" '
                           f'cy="{py(p["latency_ns"][key] / 1e6):.1f}" r="2.5" fill="{c}"/>')
            for p in free:
                x, y = px(p["deliveries_per_sec"]), py(p["latency_ns"][key] / 1e6)
                out.append(f'<path d="M{x:.1f},{y - 6:.1f} L{x + 6:.1f},{y:.1f} '
                           f'L{x:.1f},{y + 6:.1f} L{x - 6:.1f},{y:.1f} Z" fill="white" '
                           f'stroke="{c}" stroke-width="1.8"/>')
                out.append(f'<text x="{x + 9:.1f}" y="{y + 4:.1f}" fill="{c}" '
                           f'font-size="10">{key}</text>')
        head, _, tail = s["name"].partition(" (")
        out.append(f'<text x="{lx}" y="{ly}" fill="{c}" font-weight="bold">{esc(head)}</text>')
        ly += 15
        if tail:
            out.append(f'<text x="{lx}" y="{ly}" fill="{c}">({esc(tail)}</text>')
            ly += 17
        for key, dash, width in styles:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 30}" y2="{ly - 4}" '
                       f'stroke="{c}" stroke-width="{width}"{dash_attr}/>')
            out.append(f'<text x="{lx + 37}" y="{ly}">{key}, senders at a fixed rate</text>')
            ly += 16
        if free:
            out.append(f'<path d="M{lx + 15},{ly - 10} L{lx + 21},{ly - 4} L{lx + 15},{ly + 2} '
                       f'L{lx + 9},{ly - 4} Z" fill="white" stroke="{c}" stroke-width="1.8"/>')
            out.append(f'<text x="{lx + 37}" y="{ly}">saturation (window-limited)</text>')
            ly += 16
        ly += 12
    notes = ["--ephemeral, --flood-rate 0;", "each point is one run of", "split_client stress."]
    for n in notes:
        out.append(f'<text x="{lx}" y="{ly}" fill="#444">{esc(n)}</text>')
        ly += 16
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_doc(doc_path, block):
    text = doc_path.read_text() if doc_path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc_path.write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true",
                    help="tiny runs; output under target/bench-smoke unless --out")
    ap.add_argument("--server-bin", type=Path,
                    help="the server binary to measure (default: target/release/server)")
    ap.add_argument("--out", type=Path,
                    help="write the outputs under this directory instead of docs/")
    ap.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                    help="run nothing: rewrite docs/BENCHMARKS.md and the picture from the "
                         "results of an earlier run (after a change to this script's wording)")
    args = ap.parse_args()
    if args.render:
        res = json.loads(args.render.read_text())
        fig_dir = ROOT / "docs" / "benchmarks"
        (fig_dir / "latency.svg").write_text(svg(res))
        block, _ = markdown(res, "latency.svg")
        write_doc(ROOT / "docs" / "BENCHMARKS.md", block)
        log(f"rendered {args.render} into docs/BENCHMARKS.md")
        return
    plan = Plan(args.smoke)
    plan.deadline = time.monotonic() + BUDGET_SECS
    global SERVER_BIN
    if args.server_bin:
        SERVER_BIN = args.server_bin.resolve()
    for path in (SERVER_BIN, BIN / "split_client"):
        if not path.exists():
            sys.exit(f"bench: {path} is missing; run bench/run.sh (it builds first)")
    if args.smoke or args.out:
        out_dir = args.out or ROOT / "target" / "bench-smoke"
        doc_path = out_dir / "BENCHMARKS.md"
        out_dir.mkdir(parents=True, exist_ok=True)
        src = ROOT / "docs" / "BENCHMARKS.md"
        if src.exists():
            shutil.copyfile(src, doc_path)
        fig_dir = out_dir / "benchmarks"
    else:
        doc_path = ROOT / "docs" / "BENCHMARKS.md"
        fig_dir = ROOT / "docs" / "benchmarks"
    fig_dir.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    res = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "smoke": args.smoke,
        "server_bin": str(SERVER_BIN),
        "loadavg_before": loadavg(),
    }
    busy0, own0 = busy_secs(), own_secs()
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp:
        workdir = Path(tmp)
        res["saturation"] = run_saturation(plan, workdir)
        ceilings = sorted(res["saturation"]["ceilings"], key=lambda c: c["frames_per_sec"])
        res["ceiling"] = ceilings[len(ceilings) // 2]
        res["latency_runs"] = run_latency(plan, workdir)
        for kind in LATENCY_KINDS:
            res[kind] = median_p99(res["latency_runs"][kind])
        res["slow_reader"] = run_slow_reader(plan, workdir)
        res["idle"] = run_idle(plan, workdir, plan.idle_clients, "history", 10_000)
        res["idle_ephemeral"] = run_idle(plan, workdir, plan.idle_clients, "ephemeral",
                                         10_000)
        res["held"] = run_idle(plan, workdir, plan.held_clients, "history", 20_000)
        res["limit"] = run_limit(plan, workdir)
        res["sweeps"] = run_sweeps(plan, workdir, res["saturation"])
        res["regflood"] = run_regflood(plan, workdir)
        res["transports"], res["inspircd"] = run_transports(plan, workdir)
        res["irc_windows"] = run_irc_windows(plan, workdir)
        res["cluster"] = run_cluster(plan, workdir)
    res["loadavg_after"] = loadavg()
    res["elapsed_secs"] = time.monotonic() - started
    other = (busy_secs() - busy0) - (own_secs() - own0)
    capacity = res["elapsed_secs"] * (os.cpu_count() or 1)
    res["other_cpu_share"] = max(0.0, other) / capacity if capacity > 0 else None
    if res["other_cpu_share"] and res["other_cpu_share"] > 0.05:
        log(f"other processes used {res['other_cpu_share']:.0%} of the CPU during the run: "
            "expect noisy numbers")

    svg_name = "latency.svg"
    (fig_dir / svg_name).write_text(svg(res))
    block, targets = markdown(res, svg_name)
    write_doc(doc_path, block)
    (fig_dir / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    log(f"done in {res['elapsed_secs']:.0f} s: {doc_path}")
    for t, v, ok, *floor_ok in targets:
        log(f"  {'ok  ' if ok else 'MISS'} {t}: {v}"
            + (" (nor does the floor)" if floor_ok == [False] and not ok else ""))


if __name__ == "__main__":
    main()
