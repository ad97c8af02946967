#!/usr/bin/env bash
# Cell-type clustering: the GAN (K = 4) and the k-means baselines, 3 seeds of 30 minutes side
# by side (--jobs 3, about 35 minutes a run on 2 cores), for each recipe of $RECIPES.
# Usage: [RECIPES="default paper"] benchmarks/run_clustering.sh [DATASET ...]
#   DATASET: crchistophenotypes (default), bm_graz, consep.
#   A recipe is a shipped one (src/cellgan/recipes/<name>.yaml: default, paper) or an
#   ablation in benchmarks/configs/<name>.yaml; it sets the patch mode and the training.
# Writes benchmarks/results/clustering_<dataset>.json for the default recipe and
# clustering_<dataset>_<recipe>.json for the others; the cell stores, models and galleries go
# to .cache/bench/clustering_<dataset>/. Data from $CELLGAN_DATA_ROOT or ../shared/data;
# extra options via $BENCH_OPTIONS (e.g. BENCH_OPTIONS="--minutes 10").
# consep is the held-out set that confirms, once, the recipe chosen on crchistophenotypes:
# it runs with one recipe only (RECIPES=default benchmarks/run_clustering.sh consep).
set -euo pipefail
cd "$(dirname "$0")/.."
data_root="${CELLGAN_DATA_ROOT:-../shared/data}"
python="${PYTHON:-.venv/bin/python}"
datasets=("$@")
[ ${#datasets[@]} -eq 0 ] && datasets=(crchistophenotypes)
read -r -a recipes <<< "${RECIPES:-default paper}"
for dataset in "${datasets[@]}"; do
    if [ "$dataset" = consep ] && [ ${#recipes[@]} -ne 1 ]; then
        echo "consep is the held-out confirmation set: set RECIPES to the one recipe chosen on crchistophenotypes" >&2
        exit 2
    fi
done
for dataset in "${datasets[@]}"; do
    for recipe in "${recipes[@]}"; do
        suffix="_$recipe" source="$recipe"
        [ "$recipe" = default ] && suffix=""
        [ -f "benchmarks/configs/$recipe.yaml" ] && source="benchmarks/configs/$recipe.yaml"
        # shellcheck disable=SC2086
        "$python" -m cellgan.cli.main bench clustering \
            --dataset "$dataset" --data-root "$data_root" --recipe "$source" \
            --json "benchmarks/results/clustering_${dataset}${suffix}.json" \
            --seeds 3 --jobs 3 --minutes 30 ${BENCH_OPTIONS:-}
    done
done
