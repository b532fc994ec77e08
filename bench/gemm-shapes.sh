#!/usr/bin/env bash
# gemm-shapes.sh: OpenBLAS (one cblas_sgemm call) against PyTorch's matmul (MKL) on the
# matrix products of a training step, one product at a time.
#
#   bench/gemm-shapes.sh              (REPS alternations, default 3; THREADS as compare.sh)
#
# Why: a training step of the models compare.sh measures is mostly matrix products, so
# the step's ratio to PyTorch is bounded by the ratio of the two BLAS libraries on these
# shapes. Shapes M x N x K: the tiny model's batch (16 x 96 = 1536 rows) through its
# attention (128 -> 128) and MLP (128 -> 320, 320 -> 128) products, and width 768's
# (4 x 256 = 1024 rows; 768 -> 768, 768 -> 2048, 2048 -> 768), plus the 1024^3 peak.
# Each is the best of 40 products, alternately sevo bench --sgemm_only and
# bench_torch.py --sgemm_shape; prints the medians. Output in bench/out/gemm-shapes.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. bench/setup.sh
shapes=(1536x128x128 1536x320x128 1536x128x320 1024x768x768 1024x2048x768 1024x768x2048 1024x1024x1024)
runs="$out/gemm-shapes.jsonl"
: >"$runs"
for r in $(seq "$reps"); do
    for s in "${shapes[@]}"; do
        build/sevo bench --sgemm_only --sgemm_shape "$s" --num_threads "$threads" --json 2>/dev/null |
            sed 's/^{/{"framework": "sevo", /' >>"$runs"
        "$python" tools/reference/bench_torch.py --sgemm_shape "$s" --threads "$threads" >>"$runs"
    done
done
"$python" - "$runs" <<'PY' | tee "$out/gemm-shapes.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
shapes = list(dict.fromkeys(r["shape"] for r in rows))
print(f"GFLOP/s, medians of the repetitions (best of 40 products each), {rows[0]['threads']} threads\n")
print("| M x N x K | OpenBLAS (sevo) | PyTorch matmul | ratio |")
print("|---|---:|---:|---:|")
for s in shapes:
    med = {fw: statistics.median(r["sgemm_gflops"] for r in rows if r["shape"] == s and r["framework"] == fw)
           for fw in ("sevo", "pytorch")}
    print(f"| {s} | {med['sevo']:.0f} | {med['pytorch']:.0f} | {med['sevo'] / med['pytorch']:.2f}x |")
PY
