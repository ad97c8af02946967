#!/usr/bin/env bash
# Image-level composition on CRCHistoPhenotypes: segment -> train -> assign -> compose on the
# detected nuclei, scored against the labelled nuclei. Writes
# benchmarks/results/composition_crchistophenotypes.json with the default recipe, or with
# $RECIPE (benchmarks/configs/<RECIPE>.yaml, e.g. RECIPE=reinhard_own_q)
# composition_crchistophenotypes_<RECIPE>.json. Extra options via $BENCH_OPTIONS
# (default "--seeds 3 --jobs 3": three GANs side by side, 30 minutes each).
set -euo pipefail
cd "$(dirname "$0")/.."
data_root="${CELLGAN_DATA_ROOT:-../shared/data}"
python="${PYTHON:-.venv/bin/python}"
recipe="${RECIPE:-default}" suffix="" source="${RECIPE:-default}"
[ "$recipe" != default ] && suffix="_$recipe"
[ -f "benchmarks/configs/$recipe.yaml" ] && source="benchmarks/configs/$recipe.yaml"
# shellcheck disable=SC2086
"$python" -m cellgan.cli.main bench composition --data-root "$data_root" --recipe "$source" \
    --work-dir .cache/bench/composition_crchistophenotypes \
    --json "benchmarks/results/composition_crchistophenotypes${suffix}.json" ${BENCH_OPTIONS:---seeds 3 --jobs 3}
