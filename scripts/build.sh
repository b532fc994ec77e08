#!/usr/bin/env bash
# build.sh [TARGET ...]: installs what is missing, then configures and builds sevo in
# build/ (Release): everything, or only the given targets (`scripts/build.sh sevo`: the
# binary without the tests, as the main job and the scripts that run it need).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build build -j"$(nproc)" "${targets[@]}"
