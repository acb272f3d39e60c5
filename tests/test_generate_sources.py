"""The Airkit, Altis and Track sample generators: layout, record shape and the anomalies."""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import json
import random
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from sample_exports import airkit, altis, track

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "data_contracts" / "sources"
UTC = timezone.utc
START = datetime(2026, 1, 5, 0, tzinfo=UTC)
HOURS = 30  # a whole day (2026-01-05) and part of the next: midnight crossings, one daily Altis file
GENERATORS = {"airkit": airkit, "altis": altis, "track": track}


# --- helpers -------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def contract(source: str) -> dict:
    return yaml.safe_load((CONTRACTS / f"{source}.yaml").read_text())


def custom(doc: dict) -> dict:
    return {cp["property"]: cp["value"] for cp in doc.get("customProperties", [])}


def leaves(props: list[dict], prefix: str = "") -> dict[str, dict]:
    out = {}
    for p in props:
        path = prefix + p["name"]
        if p.get("properties"):
            out.update(leaves(p["properties"], path + "."))
        else:
            out[path] = p
    return out


def layout_regex(pattern: str, formats: list[str]) -> re.Pattern:
    tokens = {"{YYYY}": r"(?P<Y>\d{4})", "{MM}": r"(?P<M>\d{2})", "{DD}": r"(?P<D>\d{2})",
              "{HH}": r"(?P<H>\d{2})", "{*}": r"[^/]*",
              "{format}": "(?P<format>" + "|".join(re.escape(f) for f in sorted(formats, key=len, reverse=True)) + ")"}
    out = re.escape(pattern)
    for token, regex in tokens.items():
        out = out.replace(re.escape(token), regex)
    return re.compile("^" + out + "$")


def arrival_of(source: str, key: str) -> tuple[datetime, str]:
    """(arrival hour, format) of a landing key, from the contract's layouts."""
    for layout in custom(contract(source))["landingLayout"]:
        m = layout_regex(layout["pattern"], layout["formats"]).match(key)
        if m:
            t = datetime(int(m["Y"]), int(m["M"]), int(m["D"]), int(m.groupdict().get("H") or 0), tzinfo=UTC)
            return t + timedelta(hours=layout.get("arrivalShiftHours", 0)), m["format"]
    raise AssertionError(f"{key} matches no landing layout of {source}")


def flatten(record: dict, opaque: set[str], prefix: str = "") -> dict:
    out = {}
    for k, v in record.items():
        path = prefix + k
        if isinstance(v, dict) and path not in opaque:
            out.update(flatten(v, opaque, path + "."))
        else:
            out[path] = v
    return out


def parse_ts(value) -> datetime:
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


class Landed:
    """Everything one generator run wrote: (key, arrival hour, format, line, raw text, record|None)."""

    def __init__(self, source: str, root: Path):
        self.source, self.rows, self.files = source, [], []
        doc = contract(source)
        self.fields = leaves(doc["schema"][0]["properties"])
        self.opaque = {p for p, f in self.fields.items() if f.get("logicalType") in ("object", "array")}
        self.custom = custom(doc)
        for path in sorted(root.rglob("*")):
            if path.is_file():
                key = path.relative_to(root).as_posix()
                hour, fmt = arrival_of(source, key)
                self.files.append((key, hour, fmt))
                self._read(path, key, hour, fmt)

    def _read(self, path: Path, key: str, hour: datetime, fmt: str) -> None:
        data = path.read_bytes()
        if fmt.endswith(".gz"):
            data = gzip.decompress(data)
        text = data.decode()
        if fmt == "csv":
            rows = list(csv.reader(io.StringIO(text)))
            header = rows[0]
            for n, row in enumerate(rows[1:], start=2):
                if len(row) != len(header):
                    self.rows.append((key, hour, fmt, n, ",".join(row), None))
                    continue
                flat = {c: v for c, v in zip(header, row) if v != ""}
                self.rows.append((key, hour, fmt, n, ",".join(row), flat))
        elif fmt == "json" and text.lstrip().startswith("["):
            for n, rec in enumerate(json.loads(text), start=1):
                self.rows.append((key, hour, fmt, n, json.dumps(rec), flatten(rec, self.opaque)))
        else:
            for n, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    rec = None
                self.rows.append((key, hour, fmt, n, line, flatten(rec, self.opaque) if isinstance(rec, dict) else None))

    @property
    def records(self) -> list[tuple[datetime, dict]]:
        return [(hour, rec) for _, hour, _, _, _, rec in self.rows if rec is not None]

    def missing_required(self, rec: dict) -> list[str]:
        return [p for p, f in self.fields.items() if f.get("required") and rec.get(p) in (None, "")]

    def event_time(self, rec: dict) -> datetime | None:
        for p in self.custom["eventTimeFields"]:
            if rec.get(p) not in (None, ""):
                return parse_ts(rec[p])
        return None

    def identity(self, rec: dict) -> str:
        """The id field, or (no id) the record's canonical text: what ingestion dedupes on."""
        id_field = self.custom.get("idField")
        if id_field:
            return str(rec.get(id_field))
        canon = {k: (json.loads(v) if isinstance(v, str) and k in self.opaque else v) for k, v in rec.items()}
        canon = {k: (str(v).removeprefix("'") if isinstance(v, str) else str(v)) if not isinstance(v, (dict, list)) else json.dumps(v, sort_keys=True)
                 for k, v in canon.items()}
        return hashlib.md5(json.dumps(canon, sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module", params=sorted(GENERATORS))
def run(request, tmp_path_factory):
    source = request.param
    root = tmp_path_factory.mktemp(source)
    summary = GENERATORS[source].generate(root, START, HOURS, random.Random(42))
    return source, root, summary, Landed(source, root)


# --- tests ---------------------------------------------------------------------------------------

def test_contracts_are_valid_odcs():
    import jsonschema
    import open_data_contract_standard
    from open_data_contract_standard.model import OpenDataContractStandard

    schema = json.loads((Path(open_data_contract_standard.__file__).parent / "schema.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    for source in GENERATORS:
        doc = contract(source)
        assert [e.message for e in validator.iter_errors(doc)] == [], source
        OpenDataContractStandard.from_file(str(CONTRACTS / f"{source}.yaml"))
        assert doc["apiVersion"] == "v3.2.0" and doc["kind"] == "DataContract"


def test_files_land_in_the_layout_for_every_hour(run):
    source, root, summary, landed = run
    arrival_hours = {START + timedelta(hours=i) for i in range(HOURS)}
    hourly = {hour for key, hour, fmt in landed.files if "{HH}" in _layout_of(source, key)}
    assert hourly == arrival_hours, "one or more files in every arrival hour, none outside the range"
    assert summary.files == len(landed.files)
    formats = Counter(fmt for _, _, fmt in landed.files)
    assert any(f.endswith(".gz") for f in formats) and any(not f.endswith(".gz") for f in formats), formats
    if source == "altis":
        daily = sorted((key, hour) for key, hour, fmt in landed.files if fmt in ("csv", "json"))
        # only 2026-01-05 lies wholly in the range; its file arrives when the day has ended
        assert daily == [("altis/2026-01-05.json", START + timedelta(hours=24))] or \
            daily == [("altis/2026-01-05.csv", START + timedelta(hours=24))], daily


def _layout_of(source: str, key: str) -> str:
    for layout in custom(contract(source))["landingLayout"]:
        if layout_regex(layout["pattern"], layout["formats"]).match(key):
            return layout["pattern"]
    raise AssertionError(key)


def test_every_line_is_a_record_except_the_deliberate_malformed_ones(run):
    source, root, summary, landed = run
    bad = [raw for *_, raw, rec in landed.rows if rec is None]
    assert len(bad) == summary.malformed >= 1
    assert len(landed.records) == summary.records
    events_per_hour = Counter()
    for ident, ts in {landed.identity(r): landed.event_time(r) for _, r in landed.records
                      if not landed.missing_required(r)}.items():
        events_per_hour[ts.replace(minute=0, second=0, microsecond=0)] += 1
    first_day = [events_per_hour[START + timedelta(hours=i)] for i in range(24)]
    assert 40 <= sum(first_day) / 24 <= 130, f"distinct events per hour: {first_day}"


def test_records_match_the_contract(run):
    source, root, summary, landed = run
    missing = 0
    for hour, rec in landed.records:
        unknown = set(rec) - set(landed.fields)
        assert not unknown, f"fields not in the {source} contract: {unknown}"
        for path, value in rec.items():
            enum = landed.fields[path].get("enum")
            if enum:
                assert value in {e["value"] for e in enum}, (path, value)
        if landed.missing_required(rec):
            missing += 1
            continue
        ts = landed.event_time(rec)
        assert START <= ts < START + timedelta(hours=HOURS), "events happen inside the generated range"
        assert ts.replace(minute=0, second=0, microsecond=0) <= hour, "no file arrives before its events"
        assert hour - ts <= timedelta(hours=25), "at most 24 h late"
    assert missing == summary.missing_required >= 2


def test_duplicates_same_hour_and_later_hour(run):
    source, root, summary, landed = run
    seen: dict[str, list[datetime]] = {}
    for hour, rec in landed.records:
        if not landed.missing_required(rec):
            seen.setdefault(landed.identity(rec), []).append(hour)
    copies = {k: sorted(v) for k, v in seen.items() if len(v) > 1}
    assert sum(len(v) - 1 for v in copies.values()) == summary.duplicates > 0
    assert any(v[0] == v[1] for v in copies.values()), "re-delivered in the same hour"
    assert any(timedelta(0) < v[-1] - v[0] < timedelta(hours=24) for v in copies.values()), "re-delivered later"
    if source == "altis":  # every event of the complete day is in a batch and in the daily file
        daily = {landed.identity(r) for key, _, fmt, _, _, r in landed.rows if fmt in ("csv", "json") and r}
        batches = {landed.identity(r) for key, _, fmt, _, _, r in landed.rows if fmt.startswith("ndjson") and r}
        assert daily and daily <= batches


def test_late_events_boundaries_and_offsets(run):
    source, root, summary, landed = run
    late, across_midnight, boundary, offsets = 0, 0, 0, set()
    first_seen: dict[str, tuple[datetime, datetime]] = {}
    for hour, rec in landed.records:
        ts = landed.event_time(rec)
        if ts is None or landed.missing_required(rec):
            continue
        first_seen.setdefault(landed.identity(rec), (ts, hour))
        if ts == ts.replace(minute=0, second=0, microsecond=0):
            boundary += 1
        for p in landed.custom["eventTimeFields"]:
            m = re.search(r"([+-]\d\d:\d\d)$", str(rec.get(p, "")))
            if m and m.group(1) != "+00:00":
                offsets.add(m.group(1))
    for ts, hour in first_seen.values():
        floor = ts.replace(minute=0, second=0, microsecond=0)
        late += hour > floor
        across_midnight += hour.date() > ts.date() and hour - floor >= timedelta(hours=2)
    assert late >= 10 and summary.late > 0
    assert across_midnight >= 1, "a late event crosses midnight"
    assert boundary >= HOURS // 2, "events exactly on the hour"
    if source != "altis":  # Altis times are epoch milliseconds: no offset to write
        assert {"+10:00", "-05:00"} <= offsets, offsets


def test_deterministic_for_a_seed(tmp_path):
    for name, module in GENERATORS.items():
        digests = []
        for n in range(2):
            root = tmp_path / f"{name}{n}"
            module.generate(root, START, 24, random.Random(7))
            digests.append(hashlib.sha256(b"".join(
                p.relative_to(root).as_posix().encode() + p.read_bytes()
                for p in sorted(root.rglob("*")) if p.is_file())).hexdigest())
        assert digests[0] == digests[1], f"{name} is not deterministic for a seed"
        other = tmp_path / f"{name}-other"
        module.generate(other, START, 24, random.Random(8))
        assert sorted(p.name for p in other.rglob("*")) != sorted(p.name for p in (tmp_path / f"{name}0").rglob("*"))
