#!/usr/bin/env bash
# The performance gates of one pull request: the exact params/MACs gate and the speed gate
# against the base revision (interleaved rounds of the base's worktree and this tree), a Markdown
# summary appended to $GITHUB_STEP_SUMMARY, the HTML page and the raw samples as files, and, when
# PERF_DB names a results database, both sides' rounds appended to it.
#
# perf.yml runs exactly this script; run it locally the same way:
#   GITHUB_STEP_SUMMARY=/tmp/summary.md examples/github-actions/perf-gate.sh origin/main
#
# Arguments: BASE_REF (default $PERF_BASE_REF, else origin/main), then any `resnet-bench ci` flags
# (e.g. --models resnet18,resnet50 --image-sizes 64 --report-only).
# Environment: RESNET_BENCH (the command, default resnet-bench), PERF_HTML (default
# perf-report.html), PERF_JSON (default speed-gate.json), PERF_DB (a SQLite file or a PostgreSQL
# URL; empty: no history). Exit status: resnet-bench ci's (1: a gate failed, 2: bad input).
set -euo pipefail

base_ref="${1:-${PERF_BASE_REF:-origin/main}}"
if [ "$#" -gt 0 ]; then shift; fi
read -r -a rb <<< "${RESNET_BENCH:-resnet-bench}"
args=(ci --base-ref "$base_ref" --html "${PERF_HTML:-perf-report.html}" --out "${PERF_JSON:-speed-gate.json}")
if [ -n "${PERF_DB:-}" ]; then
  args+=(--db "$PERF_DB")
fi
exec "${rb[@]}" "${args[@]}" "$@"
