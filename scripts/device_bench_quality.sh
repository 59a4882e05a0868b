#!/usr/bin/env bash
# Runs `drgnet bench quality` on a lent GPU machine (see the device tool); not part of CI or make.
# Wheels missing there travel in .whl/ (git-ignored).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout "${BENCH_SECONDS:-480}" python3 -m drgnet.cli bench quality --device cuda --workers 12 --out /tmp/bq "$@" \
    2>&1 | grep -v "it/s\]" | tee "$OUT/log.txt"
cp /tmp/bq/quality.md /tmp/bq/quality.json "$OUT/" 2>/dev/null
for f in /tmp/bq/runs/*/history.json; do cp "$f" "$OUT/history-$(basename "$(dirname "$f")").json"; done 2>/dev/null
exit 0
