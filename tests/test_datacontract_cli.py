"""datacontract-cli, the ODCS reference tool, accepts our contracts as written and tests them
against a built warehouse: a mart against the DuckDB file, the events layer against the lake's
Parquet. It runs from its own environment (.venv-datacontract, pinned by
data_contracts/datacontract-cli/uv.lock), which `make test` installs; without it these tests
skip, except in CI, where they fail."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
import yaml

from orchestration.backfill import run_backfill
from orchestration.contracts import CONTRACTS_DIR, load_mart_contracts, load_source_contracts
from orchestration.datacontract_cli import EXECUTABLE, REPO, TOOL_PROJECT, datacontract_test
from orchestration.lake_contracts import lake_contract_path, lake_files
from orchestration.settings import Settings
from sample_exports import generate_all

UTC = timezone.utc
START = datetime(2026, 1, 5, 20, tzinfo=UTC)
HOURS = 3
MART = CONTRACTS_DIR / "marts" / "fct_sessions.yaml"
LAKE = CONTRACTS_DIR / "lake" / "atomic_events.yaml"  # JSON and string-list columns, enums, a pattern

if not EXECUTABLE.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"datacontract-cli is not installed at {EXECUTABLE}: `make test` installs it (make datacontract)")
    pytest.skip("datacontract-cli is not installed: `make datacontract`", allow_module_level=True)


def test_make_test_installs_the_tool_from_its_own_lock():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test: .*\bdatacontract\b", makefile, re.M)
    assert '"datacontract-cli[duckdb]==1.2.8"' in (TOOL_PROJECT / "pyproject.toml").read_text()
    assert 'name = "datacontract-cli"\nversion = "1.2.8"' in (TOOL_PROJECT / "uv.lock").read_text()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> tuple[Path, Settings]:
    """A built warehouse laid out as the contracts' servers name it, relative to `root`:
    root/data/lake and root/data/warehouse.duckdb."""
    root = tmp_path_factory.mktemp("datacontract")
    generate_all(root / "landing", START, HOURS, seed=11)
    settings = Settings(landing=str(root / "landing"), lake=str(root / "data" / "lake"),
                        duckdb_path=str(root / "data" / "warehouse.duckdb"), start=datetime(2026, 1, 1, tzinfo=UTC))
    report = run_backfill(settings, START, START + timedelta(hours=HOURS + 1), None)
    assert report.ok, report.errors + report.failed_checks
    return root, settings


def datacontract(contract: Path, cwd: Path, tmp_path: Path) -> tuple[int, dict, str]:
    """`datacontract test CONTRACT`, as a user runs it, from `cwd`: exit code, JSON results, output."""
    out = tmp_path / f"{contract.stem}-{len(list(tmp_path.glob('*.json')))}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATACONTRACT_")}
    proc = subprocess.run([str(EXECUTABLE), "test", str(contract), "--output", str(out), "--output-format", "json"],
                          cwd=cwd, env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=600)
    results = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, results, proc.stdout + proc.stderr


def failed(results: dict) -> list[tuple[str, str | None]]:
    return [(c["type"], c.get("field")) for c in results.get("checks", []) if c["result"] not in ("passed", "warning")]


def test_a_mart_and_a_lake_contract_pass_datacontract_test_as_written(warehouse, tmp_path):
    root, _ = warehouse
    code, results, output = datacontract(MART, root, tmp_path)
    assert code == 0, output
    assert results["result"] == "passed" and results["server"] == "warehouse", output
    kinds = {c["type"] for c in results["checks"]}
    assert {"field_is_present", "field_type", "field_required", "field_enum", "field_primary_key_unique",
            "model_quality_sql"} <= kinds, kinds

    code, results, output = datacontract(LAKE, root, tmp_path)
    assert code == 0, output
    assert results["server"] == "lake" and not failed(results), output
    # datacontract-cli does not check column types in Parquet files (a warning per column): the
    # types are checked below against the files themselves.
    assert {c["type"] for c in results["checks"] if c["result"] == "warning"} == {"field_type"}
    passed = {(c["type"], c.get("field")) for c in results["checks"] if c["result"] == "passed"}
    assert ("primary_key_unique", None) in passed and ("field_enum", "analytics_event") in passed
    assert ("field_regex", "event_hour") in passed and ("field_required", "event_id") in passed


def _edited(contract: Path, tmp_path: Path, edit) -> Path:
    doc = yaml.safe_load(contract.read_text())
    edit(doc)
    copy = tmp_path / contract.name
    copy.write_text(yaml.safe_dump(doc, sort_keys=False))
    return copy


def _prop(doc: dict, name: str) -> dict:
    return next(p for p in doc["schema"][0]["properties"] if p["name"] == name)


def test_datacontract_test_fails_a_broken_contract(warehouse, tmp_path):
    root, _ = warehouse

    def no_mobile(doc):
        _prop(doc, "device_class")["enum"] = [e for e in _prop(doc, "device_class")["enum"] if e["value"] != "Mobile"]

    def key_as_integer(doc):
        _prop(doc, "session_key").update(logicalType="integer", physicalType="BIGINT")

    def schema_in_physical_name(doc):  # how the contracts were written before: datacontract finds no table
        doc["schema"][0]["physicalName"] = "marts.fct_sessions"

    for edit, broken in ((no_mobile, ("field_enum", "device_class")), (key_as_integer, ("field_type", "session_key"))):
        code, results, output = datacontract(_edited(MART, tmp_path, edit), root, tmp_path)
        assert code != 0 and broken in failed(results), output
    code, _, output = datacontract(_edited(MART, tmp_path, schema_in_physical_name), root, tmp_path)
    assert code != 0 and "Could not read model 'marts.fct_sessions'" in output, output

    def renamed_column(doc):
        _prop(doc, "card_context_card_template_id")["name"] = "card_template_id"

    def json_physical_type(doc):  # datacontract-cli knows no JSON type: the lake contracts say VARCHAR
        _prop(doc, "properties_values").update(logicalType="object", physicalType="JSON")

    code, results, output = datacontract(_edited(LAKE, tmp_path, renamed_column), root, tmp_path)
    assert code != 0 and ("field_is_present", "card_template_id") in failed(results), output
    code, results, output = datacontract(_edited(LAKE, tmp_path, json_physical_type), root, tmp_path)
    assert code != 0 and any("None" in (c.get("reason") or "") for c in results["checks"] if c["result"] != "passed"), output


def test_the_runner_points_the_contracts_at_the_configured_warehouse(warehouse):
    """`make contracts-test` runs from the repo root on WAREHOUSE_DUCKDB / WAREHOUSE_LAKE, wherever they are."""
    _, settings = warehouse
    for contract in (MART, CONTRACTS_DIR / "lake" / "track_events.yaml"):
        outcome = datacontract_test(contract, settings)
        assert outcome.ok and not outcome.skipped, outcome.output
        assert "Data contract is valid" in outcome.output or "Data contract has warnings" in outcome.output
    missing = dataclasses.replace(settings, lake=str(Path(settings.lake).parent / "nowhere"))
    assert not datacontract_test(CONTRACTS_DIR / "lake" / "track_events.yaml", missing).ok


def _declared(prop: dict) -> str:
    if prop.get("logicalType") == "array":
        return prop["items"]["physicalType"] + "[]"
    return prop["physicalType"]


def test_lake_and_mart_contracts_name_the_types_the_files_hold(warehouse):
    """What datacontract-cli leaves unchecked: each column's type in the Parquet files and in the
    DuckDB file is the contract's physicalType (JSON columns are JSON text, VARCHAR; counts are
    BIGINT, never DuckDB's HUGEINT of a sum)."""
    _, settings = warehouse
    for source in load_source_contracts():
        doc = yaml.safe_load(lake_contract_path(source).read_text())
        declared = {p["name"]: _declared(p) for p in doc["schema"][0]["properties"]}
        rows = duckdb.sql(f"describe select * from read_parquet('{lake_files(source, settings.lake)}', "
                          "hive_partitioning = true, hive_types_autocast = false, union_by_name = true)").fetchall()
        actual = {name: "VARCHAR" if typ == "JSON" else typ for name, typ, *_ in rows}
        assert actual == declared, source
    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        for m in load_mart_contracts().values():
            schema, table = m.relation.split(".")
            actual = dict(con.execute("select column_name, data_type from information_schema.columns "
                                      "where table_schema = ? and table_name = ? order by ordinal_position",
                                      [schema, table]).fetchall())
            assert actual == {c.name: c.data_type for c in m.columns}, m.name


def test_make_contracts_test_runs_as_the_readme_writes_it(warehouse):
    """The README's `make contracts-test`, in a shell, on this warehouse."""
    _, settings = warehouse
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(WAREHOUSE_DUCKDB=settings.duckdb_path, WAREHOUSE_LAKE=settings.lake)
    assert "make contracts-test" in (REPO / "README.md").read_text()
    result = subprocess.run("make contracts-test", shell=True, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"^ok +test +marts/fct_sessions\.yaml", result.stdout, re.M), result.stdout[-3000:]
    assert re.search(r"^ok +test +lake/omny_events\.yaml", result.stdout, re.M), result.stdout[-3000:]
