"""Atomic at scale: N events in mixed NDJSON / CSV / Parquet batches, the core against a DuckDB floor.

    .venv/bin/python bench/atomic_bench.py [--events 1000000] [--hours 48]

`generate` writes Atomic's batched analytics export into the landing layout of the Atomic source
contract (`atomic/{YYYY-MM-DDTHH}/{name}.{ndjson|csv|parquet}`, the folder named by the hour the
batch *ended*): one file per batch, the batches taking NDJSON (nested records, not gzipped: the
contract's layout and the vendor's API name no compressed form), CSV (flattened dotted keys, OWASP
formula-escaped cells) and Parquet (flattened dotted keys, typed by the contract, the vendor's
`sdkContext.isDNDActive` spelling and base64 `platformContext.eventDetail`) in turn, a third of the
hours each. `events` distinct events over `hours` event hours, ~5 % of them delivered 1-23 hours
late, ~3 % delivered twice (half in the same batch, half in a later one): every record is valid,
so the core must keep exactly `events` rows and quarantine none. Built column-wise with numpy and
polars (about 10 s per million events), not record by record.

`run` measures, each in a fresh process (bench/run.py's `measure`):
- atomic_duckdb_floor: DuckDB reading every file into one table (read_json / read_csv /
  read_parquet, UNION ALL BY NAME) and counting it: the parse floor;
- atomic_core: `python -m orchestration backfill --sources atomic --no-marts` through the CLI
  (imports and Dagster's run overhead included); rows out = the atomic events layer's rows.
Numbers go in bench/README.md, never in a test.
"""

from __future__ import annotations

import argparse
import binascii
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from bench_dirs import OUT

UTC = timezone.utc
START = datetime(2026, 2, 1, tzinfo=UTC)  # first event hour; batch keys run START+1h ... START+hours
FORMATS = ("ndjson", "csv", "parquet")
FLAT_SPELLING = {"sdkContext.isDnDActive": "sdkContext.isDNDActive"}  # the vendor's flattened example
FORMULA = r"^[=+\-@\t\r]"

# Lookup tables: templates, streams, users' platforms.
TEMPLATES = pl.DataFrame({
    "tpl_id": ["8Xlss", "Qm2rT", "pW9kd", "Zt4Ln", "hB7xc", "c3VgA"],
    "tpl_name": ["Leave request", "Welcome to the app", "Rate your experience", "Payment due reminder",
                 "New feature: dark mode", "-20% off your next top-up"],
    "tpl_version": [8, 2, 5, 1, 4, 3],
    "tpl_notify": [False, True, True, True, False, True],
    "tpl_priority": [5, 3, 7, 9, 2, 4],
    "tpl_presentation": ["individual", "individual", "individual", "individual", "bundle", "bundle"],
    "tpl_flow": ["A9WBVx", "Wf7kPq", "Rt2mZa", "Pd1Lkq", "Nf5Tgh", "Of9Xsd"],
    "tpl_flow_version": [4.0, 2.0, 6.0, 1.0, 3.0, 5.0],
    "tpl_step": ["create_card_L9qk", "create_card_b3Xe", "create_card_Q8sn", "create_card_u2Hc", "create_card_z7Wd", "create_card_m4Rt"],
})
STREAMS = pl.DataFrame({"stream_id": ["TspKk", "a9LmQ", "Vx2Pe"], "stream_name": ["Home feed", "Offers", "Inbox"],
                        "container": [1101, 1102, 1103]})
PLATFORMS = ["Web", "iOS", "Android"]
DEVICES = {"Web": ["Chrome 131 / macOS", "Safari 18.2 / macOS", "Edge 131 / Windows"],
           "iOS": ["iPhone15,3", "iPhone14,5", "iPad13,18"], "Android": ["Pixel 8", "SM-S918B", "moto g84 5G"]}
ZONES = [("Australia/Brisbane", 600, "+10:00"), ("Asia/Kolkata", 330, "+05:30"), ("America/Phoenix", -420, "-07:00"),
         ("Asia/Tokyo", 540, "+09:00"), ("Etc/UTC", 0, "+00:00")]
MESSAGES = ["Not for me", "Too many of these", "-_- seen it already", "+1 but not right now", "@support please stop"]

# The event kinds: share, analyticsEvent values (None: a custom event), the dotted fields present.
SDK = ["eventContext.ip", "eventContext.actionSource", "eventContext.userLocalTimestamp", "sdkContext.platform",
       "sdkContext.sdkVersion", "sdkContext.sdkDevice", "sdkContext.sdkTimezone", "sdkContext.containerId",
       "sdkContext.isDnDActive"]
STREAM = ["streamContext.streamId", "streamContext.streamName", "streamContext.streamLength", "streamContext.streamLengthVisible"]
CARD = ["cardContext.cardInstanceId", "cardContext.cardPriority", "cardContext.cardInstanceStatus",
        "cardContext.cardTemplateSettings.sendNotifications", "cardContext.cardTemplateId", "cardContext.cardTemplateName",
        "cardContext.cardTemplateVersion", "cardContext.cardPresentation", "cardContext.publishedAt"]
FLOW = ["platformContext.lifecycleId", "platformContext.triggerEventSource", "platformContext.flowInstanceId",
        "platformContext.flowInvocationId", "platformContext.flowConfigId", "platformContext.flowVersion"]
KINDS = {
    "session": (0.30, ["sdk-initialized", "stream-displayed"], SDK + STREAM + ["streamContext.displayMode"]),
    "card_sdk": (0.32, ["card-displayed", "card-dismissed", "card-completed", "card-snoozed", "card-voted-up"],
                 ["properties.previousStatus"] + SDK + STREAM + ["streamContext.cardPositionInStream"] + CARD
                 + ["cardContext.cardViewState"] + FLOW),
    "card_platform": (0.20, ["card-published", "notification-sent", "card-expired"],
                      ["properties.previousStatus", "eventContext.actionSource"] + CARD + FLOW
                      + ["platformContext.eventDetail", "platformContext.targetStreamIds", "platformContext.targetPlatforms",
                         "platformContext.cardCreationStepId"]),
    "redirect": (0.07, ["user-redirected"], ["properties.linkMethod", "properties.detail", "properties.url"] + SDK + STREAM
                 + ["streamContext.cardPositionInStream"] + CARD + FLOW),
    "vote_down": (0.04, ["card-voted-down"], ["properties.source", "properties.reason", "properties.message"] + SDK + STREAM
                  + CARD + FLOW),
    "request_failed": (0.03, ["request-failed"], ["properties.path", "properties.statusCode"] + SDK),
    "custom": (0.04, None, ["eventName", "eventType", "properties.screen", "properties.amount"]),
}
HEAD = ["id", "endUserId", "analyticsEvent", "timestamp"]
ORDER = ["id", "endUserId", "analyticsEvent", "eventName", "eventType", "timestamp", "properties", "eventContext",
         "sdkContext", "streamContext", "cardContext", "platformContext"]  # flattened columns: the schema's order


def _uuids(rng: np.random.Generator, n: int) -> pl.Expr:
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexes = pl.Series(np.frombuffer(binascii.hexlify(raw.tobytes()), dtype="S32").astype("U32"))
    parts = [hexes.str.slice(a, b - a) for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
    return pl.concat_str([pl.lit(parts[0]), *(e for p in parts[1:] for e in (pl.lit("-"), pl.lit(p)))])


def _pick(rng: np.random.Generator, values: list, n: int) -> pl.Series:
    return pl.Series(values).gather(rng.integers(0, len(values), n))


def _events(rng: np.random.Generator, events: int, hours: int) -> pl.DataFrame:
    """Every event once, every field any kind uses (flat dotted names), plus _kind, _ms (event time),
    _key (batch key: hours after START) and _seq (order in the batch)."""
    n = events
    hour = (np.arange(n, dtype=np.int64) * hours) // n
    ms = hour * 3_600_000 + rng.integers(0, 3_600_000, n)
    key = hour + 1
    late = rng.random(n) < 0.05
    delayed = key + rng.integers(1, 24, n)
    key = np.where(late & (delayed <= hours), delayed, key)
    shares = np.array([k[0] for k in KINDS.values()])
    kind = rng.choice(len(KINDS), size=n, p=shares / shares.sum())
    n_users = max(50, n // 40)
    user = rng.integers(0, n_users, n)
    u_platform = rng.integers(0, 3, n_users)
    u_device = rng.integers(0, 3, n_users)
    u_zone = rng.integers(0, len(ZONES), n_users)
    u_dnd = rng.random(n_users) < 0.15
    u_ip = rng.integers(1, 255, n_users)
    tpl = rng.integers(0, TEMPLATES.height, n)
    stream = rng.integers(0, STREAMS.height, n)
    length = rng.integers(1, 13, n)
    zone_of = u_zone[user]
    start_ms = int(START.timestamp() * 1000)
    base = pl.DataFrame({
        "_kind": pl.Series(list(KINDS)).gather(kind),
        "_ms": ms, "_key": key, "_seq": np.arange(n), "_user": user, "_tpl": tpl, "_stream": stream,
        "_offset": np.array([z[1] for z in ZONES])[zone_of],
        "sdkContext.platform": np.array(PLATFORMS)[u_platform[user]],
        "sdkContext.sdkDevice": np.array([DEVICES[p][d] for p in PLATFORMS for d in range(3)])[u_platform[user] * 3 + u_device[user]],
        "sdkContext.sdkTimezone": np.array([z[0] for z in ZONES])[zone_of],
        "_zone_text": np.array([z[2] for z in ZONES])[zone_of],
        "sdkContext.isDnDActive": u_dnd[user],
        "eventContext.ip": np.char.add("203.0.113.", u_ip[user].astype(str)),
        "streamContext.streamLength": length,
        "streamContext.streamLengthVisible": np.minimum(length, rng.integers(1, 5, n)),
        "streamContext.cardPositionInStream": 1 + (rng.integers(0, 1 << 30, n) % length),
        "_published_ago": rng.integers(0, 6 * 3_600_000, n),
        "_pick": rng.integers(0, 1 << 30, n),
    })
    ts = (pl.lit(start_ms) + pl.col("_ms")).cast(pl.Datetime("ms"))
    base = base.with_columns(
        id=_uuids(rng, n), lifecycle=_uuids(rng, n), flow_instance=_uuids(rng, n), flow_invocation=_uuids(rng, n),
        endUserId=pl.concat_str([pl.lit("u"), pl.col("_user").cast(pl.String).str.zfill(8)]),
        timestamp=ts.dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
        **{"eventContext.userLocalTimestamp": pl.concat_str([
            (ts + pl.duration(minutes=pl.col("_offset"))).dt.strftime("%Y-%m-%dT%H:%M:%S%.3f"), pl.col("_zone_text")]),
           "cardContext.publishedAt": (ts - pl.duration(milliseconds=pl.col("_published_ago"))).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")},
    )
    t = TEMPLATES.with_row_index("_tpl").with_columns(pl.col("_tpl").cast(pl.Int64))
    s = STREAMS.with_row_index("_stream").with_columns(pl.col("_stream").cast(pl.Int64))
    base = base.join(t, on="_tpl", how="left").join(s, on="_stream", how="left").sort("_seq")
    version = pl.col("tpl_version").cast(pl.String)
    return base.with_columns(**{
        "sdkContext.sdkVersion": pl.when(pl.col("_pick") % 2 == 0).then(pl.lit("24.3.1")).otherwise(pl.lit("24.4.0")),
        "sdkContext.containerId": pl.col("container"),
        "eventContext.actionSource": pl.when(pl.col("_kind") == "card_platform").then(pl.lit("internal")).otherwise(pl.lit("user")),
        "streamContext.streamId": pl.col("stream_id"),
        "streamContext.streamName": pl.col("stream_name"),
        "streamContext.displayMode": pl.when(pl.col("_pick") % 3 == 0).then(pl.lit("single")).otherwise(pl.lit("stream")),
        "cardContext.cardInstanceId": pl.concat_str([pl.col("tpl_id"), pl.lit("|live|"), pl.col("lifecycle"), pl.lit("|"), version]),
        "cardContext.cardPriority": pl.col("tpl_priority"),
        "cardContext.cardInstanceStatus": pl.lit(["active", "dismissed", "completed", "snoozed"]).list.get(pl.col("_pick") % 4),
        "cardContext.cardViewState": pl.when(pl.col("_pick") % 5 == 0).then(pl.lit("subview")).otherwise(pl.lit("topview")),
        "cardContext.cardTemplateSettings.sendNotifications": pl.col("tpl_notify"),
        "cardContext.cardTemplateId": pl.col("tpl_id"),
        "cardContext.cardTemplateName": pl.col("tpl_name"),
        "cardContext.cardTemplateVersion": pl.col("tpl_version"),
        "cardContext.cardPresentation": pl.col("tpl_presentation"),
        "platformContext.lifecycleId": pl.col("lifecycle"),
        "platformContext.triggerEventSource": pl.when(pl.col("_pick") % 50 == 0).then(pl.lit("test")).otherwise(pl.lit("live")),
        "platformContext.flowInstanceId": pl.col("flow_instance"),
        "platformContext.flowInvocationId": pl.col("flow_invocation"),
        "platformContext.flowConfigId": pl.col("tpl_flow"),
        "platformContext.flowVersion": pl.col("tpl_flow_version"),
        "platformContext.cardCreationStepId": pl.col("tpl_step"),
        "platformContext.eventDetail": pl.struct(source=pl.lit("api"), requestId=pl.col("flow_invocation")),
        "platformContext.targetStreamIds": pl.concat_list([pl.col("stream_id")]),
        "platformContext.targetPlatforms": pl.lit(["Web", "iOS", "Android"]),
        "properties.previousStatus": pl.when(pl.col("_pick") % 7 == 0).then(pl.lit("suppressed")).otherwise(pl.lit("published")),
        "properties.linkMethod": pl.lit("url"),
        "properties.detail": pl.lit(["image", "linkButton", "textLink"]).list.get(pl.col("_pick") % 3),
        "properties.url": pl.concat_str([pl.lit("https://example.test/app/"), pl.col("tpl_id").str.to_lowercase(),
                                         pl.lit("?utm_source=atomic&card="), pl.col("lifecycle").str.slice(0, 8)]),
        "properties.source": pl.lit("overflow-menu"),
        "properties.reason": pl.lit(["not-relevant", "too-often", "other"]).list.get(pl.col("_pick") % 3),
        "properties.message": pl.lit(MESSAGES).list.get(pl.col("_pick") % len(MESSAGES)),
        "properties.path": pl.lit(["/v1/cards", "/v1/runtime-vars", "/v1/events"]).list.get(pl.col("_pick") % 3),
        "properties.statusCode": pl.lit([408, 429, 500, 502, 503]).list.get(pl.col("_pick") % 5),
        "eventName": pl.lit("my-custom-event"),
        "eventType": pl.lit("custom"),
        "properties.screen": pl.lit(["home", "payments", "settings", "profile"]).list.get(pl.col("_pick") % 4),
        "properties.amount": (pl.col("_pick") % 20000) / 100,
    })


def _nested(fields: list[str]) -> list[pl.Expr]:
    """Struct expressions nesting the dotted columns `fields`, in their order."""
    tree: dict = {}
    for f in fields:
        node = tree
        *parents, leaf = f.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = f

    def build(node: dict) -> list[pl.Expr]:
        return [pl.col(v).alias(k) if isinstance(v, str) else pl.struct(build(v)).alias(k) for k, v in node.items()]

    return build(tree)


def _flat(frame: pl.DataFrame, csv: bool) -> pl.DataFrame:
    """Flattened export columns: free-form objects and arrays as JSON text (eventDetail base64 in
    Parquet, as in the vendor's example), the vendor's isDNDActive spelling, CSV cells formula-escaped."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Struct):
            col = pl.when(col.is_not_null()).then(col.struct.json_encode())
            if not csv:
                col = col.str.encode("base64")
        elif isinstance(dtype, pl.List):
            col = pl.concat_str([pl.lit('["'), col.list.join('","'), pl.lit('"]')])
        if csv and (dtype == pl.String or isinstance(dtype, (pl.Struct, pl.List))):
            col = pl.when(col.str.contains(FORMULA)).then(pl.lit("'") + col).otherwise(col)
        exprs.append(col.alias(FLAT_SPELLING.get(name, name)))
    return frame.select(exprs)


def generate(landing: Path, events: int, hours: int, seed: int = 1) -> None:
    """Atomic batches for `events` events over the event hours START ... START+hours-1, in the
    batch folders START+1h ... START+hours, one file each, NDJSON / CSV / Parquet in turn."""
    rng = np.random.default_rng(seed)
    base = _events(rng, events, hours)
    # re-delivered copies (at least once): ~3 %, half in the same batch, half in a later one
    copy = rng.random(events) < 0.03
    key = base["_key"].to_numpy()
    own = (base["_ms"].to_numpy() // 3_600_000) + 1  # the batch of the event's own hour
    later = np.minimum(key + rng.integers(1, 24, events), own + 23)  # within 24 h of the event
    again = np.where((rng.random(events) < 0.5) & (later > key) & (later <= hours), later, key)
    copies = base.filter(pl.Series(copy)).with_columns(_key=pl.Series(again[copy]))
    rows = pl.concat([base, copies]).with_columns(_fmt=((pl.col("_key") - 1) % len(FORMATS)).cast(pl.Int8))
    del base, copies

    ndjson, flat = [], []
    for kind, (_, names, fields) in KINDS.items():
        part = rows.filter(pl.col("_kind") == kind)
        cols = HEAD + fields if names else [c for c in HEAD if c != "analyticsEvent"] + fields
        if names:
            part = part.with_columns(analyticsEvent=pl.lit(names).list.get(pl.col("_pick") % len(names)))
        nd = part.filter(pl.col("_fmt") == 0)
        ndjson.append(nd.select("_key", "_ms", "_seq", line=pl.struct(_nested(cols)).struct.json_encode()))
        flat.append(part.filter(pl.col("_fmt") != 0).select("_key", "_fmt", "_ms", "_seq", *cols))
    lines = pl.concat(ndjson)
    table = pl.concat(flat, how="diagonal_relaxed")
    del rows

    root = Path(landing) / "atomic"
    for (k,), group in lines.sort("_key", "_ms", "_seq").partition_by("_key", as_dict=True).items():
        path = root / f"{START + timedelta(hours=k):%Y-%m-%dT%H}" / f"analytics-{START + timedelta(hours=k):%Y-%m-%dT%H}-0.ndjson"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(group["line"].to_list()) + "\n")
    for (k, fmt), group in table.sort("_key", "_ms", "_seq").partition_by("_key", "_fmt", as_dict=True).items():
        present = sorted((c for c in group.columns if not c.startswith("_") and group[c].null_count() < group.height),
                         key=lambda c: ORDER.index(c.split(".")[0]))
        path = root / f"{START + timedelta(hours=k):%Y-%m-%dT%H}" / f"analytics-{START + timedelta(hours=k):%Y-%m-%dT%H}-0.{FORMATS[fmt]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if FORMATS[fmt] == "csv":
            _flat(group.select(present), csv=True).write_csv(path)
        else:
            out = _flat(group.select(present), csv=False)
            if "cardContext.cardPriority" in out.columns:  # a number in the contract: DOUBLE
                out = out.with_columns(pl.col("cardContext.cardPriority").cast(pl.Float64))
            out.write_parquet(path)


def floor_script(landing: Path) -> list[str]:
    root = Path(landing) / "atomic"
    reads = {"ndjson": "read_json('{}', format = 'newline_delimited', union_by_name = true)",
             "csv": "read_csv('{}', union_by_name = true)", "parquet": "read_parquet('{}', union_by_name = true)"}
    # the formats the batches hold: a short run (--hours 2) has no Parquet batch, and DuckDB fails on a pattern matching nothing
    present = [fmt for fmt in reads if next(root.glob(f"*/*.{fmt}"), None)]
    sql = "CREATE TABLE t AS " + " UNION ALL BY NAME ".join(f"SELECT * FROM {reads[fmt].format(f'{root}/*/*.{fmt}')}"
                                                           for fmt in present)
    return [sys.executable, "-c",
            f"import duckdb; con = duckdb.connect(); con.execute({sql!r}); print(con.sql('SELECT count(*) FROM t').fetchone()[0])"]


def batch_keys(landing: Path) -> list[datetime]:
    return sorted(datetime.strptime(p.name, "%Y-%m-%dT%H").replace(tzinfo=UTC) for p in (Path(landing) / "atomic").iterdir())


def run(landing: Path, work: Path, measure: Callable, record: Callable, alternated: Callable) -> None:
    """Record atomic_duckdb_floor (baseline) and atomic_core (ours) on the files under `landing`;
    `work` holds the core's lake and DuckDB file (emptied before each run). `alternated(*runs)`
    runs them in turn as often as asked (run.alternated: for each, the median time, the highest
    peak, the last result and every time)."""
    import shutil

    import duckdb

    keys = batch_keys(landing)
    lake = work / "lake"
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # an ephemeral instance: the UI's stays clean
    env.update(WAREHOUSE_LANDING=str(landing), WAREHOUSE_LAKE=str(lake), WAREHOUSE_DUCKDB=str(work / "warehouse.duckdb"),
               WAREHOUSE_START=f"{START - timedelta(days=2):%Y-%m-%dT%H}")

    def core() -> tuple[float, float, int]:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        s, mb, out = measure([sys.executable, "-m", "orchestration", "backfill", "--start", f"{keys[0]:%Y-%m-%dT%H}",
                              "--end", f"{keys[-1] + timedelta(hours=1):%Y-%m-%dT%H}", "--sources", "atomic", "--no-marts"],
                             env)
        (work / "core.out").write_text(out)
        return s, mb, duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}/atomic/events/**/*.parquet')").fetchone()[0]

    (s, mb, out, runs), ours = alternated(lambda: measure(floor_script(landing)), core)
    record("atomic_duckdb_floor", "baseline",
           "DuckDB read_json / read_csv / read_parquet of the Atomic files into one table (the parse floor)",
           s, mb, int(out.split()[-1]), runs=runs)
    s, mb, kept, runs = ours
    record("atomic_core", "ours", "Atomic landing + events through `backfill --sources atomic --no-marts` (CLI, one process), "
                                  "each run after a run of the floor", s, mb, kept, runs=runs)


def main() -> None:
    import time

    from run import alternated, measure  # bench/ is on sys.path when this runs as a script

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="distinct Atomic events (+~3 %% copies, ~5 %% late)")
    parser.add_argument("--hours", type=int, default=48, help="event hours (batches) they come in")
    args = parser.parse_args()
    landing = OUT / f"atomic-landing-{args.events}-{args.hours}"
    if not landing.exists():
        print(f"generating {args.events} Atomic events over {args.hours} hours into {landing} ...", flush=True)
        t = time.perf_counter()
        partial = landing.with_name(landing.name + ".partial")
        import shutil
        shutil.rmtree(partial, ignore_errors=True)
        generate(partial, args.events, args.hours)
        partial.rename(landing)
        print(f"generated in {time.perf_counter() - t:.1f} s", flush=True)
    results = {}

    def record(name: str, kind: str, what: str, seconds: float, mb: float, rows: int, runs=None) -> None:
        results[name] = seconds
        print(f"{name:20} {seconds:8.1f} s {mb:8.0f} MB  {rows} rows  ({kind}: {what})", flush=True)

    run(landing, OUT / "atomic-run", measure, record, lambda *jobs: alternated(1, *jobs))
    print(f"atomic_core / atomic_duckdb_floor = {results['atomic_core'] / results['atomic_duckdb_floor']:.2f} x")


if __name__ == "__main__":
    main()
