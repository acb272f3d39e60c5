"""Late data reaches the marts exactly: whatever the order and grouping of backfills, every table
of schema `marts` equals what one clean backfill of the same files builds.

The fault: a copy of an event stamped in hour X+24 (a client clock a day ahead) is delivered
first; the copy stamped X (the right time) arrives more than a day later. The events layer keeps
the X copy (the earliest event hour) and drops the X+24 one, so the second backfill rebuilds event
hours X..X+24 and the marts over [X, X+25). What moved must follow in every mart:

- Airkit and Track named sessions: one that gains the moved event back (it spanned X..X+24),
  one whose only event moves from X+24 to X (same session key), one whose only event moves to
  another session id (its X+24 session no longer exists), and one untouched at X+24;
- Atomic gap-cut sessions: the moved event joins two sessions at X into one and leaves nothing
  at X+24; a session across the window's end (X+24:40 … X+25:25) loses the event that held it
  together and splits into pieces, one outside the window;
- audit rows, hourly and daily aggregates, the card funnel (a stage time and last event move
  earlier) and the dimensions (first / last seen move).
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from orchestration.backfill import run_backfill
from orchestration.settings import Settings

UTC = timezone.utc
X = datetime(2026, 1, 5, 10, tzinfo=UTC)  # the hour the late copies really happened in
EARLY = (X, X + timedelta(hours=27))  # arrival hours of the early files: [X, X+27)
LATE = (X + timedelta(hours=27), X + timedelta(hours=28))  # the late files arrive at X+27
ALL = (EARLY[0], LATE[1])


def at(hours: int, minutes: int = 0) -> datetime:
    return X + timedelta(hours=hours, minutes=minutes)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --------------------------------------------------------------------------------------------
# The landing files, written by hand (layouts: data_contracts/sources/*.yaml, landingLayout)


def airkit(event_id: str, ts: datetime, name: str, session: str | None = None, audit: bool = False,
           app: tuple[str, str] = ("app-claims", "Claims Portal")) -> dict:
    rec = {"EventId": event_id, "Timestamp": iso(ts), "EventName": name,
           "Category": "Audit" if audit else "Session", "App": {"Id": app[0], "Name": app[1]}}
    if audit:
        rec.update(Actor={"Id": "usr-7f3a", "Type": "User"}, Action="app.publish",
                   Target={"Type": "App", "Id": app[0]}, Outcome="Success")
    else:
        rec.update(SessionId=session, Journey={"Id": "j-1", "Name": "File a Claim"}, ActionRuns=0,
                   UserAgent={"DeviceClass": "Desktop", "Browser": "Chrome", "OS": "Windows"})
        if name == "PageView":
            rec["Page"] = {"Name": "Welcome", "Url": "https://claims.example/welcome"}
    return rec


def track(event_id: str, ts: datetime, name: str, session: str, received: datetime) -> dict:
    return {"event_id": event_id, "event_name": name, "category": "page_view" if name == "page_view" else "user_action",
            "priority": "medium", "properties": {"user_id": "u" + session[-4:]}, "timestamp": iso(ts),
            "session_id": session, "page_url": "https://app.trade.example/markets",
            "user_agent": "TradeApp/5.12.0 (iPhone; iOS 18.1; Scale/3.00)", "client_id": "ios-0001",
            "received_at": iso(received)}


def atomic_sdk(event_id: str, ts: datetime, user: str) -> dict:
    return {"id": event_id, "endUserId": user, "analyticsEvent": "stream-displayed", "timestamp": iso(ts),
            "eventContext": {"actionSource": "user"},
            "sdkContext": {"platform": "iOS", "sdkVersion": "24.3.0", "sdkDevice": "iPhone15,2"},
            "streamContext": {"streamId": "TspKk", "streamName": "Home"}}


def atomic_card(event_id: str, ts: datetime, event: str, card: str, template: tuple[str, str]) -> dict:
    return {"id": event_id, "endUserId": "user-card", "analyticsEvent": event, "timestamp": iso(ts),
            "eventContext": {"actionSource": "internal"},
            "cardContext": {"cardInstanceId": card, "cardTemplateId": template[0], "cardTemplateName": template[1]},
            "platformContext": {"triggerEventSource": "live"}}


def omny(event_id: str, ts: datetime, program: tuple[str, str], clip: tuple[str, str], geo: dict | None) -> dict:
    download = {"RawUserAgent": "AppleCoreMedia/1.0.0", "DownloadedAtUtc": iso(ts), "IpAddress": "203.0.113.7",
                "Device": {"Type": "Mobile"}, "Source": "App"}
    if geo:
        download["Geo"] = geo
    return {"EventId": event_id, "Program": {"Id": program[0], "Name": program[1]},
            "Network": {"Id": "net-1", "Name": "Harbour Audio"}, "Clip": {"Id": clip[0], "Title": clip[1]},
            "Download": download}


def write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


def write_landing(landing: Path) -> None:
    """Every file of the scenario; the late ones all arrive at X+27 (27 h after X)."""
    late = LATE[0]
    us = {"Country": "United States", "CountryIsoCode": "US", "State": "California", "City": "San Francisco"}
    au = {"Country": "Australia", "CountryIsoCode": "AU", "State": "Victoria", "City": "Melbourne"}
    late_app = ("app-late", "Late App")

    # Airkit: airkit/{YYYY-MM-DD}/{HH}/{name}.jsonl[.gz], the folder's hour is the arrival hour.
    write(landing / "airkit/2026-01-05/10/app-events-early.jsonl", [
        airkit("ak-m1", at(0, 5), "SessionStarted", "S-merge"),
        airkit("ak-m2", at(0, 15), "PageView", "S-merge"),
        airkit("ak-a0", at(0, 30), "AppPublished", audit=True),
    ])
    write(landing / "airkit/2026-01-06/10/app-events-early.jsonl.gz", [
        airkit("ak-m3", at(24, 20), "PageView", "S-merge"),          # its session gains it back at X
        airkit("ak-v1", at(24, 30), "SessionStarted", "S-move"),     # the session moves to X
        airkit("ak-g1", at(24, 35), "PageView", "S-ghost"),          # S-ghost no longer exists
        airkit("ak-a1", at(24, 40), "AppPublished", audit=True, app=late_app),
        airkit("ak-s1", at(24, 45), "SessionStarted", "S-stay"),     # untouched
        airkit("ak-s2", at(24, 50), "PageView", "S-stay"),
    ])
    write(landing / f"airkit/{late:%Y-%m-%d}/{late:%H}/app-events-late.jsonl", [
        airkit("ak-m3", at(0, 20), "PageView", "S-merge"),
        airkit("ak-v1", at(0, 30), "SessionStarted", "S-move"),
        airkit("ak-g1", at(0, 35), "PageView", "S-real"),
        airkit("ak-a1", at(0, 40), "AppPublished", audit=True, app=late_app),
    ])

    # Track: track/{YYYY-MM-DD}/{HH}/{name}.ndjson[.gz]
    write(landing / "track/2026-01-05/10/flush-early.ndjson", [
        track("tr-m1", at(0, 5), "login", "sess_merge", at(0, 6)),
        track("tr-m2", at(0, 15), "page_view", "sess_merge", at(0, 16)),
    ])
    write(landing / "track/2026-01-06/10/flush-early.ndjson.gz", [
        track("tr-m3", at(24, 20), "page_view", "sess_merge", at(24, 21)),
        track("tr-v1", at(24, 30), "page_view", "sess_move", at(24, 31)),
        track("tr-g1", at(24, 35), "page_view", "sess_ghost", at(24, 36)),
        track("tr-s1", at(24, 45), "page_view", "sess_stay", at(24, 46)),
    ])
    write(landing / f"track/{late:%Y-%m-%d}/{late:%H}/flush-late.ndjson", [
        track("tr-m3", at(0, 20), "page_view", "sess_merge", late),
        track("tr-v1", at(0, 30), "page_view", "sess_move", late),
        track("tr-g1", at(0, 35), "page_view", "sess_real", late),
    ])

    # Atomic: atomic/{YYYY-MM-DDTHH}/{name}.ndjson, the batch key is the hour the batch ended.
    write(landing / "atomic/2026-01-05T11/batch-early.ndjson", [
        atomic_sdk("at-u1-1", at(0, 0), "user-1"),
        atomic_sdk("at-u1-2", at(0, 10), "user-1"),
        atomic_sdk("at-u1-3", at(0, 50), "user-1"),
        atomic_sdk("at-u1-4", at(0, 55), "user-1"),
        atomic_card("at-c1-p", at(0, 5), "card-published", "card-1", ("tpl-1", "Welcome")),
    ])
    write(landing / "atomic/2026-01-06T11/batch-early.ndjson", [
        atomic_sdk("at-u1-x", at(24, 0), "user-1"),    # at X:30 it joins user-1's two sessions at X
        atomic_sdk("at-u2-1", at(24, 40), "user-2"),
        atomic_sdk("at-u2-x", at(24, 59), "user-2"),   # holds X+24:40 … X+25:25 together
        atomic_card("at-c1-d", at(24, 10), "card-displayed", "card-1", ("tpl-1", "Welcome")),
        atomic_card("at-c2-p", at(24, 15), "card-published", "card-2", ("tpl-late", "Late Template")),
    ])
    write(landing / "atomic/2026-01-06T12/batch-early.ndjson", [
        atomic_sdk("at-u2-2", at(25, 20), "user-2"),
        atomic_sdk("at-u2-3", at(25, 25), "user-2"),
    ])
    write(landing / f"atomic/{late:%Y-%m-%dT%H}/batch-late.ndjson", [
        atomic_sdk("at-u1-x", at(0, 30), "user-1"),
        atomic_sdk("at-u2-x", at(0, 20), "user-2"),
        atomic_card("at-c1-d", at(0, 10), "card-displayed", "card-1", ("tpl-1", "Welcome")),
        atomic_card("at-c2-p", at(0, 15), "card-published", "card-2", ("tpl-late", "Late Template")),
    ])

    # Omny: omny/{YYYY}/{YYYY-MM}/{YYYY-MM-DD}/{YYYY-MM-DD}T{HH}{mm}_{*}.jsonl.gz
    def omny_file(arrival: datetime, name: str) -> Path:
        return landing / f"omny/{arrival:%Y}/{arrival:%Y-%m}/{arrival:%Y-%m-%d}/{arrival:%Y-%m-%dT%H}59_{name}.jsonl.gz"

    write(omny_file(X, "000000.000_early"), [
        omny("om-d0", at(0, 10), ("prog-1", "Morning Show"), ("clip-1", "Episode 1"), au),
    ])
    write(omny_file(at(24), "000000.000_early"), [
        omny("om-d1", at(24, 5), ("prog-late", "Late Show"), ("clip-late", "Late Episode"), us),  # moves a UTC day back
    ])
    write(omny_file(late, "000000.000_late"), [
        omny("om-d1", at(0, 5), ("prog-late", "Late Show"), ("clip-late", "Late Episode"), us),
    ])


# --------------------------------------------------------------------------------------------
# Backfills and snapshots


def settings_in(root: Path) -> Settings:
    landing = root.parent / "landing"
    if not landing.exists():
        write_landing(landing)
    return Settings(landing=str(landing), lake=str(root / "lake"), duckdb_path=str(root / "warehouse.duckdb"),
                    start=datetime(2026, 1, 1, tzinfo=UTC))


def backfill(settings: Settings, window: tuple[datetime, datetime], marts: bool = True):
    report = run_backfill(settings, window[0], window[1], None, marts=marts)
    assert report.ok, report.errors + report.failed_checks
    return report


def snapshot(settings: Settings) -> dict[str, list]:
    """Every table of the marts, and the marts' internal hourly state (schema `intermediate`)."""
    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        tables = con.sql("select schema_name, table_name from duckdb_tables() "
                         "where schema_name in ('marts', 'intermediate')").fetchall()
        return {f"{s}.{t}": con.sql(f"select * from {s}.{t} order by all").fetchall() for s, t in sorted(tables)}


def sessions(settings: Settings) -> list[tuple]:
    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        return con.sql("select source, session_group, started_at, ended_at, events from marts.fct_sessions "
                       "order by all").fetchall()


def naive(ts: datetime) -> datetime:
    return ts.replace(tzinfo=None)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("late_data")


@pytest.fixture(scope="module")
def clean(workdir):
    """One backfill of every file into a fresh lake and DuckDB file."""
    settings = settings_in(workdir / "clean")
    backfill(settings, ALL)
    return snapshot(settings)


def test_the_clean_backfill_keeps_the_earliest_copies(clean):
    assert {k for k in clean if k.startswith("marts.")} >= {
        "marts.fct_sessions", "marts.fct_audit_events", "marts.fct_platform_hourly", "marts.fct_card_funnel",
        "marts.fct_download_geo_daily", "marts.dim_apps", "marts.dim_programs", "marts.dim_clips",
        "marts.dim_card_templates"}
    rows = clean["marts.fct_sessions"]
    # fct_sessions columns: session_key, source, session_id, session_group, user_id, app,
    # started_at, ended_at, duration_seconds, events, ...
    got = {(r[1], r[3]): (r[6], r[7], r[9]) for r in rows}
    for source, prefix in (("airkit", "S-"), ("track", "sess_")):
        assert got[(source, prefix + "merge")] == (naive(at(0, 5)), naive(at(0, 20)), 3)
        assert got[(source, prefix + "move")] == (naive(at(0, 30)), naive(at(0, 30)), 1)
        assert got[(source, prefix + "real")] == (naive(at(0, 35)), naive(at(0, 35)), 1)
        assert (source, prefix + "ghost") not in got
        assert got[(source, prefix + "stay")][0] == naive(at(24, 45))
    assert got[("atomic", "user-1")] == (naive(at(0, 0)), naive(at(0, 55)), 5)
    assert sorted((r[6], r[7], r[9]) for r in rows if r[3] == "user-2") == [
        (naive(at(0, 20)), naive(at(0, 20)), 1), (naive(at(24, 40)), naive(at(24, 40)), 1),
        (naive(at(25, 20)), naive(at(25, 25)), 2)]
    funnel = {r[1]: (r[6], r[7], r[-1]) for r in clean["marts.fct_card_funnel"]}  # published, displayed, last
    assert funnel == {"card-1": (naive(at(0, 5)), naive(at(0, 10)), naive(at(0, 10))),
                      "card-2": (naive(at(0, 15)), None, naive(at(0, 15)))}
    assert [r[0] for r in clean["marts.fct_download_geo_daily"]] == [naive(X).date(), naive(X).date()]


def test_late_copies_in_a_second_backfill_give_the_clean_marts_and_a_rerun_changes_nothing(workdir, clean):
    settings = settings_in(workdir / "early_then_late")
    backfill(settings, EARLY)
    # The scenario bites: the early copies built sessions at X+24 that the late copies remove.
    assert ("airkit", "S-ghost", naive(at(24, 35)), naive(at(24, 35)), 1) in sessions(settings)
    assert ("atomic", "user-2", naive(at(24, 40)), naive(at(25, 25)), 4) in sessions(settings)
    report = backfill(settings, LATE)
    assert report.marts_window == (X, at(25))
    assert snapshot(settings) == clean
    backfill(settings, ALL)  # re-running the whole range changes nothing
    assert snapshot(settings) == clean


def test_late_file_first_then_the_early_ones_in_two_backfills_one_failing_then_rerun(workdir, clean):
    settings = settings_in(workdir / "late_then_early")
    backfill(settings, LATE)
    assert ("airkit", "S-merge", naive(at(0, 20)), naive(at(0, 20)), 1) in sessions(settings)
    # The early files up to X+24, whose marts step fails (here: does not run) ...
    first_early = (EARLY[0], at(25))
    backfill(settings, first_early, marts=False)
    assert ("airkit", "S-merge", naive(at(0, 20)), naive(at(0, 20)), 1) in sessions(settings)
    # ... and is re-run, which heals it.
    backfill(settings, first_early)
    assert ("airkit", "S-merge", naive(at(0, 5)), naive(at(0, 20)), 3) in sessions(settings)
    # Then the rest of the early files: Atomic's X+24 and X+25 batches (duplicates of the late
    # copies, and user-2's session X+24:40 … X+25:25); their marts window starts at X+24.
    report = backfill(settings, (at(25), EARLY[1]))
    assert report.marts_window[0] == at(24)
    assert snapshot(settings) == clean
