"""The same ingestion with the landing area and the lake on S3: a real S3 API server on loopback."""

from datetime import datetime, timedelta, timezone

import boto3
import duckdb
from dagster_aws.s3 import S3Resource

from orchestration.backfill import run_backfill
from orchestration.resources import StorageResource
from orchestration.settings import Settings
from orchestration.storage import S3Access, duckdb_connection, s3_secret_options
from sample_exports import SOURCES, generate_all
from support import expected_omny_ids

UTC = timezone.utc
START = datetime(2026, 1, 5, 22, tzinfo=UTC)  # across midnight, and the Altis daily file arrives at 00
HOURS = 4


def test_land_and_build_events_on_s3(s3_env, tmp_path, monkeypatch):
    client = s3_env
    # a secret key that would break SQL text: the stores, the lake's DuckDB and dbt's must take it as it is
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "it's\"a\\secret;--")
    client.create_bucket(Bucket="vendor-drop")
    client.create_bucket(Bucket="lake")
    landing = tmp_path / "landing"
    generate_all(landing, START, HOURS, seed=5)
    for path in landing.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), "vendor-drop", "exports/" + path.relative_to(landing).as_posix())

    settings = Settings.from_env({"WAREHOUSE_LANDING": "s3://vendor-drop/exports", "WAREHOUSE_LAKE": "s3://lake/warehouse",
                                  "WAREHOUSE_DUCKDB": str(tmp_path / "w.duckdb"), "WAREHOUSE_START": "2026-01-01T00",
                                  "AWS_ENDPOINT_URL": s3_env.meta.endpoint_url})
    report = run_backfill(settings, START, START + timedelta(hours=HOURS), None)
    assert report.ok, (report.failed_checks, report.errors)
    for source in SOURCES:
        assert report.landed[source]["rows_landed"] > 0, source

    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="lake")
            for o in page.get("Contents", [])]
    assert any(k.startswith("warehouse/omny/landed/arrival_hour=") for k in keys)
    assert any(k.startswith("warehouse/omny/quarantine/arrival_hour=") for k in keys)
    assert not any(".staging" in k for k in keys)
    assert any(k.startswith("warehouse/omny/events/") and "/first_copies_" in k for k in keys)  # copied within S3

    con = duckdb_connection(S3Access.of(client, boto3.session.Session()))
    rows: dict[str, list[str]] = {}  # an event hour's ids, from each of its files
    for key in keys:
        if key.startswith("warehouse/omny/events/"):
            hour = key.split("event_hour=")[1].split("/")[0]
            rows.setdefault(hour, []).extend(
                r[0] for r in con.execute(f"SELECT event_id FROM read_parquet('s3://lake/{key}', hive_partitioning = false)").fetchall())
    assert all(len(ids) == len(set(ids)) for ids in rows.values())
    actual = {hour: set(ids) for hour, ids in rows.items() if ids}
    assert actual == expected_omny_ids(landing)
    # a second run over S3 changes nothing
    # dbt read the lake on S3 (httpfs from the PyPI package, credentials from the boto3 chain)
    with duckdb.connect(settings.duckdb_path, read_only=True) as warehouse:
        downloads = warehouse.sql("select sum(downloads) from marts.fct_download_geo_daily").fetchone()[0]
    assert downloads == sum(len(ids) for ids in actual.values())
    again = run_backfill(settings, START, START + timedelta(hours=HOURS), ["omny"], marts=False)
    assert again.ok and again.events["omny"]["rows_kept"] == report.events["omny"]["rows_kept"]


def test_duckdb_signs_with_the_s3_resources_credentials_and_never_shows_them(monkeypatch):
    secret = "it's\"a\\secret;--"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-chain")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    endpoint, region = "http://127.0.0.1:9", "eu-west-1"
    own_keys = StorageResource(root="s3://lake/warehouse", s3=S3Resource(
        endpoint_url=endpoint, region_name=region, aws_access_key_id="its-own", aws_secret_access_key=secret + "!"))
    chain = StorageResource(root="s3://lake/warehouse", s3=S3Resource(endpoint_url=endpoint, region_name=region))

    names, values = s3_secret_options(own_keys.s3_access())
    assert dict(zip(names, values)) == {"TYPE": "s3", "KEY_ID": "its-own", "SECRET": secret + "!", "REGION": region,
                                        "ENDPOINT": "127.0.0.1:9", "URL_STYLE": "path", "USE_SSL": False}
    access = chain.s3_access()
    assert (access.credentials.access_key, access.credentials.secret_key) == ("from-the-chain", secret)
    assert secret not in repr(access)
    with duckdb_connection(access) as con:  # the quotes in the key reach DuckDB as a value, not as SQL
        assert con.sql("select name, type from duckdb_secrets()").fetchall() == [("warehouse_s3", "s3")]
        assert secret not in str(con.sql("select * from duckdb_secrets()").fetchall())
