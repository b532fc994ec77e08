#!/usr/bin/env bash
# test-sanitizers.sh: builds the library, the CLI and every test a second time with
# AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer in build-sanitize/, and
# runs the whole test suite there. Any sanitizer report fails its test. CI runs this
# after scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build-sanitize -DSEVO_SANITIZE=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-sanitize -j"$(nproc)"
# abort_on_error gives a non-zero exit on the first report; the test timeout allows for
# the sanitizers' slowdown (the pipeline test takes about 4 minutes under them).
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# One test at a time: each test already runs OpenMP on every core, and two at once
# oversubscribe them (the long tests ran 2-3x slower side by side).
ctest --test-dir build-sanitize --output-on-failure --timeout 1500 "$@"
