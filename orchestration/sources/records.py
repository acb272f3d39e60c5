"""From raw records to typed lake rows, as one DuckDB query generated from the source contract.

Each value is extracted by its dotted path, typed by the contract, and checked (required, type,
enum, pattern, length). A record that breaks any rule gets a `reason` naming every broken rule
and goes to quarantine; the others become lake rows with the leading columns first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestration.contracts import LEADING_COLUMNS, Field, SourceContract
from orchestration.settings import format_hour
from orchestration.sql import ident, sql_str

RAW_CUT = 2000  # characters of a quarantined record's raw text kept (DESIGN.md: cut to a bounded length)


@dataclass(frozen=True)
class EventTimeRange:
    """The event times the lake can file: from the first partition (WAREHOUSE_START) to a horizon
    after the hour the file arrived (WAREHOUSE_MAX_EVENT_AHEAD_HOURS). Others are quarantined."""

    first_hour: datetime
    max_ahead: timedelta


def _levels(contract: SourceContract, flat: bool) -> dict[str, set[str]]:
    """JSONPath of each object level the contract reads -> the keys it knows there."""
    if flat:
        return {"": {f.path for f in contract.fields}}
    levels: dict[str, set[str]] = {"": set()}
    for f in contract.fields:
        parts = f.path.split(".")
        for depth in range(len(parts)):
            levels.setdefault(".".join(parts[:depth]), set()).add(parts[depth])
    return levels


def _key_checks(contract: SourceContract, flat: bool) -> tuple[str, str, str, str, str]:
    """(keys, levels found, odd keys test, duplicate keys, unknown fields) expressions over `obj`,
    `v` (the record's `from_json` value), `k` (the keys of every object level the contract reads)
    and `values` (how many of its fields have one). The test is cheap: more keys than fields and
    objects found means a duplicate or an unknown key (or a field that is JSON null); only those
    rows are then looked at key by key. The keys themselves are listed only where the bound the
    splitter counted (`max_keys`) leaves room for one too many: levels found from `v` are never
    more than the keys' own count of them (a JSON null level counts there, not here). That bound
    counts the keys inside an object field's value too (Atomic's eventDetail): the top level's of
    each such value are added to what was found (never more than the bound counted of them),
    where ~20 % of Atomic's records were listed key by key for them."""
    levels = _levels(contract, flat)
    names = list(levels)
    found = " + ".join(f"(v.{'.'.join(ident(p) for p in n.split('.'))} IS NOT NULL)::INTEGER" for n in names if n) or "0"
    if not flat:  # a flattened record's bound is its cells with a value, exactly: nothing inside one is counted
        found += "".join(f" + coalesce(TRY(len(json_keys({_value(f, flat)}))), 0)"
                         for f in contract.fields if f.logical_type == "object")
    keys = "json_keys(obj, [" + ", ".join(sql_str(json_path(n, flat) if n else "$") for n in names) + "])"
    dups, unknown = [], []
    for i, level in enumerate(names, start=1):
        prefix = level + "." if level else ""
        known = "[" + ", ".join(sql_str(c) for c in sorted(levels[level])) + "]::VARCHAR[]"
        dups.append(f"list_transform(list_filter(k[{i}], lambda x, j: list_position(k[{i}], x) < j), lambda x: {sql_str(prefix)} || x)")
        unknown.append(f"list_transform(list_filter(k[{i}], lambda x: NOT list_contains({known}, x)), lambda x: {sql_str(prefix)} || x)")
    # keys found = fields with a value + object levels present below the root
    odd = "len(flatten(k)) > values + list_aggregate(k, 'count') - 1"
    # Only where k was kept: built for every row, the lists cost ~10 % of the contract query (bench/README.md).
    return (keys, found, odd, f"CASE WHEN k IS NOT NULL THEN list_distinct(flatten([{', '.join(dups)}])) END",
            f"CASE WHEN k IS NOT NULL THEN nullif(flatten([{', '.join(unknown)}]), []) END")


def json_path(path: str, flat: bool) -> str:
    """JSONPath of a contract field in a nested record, or in a flattened one (dotted keys)."""
    if flat:
        return "$." + ident(path)
    return "$." + ".".join(ident(part) for part in path.split("."))


def _shape(contract: SourceContract, flat: bool) -> str:
    """The JSON structure `from_json` reads a record into: every contract field as text (its JSON
    text when it is not a string), nested as in the record, or keyed by dotted path when flat.
    One parse gives every value; a path missing or crossing a non-object gives NULL."""
    tree: dict = {}
    for f in contract.fields:
        parts = [f.path] if flat else f.path.split(".")
        level = tree
        for part in parts[:-1]:
            level = level.setdefault(part, {})
            if not isinstance(level, dict):
                raise ValueError(f"field {f.path}: a parent of it is a field too")
        if isinstance(level.get(parts[-1]), dict):
            raise ValueError(f"field {f.path}: fields are nested below it")
        level[parts[-1]] = "VARCHAR"
    return json.dumps(tree)


def _value(f: Field, flat: bool) -> str:
    """The field's text in the `from_json` struct `v`."""
    return "v." + (ident(f.path) if flat else ".".join(ident(part) for part in f.path.split(".")))


def _typed(f: Field, s: str) -> str:
    """Expression typing the text value `s` as the field's lake type; NULL when it cannot."""
    t = f.logical_type
    if t == "string":
        return s
    if t == "integer":
        return f"TRY_CAST({s} AS BIGINT)"
    if t == "number":
        return f"TRY_CAST({s} AS DOUBLE)"
    if t == "boolean":
        return f"TRY_CAST({s} AS BOOLEAN)"
    if t == "date":
        return f"TRY_CAST({s} AS DATE)"
    if t == "timestamp":
        if f.physical_type in ("EPOCH_MS", "BIGINT"):
            return f"TRY(epoch_ms(TRY_CAST({s} AS BIGINT)))"
        # Through TIMESTAMPTZ for offsets and zone names (~200 ns a value, ICU); a time in UTC
        # ('...Z') is read the same by the TIMESTAMP cast, 4x faster (bench/README.md).
        zoned = f"TRY_CAST(TRY_CAST({s} AS TIMESTAMPTZ) AS TIMESTAMP)"
        return f"CASE WHEN suffix({s}, 'Z') THEN coalesce(TRY_CAST({s} AS TIMESTAMP), {zoned}) ELSE {zoned} END"
    if t == "object":
        # JSON text; flattened exports may carry it base64-encoded (Atomic's eventDetail).
        return (f"CASE WHEN json_valid({s}) THEN json({s}) "
                f"ELSE TRY(json(decode(from_base64({s})))) END")
    if t == "array":
        return (f"CASE WHEN json_valid({s}) AND json_type({s}) = 'ARRAY' "
                f"THEN TRY(from_json(json({s}), '[\"VARCHAR\"]')) END")
    raise ValueError(f"field {f.path}: unsupported logicalType {t!r}")


# A broken rule's reason names the value it found (`field X: <value> is not a valid timestamp`); the
# ledgers count reasons by rule, the value left out, so a feed of bad values gives one count a rule
# where it gave one a value (42,910 reasons for one hour of misformatted timestamps).
_VALUE_IN_REASON = r"^(field [^:]+: ).*?( is not a valid [a-z]+| is not one of its allowed values| does not match .*)$"


def reason_rule_sql(reason: str) -> str:
    """SQL: the rule of the reason `reason` (an expression), its value replaced by an ellipsis."""
    return f"regexp_replace({reason}, {sql_str(_VALUE_IN_REASON)}, '\\1…\\2')"


def _rules(f: Field, s: str, v: str) -> list[str]:
    """CASE expressions, one per rule of the field, each NULL or the reason it is broken."""
    label = f.path
    rules = []
    if f.required:
        rules.append(f"CASE WHEN {s} IS NULL THEN {sql_str(f'missing required field {label}')} END")
    if f.logical_type != "string":
        rules.append(
            f"CASE WHEN {s} IS NOT NULL AND {v} IS NULL THEN "
            f"{sql_str(f'field {label}: ')} || left({s}, 60) || {sql_str(f' is not a valid {f.logical_type}')} END"
        )
    if f.enum:  # a list, not IN: an IN list of over a few values is planned as a join (~10 % of Atomic's query)
        allowed = ", ".join(sql_str(e) if isinstance(e, str) else str(e) for e in f.enum)
        rules.append(
            f"CASE WHEN NOT list_contains([{allowed}], {v}) THEN "
            f"{sql_str(f'field {label}: ')} || left({v}::VARCHAR, 60) || ' is not one of its allowed values' END"
        )
    if f.pattern:
        rules.append(
            f"CASE WHEN {v} IS NOT NULL AND NOT regexp_full_match({v}, {sql_str(f.pattern)}) THEN "
            f"{sql_str(f'field {label}: ')} || left({v}, 60) || {sql_str(' does not match ' + f.pattern)} END"
        )
    if f.min_length is not None:
        rules.append(f"CASE WHEN length({v}) < {int(f.min_length)} THEN {sql_str(f'field {label}: shorter than {f.min_length}')} END")
    if f.max_length is not None:
        rules.append(f"CASE WHEN length({v}) > {int(f.max_length)} THEN {sql_str(f'field {label}: longer than {f.max_length}')} END")
    return rules


def typed_records_sql(contract: SourceContract, staged: str, flat: bool, times: EventTimeRange | None = None) -> str:
    """SELECT over `staged` (arrival_hour, source_file, source_line, raw, file_error, max_keys) giving the
    lake columns of `contract`, plus `reason` (NULL for a valid record), `raw` (of quarantined
    records) and `unknown_fields` (keys the contract does not name: schema drift, kept out)."""
    values = " + ".join(f"({_value(f, flat)} IS NOT NULL)::INTEGER" for f in contract.fields)
    keys, levels_found, odd_keys, dup_keys, unknown_fields = _key_checks(contract, flat)
    records = f"""
WITH parsed AS (  -- NULL for text that is not JSON; an array or a scalar gives no value
  SELECT *, TRY(from_json(raw, {sql_str(_shape(contract, flat))})) AS v FROM {staged}
), checked AS (  -- a record with a value is an object; the others are parsed again to tell why not
  SELECT *, CASE WHEN values > 0 THEN 'OBJECT' ELSE TRY(json_type(raw)) END AS doc_type
  FROM (SELECT *, {values} AS values FROM parsed)
), objects AS (
  SELECT *, doc_type IS NOT NULL AS json_ok, coalesce(doc_type = 'OBJECT', false) AS is_object,
         CASE WHEN doc_type = 'OBJECT' THEN raw END AS obj
  FROM checked
), extracted AS (
  SELECT arrival_hour, source_file, source_line, raw, file_error, json_ok, is_object,
         CASE WHEN is_object THEN v END AS v, values,
         CASE WHEN max_keys IS NULL OR max_keys > values + {levels_found} THEN {keys} END AS k
  FROM objects
), keyed AS (  -- k kept only where the cheap test finds more keys than fields: NULL elsewhere
  SELECT * EXCLUDE (k), CASE WHEN {odd_keys} THEN k END AS k FROM extracted
), records AS (
  SELECT arrival_hour, source_file, source_line, raw, file_error, json_ok, is_object, v,
      {dup_keys} AS dup_keys,
      {unknown_fields} AS unknown_fields
  FROM keyed
)"""
    return _typed_select(contract, flat, times, records, "raw", "raw IS NULL", "rtrim(raw, chr(13) || chr(10))")


def typed_columns_sql(contract: SourceContract, rows: str, texts: dict[str, str], unknown: dict[str, str], raw: str,
                      arrival_hour: datetime, source_file: str, times: EventTimeRange | None = None) -> str:
    """What `typed_records_sql` gives for a flattened file's rows, typed from its columns instead of
    from JSON text built from them: `rows` is a SELECT of `source_line` and `cells` (a struct of the
    file's columns); `texts` the text of each contract field the file has (by dotted path) and
    `unknown` the cell of each column the contract does not name (by key), as expressions over
    `cells`; `raw` the row as JSON text, built only for the rows quarantined."""
    fields = {f.path: texts.get(f.path, "NULL::VARCHAR") for f in contract.fields}
    value = "struct_pack(" + ", ".join(f"{ident(path)} := {expr}" for path, expr in fields.items()) + ")"
    drift = ("nullif(list_filter([" + ", ".join(f"CASE WHEN {expr} IS NOT NULL THEN {sql_str(key)} END"
                                                for key, expr in unknown.items()) + "], lambda x: x IS NOT NULL), [])"
             if unknown else "NULL::VARCHAR[]")
    records = f"""
WITH records AS (
  SELECT TIMESTAMP '{arrival_hour:%Y-%m-%d %H:%M:%S}' AS arrival_hour, {sql_str(source_file)} AS source_file, source_line,
         cells, NULL::VARCHAR AS file_error, true AS json_ok, true AS is_object, {value} AS v,
         NULL::VARCHAR[] AS dup_keys, {drift} AS unknown_fields
  FROM ({rows})
)"""
    return _typed_select(contract, True, times, records, "cells", "false", raw)


def _typed_select(contract: SourceContract, flat: bool, times: EventTimeRange | None, records: str, carried: str,
                  empty: str, raw: str) -> str:
    """The typing and checks of records: `records` is a WITH clause ending in a CTE `records` of
    (arrival_hour, source_file, source_line, `carried`, file_error, json_ok, is_object, v, dup_keys,
    unknown_fields); `empty` tells a record that is no text at all, `raw` is its text (over `carried`)."""
    fields = contract.fields
    text = {f.path: f"nullif({_value(f, flat)}, '')" for f in fields}
    typed = {f.path: f"t_{i}" for i, f in enumerate(fields, start=1)}

    typed_cols = ",\n      ".join(f"{_typed(f, text[f.path])} AS {typed[f.path]}" for f in fields)
    text_cols = ",\n      ".join(f"{text[f.path]} AS s_{i}" for i, f in enumerate(fields, start=1))

    # Second level: rules over the typed values (s_i the text, t_i the typed value).
    s_of = {f.path: f"s_{i}" for i, f in enumerate(fields, start=1)}
    rules = []
    for f in fields:
        rules.extend(_rules(f, s_of[f.path], typed[f.path]))

    def first_of(paths_: tuple[str, ...]) -> str:
        vals = [typed[p] for p in paths_]
        return vals[0] if len(vals) == 1 else f"coalesce({', '.join(vals)})"

    event_ts = first_of(contract.event_time_fields)
    if times is not None:
        first = times.first_hour.strftime("%Y-%m-%d %H:%M:%S")
        ahead = int(times.max_ahead / timedelta(hours=1))
        rules.append(f"CASE WHEN {event_ts} < TIMESTAMP '{first}' THEN "
                     f"{sql_str(f'event time before the first partition {format_hour(times.first_hour)} (WAREHOUSE_START)')} END")
        rules.append(f"CASE WHEN {event_ts} >= arrival_hour::TIMESTAMP + INTERVAL {ahead} HOUR THEN "
                     f"{sql_str(f'event time more than {ahead} h after its file arrived (WAREHOUSE_MAX_EVENT_AHEAD_HOURS)')} END")
    if not any(contract.field(p).required for p in contract.event_time_fields):
        rules.append(f"CASE WHEN {event_ts} IS NULL THEN "
                     f"{sql_str('no event time: ' + ' / '.join(contract.event_time_fields) + ' all missing or invalid')} END")
    if contract.event_name_fields:
        event_name = first_of(contract.event_name_fields)
        if contract.event_name_default:
            event_name = f"coalesce({event_name}, {sql_str(contract.event_name_default)})"
        else:
            rules.append(f"CASE WHEN {event_name} IS NULL THEN "
                         f"{sql_str('no event name: ' + ' / '.join(contract.event_name_fields) + ' all missing')} END")
    else:
        event_name = sql_str(contract.event_name_default or contract.name)

    if contract.id_field:
        event_id = f"{typed[contract.id_field]}::VARCHAR"
        if not contract.field(contract.id_field).required:
            rules.append(f"CASE WHEN {event_id} IS NULL THEN {sql_str('missing event id ' + contract.id_field)} END")
    else:  # no vendor id: a fingerprint of the typed record
        packed = ", ".join(f"{ident(f.column)} := {typed[f.path]}" for f in fields)
        event_id = f"md5(to_json(struct_pack({packed}))::VARCHAR)"

    own = ",\n    ".join(f"{typed[f.path]}::{f.lake_type} AS {ident(f.column)}" for f in contract.own_columns)
    rules.append("CASE WHEN len(dup_keys) > 0 THEN 'duplicate key ' || array_to_string(dup_keys[:5], ', ') "
                 "|| ' in the record: its value is ambiguous' END")
    rule_list = ",\n        ".join(rules)
    return f"""{records}, texts AS (
  SELECT arrival_hour, source_file, source_line, {carried}, file_error, json_ok, is_object, dup_keys, unknown_fields,
      {text_cols},
      {typed_cols}
  FROM records
)
SELECT * EXCLUDE ({carried}), CASE WHEN reason IS NOT NULL THEN left({raw}, {RAW_CUT}) END AS raw FROM (SELECT
    {event_id} AS event_id,
    {event_ts} AS event_ts,
    {event_name}::VARCHAR AS event_name,
    arrival_hour::TIMESTAMP AS arrival_hour,
    source_file::VARCHAR AS source_file,
    source_line::BIGINT AS source_line,
    {own},
    CASE
      WHEN file_error IS NOT NULL THEN file_error
      WHEN {empty} THEN 'empty record'
      WHEN NOT json_ok THEN 'not valid JSON'
      WHEN NOT is_object THEN 'not a JSON object'
      ELSE nullif(concat_ws('; ',
        {rule_list}
      ), '')
    END AS reason,
    {carried},
    unknown_fields
FROM texts)
"""


def lake_columns(contract: SourceContract) -> list[str]:
    return list(LEADING_COLUMNS) + [f.column for f in contract.own_columns]
