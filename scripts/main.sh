#!/usr/bin/env bash
# main.sh: the README's main job on the embedded default. Installs what is missing,
# builds, renders the synthetic world, trains the tiny VLM (stage 1, SFT) and evaluates
# it on the held-out test set and the three POPE splits, printing a results table.
# Stages whose outputs already exist are skipped, so a rerun resumes.
# The IPR, SR-DPO and HSR-EE stages join this job as they land (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
SEVO=build/sevo
CONFIG=${CONFIG:-configs/tiny.json}
OUT=${OUT:-output}
DATA="$OUT/data"
SFT="$OUT/sft_ckpt"
EVAL="$OUT/eval_results"

if [ ! -f "$DATA/pope_adversarial.jsonl" ]; then
  $SEVO synth --config "$CONFIG" --output_dir "$DATA"
fi
if [ ! -f "$SFT/trainer_state.json" ]; then
  $SEVO sft --config "$CONFIG" --data_dir "$DATA" --output_dir "$SFT" --resume
fi
declare -A ACC
for split in test pope_random pope_popular pope_adversarial; do
  if [ ! -f "$EVAL/$split/predictions.jsonl" ]; then
    $SEVO inference --config "$CONFIG" --model_path "$SFT" --data_dir "$DATA" --split "$split" \
      --output_dir "$EVAL/$split" >/dev/null 2>"$EVAL.$split.log" || { cat "$EVAL.$split.log" >&2; exit 1; }
  fi
  n=$(grep -c . "$EVAL/$split/predictions.jsonl")
  c=$(grep -c '"correct":true' "$EVAL/$split/predictions.jsonl" || true)
  ACC[$split]=$(awk -v c="$c" -v n="$n" 'BEGIN { printf "%.1f%% (%d/%d)", 100 * c / n, c, n }')
done
echo
echo "| split (SFT model, greedy) | accuracy |"
echo "| --- | --- |"
for split in test pope_random pope_popular pope_adversarial; do
  echo "| $split | ${ACC[$split]} |"
done
