"""Realistic sample exports for every source, in each vendor's landing layout."""

from __future__ import annotations

import importlib
import random
from datetime import datetime
from pathlib import Path

from sample_exports.common import GenerationSummary

SOURCES = ("omny", "atomic", "airkit", "altis", "track")


def generate_all(out: Path, start: datetime, hours: int, seed: int,
                 sources: tuple[str, ...] = SOURCES) -> list[GenerationSummary]:
    """Write `hours` arrival hours of exports from `start` for each source; deterministic per seed."""
    summaries = []
    for source in sources:
        module = importlib.import_module(f"sample_exports.{source}")
        summaries.append(module.generate(Path(out), start, hours, random.Random(f"{seed}:{source}")))
    return summaries
