"""Airkit sample exports: App Events and Audit logs streamed to S3 as JSON Lines.

Layout (see data_contracts/sources/airkit.yaml): `airkit/{YYYY}-{MM}-{DD}/{HH}/{name}.jsonl[.gz]`,
the folder being the hour the stream flushed the file. Each hour holds one or two `app-events-*`
files (Session and Platform events) and, when admins did something, one `audit-logs-*` file.

What a run contains, besides the normal traffic:
- sessions: a SessionId with several Events over minutes (SessionStarted, PageView, ActionRun,
  TimeOnPage metric, CsatSubmitted for some, JourneyCompleted, SessionEnded);
- audit events by admins (app published, user role changed, data exported...) with outcomes;
- platform events, some of level Error, and a ScheduledTaskRun exactly on every hour boundary;
- timestamps in other UTC offsets (+10:00, -05:00, +05:30: the same instant);
- late events (up to 24 h, one forced across midnight when the range allows);
- duplicates re-delivered in the same hour and in a later hour (within 24 h);
- a few lines that are not JSON and a few records missing a required field;
- gzipped and plain files (alternating by hour).

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
    break_required,
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

SOURCE = "airkit"

APPS = [
    {"Id": "app-claims-portal", "Name": "Claims Portal",
     "journeys": ["File a Claim", "Track Claim"],
     "pages": ["Welcome", "Policy Lookup", "Incident Details", "Upload Photos", "Review", "Confirmation"]},
    {"Id": "app-onboarding", "Name": "Customer Onboarding",
     "journeys": ["Open Account", "Verify Identity"],
     "pages": ["Start", "Personal Details", "Identity Check", "Terms", "Done"]},
    {"Id": "app-support-hub", "Name": "Support Hub",
     "journeys": ["Contact Support", "Reschedule Appointment"],
     "pages": ["Home", "Choose Topic", "Chat", "Schedule", "Summary"]},
]
DEVICES = [  # (DeviceClass, Browser, OS, weight)
    ("Desktop", "Chrome", "Windows", 30), ("Desktop", "Edge", "Windows", 8), ("Desktop", "Safari", "macOS", 10),
    ("Mobile", "Safari", "iOS", 25), ("Mobile", "Chrome", "Android", 18),
    ("Tablet", "Safari", "iPadOS", 6), ("Unknown", "Other", "Other", 3),
]
ADMINS = [
    {"Id": "usr-7f3a", "Type": "User", "Email": "dana.lee@example.com"},
    {"Id": "usr-19c2", "Type": "User", "Email": "sam.patel@example.com"},
    {"Id": "usr-a04e", "Type": "User", "Email": "ops.bot@example.com"},
    {"Id": "key-reporting", "Type": "ApiKey", "Email": None},
]
AUDIT_ACTIONS = [  # (EventName, Action, Target.Type, weight)
    ("AppPublished", "app.publish", "App", 3),
    ("UserRoleChanged", "user.role_change", "User", 3),
    ("DataExported", "data.export", "Dataset", 2),
    ("ConnectionUpdated", "connection.update", "Connection", 1),
]
PLATFORM_EVENTS = ["DataFlowExecuted", "ConnectionRequest", "NotificationSent", "WebhookReceived"]
PLATFORM_ERRORS = [
    ("CONNECTION_TIMEOUT", "Upstream connection timed out after 30s"),
    ("HTTP_500", "Remote API returned HTTP 500"),
    ("RATE_LIMITED", "Remote API rate limit exceeded"),
    ("INVALID_INPUT", "Data flow received an invalid payload"),
]
OFFSETS = [10, -5, 5.5, -8, 1]
REQUIRED = ["EventId", "Timestamp", "EventName", "Category", "App.Id"]  # as in the contract
STRAY_LINE = "<html><body>503 Service Unavailable</body></html>"  # a proxy's error page in the stream


def _stamp(ts: datetime, rng: random.Random, offset_share: float = 0.12) -> str:
    """ISO 8601: mostly Z, a share in another UTC offset (the same instant)."""
    if rng.random() < offset_share:
        return iso_offset(ts, rng.choice(OFFSETS))
    return iso_z(ts)


def _base(ts: datetime, name: str, category: str, app: dict, rng: random.Random) -> dict:
    return {"EventId": new_uuid(rng), "Timestamp": _stamp(ts, rng), "EventName": name,
            "Category": category, "App": {"Id": app["Id"], "Name": app["Name"]}}


def _session(start_ts: datetime, end: datetime, rng: random.Random) -> list[Event]:
    """One Journey session: several Session events over a few minutes."""
    app = rng.choice(APPS)
    device_class, browser, os_name, _ = rng.choices(DEVICES, weights=[d[3] for d in DEVICES])[0]
    session_id = new_uuid(rng)
    journey = {"Id": new_uuid(rng), "Name": rng.choice(app["journeys"])}
    context = {"SessionId": session_id, "Journey": journey,
               "UserAgent": {"DeviceClass": device_class, "Browser": browser, "OS": os_name}}
    out: list[Event] = []
    ts = start_ts
    runs = 0

    def add(name: str, **fields) -> None:
        if ts >= end:
            return
        rec = _base(ts, name, "Session", app, rng)
        rec.update(context)
        rec["ActionRuns"] = runs
        rec.update(fields)
        out.append(Event(ts=ts, record=rec, arrival_hour=ts))

    add("SessionStarted")
    pages = app["pages"][: rng.randint(2, len(app["pages"]))]
    completed = len(pages) == len(app["pages"]) or rng.random() < 0.4
    for name in pages:
        page = {"Name": name, "Url": f"https://{app['Id']}.airkit.example/{name.lower().replace(' ', '-')}"}
        ts += timedelta(milliseconds=rng.randrange(500, 4000))
        add("PageView", Page=page)
        for _ in range(rng.randint(0, 2)):
            ts += timedelta(milliseconds=rng.randrange(2000, 40000))
            runs += 1
            add("ActionRun", Page=page)
        dwell = rng.randrange(4000, 150000)
        ts += timedelta(milliseconds=dwell)
        add("TimeOnPage", Page=page, Metrics={"TimeOnPageSeconds": round(dwell / 1000, 3)})
    if rng.random() < 0.45:
        ts += timedelta(milliseconds=rng.randrange(1000, 20000))
        add("CsatSubmitted", Page=page, Metrics={"CsatScore": rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 5])[0]})
    if completed:
        ts += timedelta(milliseconds=rng.randrange(200, 2000))
        add("JourneyCompleted", Page=page)
    ts += timedelta(milliseconds=rng.randrange(200, 2000))
    add("SessionEnded")
    return out


def _audit(ts: datetime, rng: random.Random) -> Event:
    app = rng.choice(APPS)
    name, action, target_type, _ = rng.choices(AUDIT_ACTIONS, weights=[a[3] for a in AUDIT_ACTIONS])[0]
    actor = rng.choice(ADMINS if name == "DataExported" else ADMINS[:3])
    rec = _base(ts, name, "Audit", app, rng)
    rec["Actor"] = {k: v for k, v in actor.items() if v is not None}
    rec["Action"] = action
    target_id = {"App": app["Id"], "User": f"usr-{rng.getrandbits(16):04x}",
                 "Dataset": f"ds-{rng.choice(['sessions', 'claims', 'csat'])}",
                 "Connection": f"conn-{rng.choice(['salesforce', 'twilio', 'stripe'])}"}[target_type]
    rec["Target"] = {"Type": target_type, "Id": target_id}
    if rng.random() < 0.12:
        rec["Outcome"] = "Failure"
        rec["Error"] = {"Code": "PERMISSION_DENIED", "Message": f"{actor['Id']} may not perform {action}"}
    else:
        rec["Outcome"] = "Success"
    return Event(ts=ts, record=rec, arrival_hour=ts)


def _platform(ts: datetime, rng: random.Random, name: str | None = None, at_boundary: bool = False) -> Event:
    app = rng.choice(APPS)
    rec = _base(ts, name or rng.choice(PLATFORM_EVENTS), "Platform", app, rng)
    if at_boundary:  # the scheduler fires exactly on the hour; written in another offset every other hour
        rec["Timestamp"] = iso_offset(ts, 10) if ts.hour % 2 else iso_z(ts)
    roll = rng.random()
    if roll < 0.09:
        code, message = rng.choice(PLATFORM_ERRORS)
        rec["Level"], rec["Error"] = "Error", {"Code": code, "Message": message}
    elif roll < 0.16:
        rec["Level"] = "Warning"
    else:
        rec["Level"] = "Info"
    rec["DurationMs"] = rng.randrange(15, 4000)
    return Event(ts=ts, record=rec, arrival_hour=ts)



def generate(out: Path, start: datetime, hours: int, rng: random.Random) -> GenerationSummary:
    summary = GenerationSummary(source=SOURCE)
    hrs = hour_list(start, hours)
    if not hrs:
        return summary
    last = hrs[-1]
    end = last + HOUR

    # 1. What happened: sessions, audit and platform events per hour.
    events: list[Event] = []
    for h in hrs:
        for _ in range(rng.randint(4, 8)):
            events.extend(_session(event_time_in(h, rng), end, rng))
        for _ in range(rng.choices([0, 1, 2, 3], weights=[2, 4, 3, 1])[0]):
            events.append(_audit(event_time_in(h, rng), rng))
        for _ in range(rng.randint(5, 12)):
            events.append(_platform(event_time_in(h, rng), rng))
        events.append(_platform(h, rng, name="ScheduledTaskRun", at_boundary=True))

    # 2. When it is delivered: the stream flushes within minutes; a share is up to 24 h late.
    delivered: list[Event] = []
    for e in events:
        e.arrival_hour = floor_hour(e.ts + timedelta(seconds=rng.randrange(5, 300)) + lateness(rng))
        if e.arrival_hour <= last:
            delivered.append(e)
    force_across_midnight(delivered, last, rng)
    summary.late = sum(1 for e in delivered if e.arrival_hour > floor_hour(e.ts))

    # 3. A few records missing a required field (delivered once, never duplicated).
    sound, broken_ids = break_required(delivered, REQUIRED, rng, max(2, len(hrs) // 6))

    # 4. Duplicates: the same record re-delivered in the same hour, or in a later hour within 24 h.
    copies = duplicate_deliveries(sound, last, rng)
    summary.duplicates = len(copies)

    # 5. Files: per arrival hour, app-events (one or two) and audit-logs; a few malformed lines.
    by_hour: dict[datetime, list[tuple[datetime, dict]]] = defaultdict(list)
    for e in delivered + copies:
        by_hour[e.arrival_hour].append((e.ts, e.record))
    malformed_hours = {h for h in hrs if rng.random() < 0.12} or {hrs[0]}
    file_no = 0
    for hour in hrs:
        items = [r for _, r in sorted(by_hour.get(hour, []), key=lambda item: item[0])]
        app = [r for r in items if r.get("Category") != "Audit"]
        split = len(app) // 2 if len(app) > 60 else len(app)
        groups = [("app-events", 15, app[:split]), ("app-events", 45, app[split:]),
                  ("audit-logs", 50, [r for r in items if r.get("Category") == "Audit"])]
        for stem, minute, records in groups:
            if not records:
                continue
            lines = [dumps(r) for r in records]
            summary.records += len(lines)
            summary.missing_required += sum(1 for r in records if id(r) in broken_ids)
            if hour in malformed_hours and stem == "app-events" and minute == 15:
                lines.insert(rng.randrange(len(lines) + 1), malformed_line(lines[0], STRAY_LINE, rng))
                summary.malformed += 1
            gz = file_no % 2 == 0
            name = f"{stem}-{hour:%Y%m%dT%H}{minute:02d}-{new_uuid(rng)[:8]}.jsonl" + (".gz" if gz else "")
            write_lines(out / SOURCE / f"{hour:%Y-%m-%d}" / f"{hour:%H}" / name, lines, gz=gz)
            summary.files += 1
            file_no += 1
    summary.notes.append(
        f"{len(delivered)} events delivered over {len(hrs)} arrival hours; Timestamp partly written in UTC "
        f"offsets ({', '.join(f'{o:+g}h' for o in OFFSETS)}); a ScheduledTaskRun exactly on every hour")
    return summary
