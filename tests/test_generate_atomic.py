"""The Atomic sample generator: landing layout, the three writers, the anomalies it must carry."""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from orchestration.contracts import CONTRACTS_DIR
from sample_exports import atomic
from sample_exports.atomic import (
    cell_text,
    flatten,
    generate,
    unescape_formula,
    write_csv,
    write_ndjson,
    write_parquet,
)

UTC = timezone.utc
START = datetime(2026, 1, 5, 20, tzinfo=UTC)  # the window crosses midnight
HOURS = 30
CONTRACT = yaml.safe_load((CONTRACTS_DIR / "sources" / "atomic.yaml").read_text())


def _custom(contract: dict, name: str):
    return next(p["value"] for p in contract["customProperties"] if p["property"] == name)


def _leaves(props: list[dict], prefix: str = "") -> dict[str, dict]:
    out = {}
    for prop in props:
        path = prefix + prop["name"]
        if prop.get("properties"):
            out.update(_leaves(prop["properties"], path + "."))
        else:
            out[path.lower()] = prop
    return out


LEAVES = _leaves(CONTRACT["schema"][0]["properties"])


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _read_file(path: Path) -> tuple[list[dict], int]:
    """(rows, malformed lines). NDJSON rows are nested, CSV / Parquet rows flattened (dotted keys)."""
    if path.suffix == ".ndjson":
        rows, bad = [], 0
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                bad += 1
        return rows, bad
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return [
                {k: unescape_formula(v) for k, v in row.items() if v != ""}
                for row in csv.DictReader(handle)
            ], 0
    if path.suffix == ".parquet":
        return [{k: v for k, v in row.items() if v is not None} for row in pq.read_table(path).to_pylist()], 0
    raise AssertionError(f"unexpected file {path}")


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    out = tmp_path_factory.mktemp("landing")
    summary = generate(out, START, HOURS, random.Random(42))
    batches: dict[str, list[tuple[Path, list[dict], int]]] = defaultdict(list)
    for path in sorted((out / "atomic").rglob("*")):
        if path.is_file():
            rows, bad = _read_file(path)
            batches[path.parent.name].append((path, rows, bad))
    return out, summary, batches


def _records(batches):
    """(batch key, row) for every record read; a row is nested or flat, `id` / `timestamp` on top."""
    for key, files in sorted(batches.items()):
        for _, rows, _ in files:
            for row in rows:
                yield datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC), row


# --- layout -----------------------------------------------------------------------------------


def test_files_land_in_one_folder_per_batch_key_hour_ended(landed):
    out, summary, batches = landed
    expected = [f"{START + timedelta(hours=i):%Y-%m-%dT%H}" for i in range(1, HOURS + 1)]
    assert sorted(batches) == expected

    layout = _custom(CONTRACT, "landingLayout")[0]
    assert layout["pattern"] == "atomic/{YYYY}-{MM}-{DD}T{HH}/{*}.{format}"
    formats = "|".join(re.escape(f) for f in layout["formats"])
    pattern = re.compile(rf"atomic/\d{{4}}-\d{{2}}-\d{{2}}T\d{{2}}/[^/]+\.({formats})")

    seen_formats = Counter()
    for key, files in batches.items():
        assert 1 <= len(files) <= 2
        for path, rows, _ in files:
            assert pattern.fullmatch(path.relative_to(out).as_posix())
            assert rows
            seen_formats[path.suffix] += 1
    assert set(seen_formats) == {".ndjson", ".csv", ".parquet"}

    assert summary.files == sum(len(f) for f in batches.values())
    assert summary.records == sum(len(rows) for files in batches.values() for _, rows, _ in files)
    assert summary.malformed == sum(bad for files in batches.values() for _, _, bad in files)


def test_about_60_to_150_events_an_hour(landed):
    _, _, batches = landed
    per_hour = Counter()
    ids = set()
    for _, row in _records(batches):
        if "timestamp" in row and row.get("id") not in ids:
            ids.add(row.get("id"))
            per_hour[_parse_ts(row["timestamp"]).replace(minute=0, second=0, microsecond=0)] += 1
    counts = [per_hour[START + timedelta(hours=i)] for i in range(HOURS)]
    assert min(counts) >= 55 and max(counts) <= 220, counts


# --- writers -----------------------------------------------------------------------------------


def _sample_records(landed) -> list[dict]:
    _, _, batches = landed
    nested = [row for files in batches.values() for p, rows, _ in files if p.suffix == ".ndjson" for row in rows]
    special = [
        {
            "id": "00000000-0000-4000-8000-000000000001",
            "endUserId": "=cmd|' /C calc'!A0",
            "analyticsEvent": "card-voted-down",
            "timestamp": "2026-01-06T05:00:00.000+10:00",
            "properties": {"source": "overflow-menu", "reason": "other", "message": "-\t+@ \"quoted\", with comma\nand newline"},
            "sdkContext": {"platform": "iOS", "isDnDActive": True, "containerId": 7},
            "cardContext": {"cardPriority": 3, "cardTemplateSettings": {"sendNotifications": False}},
            "platformContext": {"eventDetail": {"a": [1, 2], "b": "=x"}, "targetStreamIds": ["s1", "s2"], "flowVersion": 2.5},
        },
        {"eventName": "my-custom-event", "eventType": "custom", "endUserId": "u1", "timestamp": "2026-01-06T05:00:00.000Z",
         "properties": {"screen": "@home", "tags": ["a"], "amount": 3}},
    ]
    return nested[:300] + special


def test_flatten_dotted_keys_and_json_text():
    flat = flatten({
        "id": "x",
        "properties": {"values": {"rating": 5}, "resolvedVariables": {"n": "1"}, "statusCode": 500},
        "sdkContext": {"isDnDActive": False},
        "cardContext": {"cardTemplateId": "t", "cardTemplateSettings": {"sendNotifications": True}},
        "platformContext": {"targetPlatforms": ["iOS"], "metadata": {}, "eventDetail": {"k": {"n": 1}}},
    })
    assert flat == {
        "id": "x",
        "properties.values": '{"rating":5}',
        "properties.resolvedVariables": '{"n":"1"}',
        "properties.statusCode": 500,
        "sdkContext.isDNDActive": False,  # the vendor's flattened spelling
        "cardContext.cardTemplateId": "t",
        "cardContext.cardTemplateSettings.sendNotifications": True,
        "platformContext.targetPlatforms": '["iOS"]',
        "platformContext.metadata": "{}",
        "platformContext.eventDetail": '{"k":{"n":1}}',
    }


def test_three_writers_round_trip(landed, tmp_path):
    records = _sample_records(landed)
    write_ndjson(tmp_path / "b.ndjson", records)
    write_csv(tmp_path / "b.csv", records)
    write_parquet(tmp_path / "b.parquet", records)
    flats = [flatten(r) for r in records]

    assert [json.loads(line) for line in (tmp_path / "b.ndjson").read_text().splitlines()] == records

    raw = (tmp_path / "b.csv").read_text(encoding="utf-8")
    assert "'=cmd|" in raw and "'-\t+@" in raw  # formula-escaped cells
    with (tmp_path / "b.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        columns = reader.fieldnames
    assert len(rows) == len(records)
    for row, flat in zip(rows, flats):
        assert set(flat) <= set(columns)
        assert {c: unescape_formula(row[c]) for c in columns} == {c: cell_text(flat.get(c)) for c in columns}

    table = pq.read_table(tmp_path / "b.parquet")
    assert table.column_names == columns
    for row, flat in zip(table.to_pylist(), flats):
        assert row == {c: flat.get(c) for c in columns}  # typed: 3 == 3.0 for number columns
    assert str(table.schema.field("cardContext.cardPriority").type) == "double"
    assert str(table.schema.field("sdkContext.containerId").type) == "int64"
    assert str(table.schema.field("sdkContext.isDNDActive").type) == "bool"


# --- anomalies ---------------------------------------------------------------------------------


def test_duplicates_late_boundary_and_malformed(landed):
    _, summary, batches = landed
    batches_of = defaultdict(set)
    copies = Counter()
    late, crossing, boundary, offset, too_late = [], [], [], [], []
    for key, row in _records(batches):
        if "id" in row:
            batches_of[row["id"]].add(key)
            copies[row["id"]] += 1
        if "timestamp" not in row:
            continue
        ts = _parse_ts(row["timestamp"])
        own_batch = ts.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        if key > own_batch:
            late.append(row)
            if key.date() > own_batch.date():
                crossing.append(row)
        if key - ts > timedelta(hours=24) or ts >= key:
            too_late.append(row)
        if ts.minute == ts.second == ts.microsecond == 0:
            boundary.append(row["timestamp"])
        if not row["timestamp"].endswith("Z"):
            offset.append(row["timestamp"])

    # the same id in two batches, within 24 h; and twice in one batch
    across = [i for i, keys in batches_of.items() if len(keys) > 1]
    assert across
    assert all(max(batches_of[i]) - min(batches_of[i]) < timedelta(hours=24) for i in across)
    assert any(copies[i] > len(batches_of[i]) for i in copies)
    assert summary.duplicates == sum(n - 1 for n in copies.values())

    assert late and crossing and not too_late
    assert summary.late >= len({r["id"] for r in late if "id" in r}) - summary.duplicates
    assert any(t.endswith(":00:00.000Z") for t in boundary)  # e.g. …T05:00:00.000Z
    assert offset and all(re.search(r"[+-]\d\d:\d\d$", t) for t in offset)

    assert summary.malformed >= 1
    assert any(bad for files in batches.values() for p, _, bad in files if p.suffix == ".ndjson")


def test_invalid_records_custom_and_test_events(landed):
    _, summary, batches = landed
    rows = [row for _, row in _records(batches)]
    assert sum("id" not in r for r in rows) >= 1
    assert sum("timestamp" not in r for r in rows) >= 1
    assert summary.missing_required == sum("id" not in r or "timestamp" not in r for r in rows)

    enum = {e["value"] for e in LEAVES["analyticsevent"]["enum"]}
    names = Counter(r.get("analyticsEvent") for r in rows)
    assert [n for n in names if n is not None and n not in enum] == [atomic.BAD_EVENT_NAME]
    assert names[atomic.BAD_EVENT_NAME] == 1
    for event in ("card-published", "card-displayed", "card-completed", "card-dismissed", "card-snoozed",
                  "notification-sent", "stream-displayed", "sdk-initialized", "user-redirected"):
        assert names[event] > 0, event

    custom = [r for r in rows if r.get("eventName") == "my-custom-event"]
    assert custom and all(r.get("eventType") == "custom" and "analyticsEvent" not in r for r in custom)

    def get(row, path):
        if path in row:
            return row[path]
        for part in path.split("."):
            row = row.get(part) if isinstance(row, dict) else None
        return row

    assert any(get(r, "platformContext.triggerEventSource") == "test" for r in rows)
    assert {get(r, "sdkContext.platform") for r in rows} >= {"Web", "iOS", "Android"}
    assert len({get(r, "cardContext.cardTemplateId") for r in rows} - {None}) >= 4


def test_records_follow_the_contract(landed):
    """Every key is a contract leaf (case-insensitively), enums hold, types match."""
    _, _, batches = landed
    enum_ok = {path: {e["value"] for e in leaf["enum"]} for path, leaf in LEAVES.items() if "enum" in leaf}
    py_types = {"string": str, "timestamp": str, "integer": int, "number": (int, float), "boolean": bool}
    for _, files in batches.items():
        for path, rows, _ in files:
            if path.suffix != ".ndjson":
                continue
            for row in rows:
                for key, value in flatten(row).items():
                    leaf = LEAVES.get(key.lower())
                    if leaf is None:
                        assert row.get("eventType") == "custom" and key.startswith("properties."), key
                        continue
                    if key.lower() in enum_ok and value != atomic.BAD_EVENT_NAME:
                        assert value in enum_ok[key.lower()], (key, value)
                    if leaf["logicalType"] in py_types:
                        assert isinstance(value, py_types[leaf["logicalType"]]), (key, value)
                    if leaf["logicalType"] == "timestamp":
                        _parse_ts(value)


# --- determinism and speed ---------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_for_a_seed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(a, START, 6, random.Random(3))
    generate(b, START, 6, random.Random(3))
    generate(c, START, 6, random.Random(4))
    assert _snapshot(a) == _snapshot(b)
    assert _snapshot(a) != _snapshot(c)


def test_a_day_generates_a_day_of_records(tmp_path):
    summary = generate(tmp_path / "day", START, 24, random.Random(1))
    assert summary.records > 24 * 50
