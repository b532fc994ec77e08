#!/usr/bin/env bash
# fuzz.sh [SECONDS [TARGET...]]: builds the libFuzzer targets of fuzz/ (one per parser of
# outside input, see docs/fuzzing.md) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer in build-fuzz/, then runs each target (or those named, e.g.
# fuzz_image) for SECONDS (default 30), one after the other.
#
# Each run starts from a scratch copy of the committed seeds (fuzz/corpus/<target>/ ->
# build-fuzz/runs/<target>/corpus/), so the committed corpus never changes; what a run
# added, its log and any failing input stay in build-fuzz/runs/<target>/. A crash, a hang
# (an input running over -timeout), a memory blow-up (-rss_limit_mb, and the same limit
# on one allocation), a leak or any sanitizer report fails the script, once every target
# has had its turn. CI runs `scripts/fuzz.sh 30`.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS [TARGET...]]   (seconds per target, default 30)" >&2
  exit 2
fi
shift $(($# > 0 ? 1 : 0))
t0=$(date +%s)
scripts/install-deps.sh fuzz
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER="${SEVO_FUZZ_CC:-clang}" -DSEVO_FUZZ=ON \
  -DSEVO_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for src in fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
fi
for t in "${targets[@]}"; do
  [ -f "fuzz/$t.c" ] || { echo "fuzz: no target $t (fuzz/$t.c)" >&2; exit 2; }
done
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"
t_built=$(date +%s)

# The targets write each input to a file (sevo's parsers read paths): on tmpfs when
# there is one. A crashing run skips the targets' own clean-up, hence the trap.
parent=/dev/shm
[ -d "$parent" ] && [ -w "$parent" ] || parent="$PWD/build-fuzz"
SEVO_FUZZ_TMPDIR="$(mktemp -d "$parent/sevo-fuzz.XXXXXX")"
export SEVO_FUZZ_TMPDIR
trap 'rm -rf "$SEVO_FUZZ_TMPDIR"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMP_NUM_THREADS=1 # the parsers are serial; keep OpenMP from spinning up threads

# -close_fd_mask=3 silences the parsers' own warnings (a bad line, an unknown key), which
# would flood the log; libFuzzer and the sanitizers still report on a copy of stderr.
failed=()
summary=()
for t in "${targets[@]}"; do
  run="build-fuzz/runs/$t"
  rm -rf "$run"
  mkdir -p "$run/corpus"
  seeds=$(find "fuzz/corpus/$t" -type f 2>/dev/null | wc -l)
  [ "$seeds" -gt 0 ] && cp "fuzz/corpus/$t"/* "$run/corpus/"
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  echo "fuzz: $t for ${secs} s ($seeds seeds)"
  rc=0
  "build-fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -close_fd_mask=3 -artifact_prefix="$run/" "${dict[@]}" "$run/corpus" >"$run/log" 2>&1 &
  pid=$!
  wait "$pid" || rc=$?
  # clang's OpenMP runtime registers each process in /dev/shm and unregisters it at exit,
  # which a crashing run never reaches.
  rm -f "/dev/shm/__KMP_REGISTERED_LIB_${pid}_"*
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$run/log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$run/log" | tail -1)
  # libFuzzer's own count of the corpus it ends with (entries/size); the directory also
  # keeps inputs that later ones made redundant.
  corpus=$(sed -n 's/.*DONE .* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' "$run/log" | tail -1)
  [ -n "$corpus" ] || corpus="$(find "$run/corpus" -type f | wc -l) files"
  artifacts=$(find "$run" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
    -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  line=$(printf '%-18s %10s execs %6s exec/s %4s MB  corpus %3s -> %-10s' "$t" "${execs:-?}" \
    "${rate:-?}" "${rss:-?}" "$seeds" "$corpus")
  if [ "$rc" -ne 0 ] || [ "$artifacts" -ne 0 ]; then
    failed+=("$t")
    line="$line FAILED (exit $rc; see $run/log)"
    echo "---- $run/log (end) ----"
    tail -n 60 "$run/log"
    echo "----"
  fi
  summary+=("$line")
  echo "$line"
done

t_end=$(date +%s)
echo
echo "fuzz: ${secs} s per target; build $((t_built - t0)) s, total $((t_end - t0)) s"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in build-fuzz/runs/<target>/)" >&2
  exit 1
fi
echo "fuzz: no crash, hang, leak or sanitizer report"
