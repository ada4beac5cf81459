#!/usr/bin/env bash
# Runs every test: the set-up (scripts/setup.sh: the sonnets, the Debian packages, the Python
# venv and the npm packages the suites drive), then `cargo test`, with any arguments passed on
# (scripts/test.sh --test ics).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
echo "test: cargo test $*"
exec cargo test "$@"
