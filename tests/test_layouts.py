"""Arrival hours from every source's landing paths, as the contracts define them."""

from datetime import datetime, timezone

import pytest

UTC = timezone.utc


def arrival(contracts, source, key):
    hits = [h for layout in contracts[source].layouts if (h := layout.match(key))]
    return hits[0] if hits else None


@pytest.mark.parametrize("source,key,hour,fmt", [
    ("omny", "omny/2019/2019-03/2019-03-18/2019-03-18T0052_005201.941_81b9bcac-f6b0-4bd8-b191-4af7b89a985c.jsonl.gz",
     datetime(2019, 3, 18, 0, tzinfo=UTC), "jsonl.gz"),
    ("atomic", "atomic/2020-03-27T02/batch-1.parquet", datetime(2020, 3, 27, 2, tzinfo=UTC), "parquet"),
    ("atomic", "atomic/2020-03-27T02/part.csv", datetime(2020, 3, 27, 2, tzinfo=UTC), "csv"),
    ("atomic", "atomic/2020-03-27T02/part.ndjson", datetime(2020, 3, 27, 2, tzinfo=UTC), "ndjson"),
    ("airkit", "airkit/2026-01-05/07/events-1.jsonl.gz", datetime(2026, 1, 5, 7, tzinfo=UTC), "jsonl.gz"),
    ("airkit", "airkit/2026-01-05/07/events-2.jsonl", datetime(2026, 1, 5, 7, tzinfo=UTC), "jsonl"),
    # a daily export is filed under the hour its day ended
    ("altis", "altis/2026-01-04.csv", datetime(2026, 1, 5, 0, tzinfo=UTC), "csv"),
    ("altis", "altis/2026-01-04.json", datetime(2026, 1, 5, 0, tzinfo=UTC), "json"),
    ("altis", "altis/batches/2026-01-05/13/b.ndjson.gz", datetime(2026, 1, 5, 13, tzinfo=UTC), "ndjson.gz"),
    ("track", "track/2026-01-05/23/batch.ndjson", datetime(2026, 1, 5, 23, tzinfo=UTC), "ndjson"),
])
def test_arrival_hour_from_path(contracts, source, key, hour, fmt):
    assert arrival(contracts, source, key) == (hour, fmt)


@pytest.mark.parametrize("source,key", [
    ("omny", "omny/2019/2019-03/2019-03-18/notes.txt"),
    ("omny", "omny/2019/2019-04/2019-03-18/2019-03-18T0052_005201.941_x.jsonl.gz"),  # folders disagree
    ("omny", "omny/2019/2019-03/2019-03-18/2019-03-18T2552_005201.941_x.jsonl.gz"),  # no hour 25
    ("atomic", "atomic/2020-03-27T02/file.xlsx"),
    ("altis", "altis/2026-13-04.csv"),
])
def test_foreign_or_invalid_paths_are_not_files_of_the_source(contracts, source, key):
    assert arrival(contracts, source, key) is None


def test_listing_covers_the_day_folder_of_the_arrival_hour(contracts):
    """One listing per day finds an hour's files and any stray file beside them."""
    omny = contracts["omny"].layouts[0]
    assert omny.scan_prefix(datetime(2019, 3, 18, 7, tzinfo=UTC)) == "omny/2019/2019-03/2019-03-18/"
    daily = next(l for l in contracts["altis"].layouts if not l.hourly)
    assert daily.scan_prefix(datetime(2026, 1, 5, 0, tzinfo=UTC)) == "altis/2026-01-04."
    atomic = contracts["atomic"].layouts[0]
    assert atomic.scan_prefix(datetime(2026, 1, 5, 3, tzinfo=UTC)) == "atomic/2026-01-05T"


def test_extensions_match_whatever_their_case(contracts):
    omny = contracts["omny"].layouts[0]
    hit = omny.match("omny/2026/2026-01/2026-01-05/2026-01-05T1012_101200.000_ab.JSONL.GZ")
    assert hit == (datetime(2026, 1, 5, 10, tzinfo=UTC), "jsonl.gz")
