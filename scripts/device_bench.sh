#!/usr/bin/env bash
# Runs one `drgnet bench NAME ...` on a lent GPU machine (see the device tool); not part of CI or make.
# Usage: bash scripts/device_bench.sh quality|transfer [bench options]. Wheels missing there travel in .whl/.
set -uo pipefail
bench=$1
shift
# Data-loading processes: the settings that hold them differ per benchmark.
case $bench in
    quality) workers=(--set train.workers=12) ;;
    *) workers=(--set source.workers=12 --set adapt.workers=12) ;;
esac
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout "${BENCH_SECONDS:-480}" python3 -m drgnet.cli bench "$bench" --device cuda "${workers[@]}" --out /tmp/bench "$@" \
    2>&1 | grep -v "it/s\]" | tee "$OUT/log.txt"
cp /tmp/bench/*.md /tmp/bench/*.json "$OUT/" 2>/dev/null
exit 0
