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
        assert f"ok    lake/{source}_events.yaml" in out


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
    from orchestration.dbt_project import DBT_PROJECT_DIR

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


def test_mart_contracts_name_their_table_and_the_duckdb_file_it_is_in(tmp_path: Path, monkeypatch):
    """datacontract-cli finds a mart through the contract's duckdb server (file and schema) and its
    bare physicalName; `relation` (schema.table) is derived from them."""
    from orchestration.contracts import mart_contract
    from orchestration.dbt_project import DBT_PROJECT_DIR
    from orchestration.settings import Settings

    monkeypatch.chdir(CONTRACTS_DIR.parent)
    defaults = Settings.from_env({})
    dbt_schema = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["models"]["warehouse"]["marts"]["+schema"]
    for path in sorted((CONTRACTS_DIR / "marts").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert data["schema"][0]["physicalName"] == data["name"], path
        [server] = data["servers"]
        assert server["type"] == "duckdb" and server["schema"] == dbt_schema, path
        assert str(CONTRACTS_DIR.parent / server["database"]) == defaults.duckdb_path, path

    data = yaml.safe_load((CONTRACTS_DIR / "marts" / "fct_sessions.yaml").read_text())
    data["servers"][0]["schema"] = "reporting"
    moved = tmp_path / "fct_sessions.yaml"
    moved.write_text(yaml.safe_dump(data))
    assert mart_contract(moved).relation == "reporting.fct_sessions"
    data["schema"][0]["physicalName"] = "marts.fct_sessions"
    moved.write_text(yaml.safe_dump(data))
    with pytest.raises(ContractError, match="bare table name"):
        mart_contract(moved)
    del data["servers"]
    moved.write_text(yaml.safe_dump(data))
    with pytest.raises(ContractError, match="type duckdb"):
        mart_contract(moved)


def test_the_events_layer_contracts_are_generated_from_the_source_contracts(monkeypatch):
    """One contract per source's events layer: the flat lake table (leading columns, the source's
    typed columns, the event_hour partition), the source's team and SLA, a server on the lake."""
    from orchestration.contracts import load_contract
    from orchestration.lake_contracts import expected_lake_contracts, lake_contract, lake_contract_path
    from orchestration.settings import Settings

    sources = load_source_contracts()
    assert set(expected_lake_contracts(sources)) == {lake_contract_path(s) for s in sources}
    monkeypatch.chdir(CONTRACTS_DIR.parent)
    lake_root = Settings.from_env({}).lake
    for name, c in sources.items():
        path = lake_contract_path(name)
        doc = load_contract(path, strict=True)  # valid ODCS v3
        assert path.read_text().endswith(yaml.safe_dump(lake_contract(c), sort_keys=False, width=120, allow_unicode=True))
        props = {p.name: p for p in doc.schema_[0].properties}
        assert list(props) == ["event_hour", *c.lake_schema()], name
        assert [p for p in props if props[p].primaryKey] == ["event_hour", "event_id"]
        for f in c.own_columns:
            p = props[f.column]
            assert bool(p.required) == f.required and (p.description or "").endswith(" ".join((f.description or "").split()))
            assert (p.physicalType or p.items.physicalType) == {"JSON": "VARCHAR", "VARCHAR[]": "VARCHAR"}.get(f.lake_type, f.lake_type)
            if f.enum:
                assert [e.value for e in p.enum] == list(f.enum)
        assert doc.team.model_dump() == c.document.team.model_dump()
        assert [(s.property, s.value, s.unit) for s in doc.slaProperties] == \
               [(s.property, s.value, s.unit) for s in c.document.slaProperties]
        [server] = doc.servers
        assert (server.type, server.format) == ("local", "parquet")
        assert str(CONTRACTS_DIR.parent / server.path) == f"{lake_root}/{name}/events/event_hour=*/*.parquet"
