"""Check a mart's rows against its data contract with Great Expectations (1.x).

The contract (data_contracts/marts/*.yaml, loaded by `orchestration.contracts`) compiles to one
expectation suite: the table has exactly the contract's columns, required columns are not null,
the primary key is unique, enum / minimum / maximum / pattern hold, and every `custom`
great-expectations quality rule runs as the expectation it names. `sql` rules are dbt's.
With `only_beyond_dbt`, the suite holds only the rules dbt cannot express (the `custom`
great-expectations ones): the contract check runs that when dbt's model contract and tests,
compiled from the same contract, have checked the column rules in the same run (checks/marts.py).

Great Expectations is imported inside the functions: the import takes seconds (~2 s) and the
Dagster code location imports this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from orchestration.contracts import ContractError, MartContract

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations import ExpectationSuite
    from great_expectations.data_context import AbstractDataContext

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class MartValidation:
    """The outcome of checking one mart's rows against its contract."""

    passed: bool
    rows_checked: int
    failures: list[str] = field(default_factory=list)
    rules_checked: int = 0
    contract: str = ""

    @property
    def message(self) -> str:
        if self.failures:
            return "\n".join(self.failures)
        return f"all {self.rules_checked} rules hold on {self.rows_checked} rows"


def _context() -> AbstractDataContext:
    """A fresh in-memory GX context, without analytics or progress bars.

    A new one per validation: names of data sources and suites cannot clash between calls,
    and it costs a few milliseconds."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _column_rules(contract: MartContract, add: Callable[..., None]) -> None:
    """The column rules, which dbt's model contract and tests hold too (dbt_yaml.py)."""
    import great_expectations.expectations as gxe

    t = contract.name
    names = [c.name for c in contract.columns]
    add(f"{t}: has exactly the contract's {len(names)} columns", gxe.ExpectTableColumnsToMatchSet,
        column_set=names, exact_match=True)
    for c in contract.columns:
        if c.required:
            add(f"{t}.{c.name}: not null", gxe.ExpectColumnValuesToNotBeNull, column=c.name)
    key = contract.primary_key
    if len(key) == 1:
        add(f"{t}.{key[0]}: unique", gxe.ExpectColumnValuesToBeUnique, column=key[0])
    elif key:
        add(f"{t}: ({', '.join(key)}) unique", gxe.ExpectCompoundColumnsToBeUnique, column_list=list(key))
    for c in contract.columns:
        if c.enum is not None:
            add(f"{t}.{c.name}: one of {', '.join(_fmt(v) for v in c.enum)}",
                gxe.ExpectColumnValuesToBeInSet, column=c.name, value_set=list(c.enum))
        if c.minimum is not None or c.maximum is not None:
            if c.minimum is not None and c.maximum is not None:
                what = f"between {_fmt(c.minimum)} and {_fmt(c.maximum)}"
            elif c.minimum is not None:
                what = f"at least {_fmt(c.minimum)}"
            else:
                what = f"at most {_fmt(c.maximum)}"
            add(f"{t}.{c.name}: {what}", gxe.ExpectColumnValuesToBeBetween,
                column=c.name, min_value=c.minimum, max_value=c.maximum)
        if c.pattern is not None:
            add(f"{t}.{c.name}: matches {c.pattern}", gxe.ExpectColumnValuesToMatchRegex,
                column=c.name, regex=c.pattern)


def _compile(contract: MartContract, only_beyond_dbt: bool = False) -> ExpectationSuite:
    """The suite for `contract` (with `only_beyond_dbt`, its great-expectations rules alone);
    needs an active GX context (see `_context`)."""
    import great_expectations as gx
    from great_expectations.expectations.registry import get_expectation_impl

    t = contract.name
    expectations = []

    def add(rule: str, expectation_cls: type, **kwargs: Any) -> None:
        meta = {**(kwargs.pop("meta", None) or {}), "rule": rule, "contract": t}
        expectations.append(expectation_cls(meta=meta, **kwargs))

    if not only_beyond_dbt:
        _column_rules(contract, add)
    for r in contract.rules:
        if r.kind != "great-expectations":
            continue  # `sql` rules are dbt tests
        rule = f"{t}: {r.name} ({r.description.strip()})" if r.description.strip() else f"{t}: {r.name}"
        try:
            expectation_cls = get_expectation_impl(r.expectation)
            add(rule, expectation_cls, **dict(r.kwargs or {}))
        except Exception as exc:  # unknown expectation, or kwargs it does not take
            raise ContractError(f"{contract.path}: rule {r.name}: {r.expectation}: {exc}") from exc

    return gx.ExpectationSuite(name=f"{t}_contract", expectations=expectations,
                               meta={"contract": str(contract.path)})


def expectation_suite(contract: MartContract) -> ExpectationSuite:
    """The Great Expectations suite compiled from a mart contract (in a fresh ephemeral context).

    Each expectation's `meta["rule"]` is the rule's human name, e.g.
    `fct_sessions.device_class: one of Desktop, Mobile, Tablet, Unknown`."""
    context = _context()
    return context.suites.add(_compile(contract))


def _examples(rows: list, key: list[str]) -> str:
    """Up to MAX_EXAMPLES distinct failing rows, named by their primary key (or row number)."""
    import pandas as pd

    seen: list[str] = []
    for row in rows:
        if isinstance(row, dict) and key:
            parts = []
            for k in key:
                v = row.get(k)
                parts.append(f"{k}={'null' if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)) else v}")
            name = ", ".join(parts)
            name = f"({name})" if len(key) > 1 else name
        else:
            name = f"row {row}"
        if name not in seen:
            seen.append(name)
        if len(seen) == MAX_EXAMPLES:
            break
    return ", ".join(seen)


def _exception_message(info: Any) -> str | None:
    """GX reports an error either flat or keyed by the metric that raised it."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "error").removeprefix("Error: ")
    for sub in info.values():
        if isinstance(sub, dict) and sub.get("raised_exception"):
            return str(sub.get("exception_message") or "error").removeprefix("Error: ")
    return None


def _failure(rule: str, result: dict, exception: str | None, rows: int, key: list[str]) -> str:
    if exception:
        return f"{rule} — could not be checked: {exception}"
    if "unexpected_count" in result:
        line = f"{rule} — {result['unexpected_count']} of {rows} rows break it"
        examples = _examples(result.get("unexpected_index_list") or result.get("partial_unexpected_index_list") or [],
                             key)
        return f"{line}, e.g. {examples}" if examples else line
    mismatched = (result.get("details") or {}).get("mismatched")
    if isinstance(mismatched, dict):
        parts = [f"{what} columns: {', '.join(map(str, mismatched[what]))}"
                 for what in sorted(mismatched, key=lambda w: w != "missing") if mismatched[what]]
        return f"{rule} — {'; '.join(parts)}"
    if "observed_value" in result:
        return f"{rule} — observed {result['observed_value']}"
    return f"{rule} — does not hold"


def validate_mart(contract: MartContract, df: pd.DataFrame, only_beyond_dbt: bool = False) -> MartValidation:
    """Check a mart's rows (a pandas DataFrame) against its contract's expectation suite (with
    `only_beyond_dbt`, the rules dbt cannot express alone)."""
    context = _context()
    suite = _compile(contract, only_beyond_dbt)
    batch = (context.data_sources.add_pandas(f"{contract.name}_rows")
             .add_dataframe_asset(contract.name)
             .add_batch_definition_whole_dataframe("all_rows")
             .get_batch(batch_parameters={"dataframe": df}))
    # Failing rows are named by their key; GX fails every check if an index column is missing.
    key = [k for k in contract.primary_key if k in df.columns]
    result_format: dict[str, Any] = {"result_format": "COMPLETE"}
    if key:
        result_format["unexpected_index_column_names"] = key
    results = batch.validate(suite, result_format=result_format)

    order = {e.meta["rule"]: i for i, e in enumerate(suite.expectations)}
    failed = sorted((r for r in results.results if not r.success),
                    key=lambda r: order.get((r.expectation_config.meta or {}).get("rule"), len(order)))
    failures = []
    for r in failed:
        meta = r.expectation_config.meta or {}
        rule = meta.get("rule") or r.expectation_config.type
        failures.append(_failure(rule, r.result or {}, _exception_message(r.exception_info), len(df), key))
    return MartValidation(passed=bool(results.success) and not failures, rows_checked=len(df),
                          failures=failures, rules_checked=len(suite.expectations), contract=contract.name)
