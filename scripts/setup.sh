#!/usr/bin/env bash
# Installs what the test suites and the benchmark need, and nothing when it is all there already
# (then it takes about a second). Run it as often as you like; scripts/test.sh runs it first.
#
#   1. the sonnets text, data/sonnets.txt (scripts/fetch_sonnets.sh);
#   2. Debian packages, with apt-get, as root: the browser and its driver (web client tests),
#      Redis and PostgreSQL (cluster tests), irssi, tmux, weechat-headless and InspIRCd (IRC
#      tests), iperf3 (the benchmark's loopback ceiling), and python3's venv and pip when
#      python3 lacks them;
#   3. a project-local Python venv, target/tools/venv, with the PyPI package irc;
#   4. the npm packages of test_harness/browser (npm ci), when that folder exists.
#
# Usage: scripts/setup.sh
# Needs: Debian (apt-get, dpkg-query) and root for step 2 when a package is missing; python3;
# network access to PyPI, npm and the Debian mirrors for whatever is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root="$(pwd)"

readonly APT_PACKAGES=(chromium chromium-driver redis-server postgresql irssi tmux weechat-headless
    inspircd iperf3)
readonly PIP_PACKAGES=("irc==20.5.0")
readonly VENV="target/tools/venv"
readonly BROWSER_DIR="test_harness/browser"

say() {
    echo "setup: $*"
}

die() {
    echo "setup: error: $*" >&2
    exit 1
}

trap 'status=$?; echo "setup: error: \"$BASH_COMMAND\" failed (exit $status) at line $LINENO" >&2' ERR

start=$SECONDS

# ---- 1. the sonnets -------------------------------------------------------------------------
scripts/fetch_sonnets.sh || die "could not fetch the sonnets (see above)"

# ---- 2. Debian packages ---------------------------------------------------------------------
installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii"* ]]
}

wanted=("${APT_PACKAGES[@]}")
command -v python3 >/dev/null || wanted+=(python3)
if command -v python3 >/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || wanted+=(python3-pip)
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || wanted+=(python3-venv)
fi
if [[ -f "$BROWSER_DIR/package.json" ]] && ! command -v npm >/dev/null; then
    wanted+=(npm)
fi

command -v dpkg-query >/dev/null ||
    die "this is not a Debian system (no dpkg-query); install by hand: ${wanted[*]}"
missing=()
for package in "${wanted[@]}"; do
    installed "$package" || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
    say "Debian packages in place: ${wanted[*]}"
else
    if ((EUID != 0)); then
        die "these Debian packages are missing: ${missing[*]}. Run scripts/setup.sh as root," \
            "or install them yourself: sudo apt-get install ${missing[*]}"
    fi
    command -v apt-get >/dev/null || die "no apt-get to install ${missing[*]}"
    say "installing Debian packages: ${missing[*]} (apt-get update, then apt-get install)"
    export DEBIAN_FRONTEND=noninteractive
    mkdir -p target/tools
    apt_log="target/tools/apt.log"
    if ! { apt-get update -q && apt-get install -y -q "${missing[@]}"; } >"$apt_log" 2>&1; then
        tail -n 30 "$apt_log" >&2
        die "apt-get could not install ${missing[*]} (the whole log: $apt_log)"
    fi
    for package in "${missing[@]}"; do
        installed "$package" || die "$package is still not installed after apt-get install"
    done
    say "installed: ${missing[*]}"
fi

# ---- 3. the Python venv ---------------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating the Python venv $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
fi
pip_missing=()
for requirement in "${PIP_PACKAGES[@]}"; do
    name="${requirement%%==*}"
    version="${requirement#*==}"
    have="$("$VENV/bin/python" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)"
    [[ "$have" == "$version" ]] || pip_missing+=("$requirement")
done
if ((${#pip_missing[@]} == 0)); then
    say "Python packages in place in $VENV: ${PIP_PACKAGES[*]}"
else
    say "installing into $VENV: ${pip_missing[*]}"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${pip_missing[@]}" ||
        die "pip install ${pip_missing[*]} failed"
fi

# ---- 4. the browser suite's npm packages ----------------------------------------------------
if [[ -f "$BROWSER_DIR/package.json" ]]; then
    [[ -f "$BROWSER_DIR/package-lock.json" ]] ||
        die "$BROWSER_DIR has no package-lock.json, which npm ci needs"
    command -v npm >/dev/null || die "npm is missing (install Debian's npm, or Node.js with npm)"
    # npm ci starts from an empty node_modules every time; the stamp (the lock file's hash)
    # says that the one there was made from this very lock file.
    stamp="$BROWSER_DIR/node_modules/.setup-stamp"
    lock_hash="$(sha256sum "$BROWSER_DIR/package-lock.json" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_hash" ]]; then
        say "npm packages in place in $BROWSER_DIR/node_modules"
    else
        say "installing the npm packages of $BROWSER_DIR (npm ci)"
        (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error) ||
            die "npm ci in $BROWSER_DIR failed"
        echo "$lock_hash" >"$stamp"
    fi
else
    say "no $BROWSER_DIR/package.json: no npm packages to install"
fi

say "all set in $((SECONDS - start))s ($repo_root)"
