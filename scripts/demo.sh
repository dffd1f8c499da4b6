#!/usr/bin/env bash
# The main job end to end on an embedded default: simulate a cohort, validate it, and grow
# with each stage (train, score, audit). Usage: scripts/demo.sh DIR ATHLETES SEED
set -euo pipefail
out=${1:-demo}; athletes=${2:-2000}; seed=${3:-20261126}
hamrisk=.venv/bin/hamrisk
mkdir -p "$out"
echo "== simulate $athletes athletes (seed $seed) into $out/cohort"
$hamrisk simulate "$out/cohort" --athletes "$athletes" --seed "$seed"
echo "== validate"
$hamrisk validate "$out/cohort" --rejects "$out/rejects.csv"
echo
echo "Results:"
echo "  cohort:        $out/cohort"
echo "  set-aside:     $out/rejects.csv"
