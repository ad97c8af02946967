#!/usr/bin/env bash
# Image-level classification on kather2016 (800 tiles, 8 tissue classes): segment -> train
# (3 GAN seeds side by side, one core each) -> assign -> compose -> classify, 5-fold CV, with
# the colour-statistics and segmentation-only baselines. The default recipe with
# benchmarks/configs/issue12_kather.yaml (a wider stain-artefact angle for these tiles).
# Writes benchmarks/results/image_classification_kather2016.json; the cell store, models and
# compositions go to .cache/bench/image_classification_kather2016/. Data from
# $CELLGAN_DATA_ROOT or ../shared/data; the training length via $BENCH_OPTIONS (default
# "--iterations 300 --minutes 45": the recipe's shortest run that is not reported as too short).
set -euo pipefail
cd "$(dirname "$0")/.."
data_root="${CELLGAN_DATA_ROOT:-../shared/data}"
python="${PYTHON:-.venv/bin/python}"
# shellcheck disable=SC2086
"$python" -m cellgan.cli.main bench image-classification --dataset kather2016 --data-root "$data_root" \
    --config benchmarks/configs/issue12_kather.yaml --seeds 3 --jobs 3 --folds 5 \
    --work-dir .cache/bench/image_classification_kather2016 \
    --json benchmarks/results/image_classification_kather2016.json ${BENCH_OPTIONS:---iterations 300 --minutes 45}
