"""Where the bench writes: its generated files and scratch work under `bench/out/` (or `BENCH_OUT`),
its results under `bench/results/` (or `BENCH_RESULTS`; the test of `make bench` keeps both out of
the repo). Standard library only: the measured processes import it."""

from __future__ import annotations

import os
from pathlib import Path

BENCH = Path(__file__).resolve().parent
OUT = Path(os.environ.get("BENCH_OUT") or BENCH / "out")
RESULTS = Path(os.environ.get("BENCH_RESULTS") or BENCH / "results")
