"""Great Expectations on a mart: the contract check's cost, cold and warm, by rows.

    uv run python bench/expectations_bench.py [--rows 120,10000,100000] [--repeat 3]

Validates fct_sessions rows that keep every promise of its contract (orchestration/checks/
great_expectations.py, `validate_mart`) and prints: the first validation (Great Expectations
imported and its expectations registered, once a process), then per row count the mean of
`--repeat` warm validations of the whole suite and of the rules only Great Expectations holds
(`only_beyond_dbt`, what the check runs when dbt's tests of the same run passed). Numbers go in
bench/README.md, never in a test (tests/test_mart_expectations.py asserts what the check says).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from orchestration.checks.great_expectations import validate_mart
from orchestration.contracts import CONTRACTS_DIR, mart_contract

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the rows the tests use
from mart_rows import sessions_frame  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="120,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    contract = mart_contract(CONTRACTS_DIR / "marts" / "fct_sessions.yaml")

    first = sessions_frame(120)
    t = time.perf_counter()
    assert validate_mart(contract, first).passed
    print(f"first validation in the process (120 rows, Great Expectations imported): {time.perf_counter() - t:6.2f} s")

    for n in (int(r) for r in args.rows.split(",")):
        df = sessions_frame(n)
        for label, only_beyond_dbt in (("whole suite", False), ("beyond dbt only", True)):
            t = time.perf_counter()
            for _ in range(args.repeat):
                assert validate_mart(contract, df, only_beyond_dbt=only_beyond_dbt).passed
            print(f"{n:8d} rows, {label:15s}: {(time.perf_counter() - t) / args.repeat:6.2f} s a validation")


if __name__ == "__main__":
    main()
