#!/usr/bin/env bash
# Image-level composition on CRCHistoPhenotypes: segment -> train -> assign -> compose on the
# detected nuclei, scored against the labelled nuclei. Writes
# benchmarks/results/composition_crchistophenotypes.json. Extra options via $BENCH_OPTIONS
# (e.g. BENCH_OPTIONS="--minutes 6").
set -euo pipefail
cd "$(dirname "$0")/.."
data_root="${CELLGAN_DATA_ROOT:-../shared/data}"
python="${PYTHON:-.venv/bin/python}"
# shellcheck disable=SC2086
"$python" -m cellgan.cli.main bench composition --data-root "$data_root" \
    --json benchmarks/results/composition_crchistophenotypes.json ${BENCH_OPTIONS:-}
