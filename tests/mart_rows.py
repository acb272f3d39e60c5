"""Mart rows that keep their contract, for the tests and bench/ alike (pandas only)."""

from __future__ import annotations

import pandas as pd

ROWS = 120  # the tests' default


def sessions_frame(n: int = ROWS) -> pd.DataFrame:
    """`n` rows that keep every promise of the fct_sessions contract; session_key s0000, s0001, ..."""
    started = pd.Timestamp("2026-01-05 00:00") + pd.to_timedelta(range(n), unit="min")
    sources = ["airkit", "track", "atomic", "altis"]
    return pd.DataFrame({
        "session_key": [f"s{i:04d}" for i in range(n)],
        "source": [sources[i % 4] for i in range(n)],
        "session_id": [f"vendor-{i}" if i % 4 < 2 else None for i in range(n)],
        "session_group": [f"group-{i % 7}" for i in range(n)],
        "user_id": [f"user-{i % 9}" for i in range(n)],
        "app": ["web"] * n,
        "started_at": started,
        "ended_at": started + pd.to_timedelta([i % 5 for i in range(n)], unit="min"),
        "duration_seconds": [float(60 * (i % 5)) for i in range(n)],
        "events": [1 + i % 6 for i in range(n)],
        "page_views": [i % 3 for i in range(n)],
        "device_class": [["Desktop", "Mobile", "Tablet", "Unknown"][i % 4] for i in range(n)],
        "csat_score": pd.array([1 + i % 5 if i % 4 == 0 else None for i in range(n)], dtype="Int64"),
        "time_on_page_seconds": [float(i) if i % 4 == 0 else None for i in range(n)],
        "action_runs": pd.array([i % 3 if i % 4 == 0 else None for i in range(n)], dtype="Int64"),
    })
