#!/usr/bin/env python3
"""Prints a Markdown table comparing two benchmark results (results.json files written by
bench/run.sh), for example the server before and after a change:

    bench/run.sh --server-bin /path/to/old/server --out /tmp/before
    bench/run.sh
    bench/compare.py /tmp/before/benchmarks/results.json docs/benchmarks/results.json \
        "before (old)" "after (new)"

The two labels are optional.
"""

import json
import statistics
import sys


def median_run(runs):
    ordered = sorted(runs, key=lambda r: r["deliveries_per_sec"])
    return ordered[len(ordered) // 2]


def ms(r, key):
    return r["latency_ns"][key] / 1e6


def rate(x):
    return f"{x / 1e6:.2f} M/s" if x >= 1e6 else f"{x / 1e3:.0f} k/s"


def rows(res):
    eph = median_run(res["saturation"]["ephemeral"])
    hist = median_run(res["saturation"]["history"])
    ceil_ratio = statistics.median(
        r["deliveries_per_sec"] / r.get("ceiling_frames_per_sec", res["ceiling"]["frames_per_sec"])
        for r in res["saturation"]["ephemeral"])
    fixed, many = res["fixed"], res["many"]
    return [
        ("Saturation: deliveries/s", rate(eph["deliveries_per_sec"])),
        ("Saturation: server CPU per delivery", f"{eph['server']['cpu_ns_per_delivery']:.0f} ns"),
        ("Saturation: of the loopback ceiling", f"{ceil_ratio:.0%}"),
        ("Saturation, history on: deliveries/s", rate(hist["deliveries_per_sec"])),
        ("History on / `--ephemeral`",
         f"{hist['deliveries_per_sec'] / eph['deliveries_per_sec']:.0%}"),
        ("Fixed load: p50 / p99", f"{ms(fixed, 'p50'):.2f} / {ms(fixed, 'p99'):.2f} ms"),
        ("Fixed load: server CPU per delivery",
         f"{fixed['server']['cpu_ns_per_delivery'] / 1e3:.1f} µs"),
        ("Many channels: p50 / p99", f"{ms(many, 'p50'):.2f} / {ms(many, 'p99'):.2f} ms"),
        ("Many channels: server CPU per delivery",
         f"{many['server']['cpu_ns_per_delivery'] / 1e3:.1f} µs"),
        ("Idle, 10,000 clients (`--data-dir`): RSS per client",
         f"{res['idle']['server']['rss_bytes_per_connection']:.0f} B"),
        ("Idle, 10,000 clients (`--ephemeral`): RSS per client",
         f"{res['idle_ephemeral']['server']['rss_bytes_per_connection']:.0f} B"),
        ("19,000 clients (`--data-dir`): RSS per client",
         f"{res['held']['server']['rss_bytes_per_connection']:.0f} B"),
    ]


def main():
    if len(sys.argv) not in (3, 5):
        sys.exit(__doc__)
    before, after = (json.load(open(p)) for p in sys.argv[1:3])
    labels = sys.argv[3:5] or ["Before", "After"]
    print(f"| | {labels[0]} ({before['date']}) | {labels[1]} ({after['date']}) |")
    print("|---|---|---|")
    for (name, b), (_, a) in zip(rows(before), rows(after)):
        print(f"| {name} | {b} | {a} |")


if __name__ == "__main__":
    main()
