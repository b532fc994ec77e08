#!/usr/bin/env bash
# make-fixtures.sh: regenerates tests/parity/fixtures/, the PyTorch reference that
# tests/parity/test_parity.c compares sevo with (docs/parity.md).
#
#   scripts/make-fixtures.sh
#
# 1. a Python virtual environment OUTSIDE the repository (scripts/ref-venv.sh: default
#    ../venv-ref beside the checkout, override with SEVO_REF_VENV), created if missing,
#    with the pinned packages of tools/reference/requirements.txt;
# 2. builds the parity test binary (build dir: build-fixtures, or BUILD_DIR) and lets it
#    write the two checkpoints (sevo's initialisation, config.json, tokenizer.json, the
#    HSR-EE gate);
# 3. runs tools/reference/make_fixtures.py on them, which adds reference_{a,b}.safetensors
#    and tokenizer_cases.json;
# 4. replaces tests/parity/fixtures/ with the result and prints its SHA-256 sums.
#
# The output is deterministic: running this twice gives the same bytes (compare the sums).
# Nothing here is needed to build or test sevo, and CI never runs it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-fixtures}
out=$root/tests/parity/fixtures

python=$("$root/scripts/ref-venv.sh")

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
nice -n 10 cmake --build "$build" --target parity_test_parity -j"$(nproc)" >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/parity_test_parity" --write-checkpoints "$tmp"
# one thread: the float64 reference then sums in one fixed order
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0 \
    nice -n 10 "$python" "$root/tools/reference/make_fixtures.py" "$tmp"

rm -rf "$out"
mkdir -p "$out"
cp -r "$tmp"/. "$out"/
find "$out" -type f -exec chmod 644 {} +
echo "make-fixtures: wrote $out ($(du -sk "$out" | cut -f1) KiB)"
(cd "$out" && find . -type f | LC_ALL=C sort | xargs sha256sum)
