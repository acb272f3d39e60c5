"""The dbt docs an analyst opens: a home page saying what this warehouse is, and every staging
view described, its documented columns the view's own (generated on a built warehouse)."""

import json
from datetime import datetime, timedelta, timezone

from orchestration.backfill import run_backfill
from orchestration.cli import main
from orchestration.dbt_project import DBT_PROJECT_DIR
from orchestration.settings import Settings
from sample_exports import generate_all

UTC = timezone.utc
START = datetime(2026, 1, 5, 10, tzinfo=UTC)
STAGING = ["stg_omny__downloads", "stg_atomic__events", "stg_airkit__events", "stg_altis__events",
           "stg_track__events", "stg_quarantine"]


def test_dbt_docs_have_a_home_page_and_describe_every_staging_view(warehouse_env):
    settings = Settings.from_env()
    generate_all(warehouse_env / "landing", START, 2, seed=13)
    report = run_backfill(settings, START, START + timedelta(hours=2), None)
    assert report.ok, report.errors + report.failed_checks

    target = DBT_PROJECT_DIR / "target" / "docs-staging-test"
    assert main(["dbt", "docs", "generate", "--target-path", str(target.relative_to(DBT_PROJECT_DIR))]) == 0
    catalog = json.loads((target / "catalog.json").read_text())
    manifest = json.loads((target / "manifest.json").read_text())

    overview = manifest["docs"]["doc.warehouse.__overview__"]["block_contents"]
    for words in ("Events warehouse", "Omny", "Atomic", "Airkit", "Altis", "Track", "data_contracts/",
                  "marts.fct_sessions", "staging.stg_", "make sql"):
        assert words in overview, words

    for name in STAGING:
        node = manifest["nodes"][f"model.warehouse.{name}"]
        assert len(node["description"]) > 80, name
        built = catalog["nodes"][f"model.warehouse.{name}"]["columns"]
        documented = node["columns"]
        assert documented and set(documented) <= set(built), (name, set(documented) - set(built))
        assert all(c["description"] for c in documented.values()), name
        assert {"event_hour", "arrival_hour"} & set(documented) or name == "stg_quarantine"
