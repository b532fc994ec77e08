#!/usr/bin/env bash
# test.sh: the README's test command. Builds, then runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
# One test at a time: every test already runs OpenMP and OpenBLAS on all cores, and two
# side by side spin against each other (measured on 2 cores: 593 s with -j2, 177 s serially).
ctest --test-dir build --output-on-failure "$@"
