"""What a data engineer sees in `dagster dev`: ten assets, their partitions, checks and automation."""

import dagster as dg

from orchestration.definitions import build_definitions
from orchestration.settings import Settings


def test_ten_partitioned_assets_with_ledger_checks():
    defs = build_definitions(Settings.from_env({"WAREHOUSE_START": "2026-01-01T00"}))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    sources = ["omny", "atomic", "airkit", "altis", "track"]
    assert keys == {f"{s}_{layer}" for s in sources for layer in ("landed", "events")}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert isinstance(node.partitions_def, dg.HourlyPartitionsDefinition)
        assert node.partitions_def.get_first_partition_key() == "2026-01-01T00"
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert checks == {(k, "ledger_balances") for k in keys}
    assert {s.name for s in defs.sensors} == {"landing_files_sensor", "late_events_sensor"}
    assert {s.name for s in defs.schedules} == {"hourly_landing"}
