"""Altis sample exports: NDJSON batches of the export hook plus the daily API export.

Layouts (see data_contracts/sources/altis.yaml):
- `altis/batches/{YYYY}-{MM}-{DD}/{HH}/export-*.ndjson[.gz]`: what the
  `altis.analytics.export.data.process` hook pushed during that hour (two or three runs an hour);
- `altis/{YYYY}-{MM}-{DD}.csv|.json`: the day's export pulled from
  `/wp-json/analytics/v1/events/<date>` just after the day ended (arrival hour: next day 00:00).
  Written only for days wholly inside the generated range, CSV and JSON alternating by day.
  The CSV carries flattened dotted keys (`endpoint.User.UserId`), arrays and objects as JSON text,
  and OWASP formula-escaping of cells starting with = + - @; the JSON is an array of nested records.

Records carry no event id, so every copy of an event is the very same record (ingestion
fingerprints it): each event of a complete day is in a batch *and* in the daily file.

What a run contains, besides the traffic of visits (pageView, click, search, conversion,
_session.start / _session.stop per endpoint): batches re-delivered in the same and a later hour,
events whose beacon arrived up to 24 h late (one across midnight when the range allows), a visit
starting exactly on every hour boundary, a few lines that are not JSON (and one short row in each
daily CSV), a few records missing a required field (batches only), gzipped and plain batches.
Timestamps are epoch milliseconds: UTC offsets do not apply to this source.

Summary counts: `records` = record lines / rows / array items written (every copy), `duplicates` =
extra copies (batch re-deliveries plus daily-file copies), `late` = events first delivered in an
hour after the hour they happened in, `malformed` = lines or CSV rows that are not records,
`missing_required` = records lacking a required field.
"""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from sample_exports.common import (
    break_required,
    HOUR,
    duplicate_deliveries,
    floor_hour,
    force_across_midnight,
    Event,
    GenerationSummary,
    dumps,
    epoch_ms,
    event_time_in,
    lateness,
    new_uuid,
    write_lines,
)
from sample_exports.common import hours as hour_list

SOURCE = "altis"
DAY = timedelta(days=1)

SITES = [  # blogId, host, sections
    ("1", "news.example.com", ["politics", "business", "sport", "culture"]),
    ("2", "blog.example.com", ["engineering", "product", "company"]),
    ("3", "shop.example.com", ["deals", "guides"]),
]
TITLES = ["How we rebuilt the newsroom", "Markets rally on rate news", "Ten tips for winter running",
          "Inside the new stadium", "A guide to sourdough", "What the budget means for you",
          "Release notes 4.2", "Our year in review", "Best laptops under $1000", "Weekend reads"]
SEARCHES = ["election results", "weather sydney", "sourdough starter", "-50% sale", "=cmd|' /C calc'!A0",
            "job openings", "@support", "rate cut"]
REFERERS = ["https://www.google.com/", "https://t.co/abc123", "https://www.facebook.com/", None, None]
GOALS = ["newsletter_signup", "contact_form", "download"]
PLATFORMS = [  # DeviceType, Platform, PlatformVersion, Make, Model, ModelVersion, weight
    ("Desktop", "Windows", "10", "Blink", "Chrome", "131.0.0.0", 30),
    ("Desktop", "macOS", "14.6", "WebKit", "Safari", "17.6", 12),
    ("Desktop", "Linux", "x86_64", "Gecko", "Firefox", "133.0", 4),
    ("Mobile", "iOS", "18.1", "WebKit", "Safari", "18.1", 26),
    ("Mobile", "Android", "14", "Blink", "Chrome", "131.0.6778.81", 20),
    ("Tablet", "iOS", "17.7", "WebKit", "Safari", "17.7", 8),
]
LOCATIONS = [  # Country, Region, City, Locale
    ("AU", "New South Wales", "Sydney", "en-AU"), ("AU", "Victoria", "Melbourne", "en-AU"),
    ("US", "New York", "New York", "en-US"), ("US", "California", "San Francisco", "en-US"),
    ("GB", "England", "London", "en-GB"), ("DE", "Berlin", "Berlin", "de-DE"), ("IN", "Karnataka", "Bengaluru", "en-IN"),
]
REQUIRED = ["event_type", "event_timestamp", "endpoint.Id"]  # as in the contract
OPAQUE = {"endpoint.User.UserAttributes"}  # objects kept whole (JSON text) in the flattened CSV


def _endpoints(rng: random.Random, count: int = 60) -> list[dict]:
    """The visitors: one endpoint per device and browser, some with a known user."""
    out = []
    for _ in range(count):
        device, platform, pver, make, model, mver, _ = rng.choices(PLATFORMS, weights=[p[6] for p in PLATFORMS])[0]
        country, region, city, locale = rng.choice(LOCATIONS)
        endpoint = {"Id": new_uuid(rng), "Demographic": {
            "Locale": locale, "Make": make, "Model": model, "ModelVersion": mver,
            "Platform": platform, "PlatformVersion": pver}}
        if rng.random() < 0.85:  # geo lookup succeeds for most
            endpoint["Location"] = {"Country": country, "Region": region, "City": city}
        endpoint["Attributes"] = {"DeviceType": [device]}
        if rng.random() < 0.3:
            endpoint["User"] = {"UserId": str(rng.randrange(2, 5000)),
                                "UserAttributes": {"Role": [rng.choice(["subscriber", "author", "editor"])]}}
        out.append(endpoint)
    return out


def _visit(start_ts: datetime, end: datetime, endpoint: dict, rng: random.Random) -> list[Event]:
    """One visit of an endpoint: a few page views, each a sub-session with its events."""
    blog_id, host, sections = rng.choice(SITES)
    visit = new_uuid(rng)
    referer = rng.choice(REFERERS)
    utm = ({"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": f"weekly-{start_ts:%G%V}"}
           if rng.random() < 0.15 else {})
    out: list[Event] = []
    ts = start_ts
    for page_no in range(rng.choices([1, 2, 3, 4, 5], weights=[4, 3, 2, 1, 1])[0]):
        post_id = str(rng.randrange(100, 9999))
        title = rng.choice(TITLES)
        url = f"https://{host}/{rng.choice(sections)}/{title.lower().replace(' ', '-').replace('$', '')}/"
        attributes = {"session": visit, "pageSession": new_uuid(rng), "url": url, "title": title,
                      "blogId": blog_id, "postId": post_id}
        if referer:
            attributes["referer"] = referer
        if page_no == 0:
            attributes.update(utm)
        sub_session = new_uuid(rng)
        page_start = ts
        depth = 0.0

        def add(event_type: str, session: dict, metrics: dict | None = None, **extra) -> None:
            if ts >= end:
                return
            rec = {"event_type": event_type, "event_timestamp": epoch_ms(ts), "event_version": "3.0",
                   "session": {"session_id": sub_session, **session},
                   "attributes": {**attributes, **extra},
                   "metrics": {"scrollDepthMax": round(depth, 1), "scrollDepthNow": round(depth, 1),
                               "elapsed": epoch_ms(ts) - epoch_ms(page_start), **(metrics or {})},
                   "endpoint": endpoint}
            out.append(Event(ts=ts, record=rec, arrival_hour=ts))

        add("_session.start", {"start_timestamp": epoch_ms(page_start)})
        ts += timedelta(milliseconds=rng.randrange(50, 900))
        add("pageView", {"start_timestamp": epoch_ms(page_start)})
        for _ in range(rng.choices([0, 1, 2, 3], weights=[3, 4, 2, 1])[0]):
            ts += timedelta(milliseconds=rng.randrange(3000, 90000))
            depth = min(100.0, depth + rng.uniform(5, 40))
            add("click", {"start_timestamp": epoch_ms(page_start)},
                elementText=rng.choice(["Read more", "Subscribe", "Share", "Next"]))
        if rng.random() < 0.12:
            ts += timedelta(milliseconds=rng.randrange(2000, 30000))
            add("search", {"start_timestamp": epoch_ms(page_start)}, search=rng.choice(SEARCHES))
        if rng.random() < 0.06:
            ts += timedelta(milliseconds=rng.randrange(2000, 30000))
            add("conversion", {"start_timestamp": epoch_ms(page_start)}, goal=rng.choice(GOALS))
        ts += timedelta(milliseconds=rng.randrange(2000, 120000))
        duration = epoch_ms(ts) - epoch_ms(page_start)
        add("_session.stop", {"start_timestamp": epoch_ms(page_start), "stop_timestamp": epoch_ms(ts),
                              "duration": duration})
        ts += timedelta(milliseconds=rng.randrange(1000, 60000))
    return out



def generate(out: Path, start: datetime, hours: int, rng: random.Random,
             daily_format: str | None = None) -> GenerationSummary:
    """Batches for the arrival hours `start … start+hours-1`, and a daily file for each day wholly
    inside them (CSV and JSON on alternate days, or all in `daily_format`)."""
    summary = GenerationSummary(source=SOURCE)
    hrs = hour_list(start, hours)
    if not hrs:
        return summary
    first, last = hrs[0], hrs[-1]
    end = last + HOUR
    endpoints = _endpoints(rng)

    # 1. What happened: visits per hour; the first visit of every hour starts exactly on the hour.
    events: list[Event] = []
    for h in hrs:
        for i in range(rng.randint(5, 9)):
            events.extend(_visit(h if i == 0 else event_time_in(h, rng), end, rng.choice(endpoints), rng))

    # 2. When it arrives: the beacon reaches the backend within seconds (a share up to 24 h late,
    #    sent on the next visit); the export cron picks it up within ten minutes.
    delivered: list[Event] = []
    for e in events:
        arrived = e.ts + timedelta(milliseconds=rng.randrange(40, 4000)) + lateness(rng)
        e.record["arrival_timestamp"] = epoch_ms(arrived)
        e.arrival_hour = floor_hour(arrived + timedelta(seconds=rng.randrange(0, 600)))
        if e.arrival_hour <= last:
            delivered.append(e)
    # one beacon of a 23:00 hour sent late, after midnight
    late_beacon = force_across_midnight(delivered, last, rng)
    if late_beacon:
        late_beacon.record["arrival_timestamp"] = epoch_ms(late_beacon.arrival_hour + timedelta(minutes=rng.randrange(1, 50)))
    summary.late = sum(1 for e in delivered if e.arrival_hour > floor_hour(e.ts))

    # 3. A few records missing a required field (batches only, never duplicated).
    sound, broken_ids = break_required(delivered, REQUIRED, rng, max(2, len(hrs) // 6))

    # 4. Batches re-delivered: the same hour, or a later hour within 24 h.
    copies = duplicate_deliveries(sound, last, rng)
    summary.duplicates = len(copies)

    # 5. Batch files: two or three export runs per arrival hour; a few malformed lines.
    by_hour: dict[datetime, list[tuple[datetime, dict]]] = defaultdict(list)
    for e in delivered + copies:
        by_hour[e.arrival_hour].append((e.ts, e.record))
    malformed_hours = {h for h in hrs if rng.random() < 0.12} or {first}
    file_no = 0
    for hour in hrs:
        records = [r for _, r in sorted(by_hour.get(hour, []), key=lambda item: item[0])]
        runs = rng.randint(2, 3)
        size = -(-len(records) // runs) if records else 0
        for run in range(runs):
            chunk = records[run * size:(run + 1) * size]
            if not chunk:
                continue
            lines = [dumps(r) for r in chunk]
            summary.records += len(lines)
            summary.missing_required += sum(1 for r in chunk if id(r) in broken_ids)
            if hour in malformed_hours and run == 0:
                lines.insert(rng.randrange(len(lines) + 1), lines[0][: len(lines[0]) // 2])
                summary.malformed += 1
            gz = file_no % 2 == 0
            name = f"export-{hour:%Y%m%dT%H}{run * 20 + rng.randrange(10):02d}-{new_uuid(rng)[:8]}.ndjson"
            write_lines(out / SOURCE / "batches" / f"{hour:%Y-%m-%d}" / f"{hour:%H}" / (name + (".gz" if gz else "")),
                        lines, gz=gz)
            summary.files += 1
            file_no += 1

    # 6. Daily files, for the days wholly inside the range: the events of day D that had reached
    #    the backend when the export was pulled (00:30 the next day).
    day = first if first.hour == 0 else floor_hour(first).replace(hour=0) + DAY
    days = 0
    while day + DAY <= end:
        pulled = epoch_ms(day + DAY + timedelta(minutes=30))
        records = [e.record for e in sorted(sound, key=lambda e: e.ts)
                   if day <= e.ts < day + DAY and e.record["arrival_timestamp"] < pulled]
        path = out / SOURCE / f"{day:%Y-%m-%d}"
        if (daily_format or ("csv" if day.toordinal() % 2 == 0 else "json")) == "csv":
            summary.malformed += _write_csv(path.with_suffix(".csv"), records, rng)
        else:
            path.with_suffix(".json").write_text("[\n" + ",\n".join(dumps(r) for r in records) + "\n]\n")
        summary.files += 1
        summary.records += len(records)
        summary.duplicates += len(records)
        days += 1
        day += DAY
    summary.notes.append(
        f"{len(delivered)} events delivered in batches over {len(hrs)} arrival hours, {days} daily file(s) "
        f"(each event also in a batch); epoch-millisecond timestamps, so no UTC offsets; "
        f"a visit starting exactly on every hour")
    return summary


def _flatten(record: dict, prefix: str = "") -> dict[str, object]:
    """Nested record to dotted keys; lists and the free-form objects stay whole."""
    out: dict[str, object] = {}
    for key, value in record.items():
        path = prefix + key
        if isinstance(value, dict) and path not in OPAQUE:
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return dumps(value)
    text = str(value)
    if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text  # OWASP formula-escaping, as spreadsheet-safe exports do
    return text


def _write_csv(path: Path, records: list[dict], rng: random.Random) -> int:
    """The flattened daily CSV (header: union of dotted keys in first-seen order). One short,
    malformed row is slipped in the middle, as a broken export stream would. Returns 1 for it."""
    rows = [_flatten(r) for r in records]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(columns))
    bad_at = rng.randrange(len(rows)) if rows else -1
    for i, row in enumerate(rows):
        if i == bad_at:
            writer.writerow([_cell(row.get(c)) for c in list(columns)[:3]])
        writer.writerow([_cell(row.get(c)) for c in columns])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue())
    return 1 if rows else 0
