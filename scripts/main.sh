#!/usr/bin/env bash
# main.sh: the README's main job on the embedded default. Installs what is missing,
# builds, and runs the self-evolving pipeline with configs/tiny.json: render the
# synthetic world, SFT the tiny VLM (stage 1), mine IPR preference pairs from its failed
# perceptions (stage 2), align it with SR-DPO (stage 3), and evaluate the SFT and SR-DPO
# models side by side on the held-out test set and the three POPE splits, printing the
# table. A rerun skips complete stages and resumes an interrupted one.
# Environment: CONFIG (default configs/tiny.json); extra arguments go to `sevo pipeline`
# (e.g. --seed 7 --output_dir out7 ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh sevo
exec build/sevo pipeline --config "${CONFIG:-configs/tiny.json}" "$@"
