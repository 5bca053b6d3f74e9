#!/usr/bin/env bash
# MRPC and STS-B from the CLI on the real GLUE files: head-only and GRASP trained on MiniLM-L6 (mean-pooled
# head, from the checkpoint's own pooling config), then a PCM chip Monte Carlo of both with its report.
#
#   bash scripts/glue_pair_tasks.sh [RUNS_DIR=runs/glue_pairs] [DOCS_DIR=docs/glue_pairs]
#   TASKS="stsb" bash scripts/glue_pair_tasks.sh          # one task
#
# Budgets (CPU-sized, 1 torch thread): MRPC all 3,668 training pairs × 3 epochs, Monte Carlo on all 408 dev
# pairs; STS-B 3,000 of its 5,749 training pairs × 2 epochs, Monte Carlo on 300 of its 1,500 dev pairs
# (seeded subset). Trained runs are reused when their summary.json exists; a Monte Carlo resumes per chip.
# The report folders (results, manifest, report.md/html, plots) are copied to DOCS_DIR/<task>/.
set -euo pipefail
RUNS=${1:-runs/glue_pairs}
DOCS=${2:-docs/glue_pairs}
AP=${AP:-.venv/bin/analog-peft}
CHIPS=${CHIPS:-10}
TASKS=${TASKS:-mrpc stsb}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

declare -A TRAIN_ARGS=([mrpc]="--epochs 3" [stsb]="--epochs 2 --train-examples 3000")
declare -A MC_ARGS=([mrpc]="" [stsb]="--max-examples 300")

train() {  # task method out [extra args...]
  local task=$1 method=$2 out=$3; shift 3
  if [[ -f $out/summary.json ]]; then echo "[$task/$method] reusing $out"; return; fi
  # shellcheck disable=SC2086
  $AP train --task "$task" --method "$method" --model minilm-l6 --rpu ideal --seed 0 ${TRAIN_ARGS[$task]} \
    --batch-size 16 --max-length 128 --lr 1e-2 --set head_lr=1e-2 --set warmup_ratio=0.06 \
    --num-threads 1 --no-progress --out-dir "$out" "$@"
}

for task in $TASKS; do
  train "$task" head "$RUNS/$task/head"
  train "$task" grasp "$RUNS/$task/grasp" --set method_options.k=16
  # shellcheck disable=SC2086
  $AP montecarlo --task "$task" --base minilm-l6 --device pcm --rpu mapped --chips "$CHIPS" \
    --times 1s,1d,1y --method "head=$RUNS/$task/head" --method "grasp=$RUNS/$task/grasp" ${MC_ARGS[$task]} \
    --out "$RUNS/$task/mc" --report
  mkdir -p "$DOCS/$task"
  cp "$RUNS/$task/mc"/{results.csv,manifest.json} "$DOCS/$task/"
  cp -r "$RUNS/$task/mc/report/." "$DOCS/$task/"
  for m in head grasp; do cp "$RUNS/$task/$m/summary.json" "$DOCS/$task/train_summary_$m.json"; done
done
