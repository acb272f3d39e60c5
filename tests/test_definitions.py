"""What a data engineer sees in `dagster dev`: the ingestion assets and the dbt models, their
partitions, checks and automation."""

from datetime import datetime, timezone

import dagster as dg

from orchestration.definitions import build_definitions
from orchestration.settings import Settings

SOURCES = ["omny", "atomic", "airkit", "altis", "track"]
MARTS = {"fct_sessions", "fct_audit_events", "fct_platform_hourly", "fct_download_geo_daily", "fct_card_funnel",
         "dim_programs", "dim_clips", "dim_card_templates", "dim_apps"}
PULLED = {"atomic_export_files"}  # vendors that must be polled: their files, by arrival hour
PULLED_BY_DAY = {"altis_export_files"}  # ... or by UTC day (a daily export)
HOURLY_MARTS = {"fct_sessions", "fct_audit_events", "fct_platform_hourly"}
STAGING = {"stg_omny__downloads", "stg_atomic__events", "stg_airkit__events", "stg_altis__events", "stg_track__events",
           "stg_quarantine"}


def test_each_asset_is_partitioned_by_what_it_means_with_one_dbt_step_per_partitioning():
    defs = build_definitions(Settings.from_env({"WAREHOUSE_START": "2026-01-01T00"}))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    ingestion = {f"{s}_{layer}" for s in SOURCES for layer in ("landed", "events")}
    assert keys == ingestion | MARTS | STAGING | PULLED | PULLED_BY_DAY

    def partitions(name):
        return graph.get(dg.AssetKey(name)).partitions_def

    # The lake and the hourly facts: one partition per hour, a range as one run.
    for name in ingestion | HOURLY_MARTS | PULLED:
        assert isinstance(partitions(name), dg.HourlyPartitionsDefinition), name
        assert partitions(name).get_first_partition_key() == "2026-01-01T00"
        assert graph.get(dg.AssetKey(name)).backfill_policy == dg.BackfillPolicy.single_run()
    for name in ingestion | HOURLY_MARTS | PULLED | PULLED_BY_DAY:  # UTC, from WAREHOUSE_START
        assert partitions(name).timezone == "UTC", name
        assert partitions(name).start == datetime(2026, 1, 1, tzinfo=timezone.utc), name
    for name in PULLED_BY_DAY:  # the file of day D lands in arrival hour D+1 00
        assert isinstance(partitions(name), dg.DailyPartitionsDefinition), name
        landed = graph.get(dg.AssetKey(name.replace("_export_files", "_landed")))
        mapping = landed.partition_mappings[dg.AssetKey(name)]
        upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
            landed.partitions_def.subset_with_partition_keys(["2026-03-02T00"]), landed.partitions_def,
            partitions(name)).partitions_subset
        assert set(upstream.get_partition_keys()) == {"2026-03-01"}
    assert partitions("fct_sessions") == partitions("omny_events")  # by event hour
    # The download-geo mart by day; dimensions, the card funnel and staging views are whole tables.
    assert isinstance(partitions("fct_download_geo_daily"), dg.DailyPartitionsDefinition)
    assert partitions("fct_download_geo_daily").get_first_partition_key() == "2026-01-01"
    assert graph.get(dg.AssetKey("fct_download_geo_daily")).backfill_policy == dg.BackfillPolicy.single_run()
    for name in MARTS - HOURLY_MARTS - {"fct_download_geo_daily"} | STAGING:
        assert partitions(name) is None, name
    # One dbt step (one `dbt build`) per partitioning.
    dbt_steps = {a.op.name: {k.to_user_string() for k in a.keys} for a in defs.assets
                 if any("dbt" in s.kinds for s in a.specs)}
    assert sorted(dbt_steps.values(), key=len) == [
        {"fct_download_geo_daily"}, HOURLY_MARTS, MARTS - HOURLY_MARTS - {"fct_download_geo_daily"} | STAGING]
    assert {graph.get(dg.AssetKey(m)).group_name for m in MARTS} == {"marts"}


def test_deps_run_from_the_vendors_files_to_the_marts():
    graph = build_definitions(Settings.from_env({"WAREHOUSE_START": "2026-01-01T00"})).resolve_asset_graph()

    def parents(name):
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    for source in SOURCES:
        assert parents(f"{source}_events") == {f"{source}_landed"}, source
    # a pulled vendor's files are fetched before they land; the others drop theirs in the landing area
    for files in PULLED | PULLED_BY_DAY:
        assert parents(files.replace("_export_files", "_landed")) == {files}
        assert parents(files) == set()
    for source in set(SOURCES) - {f.split("_")[0] for f in PULLED | PULLED_BY_DAY}:
        assert parents(f"{source}_landed") == set(), source
    # dbt's staging views read the events layers, the marts read staging
    for view in STAGING - {"stg_quarantine"}:
        assert parents(view) == {view.removeprefix("stg_").split("__")[0] + "_events"}, view
    assert parents("fct_download_geo_daily") == {"stg_omny__downloads"}
    assert parents("fct_sessions") == {"stg_atomic__events", "stg_airkit__events", "stg_altis__events",
                                       "stg_track__events"}
    for mart in MARTS:
        assert parents(mart) and parents(mart) <= STAGING | MARTS, mart


def test_checks_ledgers_dbt_tests_and_blocking_contracts():
    defs = build_definitions(Settings.from_env({"WAREHOUSE_START": "2026-01-01T00"}))
    graph = defs.resolve_asset_graph()
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    ingestion = {f"{s}_{layer}" for s in SOURCES for layer in ("landed", "events")}
    assert {(k, "ledger_balances") for k in ingestion} <= checks
    assert {(m, "contract") for m in MARTS} <= checks
    assert ("fct_sessions", "unique_fct_sessions_session_key") in checks  # a dbt test, loaded as a check
    # a ledger that does not balance, or a mart that breaks its contract, stops what is downstream
    for asset, name in {(k, "ledger_balances") for k in ingestion} | {(m, "contract") for m in MARTS}:
        assert graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey(asset), name)).blocking, (asset, name)
    # every events layer and mart has a freshness check from its contract's SLA; it never blocks
    freshness = {c for c in graph.asset_check_keys if c.name == "freshness"}
    assert {c.asset_key.to_user_string() for c in freshness} == {f"{s}_events" for s in SOURCES} | MARTS
    assert not any(graph.get_check_spec(c).blocking for c in freshness)


def test_automation():
    defs = build_definitions(Settings.from_env({"WAREHOUSE_START": "2026-01-01T00"}))
    graph = defs.resolve_asset_graph()
    assert {s.name for s in defs.sensors} == {"landing_files_sensor", "late_events_sensor", "marts_sensor",
                                              "freshness_checks_sensor"}
    # freshness checks are evaluated without a person, and the sensor only ever evaluates checks
    freshness = next(s for s in defs.sensors if s.name == "freshness_checks_sensor")
    assert freshness.default_status == dg.DefaultSensorStatus.RUNNING
    assert freshness.asset_selection.resolve_checks(graph) == {c for c in graph.asset_check_keys
                                                              if c.name == "freshness"}
    # what each schedule and sensor starts, and what each job builds
    assert {s.name: (s.job_name, s.cron_schedule, s.execution_timezone) for s in defs.schedules} == {
        "hourly_landing": ("land_arrival_hours", "5 * * * *", "UTC"),
        "hourly_pull": ("pull_vendor_exports", "15 * * * *", "UTC"),
        "daily_pull": ("pull_vendor_exports_by_day", "20 0 * * *", "UTC")}
    assert {s.name: {t.job_name for t in s.targets} for s in defs.sensors if s.name != freshness.name} == {
        "landing_files_sensor": {"land_arrival_hours"}, "late_events_sensor": {"build_event_hours"},
        "marts_sensor": {"build_marts", "build_marts_by_day"}}
    assert {j.name: {k.to_user_string() for k in j.selection.resolve(graph)} for j in defs.jobs} == {
        "pull_vendor_exports": PULLED, "pull_vendor_exports_by_day": PULLED_BY_DAY,
        "land_arrival_hours": {f"{s}_landed" for s in SOURCES}, "build_event_hours": {f"{s}_events" for s in SOURCES},
        "build_marts": MARTS - {"fct_download_geo_daily"} | STAGING, "build_marts_by_day": {"fct_download_geo_daily"}}


def test_every_asset_has_the_owners_of_its_contract():
    from orchestration.contracts import load_mart_contracts, load_source_contracts

    defs = build_definitions(Settings.from_env({"WAREHOUSE_START": "2026-01-01T00"}))
    graph = defs.resolve_asset_graph()
    sources, marts = load_source_contracts(), load_mart_contracts()
    for key in graph.get_all_asset_keys():
        name = key.to_user_string()
        if name in marts:
            expected = list(marts[name].owners)
        elif name.startswith("stg_") and name != "stg_quarantine":  # a staging view: its source's team
            expected = list(sources[name.removeprefix("stg_").split("__")[0]].owners)
        else:
            expected = None
        owners = graph.get(key).owners
        assert owners, name
        if expected is not None:
            assert owners == expected, name
    assert graph.get(dg.AssetKey("fct_sessions")).owners[0] == "team:analytics-engineering"
    assert graph.get(dg.AssetKey("stg_omny__downloads")).owners[0] == "team:data-platform"
