"""The marts step against the dbt floor, and one new hour after 1 day and after N days of history
(30 by default here; `make bench` passes its HISTORY_DAYS).

    uv run python bench/marts_bench.py [--only floor,1d,30d,48h] [--repeat 1] [--warehouse-start 2024-01-03T00]
    (Nd: any N days of history)

Sample exports of all five sources (`python -m orchestration generate`, about 500 events an
arrival hour) are generated once into bench/out/marts/, and their history backfilled once through
the CLI (`backfill`, marts included) into a cached lake and DuckDB file; every measurement then
starts from a fresh copy of that state and runs in a fresh process (wall time, peak RSS of the
process tree):

- `dbt_floor`: a trivial `dbt build` (bench/dbt_floor/: one table, no test) in a Dagster step,
  through dagster-dbt the way the marts step runs dbt (`DbtCliResource.cli([...]).stream()`, the
  window as `--vars`, a target folder per run), materialised for real;
- `marts_one_hour_1d`, `marts_one_hour_30d`: the marts step for one new arrival hour of every
  source (already landed and built into the events layer, unmeasured), after 24 and 720 hours of
  history: `build_marts` over the event hours that hour affected, i.e. every run `backfill` starts
  for the marts (dbt models, dbt tests, Great Expectations contract checks);
- `history_one_hour_1d`, `history_one_hour_30d`: land + events + marts of that new hour through the
  CLI (`backfill --start H --end H+1`), the whole process;
- `marts_48h_all_sources`: the marts step over 48 hours of every source, on an empty warehouse
  (the lake built beforehand, unmeasured).

Each `marts_*` scenario runs once unmeasured first, on a copy of the same state at the same path:
the marts step parses the dbt project once a process, from the partial parse dbt left for that
lake and DuckDB file (orchestration/dbt_runner.py), as a warehouse in use finds it; a first run
after the project changed parses it all (~2 s more). The floor is measured the same way.

The seconds of `dbt_floor` and of the `marts_*` scenarios are the Dagster runs themselves, timed in
the child (imports and loading the definitions excluded, the same for both); the process wall time
is printed beside them. Numbers go in bench/README.md, never in a test.
"""


import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import bench_dirs

BENCH = bench_dirs.BENCH
REPO = BENCH.parent
OUT = bench_dirs.OUT / "marts"
FLOOR_PROJECT = BENCH / "dbt_floor"
UTC = timezone.utc
START = datetime(2026, 1, 5, tzinfo=UTC)
FIRST_PARTITION = START - timedelta(days=2)  # late events of the first hours land in their own hour
SEED = 7
# What the cached history depends on: rebuilt when any of it changes.
STATE_INPUTS = ["dbt_project/models", "dbt_project/macros", "dbt_project/tests", "dbt_project/dbt_project.yml",
                "data_contracts", "orchestration/lake", "orchestration/sources", "sample_exports"]

Record = Callable[[str, str, str, float, float, int], None]


def hour(t: datetime) -> str:
    return f"{t:%Y-%m-%dT%H}"


# The warehouse's first partition (WAREHOUSE_START) of every run here; `--warehouse-start` moves it
# back: Dagster's cost grows with the partitions from it to today.
warehouse_start = hour(FIRST_PARTITION)


def _env(landing: Path, state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # an ephemeral instance
    env.update(WAREHOUSE_LANDING=str(landing), WAREHOUSE_LAKE=str(state / "lake"),
               WAREHOUSE_DUCKDB=str(state / "warehouse.duckdb"), WAREHOUSE_START=warehouse_start,
               PYTHONWARNINGS="ignore")
    return env


def _cli(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-m", "orchestration", *args], cwd=REPO, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"python -m orchestration {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in STATE_INPUTS:
        path = REPO / name
        for f in sorted(path.rglob("*") if path.is_dir() else [path]):
            if f.is_file() and "__pycache__" not in f.parts:
                digest.update(str(f.relative_to(REPO)).encode())
                digest.update(f.read_bytes())
    return digest.hexdigest()


def landing(hours: int) -> Path:
    """`hours` arrival hours of every source from START (generated once)."""
    folder = OUT / f"landing-{hours}h"
    if not (folder / ".done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        _cli("generate", "--out", str(folder), "--start", hour(START), "--hours", str(hours), "--seed", str(SEED),
             env=_env(folder, OUT / "unused"))
        (folder / ".done").touch()
    return folder


def history(hours: int, with_marts: bool = True) -> tuple[Path, Path]:
    """(landing, state): the first `hours` arrival hours backfilled (lake + DuckDB file), cached;
    the landing folder holds one hour more, the new one."""
    files = landing(hours + 1)
    state = OUT / f"state-{hours}h{'' if with_marts else '-lake'}"
    stamp = _fingerprint()
    done = state / ".done"
    if not done.exists() or done.read_text() != stamp:
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)
        print(f"backfilling {hours} hours of history into {state} ...", flush=True)
        began = time.perf_counter()
        _cli("backfill", "--start", hour(START), "--end", hour(START + timedelta(hours=hours)),
             *([] if with_marts else ["--no-marts"]), env=_env(files, state))
        print(f"  {time.perf_counter() - began:.0f} s", flush=True)
        done.write_text(stamp)
    return files, state


def fresh_copy(state: Path, to: Path) -> Path:
    shutil.rmtree(to, ignore_errors=True)
    shutil.copytree(state, to, ignore=shutil.ignore_patterns(".done", "*.lock"))
    return to


def in_use(state: Path, to: Path, files: Path) -> Path:
    """A fresh copy of `state` at `to`, its staging views made for the lake there, as a warehouse
    in use has them: a view's SQL names its lake's folder, and a marts run makes again each view
    whose SQL changed, binding every file of its source (macros/lake_view.sql) — for a copy, every
    run, a cost of the copy, not of the hour."""
    fresh_copy(state, to)
    if (to / "warehouse.duckdb").exists():
        _cli("dbt", "run", "--select", "staging", env=_env(files, to))
    return to


def _cpu() -> float:
    """CPU seconds of this process and of its waited-for children (dbt): steadier than wall time
    on a shared machine."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _child(step: str, *args: str, env: dict[str, str]) -> tuple[float, float, dict]:
    """Run this file's `step` in a fresh process: (process seconds, peak MB, what it printed last)."""
    from run import measure

    seconds, mb, out = measure([sys.executable, str(Path(__file__).resolve()), "--step", step, *args], env)
    return seconds, mb, json.loads(out.strip().splitlines()[-1])


# --- the steps, each run in a child process -------------------------------------------------------

def step_floor(work: str) -> dict:
    """A trivial `dbt build` in a Dagster step, the way assets/marts.py runs dbt."""
    import warnings

    import dagster as dg
    from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

    from orchestration.dbt_project import DBT_EXECUTABLE

    warnings.filterwarnings("ignore")
    project_dir = Path(work) / "dbt_floor"
    if not project_dir.exists():
        shutil.copytree(FLOOR_PROJECT, project_dir)
    os.environ["FLOOR_DUCKDB"] = str(Path(work) / "floor.duckdb")
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)
    manifest = project_dir / "target" / "manifest.json"
    if not manifest.exists():
        DbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE).cli(
            ["parse", "--quiet"], target_path=Path("target")).wait()
    hourly = dg.HourlyPartitionsDefinition(start_date=FIRST_PARTITION.strftime("%Y-%m-%d-%H:%M"))

    @dbt_assets(manifest=manifest, project=project, partitions_def=hourly,
                backfill_policy=dg.BackfillPolicy.single_run())
    def floor_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        lo, hi = context.partition_time_window
        variables = {"min_date": lo.strftime("%Y-%m-%dT%H:%M:%S"), "max_date": hi.strftime("%Y-%m-%dT%H:%M:%S")}
        invocation = dbt.cli(["build", "--vars", json.dumps(variables)], context=context,
                             target_path=Path("target") / "runs" / context.run_id)
        yield from invocation.stream()
        shutil.rmtree(invocation.target_path, ignore_errors=True)

    defs = dg.Definitions(assets=[floor_dbt],
                          resources={"dbt": DbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE)})
    job = defs.resolve_implicit_global_asset_job_def()
    new = START + timedelta(hours=24)
    began, cpu = time.perf_counter(), _cpu()
    result = job.execute_in_process(partition_key=new.strftime("%Y-%m-%d-%H:%M"), instance=dg.DagsterInstance.ephemeral(),
                                    raise_on_error=True)
    return {"run_s": time.perf_counter() - began, "cpu_s": _cpu() - cpu, "ok": result.success, "rows": 1}


def step_marts(first: str, last: str) -> dict:
    """`build_marts` over event hours [first, last], as `backfill` runs it (every mart run)."""
    import warnings

    warnings.filterwarnings("ignore")
    import dagster as dg

    from orchestration.backfill import BackfillReport, build_marts, mart_summary
    from orchestration.definitions import build_definitions
    from orchestration.settings import Settings, parse_hour

    settings = Settings.from_env()
    defs = build_definitions(settings)
    report = BackfillReport(start=parse_hour(first), end=parse_hour(last) + timedelta(hours=1))
    began, cpu = time.perf_counter(), _cpu()
    build_marts(defs, first, last, dg.DagsterInstance.ephemeral(), report)
    seconds, cpu = time.perf_counter() - began, _cpu() - cpu
    if not report.ok:
        raise SystemExit("marts failed: " + "; ".join(report.errors + report.failed_checks))
    marts = mart_summary(settings.duckdb_path, (report.start, report.end))
    return {"run_s": seconds, "cpu_s": cpu, "ok": report.ok, "rows": sum(n for n, _ in marts.values()),
            "rows_in_window": sum(n for _, n in marts.values())}


# --- the scenarios ---------------------------------------------------------------------------------

def _affected(out: str) -> tuple[str, str]:
    """The event hours a `backfill` rebuilt, from its progress line."""
    found = re.search(r"building \d+ event hours, (\S+) … (\S+) \.\.\.", out)
    if not found:
        raise SystemExit(f"no event hours rebuilt:\n{out[-2000:]}")
    return found.group(1), found.group(2)


def floor(work: Path, record: Record) -> float:
    s, mb, got = _child("floor", str(work), env=_env(work, work))  # the first parses the floor's manifest
    s, mb, got = _child("floor", str(work), env=_env(work, work))
    record("dbt_floor", "baseline", f"a trivial dbt build (one table, no test) in a Dagster step; CPU {got['cpu_s']:.1f} s, "
           f"process {s:.1f} s",
           got["run_s"], mb, got["rows"])
    return got["run_s"]


def _marts_warm(run_dir: Path, first: str, last: str, env: dict[str, str]) -> tuple[float, float, dict]:
    """The marts step over [first, last] on `run_dir`, measured the second time, on the state it
    found: the first run leaves dbt's partial parse for this lake and DuckDB file, as a warehouse
    in use has it (the floor is measured the same way)."""
    before = fresh_copy(run_dir, run_dir.with_name(run_dir.name + "-before"))
    _child("marts", first, last, env=env)
    shutil.rmtree(run_dir)
    before.rename(run_dir)
    return _child("marts", first, last, env=env)


def one_new_hour(work: Path, record: Record, days: int) -> None:
    hours = days * 24
    files, state = history(hours)
    new = START + timedelta(hours=hours)
    # The marts step alone: the new hour landed and its event hours built first (unmeasured).
    run_dir = in_use(state, work / f"marts-{days}d", files)
    env = _env(files, run_dir)
    first, last = _affected(_cli("backfill", "--start", hour(new), "--end", hour(new + timedelta(hours=1)), "--no-marts",
                                 env=env))
    s, mb, got = _marts_warm(run_dir, first, last, env)
    record(f"marts_one_hour_{days}d", "ours",
           f"marts step for one new arrival hour after {hours} h of history, event hours [{first}, {last}]; "
           f"CPU {got['cpu_s']:.1f} s, process {s:.1f} s", got["run_s"], mb, got["rows"])
    # Land + events + marts of the same hour through the CLI, the whole process.
    run_dir = in_use(state, work / f"history-{days}d", files)
    from run import measure

    s, mb, out = measure([sys.executable, "-m", "orchestration", "backfill", "--start", hour(new),
                          "--end", hour(new + timedelta(hours=1))], _env(files, run_dir))
    kept = sum(int(line.split()[-1]) for line in out.split("Ledger", 1)[1].splitlines()[2:7] if line.split())
    record(f"history_one_hour_{days}d", "ours",
           f"land + events + marts of one new arrival hour after {hours} h of history (CLI backfill, whole process)",
           s, mb, kept)


def marts_48h(work: Path, record: Record) -> None:
    files, state = history(48, with_marts=False)
    run_dir = fresh_copy(state, work / "marts-48h")
    s, mb, got = _marts_warm(run_dir, hour(FIRST_PARTITION), hour(START + timedelta(hours=47)), _env(files, run_dir))
    record("marts_48h_all_sources", "ours", f"marts step over 48 hours of all five sources, empty warehouse; CPU {got['cpu_s']:.1f} s, "
           f"process {s:.1f} s",
           got["run_s"], mb, got["rows"])


def run(work: Path, record: Record, only: tuple[str, ...] = ("floor", "1d", "30d", "48h"), repeat: int = 1) -> None:
    """Every scenario in `only` (floor; Nd: one new hour after N days of history; 48h), `repeat`
    times each, into `record`."""
    work.mkdir(parents=True, exist_ok=True)
    for _ in range(repeat):
        for scenario in only:
            if scenario == "floor":
                floor(work, record)
            elif scenario == "48h":
                marts_48h(work, record)
            elif re.fullmatch(r"\d+d", scenario):
                one_new_hour(work, record, int(scenario[:-1]))
            else:
                raise SystemExit(f"unknown scenario {scenario!r}: floor, 48h or Nd (N days of history)")


def main() -> None:
    global warehouse_start
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="floor,1d,30d,48h", help="comma-separated: floor, Nd (one new hour after N days of history), 48h")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--warehouse-start", help="WAREHOUSE_START of the measured runs, e.g. 2024-01-03T00 for a warehouse two "
                        f"years old (default {hour(FIRST_PARTITION)})")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        steps = {"floor": step_floor, "marts": step_marts}
        print(json.dumps(steps[args.step](*args.args)), flush=True)
        return
    if args.warehouse_start:
        warehouse_start = args.warehouse_start
    results: list[dict] = []

    def record(name: str, kind: str, what: str, seconds: float, mb: float, rows: int) -> None:
        results.append({"scenario": name, "kind": kind, "what": what, "wall_s": round(seconds, 2),
                        "peak_rss_mb": round(mb), "rows_out": rows})
        print(f"{name:24} {seconds:8.1f} s {mb:8.0f} MB {rows:9d} rows  {what}", flush=True)

    run(OUT / "run", record, tuple(args.only.split(",")), args.repeat)
    floor_s = min((r["wall_s"] for r in results if r["scenario"] == "dbt_floor"), default=None)
    print()
    for r in results:
        ratio = f"{r['wall_s'] / floor_s:5.2f} x dbt_floor" if floor_s and r["scenario"].startswith("marts_") else ""
        print(f"{r['scenario']:24} {r['wall_s']:8.2f} s {r['peak_rss_mb']:6d} MB  {ratio}")
    by = {r["scenario"]: r["wall_s"] for r in results}
    if "history_one_hour_1d" in by and "history_one_hour_30d" in by:
        print(f"history: one new hour after 30 days / after 1 day = {by['history_one_hour_30d'] / by['history_one_hour_1d']:.2f}")


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))  # `from run import measure`, as run.py imports omny_bench
    sys.path.insert(0, str(REPO))
    main()
