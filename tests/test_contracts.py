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
