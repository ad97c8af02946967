#!/usr/bin/env bash
# Cell-type clustering: the GAN (K = 4) and two k-means baselines, 3 seeds of 30 minutes.
# Usage: benchmarks/run_clustering.sh [DATASET ...] (default: crchistophenotypes bm_graz)
# Data from $CELLGAN_DATA_ROOT or ../shared/data. Writes benchmarks/results/clustering_<dataset>.json;
# the cell stores, models, assignments and galleries go to .cache/bench/clustering_<dataset>/.
# Takes about 3 × 30 minutes of training per dataset on a CPU; extra options via $BENCH_OPTIONS
# (e.g. BENCH_OPTIONS="--width 32 --minutes 10").
set -euo pipefail
cd "$(dirname "$0")/.."
data_root="${CELLGAN_DATA_ROOT:-../shared/data}"
python="${PYTHON:-.venv/bin/python}"
datasets=("$@")
[ ${#datasets[@]} -eq 0 ] && datasets=(crchistophenotypes bm_graz)
for dataset in "${datasets[@]}"; do
    # shellcheck disable=SC2086
    "$python" -m cellgan.cli.main bench clustering \
        --dataset "$dataset" --data-root "$data_root" \
        --json "benchmarks/results/clustering_${dataset}.json" \
        --seeds 3 --minutes 30 ${BENCH_OPTIONS:-}
done
