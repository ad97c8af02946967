#!/usr/bin/env bash
# Cell-type clustering: the GAN (K = 4) and the k-means baselines, 3 seeds of 30 minutes,
# on masked patches (the paper's) and on faded ones (the nucleus with its surroundings faded),
# with the default recipe and with self-labels (benchmarks/configs/self_labels.yaml).
# Usage: benchmarks/run_clustering.sh [DATASET ...] (default: crchistophenotypes bm_graz)
# Data from $CELLGAN_DATA_ROOT or ../shared/data. Writes benchmarks/results/clustering_<dataset>.json
# (masked, default recipe), clustering_<dataset>_faded.json, clustering_<dataset>_self_labels.json
# and so on; the cell stores, models, assignments and galleries go to .cache/bench/clustering_<dataset>/.
# The 3 seeds train at the same time (--jobs 3), so each run takes about 35 minutes;
# $PATCH_MODES picks the modes (default "masked faded"), $RECIPES the recipes (default
# "default self_labels": a name other than default is benchmarks/configs/<name>.yaml, e.g.
# PATCH_MODES=faded RECIPES=self_labels_own_q for Q on a trunk of its own, and
# PATCH_MODES=faded RECIPES=reinhard_own_q for that on colour-normalised images, the best),
# extra options via $BENCH_OPTIONS (e.g. BENCH_OPTIONS="--width 32 --minutes 10").
# consep is the held-out set that confirms, once, the recipe chosen on crchistophenotypes:
# it runs only with one patch mode and one recipe, e.g. PATCH_MODES=masked RECIPES=default
# benchmarks/run_clustering.sh consep.
set -euo pipefail
cd "$(dirname "$0")/.."
data_root="${CELLGAN_DATA_ROOT:-../shared/data}"
python="${PYTHON:-.venv/bin/python}"
datasets=("$@")
[ ${#datasets[@]} -eq 0 ] && datasets=(crchistophenotypes bm_graz)
read -r -a modes <<< "${PATCH_MODES:-masked faded}"
read -r -a recipes <<< "${RECIPES:-default self_labels}"
for dataset in "${datasets[@]}"; do
    if [ "$dataset" = consep ] && [ $((${#modes[@]} * ${#recipes[@]})) -ne 1 ]; then
        echo "consep is the held-out confirmation set: set PATCH_MODES and RECIPES to the one" \
            "patch mode and recipe chosen on crchistophenotypes" >&2
        exit 2
    fi
done
for dataset in "${datasets[@]}"; do
    for mode in "${modes[@]}"; do
        for recipe in "${recipes[@]}"; do
            suffix="" config=()
            [ "$mode" != masked ] && suffix="_$mode"
            if [ "$recipe" != default ]; then
                suffix="${suffix}_$recipe"
                config=(--config "benchmarks/configs/$recipe.yaml")
            fi
            # shellcheck disable=SC2086
            "$python" -m cellgan.cli.main bench clustering \
                --dataset "$dataset" --data-root "$data_root" --patch-mode "$mode" "${config[@]}" \
                --json "benchmarks/results/clustering_${dataset}${suffix}.json" \
                --seeds 3 --jobs 3 --minutes 30 ${BENCH_OPTIONS:-}
        done
    done
done
