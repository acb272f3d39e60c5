"""The dbt project's schema YAML, written from the data contracts (one source of truth):
sources from the source contracts, mart model contracts and tests from the mart contracts; and,
with them, the events layer's contracts (data_contracts/lake/, from the source contracts).

`python -m orchestration contracts --write-dbt` regenerates the files; a test fails when they
are out of date with the contracts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from orchestration.contracts import CONTRACTS_DIR, LEADING_DESCRIPTIONS, MartColumn, MartContract, SourceContract

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
# The dbt of this environment (dagster-dbt would look on PATH).
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt")) if Path(sys.executable).with_name("dbt").exists() else "dbt"
SOURCES_YML = DBT_PROJECT_DIR / "models" / "staging" / "_sources.yml"
MARTS_YML = DBT_PROJECT_DIR / "models" / "marts" / "_marts.yml"
HEADER = "# Generated from data_contracts/ by `python -m orchestration contracts --write-dbt`: do not edit.\n"


def _relative(path: Path) -> str:
    return str(path.relative_to(CONTRACTS_DIR.parent))


def sources_yaml(contracts: dict[str, SourceContract]) -> str:
    tables = []
    for name, c in sorted(contracts.items()):
        described = {f.column: f.description for f in c.fields if f.description}
        columns = [{"name": col, "data_type": typ.lower(),
                    "description": " ".join((LEADING_DESCRIPTIONS.get(col) or described.get(col) or "").split())}
                   for col, typ in c.lake_schema().items()]
        tables.append({
            "name": f"{name}_events",
            "description": " ".join(c.description.split()) + " Deduplicated events, one Parquet file per event hour.",
            "meta": {"data_contract": _relative(CONTRACTS_DIR / "sources" / f"{name}.yaml"),
                     "location": "{lake_root}/" + name + "/events/event_hour={YYYY-MM-DDTHH}/part_0.parquet"},
            "columns": columns,
        })
    doc = {"version": 2, "sources": [{
        "name": "lake",
        "description": "The events layer of the Parquet lake, written by the Dagster `<source>_events` assets. "
                       "Read through the `lake_events` macro (external Parquet, hive-partitioned by event_hour).",
        "tables": tables,
    }]}
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=120, allow_unicode=True)


def _column_tests(c: MartColumn) -> list:
    tests: list = []
    if c.enum:
        tests.append({"accepted_values": {"arguments": {"values": list(c.enum)}}})
    if c.minimum is not None or c.maximum is not None:
        args = {k: v for k, v in (("min_value", c.minimum), ("max_value", c.maximum)) if v is not None}
        tests.append({"accepted_range": {"arguments": args}})
    if c.pattern:
        tests.append({"matches_pattern": {"arguments": {"pattern": c.pattern}}})
    return tests


def marts_yaml(marts: dict[str, MartContract]) -> str:
    models = []
    for name, m in sorted(marts.items()):
        columns = []
        for c in m.columns:
            column = {"name": c.name, "data_type": c.data_type.lower(), "description": c.description}
            if c.required:
                column["constraints"] = [{"type": "not_null"}]
            tests = _column_tests(c)
            if m.primary_key == [c.name]:
                tests.insert(0, "unique")
            if tests:
                column["data_tests"] = tests
            columns.append(column)
        model_tests: list = []
        if len(m.primary_key) > 1:
            model_tests.append({"unique_combination": {"arguments": {"columns": m.primary_key}}})
        for r in m.rules:
            if r.kind == "sql":
                model_tests.append({"contract_sql_rule": {
                    "name": f"{name}__{r.name}",
                    "description": r.description,
                    "arguments": {"query": r.query, "must_be": r.must_be}}})
        model = {"name": name, "description": m.description,
                 "config": {"contract": {"enforced": True}, "meta": {"data_contract": _relative(m.path)}}}
        if model_tests:
            model["data_tests"] = model_tests
        model["columns"] = columns
        models.append(model)
    return HEADER + yaml.safe_dump({"version": 2, "models": models}, sort_keys=False, width=120, allow_unicode=True)


def expected_files() -> dict[Path, str]:
    """Every file generated from the contracts: dbt's YAML, and the events layer's contracts
    (data_contracts/lake/, see orchestration/lake_contracts.py)."""
    from orchestration.contracts import load_mart_contracts, load_source_contracts
    from orchestration.lake_contracts import expected_lake_contracts

    sources = load_source_contracts()
    return {SOURCES_YML: sources_yaml(sources), MARTS_YML: marts_yaml(load_mart_contracts()),
            **expected_lake_contracts(sources)}


def _orphans(expected: dict[Path, str]) -> list[Path]:
    """Generated lake contracts whose source contract is gone."""
    from orchestration.lake_contracts import LAKE_CONTRACTS_DIR

    return sorted(p for p in LAKE_CONTRACTS_DIR.glob("*.yaml") if p not in expected)


def stale_files() -> list[Path]:
    expected = expected_files()
    return [p for p, text in expected.items() if not p.exists() or p.read_text() != text] + _orphans(expected)


def write_dbt_yaml() -> list[Path]:
    """Write the generated files (and remove orphaned ones); returns those that changed."""
    changed = []
    expected = expected_files()
    for path, text in expected.items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    for path in _orphans(expected):
        path.unlink()
        changed.append(path)
    return changed
