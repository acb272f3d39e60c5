"""`make bench`: our core and the baselines a user would reach for instead, on the same files, each
in a fresh process, into bench/results/latest.json and latest.md.

    uv run python bench/run.py [--events 200000] [--hours 48] [--tenfold] [--history-days 7] [--repeat 1] [--skip atomic,marts]

Scenarios (wall time, events/s, peak RSS of the whole process tree, rows out):
- core: landing + events of Omny files end to end through the CLI, `python -m orchestration
  backfill --sources omny --no-marts` (imports and Dagster's run overhead included, as a user pays them;
  `steps_s`, the time inside its two Dagster steps, is the work alone);
- duckdb_read_json: DuckDB's `read_json` of the same files into a table (the parse floor);
- duckdb_distinct_on: one DuckDB query deduping on EventId and writing hive-partitioned Parquet by
  event hour (what a hand-written script does, without quarantine, ledger or late-event rules);
- dlt_merge, dlt_merge_parquet: dlt's filesystem source and `read_jsonl`, merged on EventId into
  DuckDB, with its defaults and with Parquet as the loader file format (bench/dlt_baseline.py;
  dlt is in the `bench` dependency group, which `make bench` installs; skipped without it).
- core_10x (--tenfold): the core on 10x the events over 10x the hours, against `core`: linear in
  time, flat in memory;
- atomic_duckdb_floor, atomic_core: half as many Atomic events in mixed NDJSON / CSV / Parquet
  batches, DuckDB reading the same files against the core (bench/atomic_bench.py);
- dbt_floor, marts_one_hour_1d / _Nd, history_one_hour_1d / _Nd, marts_48h_all_sources: the marts
  step against a trivial dbt build in a Dagster step, and one new hour of every source after 1 and
  N days of history (bench/marts_bench.py; --history-days, 7 by default: building 30 days of
  history takes ~8 min, more than the small scale's budget; the large run passes 30).
Each of ours gets its ratio to each baseline of its group. With --repeat N, the DuckDB floors and
the 2 M cores (Omny and Atomic) run N times each, a floor and its core in turn, and give their
median time and highest peak: a floor wanders by ±10 % from one run to the next, and the machine
has slower and faster spells. Numbers are never asserted in a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable

import atomic_bench
import marts_bench
from bench_dirs import OUT, RESULTS
from omny_bench import START, generate

REPO = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(pid, []))
    return total


def measure(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run `command` to its end: (seconds, peak MB of its process tree, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    seconds = time.perf_counter() - start
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out[-3000:]}")
    return seconds, peak[0] / 2**20, out


def alternated(repeat: int, *runs: Callable[[], tuple[float, float, Any]]) -> list[tuple[float, float, Any, list[float]]]:
    """Each of `runs` `repeat` times, in turn (a floor, then its core, then the floor again...): a
    floor and the core it is compared with meet the machine's same moments, where `repeat` runs
    of one, then of the other, were ten minutes apart. For each: the median time, the highest
    peak, the last result, and every run's time."""
    done: list[list[tuple[float, float, Any]]] = [[] for _ in runs]
    for _ in range(repeat):
        for i, run in enumerate(runs):
            done[i].append(run())
    summaries = []
    for rs in done:
        times = [round(r[0], 2) for r in rs]
        summaries.append((statistics.median(times), max(r[1] for r in rs), rs[-1][2], times))
    return summaries


# The seconds the runs' Dagster steps took, start to end (the landing's and the events layer's
# work, with what Dagster does inside a step), from the instance's own records of them.
STEPS_SECONDS = ("import dagster as dg; i = dg.DagsterInstance.get(); "
                 "print(sum(s.end_time - s.start_time for r in i.get_runs() for s in i.get_run_step_stats(r.run_id)))")


def core(landing: Path, work: Path, hours: int) -> tuple[float, float, tuple[int, float]]:
    """Landing + events of `landing`'s Omny files through the CLI: (seconds, peak MB, (events kept,
    seconds inside the runs' steps))."""
    import duckdb

    from orchestration.instance_storage import INSTANCE_YAML
    lake = work / "lake"
    home = work / "dagster_home"  # an instance on disk, as `make demo` has (not the UI's)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(INSTANCE_YAML, home / "dagster.yaml")  # the instance `make install` configures
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    # Its storage made before the measured run, as a warehouse's instance stands (~0.25 s to make).
    subprocess.run([sys.executable, "-c", "import dagster as dg; i = dg.DagsterInstance.get(); i.get_runs(limit=1); "
                    "i.event_log_storage.get_asset_records(); i.all_instigator_state()"], env=env, check=True)
    env.update(WAREHOUSE_LANDING=str(landing), WAREHOUSE_LAKE=str(lake), WAREHOUSE_DUCKDB=str(work / "warehouse.duckdb"),
               WAREHOUSE_START=f"{START - timedelta(days=2):%Y-%m-%dT%H}")
    s, mb, _ = measure([sys.executable, "-m", "orchestration", "backfill", "--start", f"{START:%Y-%m-%dT%H}",
                        "--end", f"{START + timedelta(hours=hours):%Y-%m-%dT%H}", "--sources", "omny", "--no-marts"], env)
    kept = duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}/omny/events/**/*.parquet')").fetchone()[0]
    steps = float(subprocess.run([sys.executable, "-c", STEPS_SECONDS], env=env, check=True, capture_output=True,
                                 text=True).stdout.split()[-1])
    shutil.rmtree(lake)  # 10x the data would not fit twice
    shutil.rmtree(home)
    return s, mb, (kept, steps)


def duckdb_script(sql: str) -> list[str]:
    return [sys.executable, "-c", f"import duckdb; con = duckdb.connect(); print(con.sql({sql!r}).fetchall()[0][0])"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="Omny events (2-3 %% re-delivered, 5 %% up to 24 h late)")
    parser.add_argument("--hours", type=int, default=48, help="arrival hours they come in")
    parser.add_argument("--tenfold", action="store_true", help="also run the core on 10x the events over 10x the hours")
    parser.add_argument("--history-days", type=int, default=7,
                        help="days of history before the new hour of the long history scenarios (the other is 1 day)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of the DuckDB floors and the 2 M cores, reported by their median (the others run once)")
    parser.add_argument("--skip", default="", help="comma-separated groups to leave out: atomic, marts")
    args = parser.parse_args()
    landing = OUT / f"landing-{args.events}-{args.hours}"
    if not landing.exists():
        print(f"generating {args.events} Omny events over {args.hours} hours into {landing} ...", flush=True)
        generate(landing, args.events, args.hours)
    files = f"{landing}/omny/**/*.jsonl.gz"
    work = OUT / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results, lines, group = [], 0, ["omny"]  # a scenario is compared with the baselines of its group

    def record(name: str, kind: str, what: str, seconds: float, mb: float, rows: int, read: int | None = None,
               runs: list[float] | None = None) -> None:
        read = read or (lines if group[0] == "omny" else rows)
        repeats = runs if runs and len(runs) > 1 else None  # each run's time, when there were several
        results.append({"scenario": name, "group": group[0], "kind": kind, "what": what, "wall_s": round(seconds, 2),
                        "events_per_s": round(read / seconds), "peak_rss_mb": round(mb), "rows_out": rows,
                        **({"runs_s": repeats} if repeats else {})})
        each = f"  (median of {', '.join(map(str, repeats))})" if repeats else ""
        print(f"{name:24} {seconds:8.1f} s {mb:8.0f} MB  {rows} rows{each}", flush=True)

    steps: list[float] = []  # each core run's seconds inside its Dagster steps

    def omny_core() -> tuple[float, float, int]:
        s, mb, (kept, in_steps) = core(landing, work / "core", args.hours)
        steps.append(round(in_steps, 2))
        return s, mb, kept

    # The floor and the core in turn: both meet the machine's same moments.
    floor, ours = alternated(args.repeat, lambda: measure(duckdb_script(
        f"CREATE TABLE t AS SELECT * FROM read_json('{files}'); SELECT count(*) FROM t")), omny_core)
    s, mb, out, runs = floor
    lines = int(out.split()[-1])  # every line a record: the events/s of each scenario count these
    record("duckdb_read_json", "baseline", "DuckDB read_json of the files into a table (the parse floor)", s, mb, lines,
           runs=runs)
    hand = work / "distinct_on"
    s, mb, out = measure(duckdb_script(
        f"COPY (SELECT DISTINCT ON (EventId) *, strftime(date_trunc('hour', Download.DownloadedAtUtc::TIMESTAMP), '%Y-%m-%dT%H') "
        f"AS event_hour FROM read_json('{files}')) TO '{hand}' (FORMAT parquet, PARTITION_BY (event_hour)); "
        f"SELECT count(*) FROM read_parquet('{hand}/**/*.parquet')"))
    record("duckdb_distinct_on", "baseline", "one DuckDB DISTINCT ON query writing hive-partitioned Parquet", s, mb, int(out.split()[-1]))

    try:
        import dlt  # noqa: F401
    except ImportError:
        print("dlt is not installed (uv sync --group bench): its baselines are skipped", flush=True)
    else:
        for name, flags in (("dlt_merge", []), ("dlt_merge_parquet", ["--parquet"])):
            (work / name).mkdir()
            s, mb, out = measure([sys.executable, str(Path(__file__).with_name("dlt_baseline.py")), str(landing),
                                  str(work / name), *flags])
            what = "dlt filesystem + read_jsonl, merge on EventId into DuckDB" + (", Parquet loader files" if flags else ", its defaults")
            record(name, "baseline", what, s, mb, int(out.split()[-1]))

    s, mb, kept, runs = ours
    record("core", "ours", "landing + events through `backfill --no-marts` (CLI, one process), each run after a "
                           "run of the floor", s, mb, kept, runs=runs)
    in_steps = statistics.median(steps)  # the work alone: the process's start, imports and runs left out
    results[-1].update(steps_s=round(in_steps, 2), steps_x_duckdb_read_json=round(in_steps / floor[0], 2))

    if args.tenfold:  # the same, 10x the events over 10x the hours: linear in time, flat in memory
        big = OUT / f"landing-{args.events * 10}-{args.hours * 10}"
        if not big.exists():
            print(f"generating {args.events * 10} Omny events over {args.hours * 10} hours into {big} ...", flush=True)
            generate(big, args.events * 10, args.hours * 10)
        base = results[-1]
        s, mb, (kept, in_steps) = core(big, work / "core_10x", args.hours * 10)
        record("core_10x", "ours", "`core` on 10x the events over 10x the hours (target: at most 10.5x its time, "
                                   "peak RSS no higher)", s, mb, kept, read=lines * 10)
        results[-1]["ratios"] = {"core": round(s / base["wall_s"], 2), "core_peak_rss": round(mb / base["peak_rss_mb"], 2)}
        results[-1]["steps_s"] = round(in_steps, 2)

    if "atomic" not in args.skip:  # half as many Atomic events, in mixed NDJSON / CSV / Parquet batches
        group[0] = "atomic"
        atomic_landing = OUT / f"atomic-landing-{args.events // 2}-{args.hours}"
        if not atomic_landing.exists():
            print(f"generating {args.events // 2} Atomic events over {args.hours} hours into {atomic_landing} ...", flush=True)
            atomic_bench.generate(atomic_landing, args.events // 2, args.hours)
        atomic_bench.run(atomic_landing, work / "atomic", measure, record, partial(alternated, args.repeat))
    long = f"{args.history_days}d"
    if "marts" not in args.skip:  # the marts step against the dbt floor; one new hour after 1 and N days
        group[0] = "marts"
        marts_bench.run(work / "marts", record, tuple(dict.fromkeys(("floor", "1d", long, "48h"))))  # 1d once when long is 1d

    for r in results:
        baselines = {b["scenario"]: b["wall_s"] for b in results if b["kind"] == "baseline" and b["group"] == r["group"]}
        if r["kind"] == "ours" and "ratios" not in r:
            r["ratios"] = {b: round(r["wall_s"] / t, 2) for b, t in baselines.items()
                           if r["group"] != "marts" or r["scenario"].startswith("marts_one_hour")}
    by = {r["scenario"]: r for r in results}
    if long != "1d" and f"history_one_hour_{long}" in by and "history_one_hour_1d" in by:
        by[f"history_one_hour_{long}"]["ratios"]["history_one_hour_1d"] = round(
            by[f"history_one_hour_{long}"]["wall_s"] / by["history_one_hour_1d"]["wall_s"], 2)
    report = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                          "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30)},
              "scale": {"events": args.events, "hours": args.hours, "lines": lines}, "results": results}
    report["targets"] = targets(by, args.events, long)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(markdown(report))
    print(markdown(report))


TARGET_EVENTS = 2_000_000  # the scale issue 14's targets are set at (fixed costs weigh more below it)


def targets(by: dict[str, dict], events: int, long: str) -> list[dict]:
    """Issue 14's targets against this run: what each measures, its limit, the value, and whether
    it was met (None: not measured in this run). The core's are set at 2 M events; at another
    scale their verdict says so."""
    def ratio(scenario: str, baseline: str) -> float | None:
        return by.get(scenario, {}).get("ratios", {}).get(baseline)

    history = ratio(f"history_one_hour_{long}", "history_one_hour_1d") if long != "1d" else None
    rows = [
        ("core time", "`core` x `duckdb_read_json`", 2.5, ratio("core", "duckdb_read_json"), True),
        ("core memory", "`core` peak RSS, MB", 1500, by.get("core", {}).get("peak_rss_mb"), True),
        ("10x time", "`core_10x` x `core` (linear)", 10.5, ratio("core_10x", "core"), True),
        ("10x memory", "`core_10x` peak RSS x `core`'s (flat)", 1.0, ratio("core_10x", "core_peak_rss"), True),
        ("Atomic time", "`atomic_core` x `atomic_duckdb_floor`", 2.5, ratio("atomic_core", "atomic_duckdb_floor"), True),
        ("marts step", "`marts_one_hour_1d` x `dbt_floor`", 1.5, ratio("marts_one_hour_1d", "dbt_floor"), False),
        ("marts step, long history", f"`marts_one_hour_{long}` x `dbt_floor`", 1.5,
         ratio(f"marts_one_hour_{long}", "dbt_floor") if long != "1d" else None, False),
        ("history", f"`history_one_hour_{long}` x `history_one_hour_1d`", 1.2,
         None if history is None else round(max(history, 1 / history), 2), False),
    ]
    out = []
    for name, measure, limit, value, at_scale in rows:
        if value is None:
            met = None
        elif at_scale and events != TARGET_EVENTS:
            met = None  # a verdict only at the target's scale
        else:
            met = value <= limit
        out.append({"target": name, "measure": measure, "limit": limit, "value": value, "met": met})
    return out


def verdict(target: dict, events: int) -> str:
    """A target's verdict in words: met, not met, or why this run gives none."""
    if target["value"] is None:
        return "not measured in this run"
    if target["met"] is None:
        return f"none {'below' if events < TARGET_EVENTS else 'above'} {TARGET_EVENTS} events"
    return "met" if target["met"] else "**not met**"


def markdown(report: dict) -> str:
    scale = report["scale"]
    out = [f"{scale['lines']} Omny lines ({scale['events']} events, re-deliveries included) over {scale['hours']} hours, "
           f"{scale['events'] // 2} Atomic events; {report['machine']['cores']} cores; {report['measured_at']}"]
    for group in dict.fromkeys(r.get("group", "omny") for r in report["results"]):
        results = [r for r in report["results"] if r.get("group", "omny") == group]
        names = [r["scenario"] for r in results if r["kind"] == "baseline"]
        names += [n for r in results for n in r.get("ratios", {}) if n not in names and n != "core_peak_rss"]
        head = ["scenario", "wall s", "events/s", "peak RSS MB", "rows out", *(f"x {n}" for n in names)]
        rows = [[r["scenario"], r["wall_s"], r["events_per_s"], r["peak_rss_mb"], r["rows_out"],
                 *(r.get("ratios", {}).get(n, "") for n in names)] for r in results]
        out += ["", f"**{group}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    out += [""] + [f"- `{r['scenario']}`: {r['what']}" + (f" (the median of {len(r['runs_s'])} runs: "
                   f"{', '.join(map(str, r['runs_s']))} s)" if r.get("runs_s") else "") for r in report["results"]]
    out += [f"- `{r['scenario']}` took {r['ratios']['core']}x the time of `core` and {r['ratios']['core_peak_rss']}x its peak RSS"
            for r in report["results"] if "core" in r.get("ratios", {})]
    out += [f"- `{r['scenario']}`'s Dagster steps (the landing's and the events layer's work) took {r['steps_s']} s of its "
            f"{r['wall_s']} s: {r['steps_x_duckdb_read_json']}x `duckdb_read_json`; the rest is the process's start, its "
            f"imports and Dagster's two runs around the steps" for r in report["results"] if "steps_x_duckdb_read_json" in r]
    if report.get("targets"):
        out += ["", f"**Issue 14's targets** (the core's, 10x's and Atomic's are set at {TARGET_EVENTS} Omny "
                    f"events: `make bench EVENTS={TARGET_EVENTS} TENFOLD=1 HISTORY_DAYS=30 REPEAT=3`; Dagster's "
                    "overhead per partition is measured apart, bench/README.md)", "",
                "| target | measured as | limit | this run | verdict |", "|---|---|---|---|---|"]
        out += [f"| {t['target']} | {t['measure']} | {t['limit']} | {'' if t['value'] is None else t['value']} | "
                f"{verdict(t, scale['events'])} |" for t in report["targets"]]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
