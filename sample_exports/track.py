"""Track Events API sample exports: the server's stored events, flushed to hourly NDJSON files.

Layout (see data_contracts/sources/track.yaml): `track/{YYYY}-{MM}-{DD}/{HH}/flush-*.ndjson[.gz]`,
the folder being the hour the server flushed its buffer (two to four flushes an hour).

One record per tracked event as the server stores it: the request body (event_name, category,
priority, properties, timestamp, session_id, page_url, referrer, user_agent), the batch's client_id,
the server-assigned event_id and received_at. The server fills category and priority defaults.

What a run contains, besides sessions of a trading web / mobile app (page views, clicks, searches,
orders, logins, page-load timings, feature use, API errors, system events):
- client timestamps in other UTC offsets (+10:00, -05:00, +05:30: the same instant), and events
  without a client timestamp (their event time is received_at);
- offline clients sending events up to 24 h late (one across midnight when the range allows);
- an event exactly on every hour boundary (client time or, without one, server time);
- records re-delivered in the same flush hour and in a later hour (within 24 h);
- a few lines that are not JSON, a few records missing a required field (event_name absent or
  empty, event_id or received_at absent) and one event_name longer than 100 characters;
- gzipped and plain files.

Summary counts: `records` = JSON record lines written (every copy), `duplicates` = extra copies,
`late` = events first delivered in an hour after the hour they happened in, `malformed` = lines
that are not JSON, `missing_required` = record lines lacking a required field.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from sample_exports.common import (
    HOUR,
    duplicate_deliveries,
    floor_hour,
    force_across_midnight,
    Event,
    GenerationSummary,
    dumps,
    event_time_in,
    iso_offset,
    iso_z,
    lateness,
    malformed_line,
    new_uuid,
    write_lines,
)
from sample_exports.common import hours as hour_list

SOURCE = "track"

CLIENTS = [  # (client kind, user agent, weight)
    ("web", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 35),
    ("web", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15", 15),
    ("ios", "TradeApp/5.12.0 (iPhone; iOS 18.1; Scale/3.00)", 25),
    ("android", "TradeApp/5.12.0 (Linux; Android 14; Pixel 8)", 20),
    ("ipad", "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1", 5),
]
PAGES = ["/", "/markets", "/markets/ASX:BHP", "/markets/NASDAQ:AAPL", "/portfolio", "/orders", "/watchlist", "/settings"]
SYMBOLS = ["ASX:BHP", "ASX:CBA", "NASDAQ:AAPL", "NYSE:KO", "LSE:VOD"]
FEATURES = ["dark_mode", "price_alerts", "advanced_chart", "two_factor"]
ERRORS = [("api_error", "HTTP 502 from /api/v1/quotes"), ("api_error", "HTTP 429 rate limited"),
          ("ws_disconnected", "Market data socket closed"), ("render_error", "TypeError: cannot read 'price' of undefined")]
OFFSETS = [10, -5, 5.5, -8, 1]
MISSING = ["event_name", "event_name_empty", "event_id", "received_at"]
STRAY_LINE = "ERROR flush worker: connection reset by peer"  # a log line in a crashed flush


def _client_stamp(ts: datetime, rng: random.Random) -> str:
    """The client's own clock: mostly UTC, a share in its local offset (the same instant)."""
    if rng.random() < 0.15:
        return iso_offset(ts, rng.choice(OFFSETS))
    return iso_z(ts)


def _session(start_ts: datetime, end: datetime, rng: random.Random) -> list[Event]:
    """One user's session: a sequence of tracked events over a few minutes."""
    kind, user_agent, _ = rng.choices(CLIENTS, weights=[c[2] for c in CLIENTS])[0]
    client_id = f"{kind}-{rng.getrandbits(32):08x}"
    session_id = f"sess_{rng.getrandbits(64):016x}"
    user_id = f"u{rng.randrange(1000, 99999)}" if rng.random() < 0.7 else None
    sends_timestamp = rng.random() < 0.85  # older app builds send no timestamp
    batched = rng.random() < 0.8  # via Track Batch (has client_id) or single Track Event calls
    out: list[Event] = []
    ts = start_ts
    page = rng.choice(PAGES)
    referrer = rng.choice(["https://www.google.com/", "https://news.example.com/markets", None])

    def add(name: str, category: str | None, priority: str | None = None, **props) -> None:
        if ts >= end:
            return
        rec = {"event_name": name, "category": category or "user_action", "priority": priority or "medium"}
        properties = {k: v for k, v in props.items() if v is not None}
        if user_id:
            properties["user_id"] = user_id
        if properties:
            rec["properties"] = properties
        if sends_timestamp:
            rec["timestamp"] = _client_stamp(ts, rng)
        rec["session_id"] = session_id
        rec["page_url"] = f"https://app.trade.example{page}"
        if referrer:
            rec["referrer"] = referrer
        rec["user_agent"] = user_agent
        if batched:
            rec["client_id"] = client_id
        out.append(Event(ts=ts, record=rec, arrival_hour=ts))

    if rng.random() < 0.3:
        add("login", "auth", method=rng.choice(["password", "passkey", "sso"]))
    for _ in range(rng.randint(2, 6)):
        ts += timedelta(milliseconds=rng.randrange(1000, 60000))
        page = rng.choice(PAGES)
        add("page_view", "page_view", title=page.strip("/").title() or "Home")
        if rng.random() < 0.5:
            add("page_load", "performance", "low", duration_ms=rng.randrange(180, 4200))
        roll = rng.random()
        ts += timedelta(milliseconds=rng.randrange(500, 30000))
        if roll < 0.25:
            add("button_click", None, target=rng.choice(["buy", "sell", "add_to_watchlist", "filter"]))
        elif roll < 0.40:
            add("search", None, query=rng.choice(["bhp", "apple", "gold etf", "dividend"]))
        elif roll < 0.52:
            side = rng.choice(["buy", "sell"])
            add("order_placed", "trading", "high", symbol=rng.choice(SYMBOLS), side=side,
                quantity=rng.randrange(1, 500), price=round(rng.uniform(5, 250), 2))
        elif roll < 0.56:
            add("order_cancelled", "trading", "high", symbol=rng.choice(SYMBOLS))
        elif roll < 0.62:
            add("feature_used", "feature", "low", feature=rng.choice(FEATURES))
        elif roll < 0.69:
            name, message = rng.choice(ERRORS)
            add(name, "error", rng.choice(["high", "critical"]), message=message)
    if rng.random() < 0.1:
        add("login_failed", "auth", "high", reason="bad_password")
    if rng.random() < 0.4:
        ts += timedelta(milliseconds=rng.randrange(1000, 20000))
        add("logout", "auth")
    return out


def generate(out: Path, start: datetime, hours: int, rng: random.Random) -> GenerationSummary:
    summary = GenerationSummary(source=SOURCE)
    hrs = hour_list(start, hours)
    if not hrs:
        return summary
    first, last = hrs[0], hrs[-1]
    end = last + HOUR

    # 1. What happened: sessions per hour, plus an event exactly on each hour boundary.
    events: list[Event] = []
    for h in hrs:
        for _ in range(rng.randint(7, 12)):
            events.extend(_session(event_time_in(h, rng), end, rng))
        events.append(_boundary_event(h, rng))

    # 2. When the server got it: within a second, or up to 24 h later from a client that was
    #    offline; the buffer is flushed to a file within a minute.
    delivered: list[Event] = []
    for e in events:
        if "received_at" not in e.record:
            received = e.ts + timedelta(milliseconds=rng.randrange(20, 900)) + lateness(rng)
            e.record["received_at"] = iso_z(received)
            if "timestamp" not in e.record:
                e.ts = received  # no client time: the server's receipt is the event time
        else:
            received = e.ts
        e.record = {"event_id": new_uuid(rng), **e.record}
        e.arrival_hour = floor_hour(received + timedelta(seconds=rng.randrange(0, 60)))
        if e.arrival_hour <= last:
            delivered.append(e)
    # one event of a 23:00 hour from a client that came back online after midnight
    back_online = force_across_midnight(delivered, last, rng, movable=lambda e: "timestamp" in e.record)
    if back_online:
        back_online.record["received_at"] = iso_z(back_online.arrival_hour + timedelta(seconds=rng.randrange(1, 3000)))
    summary.late = sum(1 for e in delivered if e.arrival_hour > floor_hour(e.ts))

    # 3. A few broken records, delivered once: a required field absent or empty, and one
    #    event_name over the 100-character limit.
    picks = rng.sample(range(len(delivered)), min(len(delivered), max(3, len(hrs) // 6) + 1))
    broken_ids, invalid_ids = set(), set()
    for n, i in enumerate(picks):
        rec = dict(delivered[i].record)
        if n == 0:
            rec["event_name"] = "checkout_" + "x" * 100
            summary.notes.append("1 record with an event_name longer than 100 characters")
        else:
            what = MISSING[n % len(MISSING)]
            if what == "event_name_empty":
                rec["event_name"] = ""
            else:
                rec.pop(what)
            broken_ids.add(id(rec))
        invalid_ids.add(id(rec))
        delivered[i].record = rec
    sound = [e for e in delivered if id(e.record) not in invalid_ids]

    # 4. Re-deliveries of the same stored record: the same hour, or a later hour within 24 h.
    copies = duplicate_deliveries(sound, last, rng)
    summary.duplicates = len(copies)

    # 5. Files: two to four flushes per arrival hour; a few malformed lines.
    by_hour: dict[datetime, list[tuple[str, dict]]] = defaultdict(list)
    for e in delivered + copies:
        by_hour[e.arrival_hour].append((e.record.get("received_at", ""), e.record))
    malformed_hours = {h for h in hrs if rng.random() < 0.12} or {first}
    file_no = 0
    for hour in hrs:
        records = [r for _, r in sorted(by_hour.get(hour, []), key=lambda item: item[0])]
        flushes = rng.randint(2, 4)
        size = -(-len(records) // flushes) if records else 0
        for flush in range(flushes):
            chunk = records[flush * size:(flush + 1) * size]
            if not chunk:
                continue
            lines = [dumps(r) for r in chunk]
            summary.records += len(lines)
            summary.missing_required += sum(1 for r in chunk if id(r) in broken_ids)
            if hour in malformed_hours and flush == 0:
                lines.insert(rng.randrange(len(lines) + 1), malformed_line(lines[0], STRAY_LINE, rng))
                summary.malformed += 1
            gz = file_no % 2 == 1
            flushed_at = hour + timedelta(minutes=(flush + 1) * 60 // (flushes + 1), seconds=rng.randrange(60))
            name = f"flush-{flushed_at:%Y%m%dT%H%M%S}-{flush:02d}.ndjson" + (".gz" if gz else "")
            write_lines(out / SOURCE / f"{hour:%Y-%m-%d}" / f"{hour:%H}" / name, lines, gz=gz)
            summary.files += 1
            file_no += 1
    summary.notes.append(
        f"{len(delivered)} events delivered over {len(hrs)} arrival hours; client timestamps partly in UTC "
        f"offsets ({', '.join(f'{o:+g}h' for o in OFFSETS)}), ~15 % without one (event time = received_at)")
    return summary


def _boundary_event(hour: datetime, rng: random.Random) -> Event:
    """A system event exactly on the hour: by the client's clock (in +10:00 every other hour) or,
    with no client timestamp, by the server's (received exactly on the hour)."""
    rec = {"event_name": "scheduled_sync", "category": "system", "priority": "low",
           "properties": {"job": "portfolio_snapshot"}, "session_id": f"sess_{rng.getrandbits(64):016x}",
           "user_agent": "TradeSync/2.3 (server)", "client_id": "sync-worker"}
    if hour.hour % 3 == 2:
        rec["received_at"] = iso_z(hour)  # no client timestamp: the server's clock is the event time
    else:
        rec["timestamp"] = iso_offset(hour, 10) if hour.hour % 2 else iso_z(hour)
    return Event(ts=hour, record=rec, arrival_hour=hour)
