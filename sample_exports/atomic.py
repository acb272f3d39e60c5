"""Sample Atomic analytics batches (`atomic/{YYYY-MM-DDTHH}/{name}.ndjson|.csv|.parquet`).

Atomic groups its batched analytics export by the hour *ended* (UTC): the events of 01:00-02:00
are the batch `…T02`. For every batch key K in `start+1h … start+hours` this module writes the
batch into `out/atomic/{K:%Y-%m-%dT%H}/` as one or two files, the format rotating file by file
between NDJSON (nested records), CSV (flattened dotted keys, OWASP formula-escaped) and Parquet
(flattened dotted keys). The record shape (which objects have declared properties, the leaf
types) comes from the loaded source contract (`data_contracts/sources/atomic.yaml`), so the schema
is written once.

The events are a small simulation: end users on Web / iOS / Android open the app (sdk-initialized,
stream-displayed), card templates publish card instances to them through Action Flows, and each
card lives its lifecycle (notification-sent, card-displayed, then card-completed, -dismissed,
-snoozed, user-redirected, votes, expiry), spanning hours. On top of that: a few custom events,
test cards, events exactly on the hour, timestamps written with an offset, and the delivery
anomalies the warehouse must absorb — re-delivered duplicates (same batch, and a later batch
within 24 h), late events (up to 23 h late, some across midnight), non-JSON NDJSON lines,
records missing `id` or `timestamp`, and one `analyticsEvent` outside the enum.

Summary counts: `records` is every record row or line written (duplicates and invalid records
included, malformed lines excluded); `malformed` the non-JSON lines; `duplicates` the extra copies;
`late` the events delivered after the batch of their own hour; `missing_required` the records
without `id` or `timestamp`.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from orchestration.contracts import load_source_contracts
from sample_exports.common import (
    UTC,
    floor_hour,
    Event,
    GenerationSummary,
    dumps,
    event_time_in,
    hours as hour_range,
    iso_offset,
    iso_z,
    lateness,
    new_uuid,
    write_lines,
)

SOURCE = "atomic"
HOUR = timedelta(hours=1)
FORMATS = ("ndjson", "csv", "parquet")

# The vendor's own flattened example spells this key differently from its JSON schema
# (`isDNDActive` vs `isDnDActive`); flattened files use the example's spelling, so readers must
# match keys case-insensitively, as the contract says.
FLAT_SPELLING = {"sdkContext.isDnDActive": "sdkContext.isDNDActive"}
FLAT_SPELLING_REVERSE = {v: k for k, v in FLAT_SPELLING.items()}

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# ---------------------------------------------------------------------------------------------
# The record shape, from the contract


@dataclass(frozen=True)
class _Shape:
    objects: frozenset[str]  # dotted paths of objects with declared properties
    leaves: tuple[str, ...]  # dotted paths of the leaves, in contract order
    leaf_types: dict[str, str]  # lower-cased dotted path -> logicalType


@lru_cache(maxsize=1)
def _shape() -> _Shape:
    fields = load_source_contracts()[SOURCE].fields
    # every object with declared properties holds a leaf: the objects are the leaves' parents
    objects = {f.path.rsplit(".", n)[0] for f in fields for n in range(1, f.path.count(".") + 1)}
    return _Shape(frozenset(objects), tuple(f.path for f in fields), {f.path.lower(): f.logical_type for f in fields})


# ---------------------------------------------------------------------------------------------
# Flattening and the three writers (pure; the tests write the same records in every format)


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def flatten(record: dict) -> dict:
    """Nested record -> dotted keys. Objects with declared properties are descended into; objects
    without (free-form) and arrays become JSON text, as the flattened exports carry them."""
    objects = _shape().objects
    out: dict[str, Any] = {}

    def walk(value: dict, prefix: str) -> None:
        for key, item in value.items():
            path = prefix + key
            if isinstance(item, dict) and path in objects:
                walk(item, path + ".")
            elif isinstance(item, (dict, list)):
                out[FLAT_SPELLING.get(path, path)] = _json_text(item)
            else:
                out[FLAT_SPELLING.get(path, path)] = item

    walk(record, "")
    return out


def _columns(rows: list[dict]) -> list[str]:
    """The union of the rows' keys: contract order first, then any others as first seen."""
    order = {path.lower(): i for i, path in enumerate(_shape().leaves)}
    for flat, spelled in FLAT_SPELLING.items():
        order[spelled.lower()] = order[flat.lower()]
    seen: dict[str, int] = {}
    for row in rows:
        for key in row:
            if key not in seen:
                seen[key] = len(seen)
    return sorted(seen, key=lambda k: (order.get(k.lower(), len(order)), seen[k]))


def cell_text(value: Any) -> str:
    """How a flattened value is written in a CSV cell, before formula-escaping."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return str(value)


def escape_formula(text: str) -> str:
    """OWASP CSV-injection guard: a cell starting with = + - @ tab or CR gets a leading `'`."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def unescape_formula(text: str) -> str:
    """Undo `escape_formula`."""
    if text.startswith("'") and text[1:].startswith(FORMULA_PREFIXES):
        return text[1:]
    return text


def write_ndjson(path: Path, records: Iterable[dict | str]) -> None:
    """Nested records, one JSON object a line; a `str` item is written as it is (a bad line)."""
    write_lines(Path(path), [r if isinstance(r, str) else dumps(r) for r in records], gz=False)


def write_csv(path: Path, records: Iterable[dict]) -> None:
    """Flattened records, one column per dotted key, cells formula-escaped."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [flatten(r) for r in records]
    columns = _columns(rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([escape_formula(cell_text(row.get(c))) for c in columns])


_ARROW_TYPES = {
    "string": pa.string(),
    "timestamp": pa.string(),  # written as ISO 8601 text, as in the NDJSON
    "object": pa.string(),  # JSON text
    "array": pa.string(),  # JSON text
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
}


def _infer_type(values: list[Any]) -> pa.DataType:
    """The Arrow type of a column the contract does not declare (custom event properties)."""
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds and kinds <= {int, float}:
        return pa.float64()
    return pa.string()


def write_parquet(path: Path, records: Iterable[dict]) -> None:
    """Flattened records, one typed column per dotted key (types from the contract)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [flatten(r) for r in records]
    columns = _columns(rows)
    types = _shape().leaf_types
    fields = []
    for column in columns:
        logical = types.get(FLAT_SPELLING_REVERSE.get(column, column).lower())
        arrow_type = _ARROW_TYPES.get(logical) if logical else None
        if arrow_type is None:
            values = [row.get(column) for row in rows]
            arrow_type = _infer_type(values)
            if arrow_type == pa.string():  # mixed or text: as text, like the CSV cell
                for row in rows:
                    if column in row and row[column] is not None and not isinstance(row[column], str):
                        row[column] = cell_text(row[column])
        fields.append(pa.field(column, arrow_type))
    schema = pa.schema(fields)
    if rows:
        # Built through Arrow's JSON reader with an explicit schema: pa.array() on Python lists
        # imports pandas on first use, which costs more than generating a whole day.
        data = "\n".join(dumps(row) for row in rows).encode()
        table = pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(block_size=max(1 << 20, len(data) + 1)),
            parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"),
        ).select(columns)
    else:
        table = schema.empty_table()
    pq.write_table(table, path)


_WRITERS = {"ndjson": write_ndjson, "csv": write_csv, "parquet": write_parquet}


# ---------------------------------------------------------------------------------------------
# The simulated world


@dataclass(frozen=True)
class _Template:
    id: str
    name: str
    version: int
    notify: bool
    priority: int
    presentation: str
    streams: tuple[str, ...]
    platforms: tuple[str, ...]
    flow_config: str
    flow_version: int
    step: str
    responses: bool = False  # card response values in properties.values
    video: bool = False


TEMPLATES = (
    _Template("8Xlss", "Leave request", 8, False, 5, "individual", ("TspKk",), ("Web", "iOS", "Android"), "A9WBVx", 4, "create_card_L9qk", responses=True),
    _Template("Qm2rT", "Welcome to the app", 2, True, 3, "individual", ("TspKk",), ("iOS", "Android"), "Wf7kPq", 2, "create_card_b3Xe"),
    _Template("pW9kd", "Rate your experience", 5, True, 7, "individual", ("TspKk", "Vx2Pe"), ("Web", "iOS", "Android"), "Rt2mZa", 6, "create_card_Q8sn", responses=True),
    _Template("Zt4Ln", "Payment due reminder", 1, True, 9, "individual", ("Vx2Pe",), ("Web", "iOS", "Android"), "Pd1Lkq", 1, "create_card_u2Hc"),
    _Template("hB7xc", "New feature: dark mode", 4, False, 2, "bundle", ("TspKk", "a9LmQ"), ("iOS", "Android"), "Nf5Tgh", 3, "create_card_z7Wd", video=True),
    _Template("c3VgA", "-20% off your next top-up", 3, True, 4, "bundle", ("a9LmQ",), ("Web", "iOS", "Android"), "Of9Xsd", 5, "create_card_m4Rt"),
)
SCHEDULED = TEMPLATES[3]  # published by a scheduled flow, exactly on the hour
STREAMS = {"TspKk": "Home feed", "a9LmQ": "Offers", "Vx2Pe": "Inbox"}
CONTAINERS = {"TspKk": 1101, "a9LmQ": 1102, "Vx2Pe": 1103}
DEVICES = {
    "Web": (("Chrome 131 / macOS", "Safari 18.2 / macOS", "Edge 131 / Windows", "Firefox 133 / Windows"), ("24.3.1", "24.4.0")),
    "iOS": (("iPhone15,3", "iPhone14,5", "iPhone16,1", "iPad13,18"), ("24.2.6", "24.3.0")),
    "Android": (("Pixel 8", "SM-S918B", "SM-A546E", "moto g84 5G"), ("24.2.3", "24.3.1")),
}
# Zones without daylight saving, so the fixed offset is always right.
TIMEZONES = (
    ("Australia/Brisbane", 10.0), ("Asia/Singapore", 8.0), ("Asia/Kolkata", 5.5), ("Asia/Tokyo", 9.0),
    ("America/Phoenix", -7.0), ("Africa/Johannesburg", 2.0), ("Etc/UTC", 0.0),
)
OFFSETS = (10.0, 5.5, -7.0, 1.0, -3.0)
DOWNVOTE_MESSAGES = (
    "Not for me", "Too many of these", "-_- seen it already", "+1 but not right now",
    "@support please stop", '=HYPERLINK("http://example.test","x")', "\tindented note", "Already done, thanks",
)
SUBVIEWS = (("details", "More details", "1"), ("@terms", "Terms & conditions", "2"), ("faq", "FAQ", "1"))
CUSTOM_SCREENS = ("home", "payments", "settings", "profile")
BAD_EVENT_NAME = "card-archived"  # not in the contract's enum


@dataclass(frozen=True)
class _User:
    id: str
    platform: str
    device: str
    sdk_version: str
    tz: str
    offset: float
    ip: str
    dnd: bool


@dataclass(frozen=True)
class _Card:
    tpl: _Template
    user: _User
    lifecycle: str
    instance: str
    published_at: datetime
    test: bool
    flow_instance: str
    flow_invocation: str


class _World:
    def __init__(self, rng: random.Random, start: datetime, end: datetime):
        self.rng = rng
        self.start, self.end = start, end
        self.users = [self._user() for _ in range(90)]
        self.tester = _User("workbench-tester", "Web", "Chrome 131 / macOS", "24.4.0", "Etc/UTC", 0.0, "198.51.100.7", False)
        self.events: list[tuple[datetime, int, dict]] = []
        self.boundary = 0
        self.offset_ts = 0

    # -- building blocks --------------------------------------------------------------------

    def _user(self) -> _User:
        rng = self.rng
        platform = rng.choices(("Web", "iOS", "Android"), weights=(3, 4, 3))[0]
        devices, versions = DEVICES[platform]
        tz, offset = rng.choice(TIMEZONES)
        uid = "".join(rng.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(10))
        ip = f"203.0.113.{rng.randrange(1, 255)}" if rng.random() < 0.5 else f"192.0.2.{rng.randrange(1, 255)}"
        return _User(uid, platform, rng.choice(devices), rng.choice(versions), tz, offset, ip, rng.random() < 0.15)

    def _timestamp(self, ts: datetime) -> str:
        if self.rng.random() < 0.02:
            self.offset_ts += 1
            return iso_offset(ts, self.rng.choice(OFFSETS))
        return iso_z(ts)

    def emit(self, ts: datetime, record: dict) -> None:
        if self.start <= ts < self.end:
            self.events.append((ts, len(self.events), record))

    def record(
        self,
        name: str,
        ts: datetime,
        user: _User,
        *,
        props: dict | None = None,
        sdk: bool = True,
        action_source: str = "user",
        stream: dict | None = None,
        card: dict | None = None,
        platform: dict | None = None,
    ) -> dict:
        rec: dict[str, Any] = {"id": new_uuid(self.rng), "endUserId": user.id, "analyticsEvent": name}
        rec["timestamp"] = self._timestamp(ts)
        if props:
            rec["properties"] = props
        ctx: dict[str, Any] = {}
        if sdk:
            ctx["ip"] = user.ip
        ctx["actionSource"] = action_source
        if sdk:
            ctx["userLocalTimestamp"] = iso_offset(ts, user.offset)
        rec["eventContext"] = ctx
        if sdk:
            rec["sdkContext"] = {
                "platform": user.platform,
                "sdkVersion": user.sdk_version,
                "sdkDevice": user.device,
                "sdkTimezone": user.tz,
                "containerId": CONTAINERS[stream["streamId"]] if stream else CONTAINERS["TspKk"],
                "isDnDActive": user.dnd,
            }
        if stream:
            rec["streamContext"] = stream
        if card:
            rec["cardContext"] = card
        if platform:
            rec["platformContext"] = platform
        return rec

    def stream_ctx(self, stream_id: str, position: int | None = None, mode: str | None = None) -> dict:
        length = self.rng.randint(1, 12)
        ctx: dict[str, Any] = {
            "streamId": stream_id,
            "streamName": STREAMS[stream_id],
            "streamLength": max(length, position or 1),
            "streamLengthVisible": min(max(length, position or 1), self.rng.randint(1, 4)),
        }
        if position is not None:
            ctx["cardPositionInStream"] = position
        if mode is not None:
            ctx["displayMode"] = mode
        return ctx

    @staticmethod
    def card_ctx(card: _Card, status: str, view: str | None = None) -> dict:
        ctx: dict[str, Any] = {
            "cardInstanceId": card.instance,
            "cardPriority": card.tpl.priority,
            "cardInstanceStatus": status,
        }
        if view:
            ctx["cardViewState"] = view
        ctx["cardTemplateSettings"] = {"sendNotifications": card.tpl.notify}
        ctx["cardTemplateId"] = card.tpl.id
        ctx["cardTemplateName"] = card.tpl.name
        ctx["cardTemplateVersion"] = card.tpl.version
        ctx["cardPresentation"] = card.tpl.presentation
        ctx["publishedAt"] = iso_z(card.published_at)
        return ctx

    @staticmethod
    def platform_ctx(card: _Card, **extra: Any) -> dict:
        ctx: dict[str, Any] = {}
        if "eventDetail" in extra:
            ctx["eventDetail"] = extra["eventDetail"]
        ctx["targetStreamIds"] = list(card.tpl.streams)
        ctx["targetPlatforms"] = list(card.tpl.platforms)
        for key in ("metadata", "eventNotificationDetail"):
            if key in extra:
                ctx[key] = extra[key]
        ctx["lifecycleId"] = card.lifecycle
        ctx["triggerEventSource"] = "test" if card.test else "live"
        ctx["flowInstanceId"] = card.flow_instance
        ctx["flowInvocationId"] = card.flow_invocation
        ctx["flowConfigId"] = card.tpl.flow_config
        ctx["flowVersion"] = card.tpl.flow_version
        ctx["cardCreationStepId"] = card.tpl.step
        return ctx

    # -- activities ---------------------------------------------------------------------------

    def card_lifecycle(self, t0: datetime, user: _User | None = None, tpl: _Template | None = None) -> None:
        rng = self.rng
        test = user is None and rng.random() < 0.05
        if user is None:
            user = self.tester if test else rng.choice(self.users)
        tpl = tpl or rng.choice(TEMPLATES)
        lifecycle = new_uuid(rng)
        card = _Card(
            tpl, user, lifecycle,
            f"{tpl.id}|{'test' if test else 'live'}|{lifecycle}|{tpl.version}",
            t0, test, new_uuid(rng), new_uuid(rng),
        )
        payload = {"customerName": rng.choice(("Sam", "Alex", "Kim", "Jo")), "amount": round(rng.uniform(5, 500), 2)}
        meta = {"requestId": new_uuid(rng), "origin": rng.choice(("crm", "core-banking", "workbench"))}
        self.emit(t0, self.record(
            "card-published", t0, user, sdk=False,
            action_source="customer" if test else rng.choice(("internal", "customer")),
            card=self.card_ctx(card, "active"),
            platform=self.platform_ctx(card, eventDetail=payload, metadata=meta),
        ))
        t = t0
        if tpl.notify:
            t = t0 + timedelta(milliseconds=rng.randrange(300, 20_000))
            if user.dnd and rng.random() < 0.4:
                self.emit(t, self.record("notifications-not-sent", t, user, sdk=False, action_source="internal",
                                         card=self.card_ctx(card, "active"), platform=self.platform_ctx(card)))
            else:
                note = {"title": tpl.name, "body": f"You have a new card: {tpl.name}"}
                self.emit(t, self.record(
                    "notification-sent", t, user, sdk=False, action_source="internal",
                    props={"notificationScenario": "newCard", "rescheduledBasedOnEndUserPrefs": user.dnd},
                    card=self.card_ctx(card, "active"),
                    platform=self.platform_ctx(card, eventNotificationDetail=note),
                ))
                if user.platform != "Web" and rng.random() < 0.6:
                    t += timedelta(milliseconds=rng.randrange(200, 5_000))
                    self.emit(t, self.record("notification-received", t, user, card=self.card_ctx(card, "active"),
                                             platform=self.platform_ctx(card)))
        if rng.random() < 0.12:
            return  # never seen (yet)
        stream_id = rng.choice(tpl.streams)
        position = rng.randint(1, 6)
        t = t0 + timedelta(seconds=rng.randrange(60, 4 * 3600))
        for _ in range(rng.choice((1, 1, 2, 3))):
            self.emit(t, self.record("card-displayed", t, user, stream=self.stream_ctx(stream_id, position),
                                     card=self.card_ctx(card, "active", "topview"), platform=self.platform_ctx(card)))
            t += timedelta(seconds=rng.randrange(5, 900))
        self._outcome(card, t, stream_id, position)

    def _outcome(self, card: _Card, t: datetime, stream_id: str, position: int) -> None:
        rng, user, tpl = self.rng, card.user, card.tpl

        def sdk_event(name: str, at: datetime, status: str = "active", view: str = "topview", **kw: Any) -> None:
            self.emit(at, self.record(name, at, user, stream=self.stream_ctx(stream_id, position),
                                      card=self.card_ctx(card, status, view), platform=self.platform_ctx(card), **kw))

        if tpl.video and rng.random() < 0.5:
            sdk_event("video-played", t)
            t += timedelta(seconds=rng.randrange(10, 120))
            if rng.random() < 0.6:
                sdk_event("video-completed", t)
        r = rng.random()

        def step() -> timedelta:
            return timedelta(milliseconds=rng.randrange(1_500, 180_000))

        if r < 0.35:  # completed, sometimes through a subview
            if rng.random() < 0.3:
                sub_id, title, level = rng.choice(SUBVIEWS)
                sub = {"subviewId": sub_id, "subviewTitle": title, "subviewLevel": level}
                sdk_event("card-subview-displayed", t, view="subview", props=dict(sub))
                t += step()
                sdk_event("card-subview-exited", t, view="subview", props=dict(sub))
                t += step()
            props: dict[str, Any] = {"previousStatus": "published"}
            if tpl.responses and rng.random() < 0.7:
                props["values"] = {"rating": rng.randint(1, 5), "comment": rng.choice(("Great", "ok", "Could be faster, thanks"))}
            t += step()
            self.emit(t, self.record("card-completed", t, user, props=props, stream=self.stream_ctx(stream_id, position),
                                     card=self.card_ctx(card, "completed", "topview"),
                                     platform=self.platform_ctx(card, eventDetail={"submitted": True, "button": "Submit"})))
        elif r < 0.55:
            t += step()
            sdk_event("card-dismissed", t, status="dismissed", props={"previousStatus": "published"})
        elif r < 0.65:  # snoozed, then back
            sdk_event("snooze-options-displayed", t)
            t += step()
            period = rng.choice(("PT1H", "PT3H", "P1D"))
            if rng.random() < 0.2:
                sdk_event("snooze-options-canceled", t)
                return
            sdk_event("card-snoozed", t, status="snoozed", props={"previousStatus": "published", "snoozePeriod": period})
            back = t + {"PT1H": timedelta(hours=1), "PT3H": timedelta(hours=3), "P1D": timedelta(days=1)}[period]
            self.emit(back, self.record("card-unsnoozed", back, user, sdk=False, action_source="internal",
                                        card=self.card_ctx(card, "active"), platform=self.platform_ctx(card)))
            if tpl.notify:
                back += timedelta(milliseconds=rng.randrange(300, 10_000))
                self.emit(back, self.record(
                    "notification-sent", back, user, sdk=False, action_source="internal",
                    props={"notificationScenario": "unsnoozedCard", "rescheduledBasedOnEndUserPrefs": False},
                    card=self.card_ctx(card, "active"),
                    platform=self.platform_ctx(card, eventNotificationDetail={"title": tpl.name, "body": "Reminder"}),
                ))
        elif r < 0.75:  # redirected out of the card
            if rng.random() < 0.7:
                props = {"linkMethod": "url", "detail": rng.choice(("linkButton", "textLink", "image")),
                         "url": f"https://example.test/app/{tpl.id.lower()}?utm_source=atomic&card={card.lifecycle[:8]}"}
            else:
                props = {"linkMethod": "payload", "detail": "submitButton", "payload": _json_text({"screen": "payments"})}
            sdk_event("user-redirected", t, props=props)
            if rng.random() < 0.5:
                t += step()
                self.emit(t, self.record("card-completed", t, user, props={"previousStatus": "published"},
                                         stream=self.stream_ctx(stream_id, position),
                                         card=self.card_ctx(card, "completed", "topview"), platform=self.platform_ctx(card)))
        elif r < 0.85:  # votes
            if rng.random() < 0.5:
                sdk_event("card-voted-up", t, props={"source": rng.choice(("overflow-menu", "card-button"))})
            else:
                props = {"source": "overflow-menu", "reason": rng.choice(("not-relevant", "too-often", "other"))}
                if props["reason"] == "other" or rng.random() < 0.3:
                    props["message"] = rng.choice(DOWNVOTE_MESSAGES)
                sdk_event("card-voted-down", t, props=props)
        elif r < 0.92:
            at = card.published_at + timedelta(hours=rng.randint(6, 20))
            self.emit(at, self.record("card-expired", at, user, sdk=False, action_source="internal",
                                      props={"previousStatus": "published"},
                                      card=self.card_ctx(card, "expired"), platform=self.platform_ctx(card)))
        # else: left active

    def app_session(self, t0: datetime, user: _User | None = None) -> None:
        rng = self.rng
        user = user or rng.choice(self.users)
        self.emit(t0, self.record("sdk-initialized", t0, user))
        t = t0 + timedelta(milliseconds=rng.randrange(300, 4_000))
        stream_id = rng.choice(tuple(STREAMS))
        self.emit(t, self.record("stream-displayed", t, user, stream=self.stream_ctx(stream_id, mode=rng.choice(("stream", "stream", "single")))))
        if rng.random() < 0.25:
            t += timedelta(milliseconds=rng.randrange(100, 2_000))
            variables = {"firstName": rng.choice(("Sam", "Alex", "Kim")), "balance": f"${rng.randint(10, 9999):,}.{rng.randint(0, 99):02d}"}
            self.emit(t, self.record("runtime-vars-updated", t, user, props={"resolvedVariables": variables}))
        if rng.random() < 0.06:
            t += timedelta(milliseconds=rng.randrange(100, 30_000))
            self.emit(t, self.record("request-failed", t, user, props={"path": rng.choice(("/v1/cards", "/v1/runtime-vars", "/v1/events")), "statusCode": rng.choice((408, 429, 500, 502, 503))}))
        if rng.random() < 0.3:
            t += timedelta(seconds=rng.randrange(20, 600))
            self.emit(t, self.record("stream-displayed", t, user, stream=self.stream_ctx(rng.choice(tuple(STREAMS)), mode="stream")))

    def segment_change(self, t0: datetime) -> None:
        rng = self.rng
        user = rng.choice(self.users)
        name = "segment-entered" if rng.random() < 0.7 else "segment-exited"
        self.emit(t0, self.record(name, t0, user, sdk=False, action_source="internal"))

    def action_flow(self, t0: datetime) -> None:
        rng = self.rng
        user = rng.choice(self.users)
        tpl = rng.choice(TEMPLATES)
        flow = {"flowInstanceId": new_uuid(rng), "flowInvocationId": new_uuid(rng), "flowConfigId": tpl.flow_config, "flowVersion": tpl.flow_version}
        t = t0
        self.emit(t, self.record("action-flow-started", t, user, sdk=False, action_source="customer", platform=dict(flow)))
        for _ in range(rng.randint(1, 2)):
            t += timedelta(milliseconds=rng.randrange(50, 3_000))
            self.emit(t, self.record("action-flow-step-completed", t, user, sdk=False, action_source="internal", platform=dict(flow)))
        t += timedelta(milliseconds=rng.randrange(50, 3_000))
        if rng.random() < 0.1:
            self.emit(t, self.record("action-flow-step-failed", t, user, sdk=False, action_source="internal", platform=dict(flow)))
            self.emit(t, self.record("action-flow-failed", t, user, sdk=False, action_source="internal", platform=dict(flow)))
        else:
            self.emit(t, self.record("action-flow-completed", t, user, sdk=False, action_source="internal", platform=dict(flow)))

    def custom_event(self, t0: datetime) -> None:
        """A custom event as the vendor's API example sends it: eventName + eventType, no analyticsEvent."""
        rng = self.rng
        user = rng.choice(self.users)
        rec: dict[str, Any] = {
            "id": new_uuid(rng),
            "eventName": "my-custom-event",
            "eventType": "custom",
            "endUserId": user.id,
            "timestamp": self._timestamp(t0),
            "properties": {
                "screen": rng.choice(CUSTOM_SCREENS),
                "firstVisit": rng.random() < 0.3,
                "amount": round(rng.uniform(1, 200), 2),
                "tags": rng.sample(["promo", "beta", "vip"], rng.randint(0, 2)),
            },
        }
        if rng.random() < 0.5:
            tpl = rng.choice(TEMPLATES)
            rec["cardContext"] = {"cardTemplateId": tpl.id, "cardInstanceId": f"{tpl.id}|live|{new_uuid(rng)}|{tpl.version}"}
        if rng.random() < 0.5:
            rec["platformContext"] = {"flowInstanceId": new_uuid(rng), "flowInvocationId": new_uuid(rng), "flowConfigId": rng.choice(TEMPLATES).flow_config}
        self.emit(t0, rec)

    def scheduled_publish(self, hour: datetime) -> None:
        """A scheduled flow publishing on the hour: events at exactly HH:00:00.000."""
        for user in self.rng.sample(self.users, self.rng.randint(1, 3)):
            self.card_lifecycle(hour, user=user, tpl=SCHEDULED)
            self.boundary += 1

    def simulate(self, event_hours: list[datetime]) -> None:
        rng = self.rng
        per_hour: dict[datetime, int] = {}
        activities = (self.card_lifecycle, self.app_session, self.segment_change, self.action_flow, self.custom_event)
        weights = (55, 33, 4, 4, 4)
        for i, hour in enumerate(event_hours):
            if i % 6 == 0:
                self._run(self.scheduled_publish, hour, per_hour)
            target = rng.randint(60, 150)
            while per_hour.get(hour, 0) < target:
                activity = rng.choices(activities, weights=weights)[0]
                self._run(activity, event_time_in(hour, rng), per_hour)

    def _run(self, activity, t0: datetime, per_hour: dict[datetime, int]) -> None:
        before = len(self.events)
        activity(t0)
        for ts, _, _ in self.events[before:]:
            h = floor_hour(ts)
            per_hour[h] = per_hour.get(h, 0) + 1


# ---------------------------------------------------------------------------------------------
# Delivery: batches, anomalies, files


@dataclass
class _Delivery:
    event: Event
    seq: int
    tainted: bool = False  # made invalid on purpose: never duplicated


def _malformed_line(rng: random.Random) -> str:
    broken = dumps({"id": new_uuid(rng), "endUserId": "019mr8mf4r", "analyticsEvent": "card-displayed"})
    return rng.choice((
        broken[: rng.randrange(10, len(broken) - 5)],
        "<html><body>502 Bad Gateway</body></html>",
        "{'id': 'not-json', 'analyticsEvent': 'card-displayed'}",
    ))


def generate(out: Path, start: datetime, hours: int, rng: random.Random,
             formats: tuple[str, ...] = FORMATS) -> GenerationSummary:
    """Write the Atomic batches for the arrival hours `start+1h … start+hours` under `out/atomic/`,
    the files taking the `formats` in turn."""
    summary = GenerationSummary(source=SOURCE)
    if hours <= 0:
        return summary
    start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    event_hours = hour_range(start, hours)
    last = start + hours * HOUR
    batch_keys = [h + HOUR for h in event_hours]

    world = _World(rng, start, last)
    world.simulate(event_hours)
    world.events.sort(key=lambda e: (e[0], e[1]))

    # arrival: the batch of the hour the event happened in, a share of them later (up to 23 h)
    deliveries: list[_Delivery] = []
    for seq, (ts, _, record) in enumerate(world.events):
        own = floor_hour(ts) + HOUR
        arrival = own
        delay = lateness(rng, late_share=0.05, max_hours=23)
        if delay:
            late_by = own + timedelta(hours=int(delay / HOUR))
            if late_by <= last:
                arrival = late_by
        deliveries.append(_Delivery(Event(ts, record, arrival), seq))
    _ensure_late(deliveries, last, rng)

    batches: dict[datetime, list[tuple[tuple, dict]]] = {k: [] for k in batch_keys}
    for d in deliveries:
        batches[d.event.arrival_hour].append(((d.event.ts, d.seq), d.event.record))
        if d.event.arrival_hour > floor_hour(d.event.ts) + HOUR:
            summary.late += 1

    # invalid records: missing id, missing timestamp, one analyticsEvent outside the enum
    by_batch: dict[datetime, list[_Delivery]] = {k: [] for k in batch_keys}
    for d in deliveries:
        by_batch[d.event.arrival_hour].append(d)

    def taint(key: datetime, change) -> bool:
        candidates = [d for d in by_batch[key] if not d.tainted and "analyticsEvent" in d.event.record]
        if not candidates:
            return False
        d = rng.choice(candidates)
        d.tainted = True
        change(d.event.record)
        return True

    for i, key in enumerate(batch_keys):
        if i == hours // 3 or rng.random() < 0.04:
            summary.missing_required += taint(key, lambda r: r.pop("id"))
        if i == (2 * hours) // 3 or rng.random() < 0.04:
            summary.missing_required += taint(key, lambda r: r.pop("timestamp"))
    if taint(batch_keys[hours // 2], lambda r: r.update(analyticsEvent=BAD_EVENT_NAME)):
        summary.notes.append(f"1 record with analyticsEvent {BAD_EVENT_NAME!r} (not in the enum) in batch {batch_keys[hours // 2]:%Y-%m-%dT%H}")

    # duplicates: re-delivered in the same batch, and in a later batch within 24 h
    extra: dict[datetime, list[dict]] = {k: [] for k in batch_keys}
    same = later = 0
    clean = [d for d in deliveries if not d.tainted]
    for d in clean:
        k = d.event.arrival_hour
        r = rng.random()
        if r < 0.03:
            extra[k].append(d.event.record)
            same += 1
        elif r < 0.055 and k < last:
            again = k + HOUR * rng.randint(1, min(23, int((last - k) / HOUR)))
            batches[again].append(((d.event.ts, d.seq), d.event.record))
            later += 1
    if clean and same == 0:
        d = clean[len(clean) // 2]
        extra[d.event.arrival_hour].append(d.event.record)
        same += 1
    movable = [d for d in clean if d.event.arrival_hour < last]
    if movable and later == 0:
        d = movable[0]
        batches[d.event.arrival_hour + HOUR].append(((d.event.ts, d.seq), d.event.record))
        later += 1
    summary.duplicates = same + later

    # files
    root = Path(out) / SOURCE
    file_no = 0
    malformed_placed = False
    formats_used: dict[str, int] = {}
    for i, key in enumerate(batch_keys):
        rows = [rec for _, rec in sorted(batches[key], key=lambda e: e[0])]
        for rec in extra[key]:
            rows.insert(rng.randrange(len(rows) + 1), rec)
        parts = 2 if (len(rows) > 120 or rng.random() < 0.25) and len(rows) > 1 else 1
        cut = len(rows) // 2 if parts == 2 else len(rows)
        chunks = [rows[:cut], rows[cut:]] if parts == 2 else [rows]
        if not rows:
            continue  # the vendor lists no file for an hour without events
        folder = root / f"{key:%Y-%m-%dT%H}"
        for j, chunk in enumerate(chunks):
            fmt = formats[file_no % len(formats)]
            file_no += 1
            items: list[dict | str] = list(chunk)
            if fmt == "ndjson" and (not malformed_placed or rng.random() < 0.3):
                for _ in range(rng.randint(1, 2)):
                    items.insert(rng.randrange(len(items) + 1), _malformed_line(rng))
                    summary.malformed += 1
                malformed_placed = True
            path = folder / f"analytics-{key:%Y-%m-%dT%H}-{j}.{fmt}"
            _WRITERS[fmt](path, items)
            summary.files += 1
            summary.records += len(chunk)
            formats_used[fmt] = formats_used.get(fmt, 0) + 1

    summary.notes.append(f"{world.boundary} card publications exactly on the hour")
    summary.notes.append(f"{world.offset_ts} timestamps written with a UTC offset instead of Z")
    summary.notes.append("files per format: " + ", ".join(f"{k} {v}" for k, v in sorted(formats_used.items())))
    return summary


def _ensure_late(deliveries: list[_Delivery], last: datetime, rng: random.Random) -> None:
    """At least one late event when the window allows, and one crossing midnight when it spans one."""

    def late(d: _Delivery) -> bool:
        return d.event.arrival_hour > floor_hour(d.event.ts) + HOUR

    def crosses(d: _Delivery) -> bool:  # its own batch is on one day, its delivery on the next
        return late(d) and d.event.arrival_hour.date() > (floor_hour(d.event.ts) + HOUR).date()

    if not any(crosses(d) for d in deliveries):
        # an event of 21:00-23:59 delivered in the 02:00-04:00 batch of the next day
        options = []
        for d in deliveries:
            own = floor_hour(d.event.ts)
            if own.hour in (21, 22):
                target = own.replace(hour=0) + timedelta(days=1, hours=rng.randint(2, 4))
                if target <= last:
                    options.append((d, target))
        if options:
            d, target = options[rng.randrange(len(options))]
            d.event.arrival_hour = target
    if not any(late(d) for d in deliveries):
        options = [d for d in deliveries if floor_hour(d.event.ts) + 3 * HOUR <= last]
        if options:
            d = options[rng.randrange(len(options))]
            d.event.arrival_hour = floor_hour(d.event.ts) + 3 * HOUR
