"""What the command line prints: plain aligned tables (the backfill ledger, generate, pull)."""

from __future__ import annotations


def print_table(headers: list[str], rows: list[list]) -> None:
    """Columns as wide as their widest cell: the first left-aligned, the numbers right-aligned."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    print("  ".join(str(h).ljust(w) if i == 0 else str(h).rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    for row in rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
