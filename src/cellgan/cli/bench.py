"""``cellgan bench NAME``: run a benchmark on a public dataset and write JSON."""

from __future__ import annotations

import importlib

#: Benchmark modules under ``cellgan.bench``; each defines ``register(subparsers)``.
BENCHMARKS = (
    "segmentation",
    "clustering",
    "composition",
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks on the public datasets (write JSON)")
    bench_subparsers = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name in BENCHMARKS:
        importlib.import_module(f"cellgan.bench.{name}").register(bench_subparsers)
