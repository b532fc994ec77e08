#!/usr/bin/env bash
# before-after.sh [REV]: sevo at an earlier commit (default 39f9710, before issue 6's
# changes) against the working tree, alternately, 3 times per size, on the models that
# bench/compare.sh wrote into bench/out/ (run that first). Prints the medians.
#
# The earlier commit is built in a scratch worktree with THIS tree's `sevo bench`
# (src/cli/cmd_bench.c), so that both measure the same things; for a commit that
# predates grad_clip_scale, its optimizer call is adapted to the older API
# (clip_grad_norm, then adamw_step).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rev=${1:-39f9710}
[ -d bench/out/model-768 ] || { echo "before-after: run bench/compare.sh first (bench/out/model-*)" >&2; exit 2; }
old=$(mktemp -d)
trap 'git worktree remove --force "$old" >/dev/null 2>&1 || rm -rf "$old"' EXIT
git worktree add --detach "$old" "$rev" >/dev/null
cp src/cli/cmd_bench.c "$old/src/cli/cmd_bench.c"
if ! grep -q grad_clip_scale "$old/src/train/optim.h"; then
    sed -i 's|        adamw_step(&opt, m, 1e-4f, 0.0f, grad_clip_scale(grad_global_norm(m), 1.0f));|        clip_grad_norm(m, 1.0f);\n        adamw_step(\&opt, m, 1e-4f, 0.0f);|' \
        "$old/src/cli/cmd_bench.c"
fi
cmake -S "$old" -B "$old/build" -DCMAKE_BUILD_TYPE=Release -DSEVO_BUILD_TESTS=OFF >/dev/null
cmake --build "$old/build" -j"$(nproc)" --target sevo >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target sevo >/dev/null

runs=bench/out/before-after.jsonl
: >"$runs"
for size in tiny 256 512 768; do
    case $size in
    tiny) a=(--batch_size 16 --seq_len 96 --steps 10 --reps 20) ;;
    256) a=(--batch_size 8 --seq_len 256 --steps 5 --reps 5) ;;
    512) a=(--batch_size 4 --seq_len 256 --steps 3 --reps 3) ;;
    768) a=(--batch_size 4 --seq_len 256 --steps 3 --reps 2) ;;
    esac
    for r in 1 2 3; do
        echo "before-after: $size, repetition $r of 3" >&2
        for which in before after; do
            bin=build/sevo
            [ "$which" = before ] && bin=$old/build/sevo
            "$bin" bench --model_path "bench/out/model-$size" "${a[@]}" --json |
                python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d.update(which=sys.argv[1], size=sys.argv[2]); print(json.dumps(d))' \
                    "$which" "$size" >>"$runs"
        done
    done
done
python3 - "$runs" "$rev" <<'EOF'
import json, statistics, sys
rs = [json.loads(line) for line in open(sys.argv[1])]
print(f"sevo at {sys.argv[2]} (before) and the working tree (after), alternately, medians of 3:\n")
print("| size | train tok/s before | after | prefill before | after | decode before | after | peak MiB before | after |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in ("tiny", "256", "512", "768"):
    row = [s]
    for k in ("train_tokens_per_s", "prefill_tokens_per_s", "decode_tokens_per_s", "peak_rss_mib"):
        for w in ("before", "after"):
            row.append(f"{statistics.median(r[k] for r in rs if r['size'] == s and r['which'] == w):.0f}")
    print("| " + " | ".join(row) + " |")
EOF
