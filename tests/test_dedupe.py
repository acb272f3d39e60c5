"""The dedupe rule of the events layer, and the landed ledger's counts, on small hand-made Omny deliveries."""

import random
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
from omny_files import write_omny_file
from support import expected_omny_ids

from orchestration.lake import CHUNK, DATABASE_HOURS, paths
from orchestration.lake.events import build_event_hours
from orchestration.lake.landed import affected_hours, land_hours
from orchestration.settings import format_hour
from orchestration.storage import LocalStore, duckdb_connection

UTC = timezone.utc
H = lambda day, hour: datetime(2026, 1, day, hour, tzinfo=UTC)


def record(event_id, ts: datetime, title="t"):
    return {"EventId": event_id, "Program": {"Id": "p"}, "Clip": {"Id": "c", "Title": title},
            "Download": {"DownloadedAtUtc": ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")}}


class Warehouse:
    def __init__(self, root: Path, contract, database_per_chunk=False):
        self.landing, self.lake, self.contract = LocalStore(str(root / "landing")), LocalStore(str(root / "lake")), contract
        # as the assets run, on DuckDB databases opened and closed by the run, here one a chunk
        self.connect, self.database_hours = ((duckdb_connection, CHUNK) if database_per_chunk
                                             else (duckdb_connection(), DATABASE_HOURS))

    def deliver(self, arrival: datetime, records, name="a"):
        write_omny_file(Path(self.landing.root), arrival, name, records)

    def land(self, *arrivals):
        ledgers = land_hours(self.contract, self.landing, self.lake, list(arrivals), self.connect,
                             database_hours=self.database_hours)
        return ledgers, affected_hours(ledgers)

    def build(self, start, end):
        return build_event_hours(self.contract, self.lake, start, end, self.connect, database_hours=self.database_hours)

    def events(self, hour):
        files = self.lake.list(paths.events_partition("omny", hour) + "/")
        if not files:
            return []
        return duckdb.sql(f"SELECT event_id, arrival_hour, source_file, source_line, clip_title FROM "
                          f"read_parquet({[self.lake.uri(k) for k in files]}) ORDER BY event_id").fetchall()


@pytest.fixture
def wh(tmp_path, contracts):
    return Warehouse(tmp_path, contracts["omny"])


def test_first_delivered_copy_is_kept(wh):
    ts = H(5, 3) + timedelta(minutes=20)
    wh.deliver(H(5, 3), [record("x", ts, "third-line"), record("x", ts, "dup-line")], name="b")
    wh.deliver(H(5, 3), [record("x", ts, "file-a")], name="a")  # same hour, earlier file name
    wh.deliver(H(5, 5), [record("x", ts, "later-hour")], name="0")
    wh.land(H(5, 5), H(5, 3))  # order of landing does not matter
    ledger = wh.build(H(5, 3), H(5, 4))[0]
    (row,) = wh.events(H(5, 3))
    assert row[0] == "x" and row[4] == "file-a" and row[1] == datetime(2026, 1, 5, 3)
    assert (ledger.rows_in, ledger.rows_kept, ledger.duplicates_dropped) == (4, 1, 3)
    assert ledger.balanced


def test_copies_in_one_file_keep_the_earliest_line(wh):
    ts = H(5, 3) + timedelta(minutes=20)
    wh.deliver(H(5, 3), [record("v", ts, "line-1"), record("u", ts), record("v", ts, "line-3"), record("v", ts, "line-4")])
    wh.land(H(5, 3))
    ledger = wh.build(H(5, 3), H(5, 4))[0]
    assert sorted((r[0], r[4]) for r in wh.events(H(5, 3))) == [("u", "t"), ("v", "line-1")]
    assert (ledger.rows_in, ledger.rows_kept, ledger.duplicates_in_hour) == (4, 2, 2)


def test_copy_with_a_later_timestamp_inside_24h_is_a_duplicate(wh):
    # the later-stamped copy was delivered first; the earlier-stamped one still wins
    wh.deliver(H(5, 10), [record("y", H(5, 9) + timedelta(minutes=5), "stamped-later")])
    wh.deliver(H(5, 12), [record("y", H(5, 2) + timedelta(minutes=5), "stamped-earlier")])
    _, affected = wh.land(H(5, 10))
    assert affected == ["2026-01-05T09"]
    wh.build(H(5, 9), H(5, 10))
    assert [r[4] for r in wh.events(H(5, 9))] == ["stamped-later"]
    # the late copy lands: it touches 02 and affects 09, where the copy is now a duplicate
    _, affected = wh.land(H(5, 12))
    assert affected == ["2026-01-05T02", "2026-01-05T09"]
    ledgers = wh.build(H(5, 2), H(5, 10))
    assert [r[4] for r in wh.events(H(5, 2))] == ["stamped-earlier"]
    assert wh.events(H(5, 9)) == []
    assert ledgers[-1].duplicates_in_window == 1 and ledgers[-1].balanced


def test_copy_outside_24h_is_a_new_event(wh):
    wh.deliver(H(5, 1), [record("z", H(5, 0) + timedelta(minutes=1))])
    wh.deliver(H(6, 2), [record("z", H(6, 1) + timedelta(minutes=1))])  # 25 hours later
    wh.land(H(5, 1), H(6, 2))
    wh.build(H(5, 0), H(6, 2))
    assert len(wh.events(H(5, 0))) == 1 and len(wh.events(H(6, 1))) == 1


def test_window_edge_is_24_event_hours(wh):
    wh.deliver(H(5, 1), [record("w", H(5, 0) + timedelta(minutes=59))])
    wh.deliver(H(6, 1), [record("w", H(6, 0) + timedelta(minutes=0))])  # event hour 24 h later: inside
    wh.land(H(5, 1), H(6, 1))
    wh.build(H(5, 0), H(6, 1))
    assert len(wh.events(H(5, 0))) == 1 and wh.events(H(6, 0)) == []


@pytest.mark.parametrize("database_per_chunk", [False, True])
def test_copies_spread_over_hours_and_chunks_keep_what_the_rule_keeps(tmp_path, contracts, database_per_chunk):
    # ids with copies in one hour, in hours up to 60 apart, delivered up to 26 h late, over three
    # of the events layer's chunks: each hour keeps the ids the rule gives, computed in plain Python
    wh = Warehouse(tmp_path, contracts["omny"], database_per_chunk)
    rnd, start = random.Random(14), H(5, 0)
    deliveries = defaultdict(list)
    for i in range(150):
        for _ in range(rnd.choice([1, 1, 2, 3])):
            ts = start + timedelta(hours=rnd.randrange(60), minutes=rnd.randrange(60))
            arrival = ts.replace(minute=0) + timedelta(hours=rnd.choice([0, 0, 1, 3, 20, 26]))
            deliveries[(arrival, rnd.choice("ab"))].append(record(f"id-{i}", ts))
    for (arrival, name), records in deliveries.items():
        wh.deliver(arrival, records, name)
    wh.land(*sorted({arrival for arrival, _ in deliveries}))
    ledgers = wh.build(start, start + timedelta(hours=60))
    kept = {format_hour(ledger.event_hour): {row[0] for row in wh.events(ledger.event_hour)} for ledger in ledgers}
    assert {hour: ids for hour, ids in kept.items() if ids} == expected_omny_ids(Path(wh.landing.root))
    assert all(ledger.balanced and ledger.rows_kept == len(kept[format_hour(ledger.event_hour)]) for ledger in ledgers)
    assert sum(ledger.duplicates_in_window for ledger in ledgers) and sum(ledger.duplicates_in_hour for ledger in ledgers)


def test_result_depends_only_on_what_landed_not_on_run_order(tmp_path, contracts):
    deliveries = [(H(5, 4), [record("a", H(5, 3)), record("b", H(5, 3) + timedelta(minutes=3))]),
                  (H(5, 6), [record("b", H(5, 5)), record("c", H(5, 5))]),
                  (H(5, 8), [record("a", H(5, 3)), record("c", H(5, 4))])]
    results = []
    for order, per_hour in (((0, 1, 2), False), ((2, 0, 1), True)):
        wh = Warehouse(tmp_path / str(per_hour), contracts["omny"])
        for i in order:
            wh.deliver(*deliveries[i])
        for i in order:
            wh.land(deliveries[i][0])
            if per_hour:  # rebuild after each arrival, hour by hour
                for h in range(3, 6):
                    wh.build(H(5, h), H(5, h + 1))
        if not per_hour:
            wh.build(H(5, 3), H(5, 6))
        results.append({h: [r[0] for r in wh.events(H(5, h))] for h in range(3, 6)})
    assert results[0] == results[1] == {3: ["a", "b"], 4: ["c"], 5: []}


def test_hours_landed_before_the_contract_gained_a_field_dedupe_with_the_hours_after(tmp_path, contracts):
    """The events layer reads landed files of both versions together, in either order: the ids by
    their leading columns, the rows kept with the new field empty where the old files lack it."""
    new = contracts["omny"]
    old = replace(new, fields=tuple(f for f in new.fields if f.column != "clip_title"))
    before, after = Warehouse(tmp_path, old), Warehouse(tmp_path, new)  # one lake; a connection per contract
    # arrival hour 5, old contract: two events of its own hour (its first copies, copied whole), and
    # two late ones of hour 3 (one a copy that hour 3's own delivery beats, one kept: written anew)
    before.deliver(H(5, 5), [record("a", H(5, 5) + timedelta(minutes=10)), record("e", H(5, 5) + timedelta(minutes=20)),
                             record("b", H(5, 3) + timedelta(minutes=10)), record("f", H(5, 3) + timedelta(minutes=30))])
    before.land(H(5, 5))
    after.deliver(H(5, 3), [record("b", H(5, 3) + timedelta(minutes=10), "b-new"), record("c", H(5, 3), "c-new")])
    after.deliver(H(5, 6), [record("a", H(5, 5) + timedelta(minutes=10), "a-again"), record("d", H(5, 6), "d-new")])
    after.land(H(5, 3), H(5, 6))  # event hour 3 lists the new file first, event hour 5 the old one
    ledgers = after.build(H(5, 3), H(5, 7))
    kept = {h: [(r[0], r[1].hour, r[4]) for r in after.events(H(5, h))] for h in range(3, 7)}
    assert kept == {3: [("b", 3, "b-new"), ("c", 3, "c-new"), ("f", 5, None)], 4: [],
                    5: [("a", 5, None), ("e", 5, None)], 6: [("d", 6, "d-new")]}
    assert sum(ledger.duplicates_dropped for ledger in ledgers) == 2 and all(ledger.balanced for ledger in ledgers)


def test_relanding_an_hour_is_idempotent(wh):
    wh.deliver(H(5, 3), [record("r", H(5, 2)), "not json"])
    first, _ = wh.land(H(5, 3))
    before = sorted(wh.lake.list("omny/"))
    again, _ = wh.land(H(5, 3))
    assert sorted(wh.lake.list("omny/")) == before
    assert (again[0].rows_landed, again[0].rows_quarantined) == (first[0].rows_landed, first[0].rows_quarantined) == (1, 1)


def test_the_landed_ledger_counts_lateness_by_whole_hours_between_event_and_arrival(wh):
    arrival = H(5, 12)
    offsets = {"ahead": [-2], "0-1h": [0, 1], "2-6h": [2, 6], "7-24h": [7, 24], "over_24h": [25]}
    records = [record(f"{bucket}-{h}", arrival - timedelta(hours=h) + timedelta(minutes=59))
               for bucket, hours in offsets.items() for h in hours]
    records.append({**record("drifted", arrival), "Extra": 1})  # a field the contract does not name
    records.append({k: v for k, v in record("no-id", arrival).items() if k != "EventId"})  # quarantined: not late
    wh.deliver(arrival, records)
    (ledger,), _ = wh.land(arrival)
    assert ledger.lateness == {"ahead": 1, "0-1h": 3, "2-6h": 2, "7-24h": 2, "over_24h": 1}  # "drifted" is on time
    assert (ledger.late_events, ledger.beyond_window) == (5, 1)
    assert (ledger.rows_read, ledger.rows_landed, ledger.rows_quarantined) == (10, 9, 1)
    assert ledger.quarantine_reasons == {"missing required field EventId": 1}
    assert ledger.schema_drift == {"Extra": 1}
    assert ledger.event_hours_touched == {"2026-01-04T11": 1, "2026-01-04T12": 1, "2026-01-05T05": 1, "2026-01-05T06": 1,
                                          "2026-01-05T10": 1, "2026-01-05T11": 1, "2026-01-05T12": 2, "2026-01-05T14": 1}


def test_an_hours_first_copies_reach_the_events_layer_whole_and_its_further_copies_never(wh):
    ts = H(5, 3) + timedelta(minutes=20)
    wh.deliver(H(5, 3), [record("a", ts, "first"), record("b", ts), record("a", ts, "again"), record("c", H(5, 2))])
    wh.land(H(5, 3))
    landed = Path(wh.lake.uri(paths.landed_partition("omny", H(5, 3))))
    first_copies = landed / "event_hour=2026-01-05T03" / paths.FIRST_COPIES_FILE
    ids = lambda f: sorted(duckdb.sql(f"SELECT event_id, source_line FROM '{f}'").fetchall())
    assert ids(first_copies) == [("a", 1), ("b", 2)]
    assert ids(landed / "event_hour=2026-01-05T03" / paths.DATA_FILE) == [("a", 3)]  # delivered again: apart
    ledgers = wh.build(H(5, 2), H(5, 4))
    assert [(r[0], r[4]) for r in wh.events(H(5, 3))] == [("a", "first"), ("b", "t")]
    assert [r[0] for r in wh.events(H(5, 2))] == ["c"]
    events = Path(wh.lake.uri(paths.events_partition("omny", H(5, 3))))
    assert [f.name for f in events.iterdir()] == [paths.events_copy_name(H(5, 3))]  # the landed file, copied
    assert (events / paths.events_copy_name(H(5, 3))).read_bytes() == first_copies.read_bytes()
    assert [(lg.rows_in, lg.rows_kept, lg.duplicates_in_hour, lg.written_rows) for lg in ledgers] == [(1, 1, 0, 1), (3, 2, 1, 2)]


def test_relanding_an_hour_without_its_further_copies_leaves_no_file_or_marker_of_them(wh):
    ts = H(5, 3) + timedelta(minutes=20)
    wh.deliver(H(5, 3), [record("a", ts, "first"), record("a", ts, "again")])
    wh.land(H(5, 3))
    index = paths.index_prefix("omny", H(5, 3))
    assert [k.rsplit("/", 1)[-1] for k in wh.lake.list(index)] == ["arrival_hour=2026-01-05T03", "arrival_hour=2026-01-05T03.first_copies"]
    wh.deliver(H(5, 3), [record("a", ts, "first")])  # the vendor re-sends the file, fixed
    wh.land(H(5, 3))
    assert [k.rsplit("/", 1)[-1] for k in wh.lake.list(index)] == ["arrival_hour=2026-01-05T03.first_copies"]
    assert [k.rsplit("/", 1)[-1] for k in wh.lake.list(paths.landed_partition("omny", H(5, 3)) + "/")] == [paths.FIRST_COPIES_FILE]
    (ledger,) = wh.build(H(5, 3), H(5, 4))
    assert [(r[0], r[4]) for r in wh.events(H(5, 3))] == [("a", "first")] and (ledger.rows_in, ledger.rows_kept) == (1, 1)
