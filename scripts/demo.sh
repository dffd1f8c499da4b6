#!/usr/bin/env bash
# The main job end to end on an embedded default: simulate a cohort, validate it, train and
# register a model in the local MLflow store, score every episode, audit the predictions.
# Usage: scripts/demo.sh DIR ATHLETES SEED
set -euo pipefail
out=${1:-demo}; athletes=${2:-2000}; seed=${3:-20261126}
hamrisk=.venv/bin/hamrisk
rm -rf "$out"
mkdir -p "$out"

step() { printf '\n== %s\n' "$*"; }

step "simulate $athletes athletes (seed $seed) into $out/cohort"
$hamrisk simulate "$out/cohort" --athletes "$athletes" --seed "$seed"

step "validate the cohort against the data contract"
$hamrisk validate "$out/cohort" --rejects "$out/rejects.csv"

step "train, evaluate on held-out athletes, log to MLflow and register"
$hamrisk train "$out/cohort"

step "score every index episode with the champion model"
$hamrisk score "$out/cohort" --out "$out/predictions.csv" --rejects "$out/score-rejects.csv"

step "audit the predictions against the outcomes on record"
# The audit's exit code is its verdict (0 calibrated, 1 recalibrate, 3 too few outcomes);
# the demo shows the report whatever the verdict.
set +e
$hamrisk audit "$out/cohort" --predictions "$out/predictions.csv" --out "$out/audit"
verdict=$?
set -e
if [ "$verdict" -eq 2 ]; then echo "audit failed: unusable input" >&2; exit 2; fi

step "one athlete, looked up from the cohort"
first=$(awk -F, 'NR==2 {print $2; exit}' "$out/predictions.csv")
$hamrisk lookup "$out/cohort" --athlete "$first"

cat <<DONE

Results:
  cohort (simulated):   $out/cohort   (truth for checks: $out/cohort.truth.csv)
  set-aside records:    $out/rejects.csv
  MLflow store:         $($hamrisk models list | head -1 | sed 's/.* at //')
  registered models:    .venv/bin/hamrisk models list
  predictions:          $out/predictions.csv
  audit report:         $out/audit/report.html  (figures: $out/audit/report.json)
DONE
