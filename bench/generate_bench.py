"""Sample exports: how long each source's generator takes for a day of arrival hours.

    .venv/bin/python bench/generate_bench.py [--hours 24] [--repeat 3] [--seed 7]

Prints, per source, the best wall time of `--repeat` runs (each into a fresh folder under
bench/out/generate/), the records written and records/s. Every generator is warmed first with
three hours (imports; Atomic's contract load, at its first CSV or Parquet file), so the times are
the generation itself. The tests used to
hold each source to 2 s a day; the numbers go in bench/README.md, never in a test.
"""

from __future__ import annotations

import argparse
import random
import shutil
import time
from datetime import datetime, timezone
from importlib import import_module

import bench_dirs
from sample_exports import SOURCES

OUT = bench_dirs.OUT / "generate"
START = datetime(2026, 1, 5, 20, tzinfo=timezone.utc)  # a day that crosses midnight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    print(f"{'source':<8} {'best s':>7} {'records':>8} {'records/s':>10}")
    for source in SOURCES:
        generator = import_module(f"sample_exports.{source}")
        folder = OUT / source
        shutil.rmtree(folder, ignore_errors=True)
        generator.generate(folder / "warm", START, 3, random.Random(args.seed))
        best, records = float("inf"), 0
        for n in range(args.repeat):
            began = time.perf_counter()
            summary = generator.generate(folder / str(n), START, args.hours, random.Random(args.seed))
            best = min(best, time.perf_counter() - began)
            records = summary.records
        shutil.rmtree(folder)
        print(f"{source:<8} {best:>7.2f} {records:>8} {records / best:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
