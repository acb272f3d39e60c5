"""datacontract-cli, the ODCS reference tool, on our contracts: `datacontract lint` on every
contract, `datacontract test` on every mart contract against the DuckDB file and on every
events-layer contract against the lake's Parquet.

It runs from its own environment (its dependencies clash with ours): .venv-datacontract, pinned by
data_contracts/datacontract-cli/uv.lock, installed by `make datacontract` (and so by `make test`
and `make contracts-test`).
The contracts' servers name the default paths, relative to the repo root (data/warehouse.duckdb,
data/lake); other settings (WAREHOUSE_DUCKDB, WAREHOUSE_LAKE) are passed to the tool: the DuckDB
file through its own override (DATACONTRACT_DUCKDB_DATABASE), the lake through a copy of the
contract whose server path is the configured lake.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from orchestration.settings import DEFAULT_LAKE, Settings

REPO = Path(__file__).resolve().parent.parent
TOOL_PROJECT = REPO / "data_contracts" / "datacontract-cli"  # pyproject.toml and uv.lock
EXECUTABLE = REPO / ".venv-datacontract" / "bin" / "datacontract"


class ToolMissing(RuntimeError):
    """The datacontract-cli environment is not installed."""


@dataclass(frozen=True)
class Outcome:
    path: Path
    command: str  # lint | test
    ok: bool
    output: str
    skipped: str | None = None  # why the command did not run


def run(args: list[str], cwd: Path = REPO, env: dict[str, str] | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess:
    """`datacontract ARGS` in its own environment, none of our DATACONTRACT_* settings leaking in."""
    if not EXECUTABLE.exists():
        raise ToolMissing(f"datacontract-cli is not installed at {EXECUTABLE}: run `make datacontract`")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATACONTRACT_")}
    environment.update({"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})
    return subprocess.run([str(EXECUTABLE), *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def datacontract_lint(path: Path) -> Outcome:
    proc = run(["lint", str(path)])
    return Outcome(Path(path), "lint", proc.returncode == 0, proc.stdout + proc.stderr)


def _server(doc: dict, path: Path) -> dict:
    servers = doc.get("servers") or []
    if not servers:
        raise ValueError(f"{path}: no `servers` entry to test against")
    return servers[0]


def datacontract_test(path: Path, settings: Settings, cwd: Path = REPO) -> Outcome:
    """`datacontract test` on the contract's first server, pointed at `settings`' DuckDB file or lake
    (the contract's own relative paths are read from `cwd`)."""
    from orchestration.storage import duckdb_file_lock

    path = Path(path).resolve()
    doc = yaml.safe_load(path.read_text())
    server = _server(doc, path)
    args = ["test", str(path), "--server", server["server"]]
    if server["type"] == "duckdb":
        if not Path(settings.duckdb_path).exists():
            return Outcome(path, "test", False, "", skipped=f"no DuckDB file at {settings.duckdb_path} yet: run `make demo`")
        env = {}
        if (cwd / server["database"]).resolve() != Path(settings.duckdb_path).resolve():
            env["DATACONTRACT_DUCKDB_DATABASE"] = settings.duckdb_path
        # Read-only, between runs: it waits for a dbt step, as every reader of the file does.
        with duckdb_file_lock(settings.duckdb_path, settings.duckdb_lock_timeout_seconds, "datacontract test"):
            proc = run(args, cwd, env)
        return Outcome(path, "test", proc.returncode == 0, proc.stdout + proc.stderr)
    if server["type"] == "local":
        if settings.lake.startswith("s3://"):
            return Outcome(path, "test", False, "", skipped="the lake is on S3 (WAREHOUSE_LAKE): test a local copy")
        relative = server["path"]
        if not relative.startswith(DEFAULT_LAKE + "/"):
            raise ValueError(f"{path}: server path {relative!r} is not under {DEFAULT_LAKE}/")
        if (cwd / DEFAULT_LAKE).resolve() == Path(settings.lake).resolve():
            proc = run(args, cwd)
        else:
            with tempfile.TemporaryDirectory(prefix="datacontract-") as tmp:
                server["path"] = settings.lake.rstrip("/") + relative[len(DEFAULT_LAKE):]
                copy = Path(tmp) / path.name
                copy.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
                args[1] = str(copy)
                proc = run(args, cwd)
        return Outcome(path, "test", proc.returncode == 0, proc.stdout + proc.stderr)
    raise ValueError(f"{path}: server type {server['type']!r} is not one this warehouse tests")


def testable_contracts() -> list[Path]:
    """Every contract with data to test: the marts (DuckDB file) and the events layer (lake)."""
    from orchestration.contracts import CONTRACTS_DIR

    return sorted((CONTRACTS_DIR / "marts").glob("*.yaml")) + sorted((CONTRACTS_DIR / "lake").glob("*.yaml"))
