#!/usr/bin/env bash
# Sets up, builds every binary and runs the server:
#   scripts/run.sh [PORT] [SERVER FLAGS...]      (PORT defaults to 55555)
# fetches the sonnets into data/sonnets.txt if they are not there, runs
# `cargo build --release --bins` (server, client, split_client and their chat-* names in
# target/release/), then replaces itself with `target/release/server PORT FLAGS...`, run from the
# repository's root: relative paths (data/sonnets.txt, the history in chat-data/, and any
# --sonnets or --data-dir you give) are relative to it. Only the server writes to stdout, so
# its first line is still `Listening on ADDR:PORT`.
# Needs: the Rust toolchain (cargo), python3 with pip (the sonnets download, once).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

port=55555
if (($# > 0)) && [[ "$1" != -* ]]; then
    port="$1"
    shift
fi

scripts/fetch_sonnets.sh >&2
echo "run: cargo build --release --bins" >&2
cargo build --release --bins >&2
target_dir="${CARGO_TARGET_DIR:-target}"
echo "run: $target_dir/release/server $port $*" >&2
exec "$target_dir/release/server" "$port" "$@"
