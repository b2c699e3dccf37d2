#!/usr/bin/env bash
# One CPU case, resnet-bench against timm's benchmark.py, as whole commands (results/single-case/):
# resnet50, batch 1, 224 px, eager fp32, contiguous, 1 thread. A = resnet-bench's default for that
# case (rounds until its latency is known to 2%, counts, stage pass and peak included);
# B = timm's benchmark.py (10 warm-up + 40 timed steps, its defaults). Interleaved A B A B by
# farm-bench. TIMM_DIR: a checkout of huggingface/pytorch-image-models (benchmark.py is not in the
# timm wheel); it is run from there, not copied into this project.
set -euo pipefail
cd "$(dirname "$0")/.."
TIMM_DIR=${TIMM_DIR:?a checkout of huggingface/pytorch-image-models}
RUNS=${RUNS:-5}
OUT=${OUT:-results/single-case}
PY=$PWD/.venv/bin/python
mkdir -p "$OUT"
A="$PY -m bench run --models resnet50 --batch-sizes 1 --image-sizes 224 --layouts contiguous --precisions fp32 --compile none --device cpu --threads 1 --quiet --overwrite --out /tmp/single-case-run"
B="sh -c 'cd $TIMM_DIR && OMP_NUM_THREADS=1 exec $PY benchmark.py --model resnet50 --bench inference -b 1 --img-size 224 --device cpu >/tmp/single-case-timm.log 2>&1'"
echo "A: $A" | tee "$OUT/farm-bench.txt"
echo "B: $B" | tee -a "$OUT/farm-bench.txt"
farm-bench -n "$RUNS" --timeout 1200 --vs "$B" -- $A | tee -a "$OUT/farm-bench.txt"
