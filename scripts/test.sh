#!/usr/bin/env bash
# test.sh: the README's test command. Builds, then runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
