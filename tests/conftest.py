from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from orchestration.contracts import load_source_contracts

START = datetime(2026, 1, 5, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def contracts():
    return load_source_contracts()


@pytest.fixture
def warehouse_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A warehouse on temp folders: landing, lake and DuckDB file."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    env = {"WAREHOUSE_LANDING": str(tmp_path / "landing"), "WAREHOUSE_LAKE": str(tmp_path / "lake"),
           "WAREHOUSE_DUCKDB": str(tmp_path / "warehouse.duckdb"), "WAREHOUSE_START": "2026-01-01T00"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return tmp_path


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Dagster instance on disk, configured as `make install` configures the demo's."""
    from orchestration.instance_storage import INSTANCE_YAML

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API (moto in server mode) on loopback, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    return client
