#!/usr/bin/env bash
# tune-sr-dpo.sh: SR-DPO again on a finished seed's SFT model and IPR pairs, with other
# settings, evaluated the way the pipeline evaluates its SR-DPO model (test, the three
# POPE splits, the blank image, early exit with the seed's gate); prints its row next to
# the SFT model's and the pipeline's SR-DPO model's. How the settings of
# configs/tiny.json were tuned (docs/self-evolving-loop.md, docs/ablations.md).
#
# Usage: scripts/tune-sr-dpo.sh SEED NAME [sevo train-sr-dpo flags ...]
#   SEED  a seed whose pipeline has run into output/seed-SEED (scripts/seeds.sh, or
#         `sevo pipeline --config configs/tiny.json --seed SEED --output_dir output/seed-SEED`)
#   NAME  the setting's name; its model and evaluation go to output/tune/NAME/seed-SEED
#   IPR_FLAGS="--temperature 1.0 ..." mines new pairs first (sevo generate-ipr-data flags)
# Example: scripts/tune-sr-dpo.sh 7 beta0.5 --beta 0.5
# A setting already evaluated is not run again; delete its directory to rerun it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
seed=$1 name=$2
shift 2
src="output/seed-$seed"
out="output/tune/$name/seed-$seed"
config="${CONFIG:-configs/tiny.json}"
for f in "$src/sft_ckpt/model.safetensors" "$src/ipr_data/preferences.jsonl" \
  "$src/hsr_ee_ckpt/confidence_head.safetensors" "$src/eval_results/results.md"; do
  [ -f "$f" ] || { echo "tune-sr-dpo.sh: $f is missing: run the pipeline for seed $seed first" >&2; exit 1; }
done
scripts/build.sh sevo >/dev/null
mkdir -p "$out"
if [ ! -f "$out/eval/results.md" ]; then
  prefs="$src/ipr_data/preferences.jsonl"
  if [ -n "${IPR_FLAGS:-}" ]; then
    # shellcheck disable=SC2086 # IPR_FLAGS is a list of flags
    build/sevo generate-ipr-data --config "$config" --seed "$seed" --model_path "$src/sft_ckpt" \
      --data_dir "$src/data" --output_dir "$out/ipr" $IPR_FLAGS >"$out/ipr.log" 2>&1 ||
      { tail -5 "$out/ipr.log" >&2; exit 1; }
    prefs="$out/ipr/preferences.jsonl"
  fi
  build/sevo train-sr-dpo --config "$config" --seed "$seed" --model_path "$src/sft_ckpt" \
    --preference_data "$prefs" --output_dir "$out/model" "$@" >"$out/train.log" 2>&1 ||
    { tail -5 "$out/train.log" >&2; exit 1; }
  build/sevo eval --config "$config" --seed "$seed" --model_path "$out/model" --data_dir "$src/data" \
    --output_dir "$out/eval" --confidence_head_path "$src/hsr_ee_ckpt/confidence_head.safetensors" \
    --use_early_exit >"$out/eval.log" 2>&1 || { tail -5 "$out/eval.log" >&2; exit 1; }
fi
# One line per model, from the results tables: test accuracy at fixed depth and with
# early exit, the adversarial hallucination rate and CHAIR_i. COLUMN is the model's
# column of the main table, EE the model's name in the early-exit summary line.
row() { # FILE COLUMN EE LABEL
  awk -F'|' -v col="$2" -v ee_name="$3" -v label="$4" '
    function v(i) { x = $i; gsub(/ /, "", x); return x }
    /^\| Accuracy, test \(%\)/ { acc = v(col) }
    /^\| Hallucination rate, adversarial/ { adv = v(col) }
    /^\| CHAIR_i, test/ { chair = v(col) }
    index($0, "Early exit, " ee_name ": ") == 1 { ee = $0; sub(/.*-> /, "", ee); sub(/%.*/, "", ee) }
    END { printf "%-30s accuracy %5s  early exit %5s  adversarial %5s  CHAIR_i %5s\n", label, acc, ee, adv, chair }' "$1"
}
row "$src/eval_results/results.md" 3 SFT "seed $seed SFT"
row "$src/eval_results/results.md" 4 SR-DPO "seed $seed SR-DPO (pipeline)"
row "$out/eval/results.md" 3 model "seed $seed $name"
