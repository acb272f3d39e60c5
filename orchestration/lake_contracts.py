"""The events layer's data contracts (`data_contracts/lake/<source>_events.yaml`), generated from
the source contracts so that no schema is written twice: the flat lake table as it is (leading
columns, the source's own typed columns, the `event_hour` partition), with the source's team and
latency SLA, and a `servers:` entry for the lake's Parquet that `datacontract test` reads.

`python -m orchestration contracts --write-dbt` writes them with dbt's YAML; a test fails when
they are out of date with the source contracts.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestration.contracts import (CONTRACTS_DIR, LAKE_TYPES, LEADING_COLUMNS, LEADING_DESCRIPTIONS, Field,
                                     SourceContract)
from orchestration.lake import paths
from orchestration.settings import DEFAULT_LAKE

LAKE_CONTRACTS_DIR = CONTRACTS_DIR / "lake"
LAKE_SERVER = "lake"
HEADER = ("# Generated from data_contracts/sources/ by `python -m orchestration contracts --write-dbt`: do not edit.\n"
          "# Test it: `make contracts-test`, or .venv-datacontract/bin/datacontract test THIS_FILE from the repo root.\n")

EVENT_HOUR_DESCRIPTION = ("The event hour (UTC, YYYY-MM-DDTHH) of the row: the hive partition "
                          "`event_hour=…` of its Parquet file, the hour event_ts falls in.")

# Lake column type → (ODCS logicalType, physicalType). A JSON column is JSON text in a Parquet
# string (DuckDB's JSON type is VARCHAR with a tag): declared as the string it is physically, so
# datacontract-cli, which knows no JSON type, reads and checks it. A list of strings is an ODCS
# array whose items are VARCHAR; its physicalType is left to the items.
_LOGICAL = {lake: logical for logical, lake in LAKE_TYPES.items()}


def lake_contract_path(source: str) -> Path:
    return LAKE_CONTRACTS_DIR / f"{source}_events.yaml"


def lake_files(source: str, lake_root: str = DEFAULT_LAKE) -> str:
    """The Parquet files of a source's events layer: one per event hour, hive-partitioned."""
    return f"{lake_root.rstrip('/')}/{paths.events_files(source)}"


def _typed(lake_type: str) -> dict:
    if lake_type == "JSON":
        return {"logicalType": "string", "physicalType": "VARCHAR"}
    if lake_type.endswith("[]"):
        item = lake_type[:-2]
        return {"logicalType": "array", "items": {"name": "item", **_typed(item)}}
    return {"logicalType": _LOGICAL[lake_type], "physicalType": lake_type}


def _column(name: str, lake_type: str, description: str, required: bool, field: Field | None = None) -> dict:
    prop: dict = {"name": name, **_typed(lake_type)}
    if required:
        prop["required"] = True
    if field is not None:
        if field.enum:
            prop["enum"] = [{"value": v} for v in field.enum]
        options = {k: v for k, v in (("pattern", field.pattern), ("minLength", field.min_length),
                                     ("maxLength", field.max_length)) if v is not None}
        if options and lake_type == "VARCHAR":  # the vendor text as landed; a typed value has no pattern
            prop["logicalTypeOptions"] = options
        if field.classification:
            prop["classification"] = field.classification
        if field.examples:
            prop["examples"] = list(field.examples)
    if lake_type == "JSON":
        description = "JSON text. " + description
    prop["description"] = " ".join(description.split())
    return prop


def lake_contract(c: SourceContract) -> dict:
    """The ODCS v3 contract of `c`'s events layer, as a plain dict (YAML-ready)."""
    doc = c.document
    name = f"{c.name}_events"
    fields = {f.column: f for f in c.fields}
    types = c.lake_schema()
    properties = [
        {"name": "event_hour", "logicalType": "string", "physicalType": "VARCHAR", "required": True,
         "primaryKey": True, "primaryKeyPosition": 1, "partitioned": True, "partitionKeyPosition": 1,
         "logicalTypeOptions": {"pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}$"}, "description": EVENT_HOUR_DESCRIPTION},
    ]
    for column, lake_type in types.items():
        if column in LEADING_COLUMNS:
            prop = _column(column, lake_type, LEADING_DESCRIPTIONS[column], required=True)
            if column == "event_id":
                prop.update(primaryKey=True, primaryKeyPosition=2)
        else:
            f = fields[column]
            prop = _column(column, lake_type, f.description or "", f.required, f)
        properties.append(prop)
    purpose = " ".join((doc.description.purpose if doc.description and doc.description.purpose else "").split())
    out: dict = {
        "apiVersion": doc.apiVersion,
        "kind": "DataContract",
        "id": f"urn:events-warehouse:lake:{name}",
        "name": name,
        "version": doc.version,
        "status": doc.status,
    }
    if doc.domain:
        out["domain"] = doc.domain
    if doc.tenant:
        out["tenant"] = doc.tenant
    if doc.team is not None and not isinstance(doc.team, list):
        out["team"] = doc.team.model_dump(exclude_none=True, by_alias=True, mode="json")
    out["description"] = {
        "purpose": f"The events layer of {c.name}: one row per event, deduplicated within 24 hours and filed under "
                   f"the hour it happened, in a folder of Parquet files per event hour "
                   f"({{lake}}/{c.name}/events/event_hour=YYYY-MM-DDTHH/*.parquet). The records: {purpose}",
        "usage": "Read by dbt's staging views and by anyone with a Parquet reader (hive partitioning on event_hour). "
                 "Generated from the source contract, which is the schema's one home.",
        "limitations": "An event id is unique within its event hour and its 24-hour dedupe window; copies delivered "
                       "more than 24 hours apart are both kept (and reported in the ledger).",
    }
    slas = []
    for sla in doc.slaProperties or []:
        item = sla.model_dump(exclude_none=True, by_alias=True, mode="json")
        if sla.property == "latency":
            item["element"] = f"{name}.event_ts"
        slas.append(item)
    if slas:
        out["slaProperties"] = slas
    out["customProperties"] = [
        {"property": "sourceContract", "value": f"sources/{c.name}.yaml"},
        {"property": "dbtSource", "value": f"lake.{name}"},
    ]
    out["servers"] = [{
        "server": LAKE_SERVER,
        "type": "local",
        "format": "parquet",
        "path": lake_files(c.name),
        "description": f"The lake's Parquet under the default lake root (WAREHOUSE_LAKE, {DEFAULT_LAKE}), "
                       "relative to the repo root; hive-partitioned by event_hour.",
        "environment": "dev",
    }]
    out["schema"] = [{
        "name": name,
        "physicalName": name,
        "physicalType": "table",
        "logicalType": "object",
        "description": f"One {c.name} event per row, typed and flattened to snake_case columns.",
        "properties": properties,
    }]
    return out


def lake_contract_yaml(c: SourceContract) -> str:
    return HEADER + yaml.safe_dump(lake_contract(c), sort_keys=False, width=120, allow_unicode=True)


def expected_lake_contracts(contracts: dict[str, SourceContract]) -> dict[Path, str]:
    return {lake_contract_path(name): lake_contract_yaml(c) for name, c in sorted(contracts.items())}
