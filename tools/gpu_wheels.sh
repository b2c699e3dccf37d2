#!/usr/bin/env bash
# Build .whl/ (git-ignored): the wheels tools/gpu_session.sh installs on a GPU machine that has
# no internet. Run here, where pip reaches the package index. Pure-Python wheels only, so the
# Python version there does not matter; nvidia-ml-py comes along in case the image lacks it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .whl
"$PY" -m pip wheel -q --no-deps -w .whl fvcore==0.1.5.post20221221 iopath==0.1.10
"$PY" -m pip download -q --no-deps -d .whl yacs termcolor nvidia-ml-py
ls -l .whl
