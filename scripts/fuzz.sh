#!/usr/bin/env bash
# Runs the fuzz tests for SECONDS in all (default 60), in the release profile, at a low
# priority, one test at a time: 70 % of the time for the hub's (src/hub/fuzz.rs), the rest
# shared by those of the frame codec, the command parser and the connection's frame reader.
# Each test prints how many iterations and steps it ran and its first seed; a failure prints
# the seed that replays it: FUZZ_SEED=S scripts/fuzz.sh replays that one case (with a trace)
# in every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-60}
if ! [[ $secs =~ ^[0-9]+([.][0-9]+)?$ ]] || [[ $secs =~ ^0+([.]0*)?$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS]  (a positive number; default 60)" >&2
    exit 2
fi
# The seven tests besides the hub's share 30 % of the time.
hub=$(awk -v s="$secs" 'BEGIN { print s * 0.7 }')
small=$(awk -v s="$secs" 'BEGIN { print s * 0.3 / 7 }')
run() {
    nice -n 10 cargo test --release --lib "$@"
}
echo "fuzz: building (release)"
run --no-run -q
echo "fuzz: the hub for ${hub} s"
FUZZ_SECS=$hub run -q hub::fuzz::hub_fuzz -- --exact --nocapture
echo "fuzz: the frame codec, the command parser and the frame reader, ${small} s each"
FUZZ_SECS=$small run -q _fuzz -- --skip hub::fuzz::hub_fuzz --test-threads=1 --nocapture
