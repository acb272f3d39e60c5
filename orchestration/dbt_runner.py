"""dbt in the step's own process (dbt's `dbtRunner`), its events turned into Dagster's by dagster-dbt.

`DbtCliResource.cli` starts dbt as a subprocess: Python and dbt start again, and since the window is
in the vars, dbt parses the whole project again (its partial parse is void when the vars change):
~3-4 s before a build of ~1 s, for each of a marts run's dbt steps (bench/README.md). Here the
project is parsed once a process with the vars that do not change (where the lake and the DuckDB
file are; dbt's partial parse, kept between processes, makes that 0.1-0.7 s), and each build is
handed that manifest with the window in its vars, which only compiling reads: no model's config
may read the window (tests/test_marts.py pins it). The selection, the translation
of dbt's results into Dagster events and the events themselves are dagster-dbt's."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from dagster import AssetExecutionContext

PARTIAL_PARSE = "partial_parse.msgpack"
PARSE_CACHE_KEEP = 8
# dbt's events that carry a node's result (dagster-dbt's `DbtCoreCliEventMessage.is_result_event`).
RESULT_EVENTS = frozenset({"LogSeedResult", "LogModelResult", "LogSnapshotResult", "LogTestResult"})
_DONE = object()


@dataclass
class DbtBuild:
    """One in-process dbt invocation: what it logged at level error, and its result."""

    target_path: Path
    errors: list[str] = field(default_factory=list)
    result: Any = None  # dbt's dbtRunnerResult

    @property
    def ran(self) -> bool:
        """Whether dbt got as far as running nodes (a parse or connection error stops it before)."""
        return self.result is not None and hasattr(self.result.result, "results")

    def failed_models(self) -> list[tuple[str, str]]:
        """(model, dbt's message) of each model that failed to build."""
        if not self.ran:
            return []
        return [(r.node.name, (r.message or "").strip()) for r in self.result.result.results
                if r.node.resource_type == "model" and str(r.status) == "error"]

    def error_text(self) -> str:
        """dbt's own error lines, else its exception, else where its log is."""
        lines = [error.split("Traceback (most recent call last)", 1)[0].strip() for error in self.errors]  # dbt's stack: in its log
        if any(lines):
            return " | ".join(" ".join(line.split()) for line in lines if line)[:2000]
        exception = getattr(self.result, "exception", None)
        if exception is not None:
            return f"{type(exception).__name__}: {exception}"[:2000]
        return f"dbt stopped; see {self.target_path / 'dbt.log'}"


def common_args(project_dir: Path, profiles_dir: Path, variables: dict[str, str], target_path: Path) -> list[str]:
    # dbt's console log is off (the step re-emits each line, as dagster-dbt does); its file log,
    # dbt.log in the target folder, is what a failed run keeps.
    return ["--vars", json.dumps(variables), "--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir),
            "--target-path", str(target_path), "--log-path", str(target_path), "--log-level", "none",
            "--log-level-file", "debug", "--no-send-anonymous-usage-stats"]


def _parse_cache(project_dir: Path, variables: dict[str, str]) -> Path:
    key = hashlib.sha256(json.dumps(variables, sort_keys=True).encode()).hexdigest()[:24]
    return project_dir / "target" / "parse_cache" / f"{key}.msgpack"


def _reuse_parse(project_dir: Path, variables: dict[str, str], target_path: Path) -> None:
    """Start dbt in `target_path` from the partial parse an earlier process left for these vars."""
    target_path.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(_parse_cache(project_dir, variables), target_path / PARTIAL_PARSE)
    except FileNotFoundError:  # none yet (or just pruned): dbt parses it all
        pass


def _keep_parse(project_dir: Path, variables: dict[str, str], target_path: Path) -> None:
    """Keep dbt's partial parse for the next process with these vars (the newest PARSE_CACHE_KEEP)."""
    parsed = target_path / PARTIAL_PARSE
    if not parsed.exists():
        return
    cached = _parse_cache(project_dir, variables)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{cached.name}.{os.getpid()}.{threading.get_ident()}")
    shutil.copyfile(parsed, partial)
    os.replace(partial, cached)  # whole or not at all: another process may be reading it

    def age(path: Path) -> float:
        try:
            return -path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    for old in sorted(cached.parent.glob("*.msgpack"), key=age)[PARSE_CACHE_KEEP:]:
        old.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Parse:
    files: tuple
    manifest: Any


_PARSES: dict[tuple[str, str], _Parse] = {}
_PARSES_LOCK = threading.Lock()
NOT_PARSED = ("target", "logs", "dbt_packages")


def _files(project_dir: Path, profiles_dir: Path) -> tuple:
    """(path, mtime, size) of every file dbt parses: what says the project changed."""
    out = []
    for folder in {project_dir, profiles_dir}:
        for top in folder.iterdir():
            if top.name in NOT_PARSED or top.name.startswith("."):
                continue
            for path in (top.rglob("*") if top.is_dir() else [top]):
                if path.is_file():
                    stat = path.stat()
                    out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(out))


def _parsed(project_dir: Path, profiles_dir: Path, variables: dict[str, str], build: DbtBuild) -> Any:
    """dbt's manifest of the project with `variables`: parsed once a process while no file it was
    parsed from (nor an environment variable it read) changed, the first time from the partial
    parse an earlier process left. None when dbt cannot parse it (`build` says why)."""
    key = (str(project_dir), json.dumps(variables, sort_keys=True))
    files = _files(project_dir, profiles_dir)
    with _PARSES_LOCK:
        known = _PARSES.get(key)
        if (known is not None and known.files == files
                and all(os.environ.get(name) == value for name, value in known.manifest.env_vars.items())):
            return known.manifest
        _reuse_parse(project_dir, variables, build.target_path)
        _invoke(["parse", *common_args(project_dir, profiles_dir, variables, build.target_path)], build, lambda msg: None)
        if not build.result.success:
            return None
        _keep_parse(project_dir, variables, build.target_path)
        manifest, build.result = build.result.result, None
        _PARSES.clear()  # one project and vars a process, in practice: keep no old manifest
        _PARSES[key] = _Parse(files, manifest)
        return manifest


def _invoke(args: list[str], build: DbtBuild, on_event, manifest: Any = None) -> None:
    from dbt.cli.main import dbtRunner

    def callback(msg) -> None:
        if msg.info.level == "error":
            build.errors.append(msg.info.msg)
        on_event(msg)

    try:
        build.result = dbtRunner(manifest=manifest, callbacks=[callback]).invoke(args)
    finally:
        _close_duckdb()


def _close_duckdb() -> None:
    """Close the DuckDB file dbt-duckdb keeps open in this process after an invocation (its
    environment outlives it): another process's dbt step, waiting on the warehouse lock, opens it next."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:  # dbt-duckdb 1.11, pinned by uv.lock
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None


def dbt_build(context: AssetExecutionContext, project_dir: Path, profiles_dir: Path, variables: dict[str, str],
              parse_variables: dict[str, str], target_path: Path) -> Iterator[Any]:
    """`dbt build` of this step's selection with `variables`, in this process: yields the step's
    Dagster events as dbt finishes each node, then returns the `DbtBuild` (its result and errors).
    The project is parsed with `parse_variables` only (what compiling alone reads is left out)."""
    from dagster_dbt.asset_utils import get_updated_cli_invocation_params_for_context
    from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage
    from dbt_common.events.functions import msg_to_dict

    build = DbtBuild(target_path=target_path)
    manifest = _parsed(project_dir, profiles_dir, parse_variables, build)
    if manifest is None:
        return build

    params = get_updated_cli_invocation_params_for_context(context=context, manifest={}, dagster_dbt_translator=None)
    run_dir = Path(params.dbt_project.project_dir) if params.dbt_project else project_dir
    # Past 200 nodes dagster-dbt selects with a generated selector, in a temporary copy of the project.
    copied = list(params.selection_args[:1]) == ["--selector"] and run_dir.resolve() != project_dir.resolve()
    args = ["build", *common_args(run_dir, profiles_dir, variables, target_path), *params.selection_args]
    if params.indirect_selection:
        args += ["--indirect-selection", params.indirect_selection]

    events: queue.Queue = queue.Queue()

    def on_event(msg) -> None:
        if msg.info.level != "debug":
            events.put(msg.info.msg)  # dbt's log line, for the step's stdout
        if msg.info.name in RESULT_EVENTS:
            events.put(msg_to_dict(msg))

    def run() -> None:
        try:
            _invoke(args, build, on_event, manifest=manifest)
        finally:
            events.put(_DONE)

    worker = threading.Thread(target=run, name="dbt build", daemon=True)
    worker.start()
    try:
        while (event := events.get()) is not _DONE:
            if isinstance(event, str):
                sys.stdout.write(event + "\n")
                continue
            message = DbtCoreCliEventMessage(raw_event=event, event_history_metadata={})
            yield from message.to_default_asset_events(
                manifest=params.manifest, dagster_dbt_translator=params.dagster_dbt_translator, context=context,
                target_path=target_path, project=params.dbt_project)
    finally:  # dbt never outlives the step (nor the warehouse lock it holds)
        worker.join()
        sys.stdout.flush()
        if copied:
            shutil.rmtree(run_dir, ignore_errors=True)
    return build
