#!/usr/bin/env bash
# The main job, end to end: set up (idempotent), then find the cell types of the 11
# bone-marrow images of Hu et al.'s Dataset A (../shared/data/bm_graz, or downloaded
# once into ~/.cache/cellgan) and write a self-contained HTML report.
# About 10-15 minutes on a 2-core CPU (10 of them training); re-running it skips
# what is done, and an interrupted run continues where it stopped.
# Extra arguments go to `cellgan run` (e.g. --minutes 30, --categories 5, --device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/cellgan run --out runs/demo "$@"
echo "Open $(pwd)/runs/demo/report.html in a browser (it needs no server and no network)."
