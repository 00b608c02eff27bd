#!/usr/bin/env bash
# Every GPU measurement the open issues ask for, in one short run on a lent device (docs/training.md, "The fast
# path"; docs/map.md).
# Results land in benchmarks/results/ (and in $OUT when the device tool runs it). Needs the venv: make install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# issue 13: training speed, loader vs resident, fp32 vs bf16, compile off/on
"$PY" benchmarks/bench_train.py --preset gpu --label gpu
# issue 11: a full tile mapped from COGs on the GPU
"$PY" benchmarks/bench_map.py --label gpu --inputs tif --device cuda --workers 16 --no-read-rows
if [ -n "${OUT:-}" ]; then cp benchmarks/results/train-gpu.json benchmarks/results/map-gpu.json "$OUT"/; fi
