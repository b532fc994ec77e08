#!/usr/bin/env bash
# install-deps.sh [fuzz]: installs the Debian packages sevo needs to build and test;
# with "fuzz", also what scripts/fuzz.sh needs: clang, libFuzzer and the sanitizer
# runtimes (libclang-rt-dev; clang only recommends it), clang's OpenMP runtime
# (libomp-dev) and llvm-symbolizer for readable reports (llvm).
# Idempotent: when everything is present it only runs dpkg-query and exits.
set -euo pipefail
# chromium: the report test opens report.html headless; valgrind: scripts/test-valgrind.sh
pkgs=(build-essential cmake pkg-config libopenblas-openmp-dev libcjson-dev libstb-dev libcmocka-dev zlib1g-dev
  chromium valgrind)
[ "${1:-}" = fuzz ] && pkgs+=(clang libclang-rt-dev libomp-dev llvm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
