"""The data contracts are valid ODCS v3 documents and say what ingestion needs."""

from pathlib import Path

import pytest
import yaml

from orchestration.cli import main
from orchestration.contracts import CONTRACTS_DIR, ContractError, load_source_contracts, source_contract


def test_every_contract_is_valid_odcs(capsys):
    assert main(["contracts"]) == 0
    out = capsys.readouterr().out
    for source in ("omny", "atomic", "airkit", "altis", "track"):
        assert f"ok    sources/{source}.yaml" in out


def test_source_contracts_name_id_time_and_layout():
    contracts = load_source_contracts(strict=True)
    assert set(contracts) == {"omny", "atomic", "airkit", "altis", "track"}
    assert contracts["omny"].id_field == "EventId"
    assert contracts["atomic"].id_field == "id"
    assert contracts["altis"].id_field is None  # fingerprinted
    for c in contracts.values():
        assert c.event_time_fields and c.layouts
        columns = [f.column for f in c.fields]
        assert len(columns) == len(set(columns))
        assert all(col == col.lower() and " " not in col for col in columns)


def test_a_broken_contract_gets_a_clear_error(tmp_path: Path):
    data = yaml.safe_load((CONTRACTS_DIR / "sources" / "omny.yaml").read_text())
    data["schema"][0]["properties"][0]["logicalType"] = "uuidish"  # not an ODCS logical type
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ContractError, match="not a valid ODCS v3 contract"):
        source_contract(bad, strict=True)
    data = yaml.safe_load((CONTRACTS_DIR / "sources" / "omny.yaml").read_text())
    data["customProperties"][0]["value"] = "Nope.Missing"  # idField names no field
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ContractError, match="not a field of the schema"):
        source_contract(bad)


MARTS = {"fct_sessions", "fct_audit_events", "fct_platform_hourly", "fct_download_geo_daily", "fct_card_funnel",
         "dim_programs", "dim_clips", "dim_card_templates", "dim_apps"}


def test_every_mart_has_a_contract_matching_its_model():
    from orchestration.contracts import load_mart_contracts
    from orchestration.dbt_yaml import DBT_PROJECT_DIR

    marts = load_mart_contracts(strict=True)
    assert set(marts) == MARTS
    models = {p.stem for p in (DBT_PROJECT_DIR / "models" / "marts").glob("*.sql")}
    assert models == MARTS
    for m in marts.values():
        assert m.relation == f"marts.{m.name}" and m.primary_key, m.name
        assert m.window_column in {c.name for c in m.columns}, m.name
        assert all(c.required for c in m.columns if c.primary_key_position), m.name


def test_dbt_schema_files_are_generated_from_the_contracts(tmp_path: Path, capsys):
    """One source of truth: the dbt YAML is what the contracts compile to, never edited by hand."""
    from orchestration.contracts import load_mart_contracts
    from orchestration.dbt_yaml import MARTS_YML, marts_yaml, stale_files

    assert stale_files() == []
    marts = load_mart_contracts()
    models = {m["name"]: m for m in yaml.safe_load(MARTS_YML.read_text())["models"]}
    sessions = models["fct_sessions"]
    assert sessions["config"]["contract"]["enforced"] is True
    columns = {c["name"]: c for c in sessions["columns"]}
    assert [c.name for c in marts["fct_sessions"].columns] == list(columns)
    assert columns["session_key"]["constraints"] == [{"type": "not_null"}] and "unique" in columns["session_key"]["data_tests"]
    assert {"accepted_values": {"arguments": {"values": ["Desktop", "Mobile", "Tablet", "Unknown"]}}} in columns["device_class"]["data_tests"]
    # A contract change shows up in the generated YAML.
    changed = dict(marts)
    changed["fct_sessions"] = marts["fct_sessions"].__class__(**{**marts["fct_sessions"].__dict__, "columns": marts["fct_sessions"].columns[:-1]})
    assert marts_yaml(changed) != MARTS_YML.read_text()
