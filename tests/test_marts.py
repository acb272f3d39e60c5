"""The dbt marts, built for real in DuckDB through Dagster on generated exports, checked against
values computed independently here from the events layer."""

import json
import shutil
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.backfill import BackfillReport, build_marts, run_backfill
from orchestration.definitions import build_definitions
from orchestration.settings import Settings, format_hour, parse_hour
from sample_exports import generate_all

UTC = timezone.utc
START = datetime(2026, 1, 5, 20, tzinfo=UTC)  # crosses midnight: two UTC days
HOURS = 8
GAP = timedelta(minutes=30)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("marts")
    generate_all(root / "landing", START, HOURS, seed=5)
    settings = Settings(landing=str(root / "landing"), lake=str(root / "lake"),
                        duckdb_path=str(root / "warehouse.duckdb"), start=datetime(2026, 1, 1, tzinfo=UTC))
    report = run_backfill(settings, START, START + timedelta(hours=HOURS + 1), None)
    assert report.ok, report.errors + report.failed_checks
    return root, settings, report


def lake_rows(settings: Settings, source: str, columns: str) -> list[tuple]:
    return duckdb.sql(f"select {columns} from read_parquet('{settings.lake}/{source}/events/*/*.parquet', "
                      "hive_partitioning = false)").fetchall()


def query(settings: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        return con.sql(sql).fetchall()


def marts_snapshot(settings: Settings) -> dict[str, list]:
    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        tables = [r[0] for r in con.sql("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()]
        return {t: con.sql(f"select * from marts.{t} order by all").fetchall() for t in sorted(tables)}


def gap_sessions(events: list[tuple[str, datetime]]) -> dict[str, list[tuple[datetime, datetime, int]]]:
    """(user, event time) → per user, the sessions split at more than 30 minutes of inactivity."""
    by_user = defaultdict(list)
    for user, ts in events:
        by_user[user].append(ts)
    out = {}
    for user, times in by_user.items():
        times.sort()
        sessions, first, last, n = [], times[0], times[0], 1
        for ts in times[1:]:
            if ts - last > GAP:
                sessions.append((first, last, n))
                first, n = ts, 0
            last, n = ts, n + 1
        sessions.append((first, last, n))
        out[user] = sessions
    return out


def run_marts(settings: Settings, first: str, last: str) -> BackfillReport:
    report = BackfillReport(start=parse_hour(first), end=parse_hour(last))
    build_marts(build_definitions(settings), first, last, dg.DagsterInstance.ephemeral(), report)
    return report


def test_backfill_builds_every_mart_and_prints_them(built, capsys):
    _, settings, report = built
    assert set(report.marts) >= {"fct_sessions", "fct_audit_events", "fct_platform_hourly", "fct_download_geo_daily"}
    assert all(rows > 0 for rows, _ in report.marts.values()), report.marts
    report.print()
    out = capsys.readouterr().out
    assert "fct_download_geo_daily" in out and "rows_in_window" in out


def test_downloads_per_country_per_day_are_the_distinct_event_ids(built):
    _, settings, _ = built
    expected = defaultdict(set)
    for event_id, ts, country in lake_rows(settings, "omny", "event_id, event_ts, geo_country_iso_code"):
        expected[(ts.date(), country or "ZZ")].add(event_id)
    got = dict(((d, c), n) for d, c, n in query(
        settings, "select download_date, country_code, sum(downloads) from marts.fct_download_geo_daily group by all"))
    assert got == {k: len(v) for k, v in expected.items()}
    assert len({d for d, _ in got}) >= 2, "the window crosses midnight"
    assert ("ZZ" in {c for _, c in got}), "downloads without Geo are counted under the unknown location"


def test_listeners_and_device_split_add_up(built):
    _, settings, _ = built
    bad = query(settings, """select * from marts.fct_download_geo_daily
        where downloads_mobile + downloads_desktop + downloads_tablet + downloads_other_devices <> downloads
           or listeners > downloads or listeners < 1""")
    assert bad == []


def test_raw_ip_addresses_never_reach_a_mart(built):
    _, settings, _ = built
    ips = {r[0] for r in lake_rows(settings, "omny", "download_ip_address") if r[0]}
    assert ips
    text = json.dumps(marts_snapshot(settings), default=str)
    assert not [ip for ip in ips if ip in text]


def test_altis_sessions_split_at_30_minutes_of_inactivity(built):
    _, settings, _ = built
    expected = gap_sessions(lake_rows(settings, "altis", "endpoint_id, event_ts"))
    got = defaultdict(list)
    for group, started, ended, events in query(
            settings, "select session_group, started_at, ended_at, events from marts.fct_sessions where source = 'altis'"):
        got[group].append((started, ended, events))
    assert {u: sorted(s) for u, s in got.items()} == expected
    assert any(len(s) > 1 for s in expected.values()), "some endpoint has two sessions"


def test_named_sessions_are_one_row_each(built):
    _, settings, _ = built
    for source, column in (("airkit", "session_id"), ("track", "session_id")):
        where = "category = 'Session' and " if source == "airkit" else ""
        expected = Counter(r[0] for r in duckdb.sql(
            f"select {column} from read_parquet('{settings.lake}/{source}/events/*/*.parquet') "
            f"where {where}{column} is not null").fetchall())
        got = dict(query(settings, f"select session_id, events from marts.fct_sessions where source = '{source}'"))
        assert got == dict(expected), source


def test_card_funnel_counts_each_card_once_per_stage(built):
    _, settings, _ = built
    stages = {"card-published": "published_at", "card-displayed": "displayed_at", "card-completed": "completed_at",
              "card-dismissed": "dismissed_at", "card-snoozed": "snoozed_at"}
    expected = defaultdict(set)
    events = Counter()
    for card, template, event, test_source in lake_rows(
            settings, "atomic", "card_context_card_instance_id, card_context_card_template_id, analytics_event, "
                                "platform_context_trigger_event_source"):
        if card and event in stages:
            expected[(template, test_source == "test", stages[event])].add(card)
            events[(template, test_source == "test", stages[event])] += 1
    assert any(events[k] > len(v) for k, v in expected.items()), "some card reached a stage twice"
    got = {}
    for template, is_test, *counts in query(settings, f"""select card_template_id, is_test,
            {', '.join(f'count({c})' for c in stages.values())} from marts.fct_card_funnel group by all"""):
        for stage, n in zip(stages.values(), counts):
            if n:
                got[(template, is_test, stage)] = n
    assert got == {k: len(v) for k, v in expected.items()}
    assert {k[1] for k in got} == {False, True}, "test cards are flagged apart from live ones"


def test_audit_mart_has_one_row_per_audit_event(built):
    _, settings, _ = built
    expected = {r[0] for r in duckdb.sql(f"select event_id from read_parquet('{settings.lake}/airkit/events/*/*.parquet') "
                                         "where category = 'Audit'").fetchall()}
    got = query(settings, "select audit_event_id, actor_id, action, outcome, occurred_at from marts.fct_audit_events")
    assert {r[0] for r in got} == expected and len(got) == len(expected)
    assert all(r[1] and r[2] and r[3] and r[4] for r in got)


def test_platform_hourly_counts_every_event(built):
    _, settings, _ = built
    for source in ("airkit", "track", "atomic", "altis", "omny"):
        expected = Counter(ts.replace(minute=0, second=0, microsecond=0) for (ts,) in lake_rows(settings, source, "event_ts"))
        got = dict(query(settings, f"select event_hour, sum(events) from marts.fct_platform_hourly "
                                   f"where source = '{source}' group by 1"))
        assert got == dict(expected), source
    errors = query(settings, "select sum(errors) from marts.fct_platform_hourly where source = 'airkit'")[0][0]
    expected_errors = duckdb.sql(f"select count(*) from read_parquet('{settings.lake}/airkit/events/*/*.parquet') "
                                 "where level = 'Error' or outcome = 'Failure'").fetchone()[0]
    assert errors == expected_errors > 0


def test_rerunning_a_window_changes_nothing(built):
    _, settings, _ = built
    before = marts_snapshot(settings)
    report = run_marts(settings, format_hour(START + timedelta(hours=2)), format_hour(START + timedelta(hours=4)))
    assert report.ok, report.errors + report.failed_checks
    assert marts_snapshot(settings) == before


def test_a_fold_whose_hourly_state_is_missing_rebuilds_it_from_every_hour(built):
    """A warehouse from before a fold kept its state (or one whose state was dropped): the next
    window builds the state from the whole events layer, and the marts stay as they were."""
    _, settings, _ = built
    before = marts_snapshot(settings)
    with duckdb.connect(settings.duckdb_path) as con:
        states = [r[0] for r in con.sql("select table_name from duckdb_tables() where schema_name = 'intermediate'").fetchall()]
        assert "dim_apps_hourly" in states
        kept = con.sql("select * from intermediate.dim_apps_hourly order by all").fetchall()
        con.execute("drop table intermediate.dim_apps_hourly")
    report = run_marts(settings, format_hour(START + timedelta(hours=2)), format_hour(START + timedelta(hours=3)))
    assert report.ok, report.errors + report.failed_checks
    assert marts_snapshot(settings) == before
    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        assert con.sql("select * from intermediate.dim_apps_hourly order by all").fetchall() == kept


def test_a_late_event_extends_its_session(built):
    root, settings, _ = built
    # The Altis endpoint's first session: an event 10 minutes after its end arrives a day late.
    group, started, ended, events = query(settings, """select session_group, started_at, ended_at, events
        from marts.fct_sessions where source = 'altis' order by started_at, session_group limit 1""")[0]
    sessions_before = query(settings, "select count(*) from marts.fct_sessions where source = 'altis'")[0][0]
    late_ts = ended + timedelta(minutes=10)
    arrival = START + timedelta(hours=HOURS + 3)
    record = {"event_type": "pageView", "event_timestamp": int(late_ts.replace(tzinfo=UTC).timestamp() * 1000),
              "endpoint": {"Id": group, "Attributes": {"DeviceType": ["Mobile"]}},
              "attributes": {"url": "https://example.org/late", "blogId": "3"}}
    folder = root / "landing" / "altis" / "batches" / f"{arrival:%Y-%m-%d}" / f"{arrival:%H}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "late.ndjson").write_text(json.dumps(record) + "\n")

    report = run_backfill(settings, arrival, arrival + timedelta(hours=1), ["altis"])
    assert report.ok, report.errors + report.failed_checks
    rows = query(settings, f"""select started_at, ended_at, events from marts.fct_sessions
        where source = 'altis' and session_group = '{group}' and started_at = TIMESTAMP '{started}'""")
    assert rows == [(started, late_ts, events + 1)]
    assert query(settings, "select count(*) from marts.fct_sessions where source = 'altis'")[0][0] == sessions_before


def test_a_mart_breaking_its_contract_fails_its_check_naming_rule_and_row(built, tmp_path):
    root, settings, _ = built
    # A bad row in the layer below: an Airkit session event with a device class outside the contract.
    hour = START + timedelta(hours=3)
    partition = Path(settings.lake) / "airkit" / "events" / f"event_hour={format_hour(hour)}"
    backup = tmp_path / "backup"
    shutil.copytree(partition, backup)
    # A session all of whose events happened in that hour.
    session = query(settings, f"""select session_id from marts.fct_sessions where source = 'airkit'
        and started_at >= TIMESTAMP '{hour:%Y-%m-%d %H}:00:00' and ended_at < TIMESTAMP '{hour:%Y-%m-%d %H}:59:59'
        order by session_id limit 1""")[0][0]
    bad = tmp_path / "bad.parquet"
    for part in partition.glob("*.parquet"):  # the hour's files: written, or landed ones copied whole
        duckdb.sql(f"""copy (select * replace (case when session_id = '{session}' then 'Phablet' else device_class end
            as device_class) from read_parquet('{part}', hive_partitioning = false)) to '{bad}' (format parquet)""")
        shutil.copy(bad, part)
    try:
        report = run_marts(settings, format_hour(hour), format_hour(hour))
        failed = {tuple(check.split(".", 1)): message for check, message in (f.split(": ", 1) for f in report.failed_checks)}
        message = failed[("fct_sessions", "contract")]
        assert "fct_sessions.device_class" in message and "1 of" in message
        session_key = query(settings, f"select session_key from marts.fct_sessions where session_id = '{session}'")[0][0]
        assert session_key in message
        assert any(name.startswith("accepted_values_fct_sessions_device_class") for (_, name) in failed), failed
        assert [k for k in failed if k[0] != "fct_sessions"] == []
    finally:
        shutil.copytree(backup, partition, dirs_exist_ok=True)
        assert run_marts(settings, format_hour(hour), format_hour(hour)).ok


def test_the_readme_example_queries_run(built):
    import re

    _, settings, _ = built
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"Example queries:\n\n```sql\n(.*?)```", readme, re.S).group(1)
    statements = [s for s in block.split(";") if s.strip()]
    assert len(statements) >= 5
    for statement in statements:
        assert query(settings, statement), statement.strip().splitlines()[0]


def test_dbt_docs_generate_describes_every_mart_column(built, monkeypatch):
    from orchestration.cli import main
    from orchestration.dbt_project import DBT_PROJECT_DIR

    _, settings, _ = built
    monkeypatch.setenv("WAREHOUSE_LAKE", settings.lake)
    monkeypatch.setenv("WAREHOUSE_DUCKDB", settings.duckdb_path)
    assert main(["dbt", "docs", "generate", "--target-path", "target/docs-test"]) == 0
    catalog = json.loads((DBT_PROJECT_DIR / "target" / "docs-test" / "catalog.json").read_text())
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "docs-test" / "manifest.json").read_text())
    sessions = catalog["nodes"]["model.warehouse.fct_sessions"]
    assert sessions["metadata"]["schema"] == "marts" and "session_key" in sessions["columns"]
    documented = manifest["nodes"]["model.warehouse.fct_sessions"]["columns"]
    assert set(documented) == set(sessions["columns"]) and all(c["description"] for c in documented.values())


def test_sources_without_events_yet_give_empty_marts_not_a_failed_build(tmp_path):
    generate_all(tmp_path / "landing", START, 2, seed=3, sources=["omny"])
    settings = Settings(landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"),
                        duckdb_path=str(tmp_path / "w.duckdb"), start=datetime(2026, 1, 1, tzinfo=UTC))
    report = run_backfill(settings, START, START + timedelta(hours=2), ["omny"])
    assert report.ok, report.errors + report.failed_checks
    assert report.marts["fct_download_geo_daily"][0] > 0
    assert report.marts["fct_sessions"] == (0, 0) and report.marts["fct_audit_events"] == (0, 0)


def test_hours_written_before_the_contract_gained_a_field_build_with_the_field_empty(tmp_path):
    """A mart's window whose events files all predate a field its staging model selects (written
    before the contract gained it) builds, the field NULL there; the staging view over every hour
    keeps the field of the hours that have it."""
    generate_all(tmp_path / "landing", START, 3, seed=4, sources=["omny"])
    settings = Settings(landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"),
                        duckdb_path=str(tmp_path / "w.duckdb"), start=datetime(2026, 1, 1, tzinfo=UTC))
    assert run_backfill(settings, START, START + timedelta(hours=3), ["omny"]).ok
    new_hour = format_hour(START + timedelta(hours=2))
    for f in (Path(settings.lake) / "omny" / "events").glob("event_hour=*/*.parquet"):
        if f.parent.name != f"event_hour={new_hour}":  # as an older contract, without clip_title, wrote them
            duckdb.execute(f"COPY (SELECT * EXCLUDE (clip_title) FROM '{f}') TO '{f}.old' (FORMAT parquet)")
            f.with_name(f.name + ".old").replace(f)
    report = run_marts(settings, format_hour(START), format_hour(START + timedelta(hours=1)))  # the old hours alone
    assert report.ok, report.errors + report.failed_checks
    events = Counter(h for (h,) in lake_rows(settings, "omny", "strftime(date_trunc('day', event_ts), '%Y-%m-%d')"))
    assert dict(query(settings, "select strftime(download_date, '%Y-%m-%d'), sum(downloads) "
                                "from marts.fct_download_geo_daily group by 1")) == events
    titled = dict(query(settings, "select event_hour, count(clip_title) from staging.stg_omny__downloads group by 1"))
    titles = duckdb.sql(f"select count(clip_title) from '{settings.lake}/omny/events/event_hour={new_hour}/*.parquet'").fetchone()[0]
    assert titled.pop(new_hour) == titles > 0 and set(titled.values()) == {0} and len(titled) >= 2


def test_staging_views_show_hours_landed_after_them_and_are_made_again_when_stale(tmp_path):
    """A staging view is created only when its SQL changed (macros/lake_view.sql): the view made by
    the first run still shows every hour landed since, and one that no longer matches is replaced."""
    generate_all(tmp_path / "landing", START, 3, seed=4, sources=["omny"])
    settings = Settings(landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"),
                        duckdb_path=str(tmp_path / "w.duckdb"), start=datetime(2026, 1, 1, tzinfo=UTC))
    views = "select comment from duckdb_views() where schema_name = 'staging' and view_name = 'stg_omny__downloads'"
    in_view = "select count(*), count(distinct download_id) from staging.stg_omny__downloads"
    made = None  # the view's digest after the first run
    for first, last in ((0, 2), (2, 3)):
        report = run_backfill(settings, START + timedelta(hours=first), START + timedelta(hours=last), ["omny"])
        assert report.ok, report.errors + report.failed_checks
        made = made or query(settings, views)
        assert query(settings, views) == made and made[0][0].startswith("sql md5 ")
        events = len(lake_rows(settings, "omny", "event_id"))
        assert query(settings, in_view) == [(events, events)] and events > 0
    with duckdb.connect(settings.duckdb_path) as con:  # as if its SQL had changed since
        con.execute("create or replace view staging.stg_omny__downloads as select 1 as download_id")
        con.execute("comment on view staging.stg_omny__downloads is 'sql md5 of another SQL'")
    assert run_marts(settings, format_hour(START), format_hour(START + timedelta(hours=2))).ok
    assert query(settings, views) == made and query(settings, in_view) == [(events, events)]


def test_the_analyst_commands_of_the_readme_and_the_demo_run_as_written(built):
    """`make sql` and `python -m orchestration sql`, as the README and `demo` print them, in a shell."""
    import os
    import re
    import subprocess

    from orchestration.cli import DEMO_QUERY

    _, settings, _ = built
    repo = Path(__file__).resolve().parent.parent
    readme = (repo / "README.md").read_text()
    lines = [line for block in re.findall(r"```sh\n(.*?)```", readme, re.S) for line in block.splitlines()]
    commands = [line for line in lines if line.startswith(("make sql", ".venv/bin/python -m orchestration sql",
                                                           ".venv/bin/python -m orchestration backfill --start 2026-01-05T07"))]
    commands.append(DEMO_QUERY)
    assert len(commands) >= 6
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(WAREHOUSE_DUCKDB=settings.duckdb_path, WAREHOUSE_LAKE=settings.lake, WAREHOUSE_LANDING=settings.landing)
    for command in commands:
        result = subprocess.run(command, shell=True, cwd=repo, env=env, capture_output=True, text=True)
        assert result.returncode == 0, command + "\n" + result.stdout + result.stderr
        assert "│" in result.stdout or "Ledger" in result.stdout, command
    # a sum of counts reads as a BIGINT, not as DuckDB's INT128
    result = subprocess.run([".venv/bin/python", "-m", "orchestration", "sql",
                             "select sum(downloads) as downloads, count(*) as n from marts.fct_download_geo_daily"],
                            cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "int64" in result.stdout and "int128" not in result.stdout, result.stdout


def test_no_model_config_depends_on_the_window(tmp_path):
    """The marts step parses the project without the run's window (orchestration/dbt_runner.py) and
    compiles each build with it: a model's config and hooks (a replace predicate, a state table's
    hours) must leave the window to run time, or every run would use the parse's."""
    from dbt.cli.main import dbtRunner

    from orchestration.dbt_project import DBT_PROJECT_DIR
    from orchestration.dbt_runner import common_args

    configs = []
    for lo, hi in [("2026-01-05T00:00:00", "2026-01-05T01:00:00"), ("2026-02-01T00:00:00", "2026-02-03T00:00:00")]:
        target = tmp_path / lo[:10]
        result = dbtRunner().invoke(["parse", *common_args(DBT_PROJECT_DIR, DBT_PROJECT_DIR, {"min_date": lo, "max_date": hi},
                                                           target), "--no-partial-parse"])
        assert result.success, result.exception
        configs.append({uid: node.config.to_dict() for uid, node in result.result.nodes.items() if uid.startswith("model.")})
    assert len(configs[0]) > 10
    assert configs[0] == configs[1]
