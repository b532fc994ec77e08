#!/usr/bin/env bash
# test-valgrind.sh: the whole loop, end to end and in miniature, under Valgrind's
# Memcheck: synth -> SFT (2 steps) -> IPR (2 samples) -> SR-DPO (2 steps, then again
# with --resume from its first checkpoint) -> eval (2 samples per split). Every command
# must finish with no memory error and no definite, indirect or possible leak. CI runs
# it after the sanitizer build; it takes about 1.5 minutes on 2 cores, the build included.
#
# The build is its own tree, build-valgrind/: Release with -g (the optimised code is what
# ships; -g names the lines in a report) and SEVO_NATIVE=OFF, since Valgrind cannot run
# the AVX-512 that -march=native emits here.
#
# Leak kinds: definite, indirect and possible leaks fail the run. The one possible leak
# that is not sevo's, libgomp's idle worker threads' TLS, is suppressed in
# scripts/valgrind.supp (see the comment there). "Still reachable" blocks are reported in
# the summary but do not fail it: at exit every one of them is libgomp's (its thread
# pool and team state, 2 to 4 KB, kept on purpose for the next parallel region and
# released by the process's exit; checked with --show-leak-kinds=all), and sevo cannot
# free them, libgomp having no shutdown call. Failing on them would take a suppression
# for most of libgomp and hide nothing of sevo's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
root=$PWD
cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g -DSEVO_NATIVE=OFF \
  -DSEVO_BUILD_TESTS=OFF >/dev/null
cmake --build build-valgrind -j"$(nproc)" --target sevo >/dev/null
sevo=$root/build-valgrind/sevo

# OpenBLAS's SSE3 (Prescott) kernels: under Memcheck its Haswell kernels took 56 s per
# SFT step against 1 s, for no more checking of sevo. Setting it also keeps sevo from
# re-executing itself to pick a faster kernel family (src/cli/main.c). Two OpenMP
# threads so that the parallel code paths run; passive waiting, because Valgrind runs
# one thread at a time and a spinning thread only burns the other's turn.
export OPENBLAS_CORETYPE=Prescott OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive

work=$(mktemp -d /tmp/sevo-valgrind-XXXXXX)
trap 'rm -rf "$work"' EXIT
logs=$root/build-valgrind/valgrind-logs
rm -rf "$logs"
mkdir -p "$logs"
cd "$work"

# vg NAME ARGS...: runs `sevo ARGS` under Memcheck, its output in $logs/NAME.log, and
# prints one summary line; exits with the log's tail on any error, leak or failure.
vg() {
  local name=$1 t0=$SECONDS
  shift
  if ! valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
      --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
      --suppressions="$root/scripts/valgrind.supp" --num-callers=30 \
      "$sevo" "$@" >"$logs/$name.log" 2>&1; then
    tail -n 60 "$logs/$name.log" >&2
    echo "test-valgrind: $name failed under Memcheck (full log: $logs/$name.log)" >&2
    exit 1
  fi
  local errors reachable
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$logs/$name.log")
  reachable=$(sed -n 's/.*still reachable: \([0-9,]*\) bytes.*/\1/p' "$logs/$name.log")
  echo "test-valgrind: $name: ${errors:-?} errors, no leaks (still reachable at exit: ${reachable:-0} bytes), $((SECONDS - t0)) s"
}

vg synth synth --output_dir world --num_train 8 --num_test 4 --seed 3
vg sft sft --data_dir world --output_dir sft --batch_size 4 --gradient_accumulation_steps 1 --max_steps 2 \
  --save_steps 1 --logging_steps 1 --num_threads 2 --seed 5
vg ipr generate-ipr-data --model_path sft --data_dir world --output_dir ipr --max_samples 2 --max_refinement 1 \
  --max_new_tokens 8 --num_threads 2
# A model trained for 2 steps rarely yields a pair, and SR-DPO needs some: IPR's pairs
# plus the world's own (true perception chosen over the record's wrong one), cut from
# synth's JSONL, whose keys always come in the same order.
sed -n 's/^{"image":"\([^"]*\)","question":"\([^"]*\)","answer":"\([^"]*\)","perception":"\([^"]*\)".*"wrong_perception":"\([^"]*\)"}$/{"image_path":"..\/world\/\1","question":"\2","ground_truth":"\3","chosen":"\4","rejected":"\5","iteration":1}/p' \
  world/train.jsonl | awk 'NR <= 4' | cat ipr/preferences.jsonl - >ipr/pairs.jsonl
[ "$(wc -l <ipr/pairs.jsonl)" -ge 2 ] || { echo "test-valgrind: too few preference pairs" >&2; exit 1; }
dpo=(train-sr-dpo --model_path sft --preference_data ipr/pairs.jsonl --output_dir dpo --batch_size 2
  --gradient_accumulation_steps 1 --max_steps 2 --save_steps 1 --num_threads 2)
vg sr_dpo "${dpo[@]}"
# the resume path: checkpoint-1's weights, optimizer and state loaded, the last step redone
vg sr_dpo_resume "${dpo[@]}" --resume
grep -q "resuming from dpo/checkpoint-1" "$logs/sr_dpo_resume.log" || { echo "test-valgrind: SR-DPO did not resume" >&2; exit 1; }
vg eval eval --model_path dpo --compare sft --data_dir world --output_dir eval --max_samples 2 --max_new_tokens 8 \
  --num_threads 2
echo "test-valgrind: all clean under Memcheck ($SECONDS s in all; logs in $logs)"
