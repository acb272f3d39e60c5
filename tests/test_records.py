"""Typing and routing a record by its contract: event hour, offsets, epoch milliseconds, ids."""

import json
from datetime import datetime

import numpy as np
import pyarrow as pa
import pytest

from orchestration.sources.readers import split_lines
from orchestration.sources.records import typed_records_sql
from orchestration.storage import duckdb_connection


def key_bound(text: bytes) -> int:
    """The splitter's key bound of one line."""
    return int(split_lines(np.frombuffer(text + b"\n", np.uint8))[1][0])


def typed(contract, records, flat=False):
    """Run the contract's typing query over raw records, each with the key bound the JSON Lines
    splitter counts; rows as dicts."""
    raws = [r if isinstance(r, str) else json.dumps(r) for r in records]
    n = len(raws)
    bounds = [key_bound(r.encode()) for r in raws]
    staged = pa.table({"arrival_hour": pa.array([datetime(2026, 1, 5, 6)] * n, pa.timestamp("us")),
                       "source_file": ["f"] * n, "source_line": list(range(1, n + 1)), "raw": raws,
                       "file_error": pa.array([None] * n, pa.string()),
                       "max_keys": pa.array(bounds, pa.int32())})
    con = duckdb_connection()
    con.register("staged", staged)
    cur = con.execute(typed_records_sql(contract, "staged", flat))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def omny(ts, event_id="e1", **download):
    return {"EventId": event_id, "Program": {"Id": "p"}, "Clip": {"Id": "c"},
            "Download": {"DownloadedAtUtc": ts, **download}}


@pytest.mark.parametrize("ts,expected", [
    ("2026-01-05T05:00:00Z", datetime(2026, 1, 5, 5, 0)),  # exactly on the boundary: that hour
    ("2026-01-05T05:59:59.999Z", datetime(2026, 1, 5, 5, 59, 59, 999000)),
    ("2026-01-05T15:00:00.000+10:00", datetime(2026, 1, 5, 5, 0)),  # an offset is converted to UTC
    ("2026-01-04T23:30:00-05:00", datetime(2026, 1, 5, 4, 30)),  # across midnight
    ("2026-01-05T05:00:00", datetime(2026, 1, 5, 5, 0)),  # no zone: UTC
    ("2026-01-05 14:00:00 Asia/Tokyo", datetime(2026, 1, 5, 5, 0)),  # a zone's name
    ("2026-01-05T05:00:00+00:00", datetime(2026, 1, 5, 5, 0)),
])
def test_event_time_is_utc(contracts, ts, expected):
    (row,) = typed(contracts["omny"], [omny(ts)])
    assert row["reason"] is None
    assert row["event_ts"] == expected


@pytest.mark.parametrize("text", [
    "2026-01-05T05:00:00Z", " 2026-01-05T05:00:00.1234567Z", "2026-1-5 5:0:0Z", "2026-01-05T24:00:00Z", "infinityZ",
    "2026-01-05T15:00:00+10:00Z", "2026-01-05T05:00:00 Z", "2026-01-05T05:00:00z", "2026-01-05 05:00:00 UTCZ", "2026-02-30T00:00:00Z",
])
def test_a_time_in_utc_is_typed_as_through_its_zone(contracts, text):
    """A time ending in Z skips the zoned cast (4x slower): whatever the text, the value (or its
    absence) is the zoned cast's."""
    from orchestration.sources.records import _typed
    field = contracts["omny"].field(contracts["omny"].event_time_fields[0])
    con = duckdb_connection()
    fast, zoned = con.execute(f"SELECT {_typed(field, '$1')}, TRY_CAST(TRY_CAST($1 AS TIMESTAMPTZ) AS TIMESTAMP)", [text]).fetchone()
    assert fast == zoned


def test_epoch_milliseconds(contracts):
    altis = contracts["altis"]
    time_field = altis.field(altis.event_time_fields[0])
    assert time_field.physical_type == "EPOCH_MS"
    record = {}
    node = record
    parts = time_field.path.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = 1767589200000  # 2026-01-05T05:00:00Z
    for f in altis.fields:  # fill the other required fields
        if f.required and f.path != time_field.path:
            node = record
            for p in f.path.split(".")[:-1]:
                node = node.setdefault(p, {})
            node[f.path.split(".")[-1]] = f.enum[0] if f.enum else ("1" if f.logical_type in ("integer", "number") else "x")
    (row,) = typed(altis, [record])
    assert row["reason"] is None, row["reason"]
    assert row["event_ts"] == datetime(2026, 1, 5, 5, 0)


def test_fingerprint_id_is_deterministic_and_ignores_formatting(contracts):
    altis = contracts["altis"]
    assert altis.id_field is None
    base = [r for r in typed(altis, ["{}"])]
    rec = {"event_type": "pageView"}
    a = typed(altis, [json.dumps(rec), json.dumps(rec, indent=2)])
    assert a[0]["event_id"] == a[1]["event_id"]
    other = typed(altis, [json.dumps({"event_type": "click"})])
    assert other[0]["event_id"] != a[0]["event_id"]
    assert len(a[0]["event_id"]) == 32 and base


def test_bad_records_get_a_reason_naming_every_broken_rule(contracts):
    rows = typed(contracts["omny"], [
        "{not json",
        "[1, 2]",
        omny("2026-01-05T05:00:00Z", event_id=""),
        omny("yesterday"),
        {**omny("2026-01-05T05:00:00Z"), "Clip": {"Id": "c", "AudioDurationSeconds": "long"}},
        omny("2026-01-05T05:00:00Z", Geo={"CountryIsoCode": "Australia"}),
    ])
    reasons = [r["reason"] for r in rows]
    assert reasons[0] == "not valid JSON"
    assert reasons[1] == "not a JSON object"
    assert reasons[2] == "missing required field EventId"
    assert reasons[3] == "field Download.DownloadedAtUtc: yesterday is not a valid timestamp"
    assert reasons[4] == "field Clip.AudioDurationSeconds: long is not a valid number"
    assert "Download.Geo.CountryIsoCode: Australia does not match" in reasons[5]


def test_enum_is_enforced(contracts):
    atomic = contracts["atomic"]
    ok = {"id": "6ed520b7-c313-5e98-afba-8cea41fc15b1", "endUserId": "u1", "analyticsEvent": "card-published",
          "timestamp": "2026-01-05T05:00:00.000Z"}
    rows = typed(atomic, [ok, {**ok, "analyticsEvent": "card-exploded"}])
    assert rows[0]["reason"] is None and rows[0]["event_name"] == "card-published"
    assert rows[1]["reason"] == "field analyticsEvent: card-exploded is not one of its allowed values"


def _keys_in(value) -> int:
    """Keys of every object in a JSON value, duplicates counted."""
    if isinstance(value, list) and value and isinstance(value[0], tuple):  # an object's pairs
        return len(value) + sum(_keys_in(v) for _, v in value)
    if isinstance(value, list):
        return sum(_keys_in(v) for v in value)
    return 0


KEYED_TEXTS = [
    '{"a":1,"b":{"c":2,"d":[{"e":3}]}}',
    '{"a" : 1, "b"\t:2, "c"\r:3, "d"  :  {"e" :4}}',  # JSON whitespace before a colon
    '{"a":"x:y", "b":"\\":", "c":"http://h:80"}',  # colons inside strings
    '{"a\\"":1, "\\\\":2, "é":3}',  # keys ending in an escaped quote or backslash
    '{"a":1,"a":2,"a":{"a":3,"a":4}}',  # duplicates
    '{}',
]


@pytest.mark.parametrize("text", KEYED_TEXTS)
def test_the_key_bound_is_never_below_the_keys_a_record_holds(text):
    """The splitter's `max_keys` lets the contract query skip listing keys: an undercount would let
    a duplicate or unknown key through unseen."""
    assert key_bound(text.encode()) >= _keys_in(json.loads(text, object_pairs_hook=list))


def test_each_line_of_a_chunk_gets_its_own_key_bound():
    """The splitter counts a whole chunk at once: each line's bound is what it holds alone, none
    taken from the line before or after (CR line ends and an empty line among them)."""
    lines = [t.encode() for t in KEYED_TEXTS] + [b"", b'{"x" :1}\r']
    chunk = b"\n".join(lines) + b"\n"
    buf = np.frombuffer(chunk, np.uint8)
    alone = [key_bound(line) for line in lines]
    for block in (1, 2, 3, 7, 64, len(chunk)):  # scanned a block at a time: a key or a line end astride two blocks counts once
        ends, bounds = split_lines(buf, block)
        assert ends.tolist() == np.flatnonzero(buf == 10).tolist()
        assert bounds.tolist() == alone


def test_duplicate_and_unknown_keys_are_found_whatever_the_spacing(contracts):
    rows = typed(contracts["omny"], [
        '{"EventId" : "a", "EventId" :"b", "Program": {"Id": "p"}, "Clip": {"Id": "c"}, '
        '"Download": {"DownloadedAtUtc": "2026-01-05T05:00:00Z"}}',
        '{"EventId":"c","Program":{"Id":"p"},"Clip":{"Id":"c","New"\t:1},'
        '"Download":{"DownloadedAtUtc":"2026-01-05T05:00:00Z"}}',
    ])
    assert rows[0]["reason"].startswith("duplicate key EventId")
    assert rows[1]["reason"] is None and rows[1]["unknown_fields"] == ["Clip.New"]


def test_keys_inside_an_object_fields_value_hide_no_unknown_or_duplicate_key(contracts):
    """An object field's value (Atomic's eventDetail) holds keys the contract does not name; its
    keys count towards what a record may hold, never so that one of the record's own goes unseen."""
    head = '"id":"{id}","endUserId":"u","analyticsEvent":"card-displayed","timestamp":"2026-01-05T05:00:00Z"'
    detail = '"platformContext":{{"flowVersion":1,"eventDetail":{detail}}}'
    rows = typed(contracts["atomic"], ["{" + head.format(id=i) + "," + detail.format(detail=d) + rest + "}" for i, (d, rest) in
                                       enumerate([('{"source":"api","requestId":"r"}', ""),
                                                  ('{"a":1}', ',"zzz":1'),
                                                  ('{"a":{"b":1,"c":[{"d":2}]}}', ',"endUserId":"v"'),
                                                  ('"{\\"x\\":1,\\"y\\":2}"', ',"eventContext":{"ip":"1.2.3.4","new":1}'),
                                                  ('{"a" : 1 , "b" :2}', ',"eventContext":{"ip":"1","ip":"2"}'),
                                                  ('[{"a":1}]', ',"sdkContext":{"platform":"Web","more":2}')])])
    outcome = [(r["reason"], r["unknown_fields"]) for r in rows]
    assert outcome[0] == (None, None)
    assert outcome[1] == (None, ["zzz"])
    assert outcome[2][0].startswith("duplicate key endUserId")
    assert outcome[3] == (None, ["eventContext.new"])
    assert outcome[4][0].startswith("duplicate key eventContext.ip")
    assert outcome[5][1] == ["sdkContext.more"]
