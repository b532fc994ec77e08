#!/usr/bin/env bash
# compare.sh: sevo against PyTorch eager on the CPU, side by side, at every model size.
#
#   bench/compare.sh [SIZE...]        (default: tiny 256 512 768)
#
# For each size, `sevo bench --write_model` writes the model (config.json, seeded
# model.safetensors) and the training batch (batch.safetensors); then `sevo bench
# --model_path` and tools/reference/bench_torch.py (the same model in PyTorch, checked
# once against the parity reference with --check) run on them ALTERNATELY, REPS times
# each (default 3, env REPS), on the same thread count (env THREADS, default all cores).
# bench/summarize.py prints the medians and the ratios sevo/PyTorch: training step
# tokens/s (forward + backward + clipping + AdamW), prefill and decode tokens/s with a KV
# cache, peak resident memory; sevo's training GFLOP/s as a fraction of the sgemm peak
# OpenBLAS reaches here; sevo's speed-up from 1 thread to THREADS; and the decode speed
# this machine's memory allows (`sevo bench --memory_only`: the read rate, over the bytes
# a decode step reads), against which both programs' decode is read.
#
# Where the environment sets OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE, the sgemm peak and
# sevo's runs are measured both ways: as set, and with both unset for those commands.
#
# Everything goes to bench/out/ (ignored by git): the models, every run's JSON line
# (runs.jsonl), and the table (compare.md). Needs the reference's Python environment
# (scripts/ref-venv.sh creates it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(tiny 256 512 768)
. bench/setup.sh
sevo=build/sevo

# the batch and counts of each size: train B x T for STEPS steps; prefill and decode
# repeated GEN_REPS times (after warmups, in both programs)
shape() {
    case "$1" in
    tiny) echo "16 96 10 20" ;;
    256) echo "8 256 5 5" ;;
    512) echo "4 256 3 3" ;;
    768) echo "4 256 3 2" ;;
    *) echo "compare: unknown size $1 (tiny, 256, 512, 768)" >&2; exit 2 ;;
    esac
}

runs=$out/runs.jsonl
: >"$runs"
# the environments sevo runs in: as given, and with the BLAS core type unset if it is set
envs=("")
if [ -n "${OPENBLAS_CORETYPE:-}${OPENBLAS_L2_SIZE:-}" ]; then
    envs+=("-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE")
fi
tag() { [ -z "$1" ] && echo "as set" || echo "unset"; }
label() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d.update(json.loads(sys.argv[1])); print(json.dumps(d))' "$1"; }

# the sgemm peak and the memory read rate, before and after the models (summarize.py
# takes the best: this machine's speed drifts, and a peak measured in a slow moment
# understates it)
sgemm_peaks() {
    "$sevo" bench --memory_only --json --num_threads "$threads" | label '{"framework": "memory"}' >>"$runs"
    for e in "${envs[@]}"; do
        for t in 1 "$threads"; do
            # shellcheck disable=SC2086
            env $e "$sevo" bench --sgemm_only --json --num_threads "$t" |
                label "{\"framework\": \"sgemm\", \"blas_env\": \"$(tag "$e")\"}" >>"$runs"
        done
    done
}
sgemm_peaks

for size in "${sizes[@]}"; do
    read -r B T steps greps <<<"$(shape "$size")"
    dir=$out/model-$size
    "$sevo" bench --size "$size" --batch_size "$B" --seq_len "$T" --write_model "$dir" >&2
    common=(--steps "$steps" --reps "$greps")
    "$python" tools/reference/bench_torch.py --model_path "$dir" --steps 1 --reps 1 --threads "$threads" --check --json >/dev/null
    for r in $(seq "$reps"); do
        echo "compare: $size, repetition $r of $reps" >&2
        for e in "${envs[@]}"; do
            # shellcheck disable=SC2086
            env $e "$sevo" bench --model_path "$dir" --batch_size "$B" --seq_len "$T" "${common[@]}" \
                --num_threads "$threads" --json | label "{\"size\": \"$size\", \"blas_env\": \"$(tag "$e")\"}" >>"$runs"
        done
        "$python" tools/reference/bench_torch.py --model_path "$dir" "${common[@]}" --threads "$threads" --json |
            label "{\"size\": \"$size\", \"blas_env\": \"as set\"}" >>"$runs"
    done
    if [ "$threads" -gt 1 ]; then
        "$sevo" bench --model_path "$dir" --batch_size "$B" --seq_len "$T" "${common[@]}" --num_threads 1 --json |
            label "{\"size\": \"$size\", \"blas_env\": \"as set\", \"one_thread\": true}" >>"$runs"
    fi
done
sgemm_peaks
python3 bench/summarize.py "$runs" | tee "$out/compare.md"
