"""Load the ODCS v3 data contracts with the standard's own package and turn a source
contract into what ingestion needs: typed leaf fields, id / time / name rules, file layout."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from open_data_contract_standard.model import OpenDataContractStandard, SchemaProperty

from orchestration.sources.landing import Layout

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "data_contracts"
# The columns every landed and events row leads with, never null: name -> (DuckDB type, description).
LEADING = {
    "event_id": ("VARCHAR", "The event's id: the vendor's id field, or a fingerprint of the record. Unique per event hour after dedupe."),
    "event_ts": ("TIMESTAMP", "When the event happened (UTC); it decides the event hour."),
    "event_name": ("VARCHAR", "The event's name."),
    "arrival_hour": ("TIMESTAMP", "The hour the export file carrying the kept copy arrived (UTC)."),
    "source_file": ("VARCHAR", "The landing key of the export file the kept copy came from."),
    "source_line": ("BIGINT", "The line (or row) of that file."),
}
LEADING_COLUMNS = tuple(LEADING)
LEADING_DESCRIPTIONS = {name: description for name, (_, description) in LEADING.items()}

LAKE_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN",
              "timestamp": "TIMESTAMP", "date": "DATE", "object": "JSON", "array": "VARCHAR[]"}


class ContractError(ValueError):
    """A contract file that is not a valid ODCS v3 document or misses what ingestion needs."""


# libyaml's safe loader when PyYAML has it: the same documents, ten times faster (every process
# that builds the definitions loads the contracts).
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=1)
def odcs_json_schema() -> dict:
    return json.loads(resources.files("open_data_contract_standard").joinpath("schema.json").read_text())


def schema_errors(data: dict) -> list[str]:
    """Every place where `data` breaks the ODCS JSON schema (the standard's own schema.json)."""
    import jsonschema  # strict checks only: ~80 ms every process would pay on import

    schema = odcs_json_schema()
    errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(data), key=lambda e: e.json_path)
    return [f"{e.json_path}: {e.message[:200]}" for e in errors]


def load_contract(path: Path, strict: bool = False) -> OpenDataContractStandard:
    """Parse a contract with the standard's pydantic model. `strict` also checks it against the
    standard's JSON schema: thorough but slow (seconds), so the tests and `python -m orchestration
    contracts` do it rather than every process that loads the code location."""
    data = yaml.load(Path(path).read_text(), Loader=YAML_LOADER)
    if not isinstance(data, dict) or data.get("kind") != "DataContract" or not str(data.get("apiVersion", "")).startswith("v3"):
        raise ContractError(f"{path}: not an ODCS v3 data contract (apiVersion v3.x, kind DataContract)")
    if strict:
        errors = schema_errors(data)
        if errors:
            raise ContractError(f"{path}: not a valid ODCS v3 contract: " + "; ".join(errors[:5]))
    try:
        return OpenDataContractStandard(**data)
    except ValueError as exc:
        raise ContractError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class Field:
    path: str  # dotted vendor path, e.g. Download.DownloadedAtUtc
    column: str  # lake column (physicalName)
    logical_type: str
    physical_type: str
    required: bool = False
    enum: tuple | None = None
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    description: str | None = None
    classification: str | None = None
    examples: tuple | None = None

    @property
    def lake_type(self) -> str:
        return LAKE_TYPES[self.logical_type]


@dataclass(frozen=True)
class SourceContract:
    name: str
    document: OpenDataContractStandard
    fields: tuple[Field, ...]
    id_field: str | None
    event_time_fields: tuple[str, ...]
    event_name_fields: tuple[str, ...]
    event_name_default: str | None
    layouts: tuple[Layout, ...]
    description: str
    owners: tuple[str, ...] = ()
    latency: timedelta | None = None  # the contract's SLA: an event is in the events layer this long after it happened

    def field(self, path: str) -> Field:
        for f in self.fields:
            if f.path == path:
                return f
        raise KeyError(path)

    @property
    def own_columns(self) -> list[Field]:
        """Fields that get their own lake column (those not folded into a leading column)."""
        return [f for f in self.fields if f.column not in LEADING_COLUMNS]

    def lake_schema(self) -> dict[str, str]:
        """Column → DuckDB type of every landed / events row, leading columns first."""
        cols = {name: lake_type for name, (lake_type, _) in LEADING.items()}
        cols.update({f.column: f.lake_type for f in self.own_columns})
        return cols


def _custom(doc: OpenDataContractStandard) -> dict[str, Any]:
    return {cp.property: cp.value for cp in (doc.customProperties or [])}


LATENCY_UNITS = {"m": timedelta(minutes=1), "min": timedelta(minutes=1), "h": timedelta(hours=1),
                 "hour": timedelta(hours=1), "d": timedelta(days=1), "day": timedelta(days=1)}


def owners(doc: OpenDataContractStandard) -> tuple[str, ...]:
    """The contract's team (`team:<name>`) and its members whose role is owner, as Dagster owners."""
    team = doc.team
    if team is None:
        return ()
    members = team if isinstance(team, list) else (team.members or [])
    named = [f"team:{team.name}"] if not isinstance(team, list) and team.name else []
    return tuple(named + [m.username for m in members if (m.role or "").lower() == "owner" and m.username])


def latency(doc: OpenDataContractStandard) -> timedelta | None:
    """The contract's `latency` SLA: how long after an event it must be in this layer."""
    for sla in doc.slaProperties or []:
        if sla.property == "latency" and sla.value is not None:
            unit = (sla.unit or "h").lower().rstrip("s") or "h"
            if unit not in LATENCY_UNITS:
                raise ContractError(f"{doc.name}: latency unit {sla.unit!r} is not one of {sorted(LATENCY_UNITS)}")
            return LATENCY_UNITS[unit] * float(sla.value)
    return None


def _leaves(props: list[SchemaProperty], prefix: str = "") -> list[Field]:
    out = []
    for p in props or []:
        path = prefix + p.name
        if p.properties:
            out.extend(_leaves(p.properties, path + "."))
            continue
        if not p.physicalName:
            raise ContractError(f"field {path}: a leaf needs a physicalName (its lake column)")
        logical = p.logicalType or "string"
        if logical == "array" and (p.items is None or (p.items.logicalType or "string") != "string"):
            logical = "object"  # arrays of anything but strings are kept as JSON
        opts = p.logicalTypeOptions or {}
        out.append(Field(
            path=path, column=p.physicalName, logical_type=logical,
            physical_type=(p.physicalType or "VARCHAR").upper(), required=bool(p.required),
            enum=tuple(e.value for e in p.enum) if p.enum else None,
            pattern=opts.get("pattern"), min_length=opts.get("minLength"), max_length=opts.get("maxLength"),
            description=p.description, classification=p.classification,
            examples=tuple(p.examples) if p.examples else None,
        ))
    return out


def source_contract(path: Path, strict: bool = False) -> SourceContract:
    doc = load_contract(path, strict)
    custom = _custom(doc)
    if not doc.schema_:
        raise ContractError(f"{path}: no schema")
    fields = tuple(_leaves(doc.schema_[0].properties))
    columns = [f.column for f in fields]
    dupes = {c for c in columns if columns.count(c) > 1}
    if dupes:
        raise ContractError(f"{path}: lake columns named twice: {sorted(dupes)}")
    paths = {f.path for f in fields}
    id_field = custom.get("idField")
    time_fields = tuple(custom.get("eventTimeFields") or ())
    name_fields = tuple(custom.get("eventNameFields") or ())
    for p in ([id_field] if id_field else []) + list(time_fields) + list(name_fields):
        if p not in paths:
            raise ContractError(f"{path}: customProperties name {p!r}, which is not a field of the schema")
    if not time_fields:
        raise ContractError(f"{path}: customProperties.eventTimeFields is required")
    layouts = tuple(
        Layout(pattern=l["pattern"], formats=tuple(l["formats"]),
               arrival_shift=timedelta(hours=l.get("arrivalShiftHours", 0)))
        for l in custom.get("landingLayout") or ()
    )
    if not layouts:
        raise ContractError(f"{path}: customProperties.landingLayout is required")
    desc = doc.description.purpose if doc.description and doc.description.purpose else ""
    return SourceContract(
        name=doc.name, document=doc, fields=fields, id_field=id_field, event_time_fields=time_fields,
        event_name_fields=name_fields, event_name_default=custom.get("eventNameDefault"),
        layouts=layouts, description=desc.strip(), owners=owners(doc), latency=latency(doc),
    )


def load_source_contracts(directory: Path | None = None, strict: bool = False) -> dict[str, SourceContract]:
    directory = Path(directory or CONTRACTS_DIR / "sources")
    out = {}
    for path in sorted(directory.glob("*.yaml")):
        contract = source_contract(path, strict)
        out[contract.name] = contract
    return out


# --- Mart contracts (outputs): what the dbt marts promise analysts -------------------------------

@dataclass(frozen=True)
class MartColumn:
    name: str
    data_type: str  # DuckDB type, the contract's physicalType
    required: bool = False
    primary_key_position: int | None = None
    enum: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    description: str = ""


@dataclass(frozen=True)
class QualityRule:
    name: str
    description: str
    kind: str  # "sql" (run by dbt) or "great-expectations"
    query: str | None = None
    must_be: Any = None
    expectation: str | None = None
    kwargs: dict | None = None


@dataclass(frozen=True)
class MartContract:
    name: str  # the dbt model
    relation: str  # schema.table in the DuckDB file
    description: str
    columns: tuple[MartColumn, ...]
    rules: tuple[QualityRule, ...]
    path: Path
    window_column: str | None = None  # the time column a partition window selects rows by
    owners: tuple[str, ...] = ()
    latency: timedelta | None = None  # the contract's SLA: rows are in the mart this long after the event
    partitioning: str = "event_hour"  # one of MART_PARTITIONINGS: what a partition of the mart means

    @property
    def primary_key(self) -> list[str]:
        keyed = [c for c in self.columns if c.primary_key_position is not None]
        return [c.name for c in sorted(keyed, key=lambda c: c.primary_key_position)]


MART_PARTITIONINGS = ("event_hour", "day", "none")  # hourly facts, daily facts, whole tables (dimensions)


def warehouse_schema(doc: OpenDataContractStandard, path: Path) -> str:
    """The schema of the DuckDB file a mart lives in: its contract's `duckdb` server entry (where
    `datacontract test` finds it too), the one place it is named; physicalName is the bare table."""
    servers = [s for s in doc.servers or [] if s.type == "duckdb"]
    if len(servers) != 1 or not servers[0].schema_:
        raise ContractError(f"{path}: a mart contract needs one `servers` entry of type duckdb naming its `schema`")
    table = doc.schema_[0].physicalName or doc.name
    if "." in table:
        raise ContractError(f"{path}: physicalName {table!r} is the bare table name; the schema is the server's")
    return servers[0].schema_


def mart_contract(path: Path, strict: bool = False) -> MartContract:
    doc = load_contract(path, strict)
    if not doc.schema_ or len(doc.schema_) != 1:
        raise ContractError(f"{path}: a mart contract describes exactly one table")
    table = doc.schema_[0]
    columns = []
    for p in table.properties or []:
        if not p.physicalType:
            raise ContractError(f"{path}: column {p.name} needs a physicalType (its DuckDB type)")
        opts = p.logicalTypeOptions or {}
        columns.append(MartColumn(
            name=p.name, data_type=p.physicalType.upper(), required=bool(p.required),
            primary_key_position=(p.primaryKeyPosition or 1) if p.primaryKey else None,
            enum=tuple(e.value for e in p.enum) if p.enum else None,
            minimum=opts.get("minimum"), maximum=opts.get("maximum"), pattern=opts.get("pattern"),
            description=(p.description or "").strip(),
        ))
    rules = []
    for q in table.quality or []:
        name = q.name or ""
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ContractError(f"{path}: quality rule needs a snake_case name, got {name!r}")
        if q.type == "sql":
            rules.append(QualityRule(name=name, description=q.description or "", kind="sql",
                                     query=q.query, must_be=q.mustBe))
        elif q.type == "custom" and q.engine == "great-expectations":
            impl = q.implementation if isinstance(q.implementation, dict) else {}
            if not impl.get("expectation"):
                raise ContractError(f"{path}: rule {name}: implementation.expectation is required")
            rules.append(QualityRule(name=name, description=q.description or "", kind="great-expectations",
                                     expectation=impl["expectation"], kwargs=dict(impl.get("kwargs") or {})))
        else:
            raise ContractError(f"{path}: rule {name}: only `sql` and `custom` great-expectations rules are supported")
    desc = doc.description.purpose if doc.description and doc.description.purpose else ""
    partitioning = _custom(doc).get("partitioning", "event_hour")
    if partitioning not in MART_PARTITIONINGS:
        raise ContractError(f"{path}: customProperties.partitioning must be one of {MART_PARTITIONINGS}, got {partitioning!r}")
    return MartContract(name=doc.name, relation=f"{warehouse_schema(doc, path)}.{table.physicalName or doc.name}",
                        description=" ".join(desc.split()), columns=tuple(columns), rules=tuple(rules),
                        path=Path(path), window_column=_custom(doc).get("windowColumn"),
                        owners=owners(doc), latency=latency(doc), partitioning=partitioning)


def load_mart_contracts(directory: Path | None = None, strict: bool = False) -> dict[str, MartContract]:
    directory = Path(directory or CONTRACTS_DIR / "marts")
    return {c.name: c for c in (mart_contract(p, strict) for p in sorted(directory.glob("*.yaml")))}
