#!/usr/bin/env bash
# seeds.sh: the main job with the ablations (--ablation all) over several seeds, then each
# row of the SFT vs SR-DPO table as mean ± std across them (population std), the
# early-exit summary (steps saved and accuracy change per model) and the ablation table. Each seed renders its own world and trains its own models
# under output/seed-<N> (log appended to output/seed-<N>.log); complete stages are
# skipped on a rerun.
# Usage: scripts/seeds.sh [SEED ...]   (default: 42 7 1)
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=("$@")
[ ${#SEEDS[@]} -gt 0 ] || SEEDS=(42 7 1)
scripts/build.sh sevo >/dev/null
tables=()
ablations=()
for s in "${SEEDS[@]}"; do
  out="output/seed-$s"
  mkdir -p output
  start=$(date +%s)
  # appended, so that a rerun that skips every stage keeps the real run's stage times
  echo "== $(date -u '+%F %T') pipeline --seed $s" >>"$out.log"
  build/sevo pipeline --config "${CONFIG:-configs/tiny.json}" --seed "$s" --output_dir "$out" --ablation all \
    >>"$out.log" 2>&1 ||
    { tail -5 "$out.log" >&2; exit 1; }
  echo "seed $s: $(( $(date +%s) - start )) s (log: $out.log)"
  tables+=("$out/eval_results/results.md")
  ablations+=("$out/ablation/ablation.md")
done
echo
echo "| Metric (${#SEEDS[@]} seeds: ${SEEDS[*]}) | SFT | SR-DPO | Δ per seed |"
echo "|---|---:|---:|---|"
awk -F'|' '
  FNR == 1 { intable = 1 }
  /^$/ { intable = 0 }                              # the main table ends at the first blank line
  !intable || FNR <= 2 { next }                     # header rows of each table
  { m = $2; gsub(/^ +| +$/, "", m)
    if (!(m in seen)) { seen[m] = 1; order[++n] = m }
    a = $3 + 0; b = $4 + 0; d = $5; gsub(/^ +| +$/, "", d)
    sa[m] += a; qa[m] += a * a; sb[m] += b; qb[m] += b * b; k[m]++
    deltas[m] = deltas[m] (deltas[m] == "" ? "" : ", ") d }
  END {
    for (i = 1; i <= n; i++) { m = order[i]; c = k[m]
      ma = sa[m] / c; mb = sb[m] / c
      va = qa[m] / c - ma * ma; vb = qb[m] / c - mb * mb
      printf "| %s | %.1f ± %.1f | %.1f ± %.1f | %s |\n", m, ma, sqrt(va > 0 ? va : 0), mb, sqrt(vb > 0 ? vb : 0), deltas[m] } }
' "${tables[@]}"
# the early-exit summary lines: "Early exit, NAME: mean reasoning steps A -> B (C% fewer);
# accuracy D% -> E% (F points)."
echo
echo "| Early exit (${#SEEDS[@]} seeds) | steps, fixed K | steps, early exit | fewer steps (%) | accuracy change (points) | per seed (fewer %, points) |"
echo "|---|---:|---:|---:|---:|---|"
sed -n 's/^Early exit, \([^:]*\): mean reasoning steps \([0-9.]*\) -> \([0-9.]*\) (\([-0-9.]*\)% fewer); accuracy .* (\([-+0-9.]*\) points)\.$/\1|\2|\3|\4|\5/p' \
  "${tables[@]}" | awk -F'|' '
  { m = $1; if (!(m in seen)) { seen[m] = 1; order[++n] = m }
    for (i = 2; i <= 5; i++) { s[m, i] += $i; q[m, i] += $i * $i }
    k[m]++; d[m] = d[m] (d[m] == "" ? "" : "; ") $4 ", " $5 }
  END {
    for (j = 1; j <= n; j++) { m = order[j]; c = k[m]; line = "| " m
      for (i = 2; i <= 5; i++) { mu = s[m, i] / c; v = q[m, i] / c - mu * mu
        line = line sprintf(" | %.2f ± %.2f", mu, sqrt(v > 0 ? v : 0)) }
      print line " | " d[m] " |" } }'
# the ablation rows: "| variant | accuracy | hallucination | F1 | CHAIR_i | steps | tokens |"
echo
echo "| Variant (${#SEEDS[@]} seeds) | Accuracy (%) | Adv. hallucination (%) | POPE F1 (%) | CHAIR_i (%) | Steps | Tokens per answer |"
echo "|---|---:|---:|---:|---:|---:|---:|"
awk -F'|' '
  FNR <= 2 { next }
  { v = $2; gsub(/^ +| +$/, "", v); if (!(v in seen)) { seen[v] = 1; order[++n] = v }
    for (i = 3; i <= 8; i++) { s[v, i] += $i; q[v, i] += $i * $i }
    k[v]++ }
  END {
    for (j = 1; j <= n; j++) { v = order[j]; c = k[v]; line = "| " v
      for (i = 3; i <= 8; i++) { mu = s[v, i] / c; var = q[v, i] / c - mu * mu
        line = line sprintf(i >= 7 ? " | %.2f ± %.2f" : " | %.1f ± %.1f", mu, sqrt(var > 0 ? var : 0)) }
      print line " |" } }' "${ablations[@]}"
