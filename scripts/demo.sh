#!/usr/bin/env bash
# The main job end to end on an embedded default: simulate a development cohort, validate
# it, train and register a model in the local MLflow store as of its export date; then
# simulate a later cohort (another seed, later calendar), score its episodes with the version
# just trained and audit the predictions against its outcomes: an out-of-sample check.
# Before any training, a lookup on the demo's fresh store is answered by the literature model
# (registered on that first use); after training, by the trained version if it passed the gates.
# The demo keeps its own store in DIR/store, so "before training" really is a fresh store.
# Usage: scripts/demo.sh DIR ATHLETES SEED
set -euo pipefail
out=${1:-demo}; athletes=${2:-2000}; seed=${3:-20261126}
hamrisk=.venv/bin/hamrisk
rm -rf "$out"
mkdir -p "$out"
export HAMRISK_HOME="$(cd "$out" && pwd)/store"
unset MLFLOW_TRACKING_URI

# Development cohort: index injuries from 2019 until its export in mid-2023. The later
# cohort's index injuries start the day after that export and run to configs/simulation.yaml's
# export date, so none of its episodes could have been used in training.
trained_on=2023-06-30
later_from=2023-07-01
later_seed=$((seed + 1))

step() { printf '\n== %s\n' "$*"; }

step "before any training: one athlete from what the clinician knows (fresh store)"
answers=(--prior-injuries 1 --lsi 0.8 --days-to-return 21 --ake yes --as-of "$trained_on")
$hamrisk lookup "${answers[@]}"
step "simulate $athletes athletes (seed $seed) exported $trained_on into $out/cohort"
$hamrisk simulate "$out/cohort" --athletes "$athletes" --seed "$seed" --export "$trained_on"

step "validate the cohort against the data contract"
$hamrisk validate "$out/cohort" --rejects "$out/rejects.csv" --today "$trained_on"

step "train as of $trained_on, evaluate on held-out athletes, log to MLflow and register"
$hamrisk train "$out/cohort" --today "$trained_on" | tee "$out/train.txt"
# The version just trained, champion or challenger: the demo audits it whatever its gates said.
model=$(sed -n 's/^registered \(.*\) version \([0-9][0-9]*\) as .*/models:\/\1\/\2/p' \
  "$out/train.txt")

step "the same answers after training: the champion now (trained if it passed the gates)"
$hamrisk lookup "${answers[@]}"

step "simulate a later cohort: $athletes athletes (seed $later_seed) from $later_from"
$hamrisk simulate "$out/later" --athletes "$athletes" --seed "$later_seed" --start "$later_from"

step "score every index episode of the later cohort with $model"
$hamrisk score "$out/later" --model "$model" --out "$out/predictions.csv" \
  --rejects "$out/score-rejects.csv"

step "audit the later cohort's predictions against the outcomes on record"
# The audit's exit code is its verdict (0 calibrated, 1 recalibrate, 3 too few outcomes);
# the demo shows the report whatever the verdict.
set +e
$hamrisk audit "$out/later" --predictions "$out/predictions.csv" --out "$out/audit"
verdict=$?
set -e
if [ "$verdict" -eq 2 ]; then echo "audit failed: unusable input" >&2; exit 2; fi

step "one athlete, looked up from the later cohort"
first=$(awk -F, 'NR==2 {print $2; exit}' "$out/predictions.csv")
$hamrisk lookup "$out/later" --athlete "$first" --model "$model"

cat <<DONE

Results:
  development cohort:   $out/cohort   (truth for checks: $out/cohort.truth.csv)
  later cohort:         $out/later    (truth for checks: $out/later.truth.csv)
  set-aside records:    $out/rejects.csv
  MLflow store:         $($hamrisk models list | head -1 | sed 's/.* at //')
  registered models:    .venv/bin/hamrisk models list
  predictions:          $out/predictions.csv
  audit report:         $out/audit/report.html  (figures: $out/audit/report.json)
DONE
