#!/usr/bin/env bash
# The benchmark: builds the server and the load tool in release mode, measures the loopback
# ceiling with iperf3, runs every scenario of docs/BENCHMARKS.md with `split_client stress`
# (server pinned to core 0, load tool to core 1), the registration flood with
# `split_client regflood`, each transport the server has (TLS, WebSocket, IRC) beside a plain
# run, and the same runs over IRC against InspIRCd; and writes the results table into
# docs/BENCHMARKS.md, the raw numbers into docs/benchmarks/results.json and the latency picture
# into docs/benchmarks/latency.svg.
#
#   bench/run.sh            the whole benchmark (about 7 minutes, at most 15)
#   bench/run.sh --smoke    every scenario, tiny (seconds); writes under target/bench-smoke
#   bench/run.sh --server-bin PATH --out DIR   measure another server build (before/after)
#
# All traffic stays on 127.0.0.1; every run is bounded in messages and in time. Installs what
# it needs (iperf3, python3, taskset, inspircd) from the distribution's packages when missing;
# run it as root or with sudo available for that. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v iperf3 >/dev/null 2>&1 || need_pkgs+=(iperf3)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
command -v taskset >/dev/null 2>&1 || need_pkgs+=(util-linux)
command -v inspircd >/dev/null 2>&1 || [ -x /usr/sbin/inspircd ] || need_pkgs+=(inspircd)
if ((${#need_pkgs[@]})); then
    echo "bench: installing ${need_pkgs[*]}" >&2
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

echo "bench: building (release)" >&2
cargo build --release --quiet --bin server --bin split_client --example bench-certs

# The 57,000-client cluster run needs 19,000 connections per process: the soft open-file limit
# is raised to the hard one here (bench.py checks that the hard one is enough).
ulimit -Sn "$(ulimit -Hn)"

exec timeout --signal=INT --kill-after=30 900 python3 bench/bench.py "$@"
