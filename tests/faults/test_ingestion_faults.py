"""The fault suite for ingestion: the files a real feed eventually sends, each next to clean files
in the same and other hours. One backfill through Dagster lands them all; each test then checks
one fault: every good event landed, the bad item quarantined or reported with its reason, the
ledger balanced, and a re-run changed nothing."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestration.backfill import run_backfill
from orchestration.contracts import load_source_contracts
from orchestration.lake.landed import OTHER_REASONS, at_most_reasons, land_hour, land_hours
from orchestration.resources import LAKE_MEMORY_LIMIT
from orchestration.sources.landing import scan_landing
from orchestration.settings import Settings
from orchestration.storage import LocalStore, duckdb_connection

UTC = timezone.utc
T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
HOURS = 3
MAX_LINE = 4096
MAX_FILE = 256 * 1024
REPO = Path(__file__).resolve().parents[2]


# --- Writing landing files ----------------------------------------------------------------------

def omny_record(event_id: str, ts: datetime, **extra) -> dict:
    record = {"EventId": event_id, "Program": {"Id": "prog-1", "Name": "Program"}, "Clip": {"Id": "clip-1"},
              "Download": {"DownloadedAtUtc": ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "Device": {"Type": "Mobile"}}}
    record.update(extra)
    return record


def omny_path(landing: Path, arrival: datetime, tag: str, ext: str = "jsonl.gz") -> Path:
    d = arrival
    path = landing / f"omny/{d:%Y}/{d:%Y-%m}/{d:%Y-%m-%d}/{d:%Y-%m-%dT%H}15_000000.000_{tag}.{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def lines_of(records) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


def clean_records(tag: str, arrival: datetime, n: int = 5) -> list[dict]:
    return [omny_record(f"{tag}-{i}", arrival + timedelta(minutes=5 * i)) for i in range(n)]


class Faults:
    """The landing folder, and the ids that must land (by construction, not by our code)."""

    def __init__(self, root: Path):
        self.root, self.landing = root, root / "landing"
        self.good: dict[str, set[str]] = {"omny": set(), "atomic": set()}

    def omny(self, tag: str, arrival: datetime, data: bytes, ext: str = "jsonl.gz", good: list[str] = ()) -> Path:
        path = omny_path(self.landing, arrival, tag, ext)
        path.write_bytes(data)
        self.good["omny"].update(good)
        return path

    def atomic(self, name: str, arrival: datetime, write, good: list[str] = ()) -> Path:
        path = self.landing / f"atomic/{arrival:%Y-%m-%dT%H}/{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        self.good["atomic"].update(good)
        return path


def atomic_rows(tag: str, arrival: datetime, n: int = 4) -> list[dict]:
    return [{"id": f"{tag}-{i}", "endUserId": f"user-{i}", "analyticsEvent": "card-displayed",
             "timestamp": (arrival - timedelta(minutes=50 - 5 * i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
            for i in range(n)]


def write_csv(rows: list[dict], header: list[str] | None = None, extra_lines: list[str] = ()):
    header = header or list(rows[0])

    def write(path: Path):
        lines = [",".join(header)] + [",".join(str(r.get(h, "")) for h in header) for r in rows]
        path.write_text("\n".join(lines + list(extra_lines)) + "\n")
    return write


def write_parquet(rows: list[dict], drop: tuple[str, ...] = ()):
    def write(path: Path):
        table = pa.table({k: [r[k] for r in rows] for k in rows[0] if k not in drop})
        pq.write_table(table, path)
    return write


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    f = Faults(root)
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    # Clean files in every hour.
    for i, hour in enumerate((T0, t1, t2)):
        recs = clean_records(f"clean{i}", hour)
        f.omny(f"clean{i}", hour, gzip.compress(lines_of(recs)), good=[r["EventId"] for r in recs])
    # Omny faults, one file each.
    trunc = gzip.compress(lines_of(clean_records("trunc", T0, 200)))
    f.omny("truncated", T0, trunc[: len(trunc) // 2])
    f.omny("corrupt", T0, b"\x1f\x8b\x08\x00garbage that is not deflate")
    f.omny("trailing", T0, gzip.compress(lines_of(clean_records("trailing", T0, 3))) + b"<html>an error page</html>")
    recs = clean_records("plain", T0)
    f.omny("notgzip", T0, lines_of(recs), good=[r["EventId"] for r in recs])
    f.omny("emptygz", t1, gzip.compress(b""))
    f.omny("zerobyte", t1, b"")
    recs = clean_records("bomcrlf", t1)
    f.omny("bomcrlf", t1, gzip.compress(b"\xef\xbb\xbf" + lines_of(recs).replace(b"\n", b"\r\n")),
           good=[r["EventId"] for r in recs])
    recs = clean_records("utf8", t1)
    data = lines_of(recs[:2]) + b'{"EventId": "utf8-bad", "Program": {"Id": "\xff\xfe"}}\n' + lines_of(recs[2:])
    f.omny("utf8", t1, gzip.compress(data), good=[r["EventId"] for r in recs])
    recs = clean_records("blanks", t1, 3)  # lines of JSON whitespace alone, mid-file and last (no newline)
    f.omny("blanks", t1, gzip.compress(lines_of(recs[:1]) + b"   \n" + lines_of(recs[1:]) + b" \t\r\n\n\t "),
           good=[r["EventId"] for r in recs])
    recs = clean_records("longbad", t1, 2)  # a record the contract refuses, longer than the raw text kept of it
    bad = {"Program": {"Id": "p", "Name": "z" * 3000}}
    f.omny("longbad", t1, gzip.compress(lines_of(recs[:1] + [bad] + recs[1:])), good=[r["EventId"] for r in recs])
    recs = clean_records("padded", t1, 6)  # two gzip members, zero bytes after each (a block-padded writer's)
    f.omny("padded", t1, gzip.compress(lines_of(recs[:3])) + bytes(100) + gzip.compress(lines_of(recs[3:])) + bytes(5000),
           good=[r["EventId"] for r in recs])
    recs = clean_records("permember", t1, 300)  # a writer that appends a gzip member a record
    f.omny("permember", t1, b"".join(gzip.compress(lines_of([r])) for r in recs), good=[r["EventId"] for r in recs])
    recs = clean_records("upper", t1)
    f.omny("upper", t1, gzip.compress(lines_of(recs)), ext="JSONL.GZ", good=[r["EventId"] for r in recs])
    f.omny("wrongext", t1, lines_of(clean_records("wrongext", t1)), ext="jsonl")
    stray = f.landing / f"omny/{t1:%Y}/{t1:%Y-%m}/{t1:%Y-%m-%d}/notes.txt"
    stray.write_text("not an export")
    (f.landing / "omny/README.txt").write_text("a stray file at the top of the source's folder")
    (f.landing / f"omny/{t1:%Y}/misfiled.jsonl.gz").write_bytes(gzip.compress(lines_of(clean_records("misfiled", t1))))
    outside = root / "outside.jsonl.gz"
    outside.write_bytes(gzip.compress(lines_of(clean_records("outside", t2))))
    os.symlink(outside, omny_path(f.landing, t2, "symlinked"))
    os.symlink(f.landing / "omny/nowhere.jsonl.gz", omny_path(f.landing, t2, "dangling"))
    recs = clean_records("dupkey", t2, 3)
    dup = b'{"EventId": "dupkey-x", "Program": {"Id": "p"}, "Clip": {"Id": "c"}, "Download": ' \
          b'{"DownloadedAtUtc": "2026-01-05T12:20:00Z", "DownloadedAtUtc": "2026-01-01T00:00:00Z"}}'
    f.omny("dupkey", t2, gzip.compress(lines_of(recs + [dup])), good=[r["EventId"] for r in recs])
    recs = [omny_record(f"drift-{i}", t2 + timedelta(minutes=i), NewVendorField={"x": 1}) for i in range(3)]
    f.omny("drift", t2, gzip.compress(lines_of(recs)), good=[r["EventId"] for r in recs])
    recs = clean_records("years", t2, 2)
    far = [omny_record("year-9999", datetime(9999, 12, 31, 23, tzinfo=UTC)), omny_record("year-1", datetime(1, 1, 1, tzinfo=UTC))]
    f.omny("years", t2, gzip.compress(lines_of(recs + far)), good=[r["EventId"] for r in recs])
    recs = clean_records("longline", t2, 2)
    long = omny_record("longline-x", t2, Padding="y" * (MAX_LINE * 2))
    f.omny("longline", t2, gzip.compress(lines_of(recs[:1] + [long] + recs[1:])), good=[r["EventId"] for r in recs])
    big = [omny_record(f"big-{i}", t2 + timedelta(seconds=i)) for i in range(2000)]  # ~370 KB of text: past MAX_FILE
    f.omny("big", t2, gzip.compress(lines_of(big)))
    f.big_ids = [r["EventId"] for r in big]
    redelivered = clean_records("clean0", T0)[:2]  # the same ids again, under another file name
    f.omny("redelivered", t1, gzip.compress(lines_of(redelivered)))
    # Atomic faults (flattened CSV / Parquet).
    rows = atomic_rows("csvok", T0)
    f.atomic("ok.csv", T0, write_csv(rows), good=[r["id"] for r in rows])
    rows = atomic_rows("csvextra", T0)
    f.atomic("extra.csv", T0, write_csv([dict(r, newColumn="v" if i else "") for i, r in enumerate(rows)]),
             good=[r["id"] for r in rows])
    rows = atomic_rows("csvmissing", T0)
    f.atomic("missing.csv", T0, write_csv(rows, header=["id", "analyticsEvent", "timestamp"]))
    rows = atomic_rows("csvragged", t1)
    f.atomic("ragged.csv", t1, write_csv(rows, extra_lines=["csvragged-x,u,card-displayed,2026-01-05T10:30:00Z,extra,cells",
                                                          "csvragged-y"]), good=[r["id"] for r in rows])
    f.atomic("duphead.csv", t1, write_csv(atomic_rows("duphead", t1), header=["id", "endUserId", "analyticsEvent", "timestamp", "ID"]))
    rows = atomic_rows("csvmid", t2)  # a malformed row between good ones, and a quote left open at the end
    lines = [",".join(rows[0])] + [",".join(r.values()) for r in rows]
    lines[2:2] = ["csvmid-x,u"]
    f.atomic("midragged.csv", t2, lambda path: path.write_text("\n".join(lines + ['csvmid-y,"u,card-displayed']) + "\n"),
             good=[r["id"] for r in rows])
    rows = atomic_rows("pqnoreq", t1)
    f.atomic("noreq.parquet", t1, write_parquet(rows, drop=("endUserId",)))
    rows = atomic_rows("pqok", t2)
    f.atomic("ok.parquet", t2, write_parquet(rows), good=[r["id"] for r in rows])
    f.atomic("garbage.parquet", t2, lambda p: p.write_bytes(b"PAR1 this is not parquet"))

    settings = Settings(landing=str(f.landing), lake=str(root / "lake"), duckdb_path=str(root / "w.duckdb"),
                        start=datetime(2026, 1, 1, tzinfo=UTC), max_line_bytes=MAX_LINE, max_file_bytes=MAX_FILE)
    report = run_backfill(settings, T0, T0 + timedelta(hours=HOURS), ["omny", "atomic"], marts=False)
    first = lake_snapshot(root / "lake")
    again = run_backfill(settings, T0, T0 + timedelta(hours=HOURS), ["omny", "atomic"], marts=False)
    return f, settings, report, first, again


def lake_snapshot(lake: Path) -> dict[str, list]:
    return {str(p.relative_to(lake)): duckdb.sql(f"select * from read_parquet('{p}', hive_partitioning = false) order by all").fetchall()
            for p in sorted(lake.rglob("*.parquet"))}


def event_ids(settings: Settings, source: str) -> set[str]:
    rows = duckdb.sql(f"select event_id from read_parquet('{settings.lake}/{source}/events/*/*.parquet', "
                      "hive_partitioning = false)").fetchall()
    return {r[0] for r in rows}


def quarantined(settings: Settings, source: str) -> list[tuple[str, int | None, str, str]]:
    """(file name, line, raw, reason) of every quarantined record."""
    rows = duckdb.sql(f"select source_file, source_line, raw, reason from read_parquet("
                      f"'{settings.lake}/{source}/quarantine/*/*.parquet', hive_partitioning = false)").fetchall()
    return [(Path(f).name, line, raw, reason) for f, line, raw, reason in rows]


def reasons_for(settings: Settings, source: str, tag: str) -> set[str]:
    return {reason for name, _, _, reason in quarantined(settings, source) if tag in name}


def reported(report, source: str) -> dict[str, str]:
    return {Path(k).name: r for k, r in report.landed[source].get("reported_files", {}).items()}


# --- The whole window -------------------------------------------------------------------------

def test_every_good_event_lands_and_the_run_succeeds(landed):
    f, settings, report, _, _ = landed
    assert report.ok, report.errors + report.failed_checks
    for source in ("omny", "atomic"):
        ids = event_ids(settings, source)
        assert f.good[source] <= ids, sorted(f.good[source] - ids)[:10]


def test_the_ledger_balances(landed):
    _, _, report, _, _ = landed
    for source in ("omny", "atomic"):
        m = report.landed[source]
        assert m["rows_read"] == m["rows_landed"] + m["rows_quarantined"]
        assert report.events[source]["rows_in"] == report.events[source]["rows_kept"] + report.events[source]["duplicates_dropped"]


def test_a_rerun_changes_nothing(landed):
    f, _, report, first, again = landed
    assert again.ok
    assert lake_snapshot(f.root / "lake") == first
    assert again.landed["omny"]["reported_files"] == report.landed["omny"]["reported_files"]


# --- One fault each ---------------------------------------------------------------------------

def test_truncated_gzip_is_quarantined_whole_with_its_reason(landed):
    _, settings, _, _, _ = landed
    rows = [r for r in quarantined(settings, "omny") if "truncated" in r[0]]
    assert rows and {r[3] for r in rows} == {"truncated gzip file: the compressed stream ends early"}
    assert not {i for i in event_ids(settings, "omny") if i.startswith("trunc-")}


def test_corrupt_gzip_is_one_quarantine_record(landed):
    _, settings, _, _, _ = landed
    (reason,) = reasons_for(settings, "omny", "corrupt")
    assert reason.startswith("corrupt gzip file")


def test_bytes_after_the_gzip_stream_quarantine_the_file_as_corrupt(landed):
    _, settings, _, _, _ = landed
    rows = [r for r in quarantined(settings, "omny") if "trailing" in r[0]]
    assert len(rows) == 3 and {r[3] for r in rows} == {"corrupt gzip file: bytes after its gzip stream that are not gzip"}
    assert not {i for i in event_ids(settings, "omny") if i.startswith("trailing-")}


def test_plain_text_named_gz_lands(landed):
    f, settings, _, _, _ = landed
    assert {f"plain-{i}" for i in range(5)} <= event_ids(settings, "omny")


def test_empty_gzip_and_zero_byte_files_are_reported(landed):
    _, _, report, _, _ = landed
    files = reported(report, "omny")
    assert [r for n, r in files.items() if "emptygz" in n] == ["empty file: no records"]
    assert [r for n, r in files.items() if "zerobyte" in n] == ["empty file: no records"]


def test_bom_and_crlf_land(landed):
    _, settings, _, _, _ = landed
    assert {f"bomcrlf-{i}" for i in range(5)} <= event_ids(settings, "omny")
    assert not reasons_for(settings, "omny", "bomcrlf")


def test_invalid_utf8_quarantines_its_line_only(landed):
    _, settings, _, _, _ = landed
    rows = [r for r in quarantined(settings, "omny") if "utf8" in r[0]]
    assert [(line, reason) for _, line, _, reason in rows] == [(3, "line is not valid UTF-8")]
    assert {f"utf8-{i}" for i in range(5)} <= event_ids(settings, "omny")


def test_blank_lines_are_not_records_wherever_they_stand(landed):
    _, settings, _, _, _ = landed
    assert not reasons_for(settings, "omny", "blanks")
    rows = duckdb.sql(f"select event_id, source_line from read_parquet('{settings.lake}/omny/events/*/*.parquet', "
                      "hive_partitioning = false) where event_id like 'blanks-%' order by 1").fetchall()
    assert rows == [("blanks-0", 1), ("blanks-1", 3), ("blanks-2", 4)]


def test_a_quarantined_records_raw_text_is_cut_to_a_bounded_length(landed):
    _, settings, _, _, _ = landed
    ((line, raw, reason),) = [(line, raw, reason) for name, line, raw, reason in quarantined(settings, "omny") if "longbad" in name]
    assert line == 2 and "EventId" in reason
    assert raw == json.dumps({"Program": {"Id": "p", "Name": "z" * 3000}})[:2000]


def test_gzip_members_and_the_zero_bytes_padding_them_land(landed):
    _, settings, _, _, _ = landed
    assert {f"padded-{i}" for i in range(6)} <= event_ids(settings, "omny")
    assert not reasons_for(settings, "omny", "padded")


def test_a_gzip_member_a_record_lands_every_record_under_its_line(landed):
    _, settings, _, _, _ = landed
    rows = duckdb.sql(f"select event_id, source_line from read_parquet('{settings.lake}/omny/events/*/*.parquet', "
                      "hive_partitioning = false) where event_id like 'permember-%'").fetchall()
    assert sorted(rows) == sorted((f"permember-{i}", i + 1) for i in range(300))


def test_upper_case_extension_lands(landed):
    _, settings, _, _, _ = landed
    assert {f"upper-{i}" for i in range(5)} <= event_ids(settings, "omny")


def test_files_the_layout_does_not_match_are_reported(landed):
    _, settings, report, _, _ = landed
    files = reported(report, "omny")
    assert files["notes.txt"] == "name does not match the landing layout"
    assert files["README.txt"] == files["misfiled.jsonl.gz"] == "name does not match the landing layout"
    assert [r for n, r in files.items() if "wrongext" in n] == ["not one of the formats jsonl.gz"]
    assert not {i for i in event_ids(settings, "omny") if i.startswith("wrongext-")}


def test_symlinks_out_of_the_landing_root_are_refused_and_reported(landed):
    _, settings, report, _, _ = landed
    files = reported(report, "omny")
    assert [r for n, r in files.items() if "symlinked" in n] == ["symlink to a file outside the landing root: not followed"]
    assert [r for n, r in files.items() if "dangling" in n] == ["dangling symlink: its target does not exist"]
    assert not {i for i in event_ids(settings, "omny") if i.startswith("outside-")}


def test_duplicate_keys_are_a_quarantine_reason(landed):
    _, settings, _, _, _ = landed
    (reason,) = reasons_for(settings, "omny", "dupkey")
    assert reason.startswith("duplicate key Download.DownloadedAtUtc")
    assert "dupkey-x" not in event_ids(settings, "omny")


def test_unknown_fields_land_and_are_reported_as_schema_drift(landed):
    _, settings, report, _, _ = landed
    assert report.landed["omny"]["schema_drift"] == {"NewVendorField": 3}
    assert {f"drift-{i}" for i in range(3)} <= event_ids(settings, "omny")
    columns = duckdb.sql(f"describe select * from read_parquet('{settings.lake}/omny/events/*/*.parquet')").fetchall()
    assert not [c for c in columns if "new" in c[0].lower()]


def test_event_times_the_partitions_cannot_name_are_quarantined(landed):
    _, settings, _, _, _ = landed
    reasons = {raw and json.loads(raw)["EventId"]: reason for name, _, raw, reason in quarantined(settings, "omny")
               if "years" in name}
    assert reasons == {"year-9999": "event time more than 48 h after its file arrived (WAREHOUSE_MAX_EVENT_AHEAD_HOURS)",
                       "year-1": "event time before the first partition 2026-01-01T00 (WAREHOUSE_START)"}
    assert not list((Path(settings.lake) / "omny/landed").glob("*/event_hour=0001*"))


def test_a_line_longer_than_the_limit_is_quarantined_not_held(landed):
    _, settings, _, _, _ = landed
    rows = [r for r in quarantined(settings, "omny") if "longline" in r[0]]
    assert [(line, reason) for _, line, _, reason in rows] == [(2, f"line longer than {MAX_LINE} bytes (WAREHOUSE_MAX_LINE_BYTES)")]
    assert len(rows[0][2]) <= 2000
    assert {"longline-0", "longline-1"} <= event_ids(settings, "omny")


def test_a_file_past_the_size_limit_lands_up_to_it_and_reports_the_rest(landed):
    f, settings, _, _, _ = landed
    rows = [r for r in quarantined(settings, "omny") if "_big." in r[0]]
    assert len(rows) == 1 and rows[0][3].startswith(f"file larger than {MAX_FILE} bytes decompressed")
    landed_big = {i for i in event_ids(settings, "omny") if i.startswith("big-")}
    first_missing = rows[0][1]
    assert landed_big == set(f.big_ids[: first_missing - 1])


def test_an_id_redelivered_under_another_file_name_is_one_event(landed):
    _, settings, report, _, _ = landed
    rows = duckdb.sql(f"select event_id, source_file from read_parquet('{settings.lake}/omny/events/*/*.parquet', "
                      "hive_partitioning = false) where event_id in ('clean0-0', 'clean0-1')").fetchall()
    assert len(rows) == 2 and all("clean0" in f for _, f in rows)  # the copy delivered first
    assert report.events["omny"]["duplicates_dropped"] >= 2


def test_csv_extra_column_lands_as_schema_drift(landed):
    _, settings, report, _, _ = landed
    assert {f"csvextra-{i}" for i in range(4)} <= event_ids(settings, "atomic")
    # counted on the rows that carry a value in it, as for a nested record
    assert report.landed["atomic"]["schema_drift"] == {"newColumn": 3}


def test_csv_missing_required_column_is_quarantined(landed):
    _, settings, _, _, _ = landed
    assert reasons_for(settings, "atomic", "missing.csv") == {"missing required field endUserId"}


def test_csv_ragged_rows_are_quarantined_and_the_rest_land(landed):
    _, settings, _, _, _ = landed
    rows = [r for r in quarantined(settings, "atomic") if r[0] == "ragged.csv"]
    assert sorted(line for _, line, _, _ in rows) == [5, 6]
    assert all(reason.startswith("malformed CSV row") for *_, reason in rows)
    assert {f"csvragged-{i}" for i in range(4)} <= event_ids(settings, "atomic")


def test_csv_rows_around_malformed_ones_land_under_their_own_row_numbers(landed):
    _, settings, _, _, _ = landed
    kept = duckdb.sql(f"select event_id, source_line from read_parquet('{settings.lake}/atomic/events/*/*.parquet', "
                      "hive_partitioning = false) where source_file like '%midragged.csv'").fetchall()
    assert sorted(kept) == [("csvmid-0", 1), ("csvmid-1", 3), ("csvmid-2", 4), ("csvmid-3", 5)]
    rows = sorted((line, reason) for name, line, _, reason in quarantined(settings, "atomic") if name == "midragged.csv")
    assert [line for line, _ in rows] == [2, 6] and all(reason.startswith("malformed CSV row: ") for _, reason in rows)


def test_csv_duplicate_header_quarantines_the_file(landed):
    _, settings, _, _, _ = landed
    assert reasons_for(settings, "atomic", "duphead.csv") == {"duplicate column in the CSV header: ID"}


def test_parquet_missing_a_column_quarantines_what_needs_it(landed):
    _, settings, _, _, _ = landed
    assert reasons_for(settings, "atomic", "noreq.parquet") == {"missing required field endUserId"}


def test_unreadable_parquet_is_one_quarantine_record(landed):
    _, settings, _, _, _ = landed
    (reason,) = reasons_for(settings, "atomic", "garbage.parquet")
    assert reason.startswith("unreadable PARQUET file")


# --- Faults that need their own run -----------------------------------------------------------

def test_a_file_gone_between_listing_and_reading_is_quarantined_and_the_rest_land(tmp_path):
    contract = load_source_contracts()["omny"]
    landing = tmp_path / "landing"
    keep = omny_path(landing, T0, "keep")
    keep.write_bytes(gzip.compress(lines_of(clean_records("keep", T0))))
    gone = omny_path(landing, T0, "gone")
    gone.write_bytes(gzip.compress(lines_of(clean_records("gone", T0))))
    store, lake = LocalStore(str(landing)), LocalStore(str(tmp_path / "lake"))
    found = scan_landing(contract, store, [T0])[T0]
    gone.unlink()  # the vendor rewrote it, or a clean-up ran, after the listing
    with duckdb_connection() as con:
        ledger = land_hour(contract, store, lake, T0, con, found=found)
    assert ledger.balanced and ledger.rows_landed == 5
    assert ledger.quarantine_reasons == {"file vanished between listing and reading": 1}


def test_lines_across_the_readers_chunks_land_once_with_their_numbers(tmp_path):
    """A 3 MB file is read a megabyte at a time: the lines cut at each chunk's end land once, and
    every record keeps the number of its line (blank lines counted, not landed)."""
    contract = load_source_contracts()["omny"]
    landing = tmp_path / "landing"
    text, expected, line = [], {}, 0
    for i in range(9000):
        line += 1
        if i % 1000 == 999:  # a blank line now and then
            text.append(b"\n")
            line += 1
        text.append(json.dumps(omny_record(f"chunks-{i}", T0 + timedelta(seconds=i % 3600),
                                           Pad="p" * (i * 7919 % 600))).encode() + b"\n")
        expected[f"chunks-{i}"] = line
    omny_path(landing, T0, "chunks").write_bytes(b"".join(text))  # not gzipped: read as it lies
    assert sum(map(len, text)) > 3 * 1024 * 1024
    store, lake = LocalStore(str(landing)), LocalStore(str(tmp_path / "lake"))
    with duckdb_connection() as con:
        ledger = land_hour(contract, store, lake, T0, con)
        rows = con.execute(f"SELECT event_id, source_line FROM read_parquet('{tmp_path}/lake/omny/landed/**/*.parquet')").fetchall()
    assert ledger.balanced and ledger.rows_read == ledger.rows_landed == 9000
    assert dict(rows) == expected and len(rows) == 9000


def many_small_files(landing: Path, omny: int, atomic: int) -> int:
    """`omny` Omny files and `atomic` CSV and as many Parquet files of Atomic, three records each,
    all in hour T0; the records written."""
    for i in range(omny):
        omny_path(landing, T0, f"small{i}").write_bytes(gzip.compress(lines_of(clean_records(f"small{i}", T0, 3))))
    folder = landing / f"atomic/{T0:%Y-%m-%dT%H}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(atomic):
        write_csv(atomic_rows(f"csv{i}", T0, 3))(folder / f"c{i}.csv")
        write_parquet(atomic_rows(f"pq{i}", T0, 3))(folder / f"p{i}.parquet")
    return 3 * (omny + 2 * atomic)


def test_an_hour_of_many_small_files_lands_whole(tmp_path):
    """Hundreds of files in one hour (a streaming vendor's): the memory held does not grow with the
    files, under the lake's DuckDB memory limit (600 Omny files, or 300 flat ones, ran out of it)."""
    landing, lake = tmp_path / "landing", LocalStore(str(tmp_path / "lake"))
    many_small_files(landing, omny=600, atomic=150)
    for source, rows in (("omny", 1800), ("atomic", 900)):
        with duckdb_connection(memory_limit=LAKE_MEMORY_LIMIT) as con:
            (ledger,) = land_hours(load_source_contracts()[source], LocalStore(str(landing)), lake, [T0], con)
        assert ledger.balanced and (ledger.rows_landed, ledger.rows_quarantined) == (rows, 0), ledger.quarantine_reasons


def test_an_hour_of_events_spread_over_weeks_lands_each_under_its_own_hour(tmp_path):
    """One file replaying 400 hours of history (a vendor's re-export): every event lands under the
    hour it happened, one file an hour, under the lake's memory limit (one COPY of 400 partitions
    ran out of it)."""
    landing, lake = tmp_path / "landing", LocalStore(str(tmp_path / "lake"))
    records = [omny_record(f"replay-{h}-{i}", T0 - timedelta(hours=h) + timedelta(minutes=10 * i)) for h in range(400) for i in range(3)]
    omny_path(landing, T0, "replay").write_bytes(gzip.compress(lines_of(records)))
    with duckdb_connection(memory_limit=LAKE_MEMORY_LIMIT) as con:
        (ledger,) = land_hours(load_source_contracts()["omny"], LocalStore(str(landing)), lake, [T0], con)
    assert ledger.balanced and (ledger.rows_landed, ledger.rows_quarantined) == (1200, 0)
    assert len(ledger.event_hours_touched) == 400 and set(ledger.event_hours_touched.values()) == {3}
    files = list((tmp_path / "lake" / "omny" / "landed").rglob("*.parquet"))
    assert len(files) == 400  # one an event hour
    misfiled = duckdb.sql(f"SELECT count(*) FROM read_parquet('{tmp_path}/lake/omny/landed/*/*/*.parquet', hive_partitioning = true) "
                          "WHERE strftime(event_ts, '%Y-%m-%dT%H') <> event_hour").fetchone()[0]
    assert misfiled == 0


def test_a_file_too_large_to_type_within_memory_is_quarantined_whole_and_the_rest_land(tmp_path):
    """A file whose records alone run out of DuckDB's memory (a thousand keys the contract does not
    name in each) is one quarantine record saying so, like a line past the length limit; the
    other files of its hour land. The limit is the setting's, which the reason names."""
    landing = tmp_path / "landing"
    wide = [omny_record(f"wide-{i}", T0, **{f"Extra{j}": {"deep": j} for j in range(1000)}) for i in range(1000)]
    omny_path(landing, T0, "wide").write_bytes(gzip.compress(lines_of(wide)))
    omny_path(landing, T0, "good").write_bytes(gzip.compress(lines_of(clean_records("good", T0, 10))))
    settings = Settings(landing=str(landing), lake=str(tmp_path / "lake"), duckdb_path=str(tmp_path / "w.duckdb"),
                        start=datetime(2026, 1, 1, tzinfo=UTC), lake_memory_bytes=60_000_000)
    report = run_backfill(settings, T0, T0 + timedelta(hours=1), ["omny"], marts=False)
    assert report.ok, report.errors
    assert (report.landed["omny"]["rows_landed"], report.landed["omny"]["rows_quarantined"]) == (10, 1)
    assert report.landed["omny"]["quarantine_reasons"] == {
        "file too large to type within DuckDB's memory limit (57.2 MiB, WAREHOUSE_LAKE_MEMORY_BYTES)": 1}
    assert event_ids(settings, "omny") == {f"good-{i}" for i in range(10)}


def test_the_ledger_counts_reasons_by_rule_and_names_at_most_twenty(tmp_path):
    """A feed of bad values is one count a rule in the ledger (the quarantine keeps each value), and
    a ledger names at most 20 reasons: it is Dagster metadata, stored for every materialisation."""
    landing, lake = tmp_path / "landing", LocalStore(str(tmp_path / "lake"))
    bad_times = [omny_record(f"time-{i}", T0) for i in range(50)]
    for i, record in enumerate(bad_times):
        record["Download"]["DownloadedAtUtc"] = f"2026-01-05 at 10:{i:02d} UTC"
    dup_keys = [json.dumps(omny_record(f"dup-{i}", T0))[:-1].encode() + f', "K{i}": 1, "K{i}": 2}}'.encode() for i in range(30)]
    omny_path(landing, T0, "bad").write_bytes(gzip.compress(lines_of(bad_times) + b"\n".join(dup_keys) + b"\n"))
    with duckdb_connection() as con:
        (ledger,) = land_hours(load_source_contracts()["omny"], LocalStore(str(landing)), lake, [T0], con)
    reasons = ledger.quarantine_reasons
    assert ledger.balanced and ledger.rows_quarantined == 80 and len(reasons) == 20
    assert list(reasons.items())[0] == ("field Download.DownloadedAtUtc: … is not a valid timestamp", 50)
    assert reasons["other reasons (the quarantine files name each record's)"] == 30 - 18
    values = duckdb.sql(f"SELECT count(DISTINCT reason) FROM read_parquet('{tmp_path}/lake/omny/quarantine/*/*.parquet')").fetchone()[0]
    assert values == 80  # each record's own reason, its value named
    # A run's ledger sums its hours' (each with its own "other reasons"), and names at most 20 too.
    hours = {f"rule {i}": 100 - i for i in range(10)} | {OTHER_REASONS: 60} | {f"rule {i}": 50 - i for i in range(10, 25)}
    merged = at_most_reasons(hours)
    assert len(merged) == 20 and sum(merged.values()) == sum(hours.values())
    assert list(merged)[:19] == [f"rule {i}" for i in range(19)] and merged[OTHER_REASONS] == 60 + sum(50 - i for i in range(19, 25))


def test_memory_run_out_fails_the_hour_and_quarantines_nothing(tmp_path):
    """Memory too small to type even one record is the run's failure, not the files': nothing is
    published, no good event goes to quarantine, and a run with the memory it needs lands the hour."""
    landing, lake = tmp_path / "landing", LocalStore(str(tmp_path / "lake"))
    many_small_files(landing, omny=600, atomic=0)
    contract = load_source_contracts()["omny"]
    with duckdb_connection(memory_limit="20MB") as con, pytest.raises(duckdb.OutOfMemoryException):
        land_hours(contract, LocalStore(str(landing)), lake, [T0], con)
    assert not [p for p in (tmp_path / "lake").rglob("*") if p.is_file()]
    with duckdb_connection(memory_limit=LAKE_MEMORY_LIMIT) as con:
        (ledger,) = land_hours(contract, LocalStore(str(landing)), lake, [T0], con)
    assert ledger.balanced and (ledger.rows_landed, ledger.rows_quarantined) == (1800, 0)


def test_a_missing_landing_root_is_an_error_naming_the_variable(tmp_path):
    env = dict(os.environ, WAREHOUSE_LANDING=str(tmp_path / "typo"), WAREHOUSE_LAKE=str(tmp_path / "lake"),
               WAREHOUSE_DUCKDB=str(tmp_path / "w.duckdb"))
    env.pop("DAGSTER_HOME", None)
    result = subprocess.run([sys.executable, "-m", "orchestration", "backfill", "--start", "2026-01-05T10",
                             "--end", "2026-01-05T11", "--no-marts"], env=env, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert f"WAREHOUSE_LANDING points at {tmp_path / 'typo'}, which does not exist" in result.stderr


def _gzip_stream(path: Path, parts) -> None:
    """A gzip file written piece by piece: a gigabyte of text never held in memory."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as out:
        for piece, times in parts:
            for _ in range(times):
                out.write(c.compress(piece))
        out.write(c.flush())


def test_a_gzip_bomb_and_a_50_mb_line_stay_under_the_memory_bound(tmp_path):
    """One 1 GiB line compressed to ~1 MB, and a valid 50 MB line, beside clean files: the good
    events land, each giant line is one quarantine record, and the process stays under 1.5 GB."""
    landing = tmp_path / "landing"
    clean = clean_records("bombclean", T0, 44)
    omny_path(landing, T0, "clean").write_bytes(gzip.compress(lines_of(clean[:22])))
    omny_path(landing, T0 + timedelta(hours=1), "clean").write_bytes(gzip.compress(lines_of(clean[22:])))
    _gzip_stream(omny_path(landing, T0, "bomb"), [(b'{"EventId": "bomb", "Pad": "', 1), (b"x" * (1 << 20), 1024),
                                                   (b'"}\n', 1), (lines_of(clean_records("afterbomb", T0, 2)), 1)])
    big = json.dumps(omny_record("fifty", T0, Pad="z" * (50 << 20))).encode() + b"\n"
    omny_path(landing, T0 + timedelta(hours=1), "fifty").write_bytes(gzip.compress(big, 1))
    del big
    env = dict(os.environ, WAREHOUSE_LANDING=str(landing), WAREHOUSE_LAKE=str(tmp_path / "lake"),
               WAREHOUSE_DUCKDB=str(tmp_path / "w.duckdb"))
    env.pop("DAGSTER_HOME", None)
    measure = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    result = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "orchestration", "backfill",
                             "--start", "2026-01-05T10", "--end", "2026-01-05T12", "--sources", "omny", "--no-marts"],
                            env=env, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[1/2] landing 2 arrival hours of omny ..." in result.stdout  # progress, step by step
    assert "[2/2] building" in result.stdout and "events kept" in result.stdout
    peak_mb = int(result.stdout.rsplit("PEAK_KB", 1)[1].split()[0]) / 1024
    assert peak_mb < 1536, f"peak RSS {peak_mb:.0f} MB"
    settings = Settings.from_env(env)
    ids = event_ids(settings, "omny")
    assert {r["EventId"] for r in clean} | {"afterbomb-0", "afterbomb-1"} <= ids
    rows = quarantined(settings, "omny")
    assert sorted((Path(n).name.split("_")[-1], line, reason) for n, line, _, reason in rows) == [
        ("bomb.jsonl.gz", 1, "line longer than 8388608 bytes (WAREHOUSE_MAX_LINE_BYTES)"),
        ("fifty.jsonl.gz", 1, "line longer than 8388608 bytes (WAREHOUSE_MAX_LINE_BYTES)")]


def test_staging_left_by_a_killed_run_is_removed_by_the_next_run(tmp_path):
    from orchestration.lake.events import build_event_hours

    contract = load_source_contracts()["omny"]
    landing, lake_root = tmp_path / "landing", tmp_path / "lake"
    omny_path(landing, T0, "clean").write_bytes(gzip.compress(lines_of(clean_records("kill", T0))))
    store, lake = LocalStore(str(landing)), LocalStore(str(lake_root))
    with duckdb_connection() as con:
        land_hours(contract, store, lake, [T0], con)
        build_event_hours(contract, lake, T0, T0 + timedelta(hours=1), con)
    clean = lake_snapshot(lake_root)
    # what kill -9 leaves at three points: a staged partition, a half-written index marker, staged events
    staged = lake_root / "omny/landed/.staging-arrival_hour=2026-01-05T10-dead/event_hour=2026-01-05T10"
    staged.mkdir(parents=True)
    (staged / "part_0.parquet").write_bytes(b"half a file")
    marker = lake_root / "omny/landed/_index/event_hour=2026-01-05T10/.arrival_hour=2026-01-05T10.dead.tmp"
    marker.write_text("5")
    events = lake_root / "omny/.staging-events-dead"
    events.mkdir()
    (events / "part_0.parquet").write_bytes(b"half a file")
    old = datetime.now().timestamp() - 2 * 3600
    for path in (events / "part_0.parquet", events, marker):
        os.utime(path, (old, old))
    with duckdb_connection() as con:
        build_event_hours(contract, lake, T0, T0 + timedelta(hours=1), con)  # a leftover marker does not stop it
        land_hours(contract, store, lake, [T0], con)
        build_event_hours(contract, lake, T0, T0 + timedelta(hours=1), con)
    assert not staged.parent.exists() and not marker.exists() and not events.exists()
    assert lake_snapshot(lake_root) == clean


@pytest.mark.parametrize("failing", ["landing", "lake"])
def test_a_store_failing_mid_run_publishes_only_what_the_error_accounts_for(s3_env, s3_server, tmp_path, monkeypatch,
                                                                            failing):
    """The landing bucket serves the first hour's file, then fails on the second (or the lake takes
    the first hour, then fails on the second while the hour after is read): the run fails, naming
    the cause and the hours landed before it; a re-run once the store is back heals it."""
    import boto3
    from s3proxy import FaultProxy

    direct = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    drop, lake = f"midrun-drop-{failing}", f"midrun-lake-{failing}"  # buckets of its own: the server is shared
    for bucket in (drop, lake):
        direct.create_bucket(Bucket=bucket)
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    keys = {}
    for hour, tag in ((T0, "first"), (t1, "second"), (t2, "third")):
        keys[tag] = "exports/" + omny_path(tmp_path, hour, tag).relative_to(tmp_path).as_posix()
        direct.put_object(Bucket=drop, Key=keys[tag], Body=gzip.compress(lines_of(clean_records(tag, hour))))
    with FaultProxy(s3_server) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        settings = Settings.from_env({"WAREHOUSE_LANDING": f"s3://{drop}/exports", "WAREHOUSE_LAKE": f"s3://{lake}/w",
                                      "WAREHOUSE_DUCKDB": str(tmp_path / "w.duckdb"), "WAREHOUSE_START": "2026-01-01T00",
                                      "AWS_ENDPOINT_URL": proxy.url, "AWS_DEFAULT_REGION": "us-east-1",
                                      "WAREHOUSE_S3_MAX_ATTEMPTS": "2"})
        # the store answers everything until the second hour's file (or its landed rows): that, it never takes
        proxy.fail_always(503, "SlowDown", path_prefix=f"/{drop}/{keys['second']}" if failing == "landing"
                          else f"/{lake}/w/omny/landed/arrival_hour={t1:%Y-%m-%dT%H}")
        report = run_backfill(settings, T0, T0 + timedelta(hours=3), ["omny"], marts=False)
        assert not report.ok
        assert "the store failed after 1 of 3 arrival hours landed" in report.errors[-1], report.errors
        landed = {k["Key"].split("arrival_hour=")[1][:13] for k in direct.list_objects_v2(
            Bucket=lake, Prefix="w/omny/landed/arrival_hour=").get("Contents", [])}
        assert landed == {"2026-01-05T10"}
        proxy.heal()
        healed = run_backfill(settings, T0, T0 + timedelta(hours=3), ["omny"], marts=False)
    assert healed.ok and healed.landed["omny"]["rows_landed"] == 15
