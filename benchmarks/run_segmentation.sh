#!/usr/bin/env bash
# Score the nuclei segmentation on the three datasets with nucleus-level ground truth.
# Usage: benchmarks/run_segmentation.sh [DATA_ROOT] (default: $CELLGAN_DATA_ROOT or ../shared/data)
# Writes benchmarks/results/segmentation_<dataset>.json, one dataset after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
data_root="${1:-${CELLGAN_DATA_ROOT:-../shared/data}}"
cellgan="${CELLGAN:-.venv/bin/cellgan}"
for dataset in bm_graz crchistophenotypes monuseg; do
    "$cellgan" bench segmentation \
        --dataset "$dataset" --data-root "$data_root" \
        --json "benchmarks/results/segmentation_${dataset}.json"
done
