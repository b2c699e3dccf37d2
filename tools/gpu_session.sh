#!/usr/bin/env bash
# One GPU session in one call: the `gpu` test suite, one --trace case, one --find-max-batch
# case and the quick preset, each time-boxed, then everything tarred into $OUT.
#
# Run on the GPU machine from the repository root, with the wheels of tools/gpu_wheels.sh in
# .whl/ (carried there) and the commit of the tree set by the sender:
#
#     RESNET_BENCH_GIT_COMMIT=<sha> OUT=<dir> bash tools/gpu_session.sh
#
# $OUT receives three files (a device machine returns at most 8): session.md (the summary,
# tools/gpu_summary.py), session.log, and gpu-session.tar.gz (every run directory, logs,
# traces, nvidia-smi). Chrome traces over 4 MiB are left out of the tarball (their top-k
# tables stay) and named in session.log.
#
# Time: the whole script keeps within BUDGET_S (default 560 s; a device call stops at 600).
# Each step has a time box; the quick preset gets what is left. A step stopped by its box
# exits 124 and keeps every row it finished (a run directory can be continued with
# `python -m bench run --resume DIR`). Override: PYTEST_S, TRACE_S, MAXBATCH_S, and STEPS
# (default "pytest trace maxbatch quick"; e.g. STEPS=quick BUDGET_S=580 gives the quick preset
# the whole call).
set -u
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder whose files come back}"
BUDGET_S=${BUDGET_S:-560}
PYTEST_S=${PYTEST_S:-180}
TRACE_S=${TRACE_S:-90}
MAXBATCH_S=${MAXBATCH_S:-100}
STEPS=${STEPS:-"pytest trace maxbatch quick"}
T0=$(date +%s)
W=$(mktemp -d)
export PYTHONUNBUFFERED=1
log() { echo "$*" | tee -a "$W/session.log"; }
left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }

# Run a step in its time box: step NAME SECONDS COMMAND...; output in $W/NAME.log.
step() {
    local name=$1 box=$2; shift 2
    if [ "$box" -lt 10 ]; then log "== $name: skipped, ${box}s left"; return; fi
    log "== $name (time box ${box}s): $*"
    local t=$(date +%s)
    timeout -s TERM -k 15 "$box" "$@" > "$W/$name.log" 2>&1
    local rc=$? wall=$(( $(date +%s) - t ))
    log "   exit $rc, ${wall}s; last line: $(grep -v '^\s*$' "$W/$name.log" | tail -1 | cut -c1-200)"
    printf '%s\t%s\t%s\t%s\n' "$name" "$wall" "$rc" "$*" >> "$W/steps.tsv"
}
box() { local b=$1 l=$(( $(left) - 40 )); echo $(( b < l ? b : l )); }

# 1. carried wheels (fvcore, iopath, yacs, termcolor, nvidia-ml-py) into a temporary site dir
S=$(mktemp -d)
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$S" .whl/*.whl \
        || log "installing .whl/*.whl failed"
else
    log "no .whl/ carried (run tools/gpu_wheels.sh here and carry .whl)"
fi
export PYTHONPATH="$PWD:$S${PYTHONPATH:+:$PYTHONPATH}"

# 2. what is there: imports, GPU, versions
python3 - <<'EOF' 2>&1 | tee -a "$W/session.log"
import importlib
missing = []
for name in ("torch", "torchvision", "fvcore", "iopath", "yacs", "termcolor", "pandas", "rich", "scipy", "psutil",
             "tabulate", "pynvml", "pytest", "timm"):
    try:
        importlib.import_module(name)
    except Exception as e:
        missing.append(f"{name} ({type(e).__name__}: {e})")
print("missing imports: " + ("; ".join(missing) if missing else "none"))
EOF
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm,clocks.sm,temperature.gpu \
    --format=csv > "$W/nvidia-smi.csv" 2>&1
python3 -c "import sys, torch; p = torch.cuda.get_device_properties(0); print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, Python {sys.version.split()[0]}, {p.name}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.1f} GiB, commit ${RESNET_BENCH_GIT_COMMIT:-unknown}')" \
    > "$W/env.txt" 2>&1
log "$(cat "$W/env.txt")"

B="python3 -m bench run --device cuda --quiet"
for s in $STEPS; do
    case $s in
    pytest)  # the gpu suite, compile tests included
        step pytest-gpu "$(box "$PYTEST_S")" python3 -m pytest -m gpu tests/gpu -q -rfEs -p no:cacheprovider \
            --junitxml "$W/pytest-gpu.xml" ;;
    trace)  # why the best mode of the first H100 runs is as fast as it is
        step trace "$(box "$TRACE_S")" $B --models resnet50 --batch-sizes 256 --image-sizes 224 \
            --layouts channels_last --precisions fp16 --compile reduce-overhead --max-time 2 \
            --out "$W/trace-run" --trace "$W/traces" ;;
    maxbatch)  # throughput against batch up to the largest batch (bounded), eager bf16 and fp32
        step maxbatch "$(box "$MAXBATCH_S")" $B --models resnet50 --image-sizes 224 --layouts channels_last \
            --precisions bf16 --compile none --find-max-batch --max-batch 1024 --max-batch-probes 12 \
            --max-time 0.5 --min-samples 5 --max-warmup 1 --out "$W/max-batch" ;;
    quick)  # the quick preset with what is left (its wall time is the step's)
        step quick "$(( $(left) - 40 ))" $B --preset quick --out "$W/quick" ;;
    *) log "unknown step $s" ;;
    esac
done

python3 tools/gpu_summary.py "$W" > "$W/session.md" 2>> "$W/session.log" || log "summary failed"
find "$W" -name '*.json' -path '*traces*' -size +4M -print | while read -r f; do
    echo "left out of the tarball (over 4 MiB): ${f#$W/} ($(du -h "$f" | cut -f1))" | tee -a "$W/session.log" >&2
    echo "${f#$W/}"
done > "$W/.exclude"
log "total $(( $(date +%s) - T0 ))s"
tar czf "$OUT/gpu-session.tar.gz" -C "$W" -X "$W/.exclude" --exclude .exclude .
cp "$W/session.md" "$W/session.log" "$OUT/" 2>/dev/null
ls -l "$OUT"
