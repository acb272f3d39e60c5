"""A fake of Altis's analytics events API on loopback (http.server in a thread, port 0), as the
vendor document says (shared/vendor-docs/altis-data-export.txt):

- `GET /wp-json/analytics/v1/events/<YYYY-MM-DD>?format=csv|json&chunk_size=N` needs HTTP basic
  auth with the user's application password (401 otherwise); `format` defaults to json;
  `chunk_size` defaults to 3000, above 10000 (or not a positive number) is a 400.
- The answer is streamed (chunked transfer encoding), one HTTP chunk per `chunk_size` records; the
  JSON is an array of nested records, the CSV has flattened dotted keys (the generator's shapes,
  sample_exports/altis.py, which `altis_landed` reads).
- `hang_next(n)` keeps the next n requests waiting before any answer (past the client's timeout);
  `break_next(n)` breaks the next n answers off halfway through their first chunk;
  `fail_next(n, status)` answers the next n requests with `status` (a server out of memory: 500).
- `add_samples(first_day, days, seed)` holds the warehouse's sample events (sample_exports/altis.py)
  of those days: what `python -m fake_vendors altis` serves to try the puller by hand.
"""

from __future__ import annotations

import base64
import csv
import io
import threading
import uuid
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from fake_vendors.loopback import LoopbackServer

from sample_exports import altis as gen
from sample_exports.common import dumps

UTC = timezone.utc
USER = "exporter"
PASSWORD = "abcd EFGH 1234 ijkl MNOP 5678"  # WordPress application passwords look like this
PATH = "/wp-json/analytics/v1/events/"


def records(day: str, n: int, tag: str = "a") -> list[dict]:
    """n pageView records of `day`, one a minute from 00:00 UTC, with the fields the contract needs."""
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
    out = []
    for i in range(n):
        ts = int((start + timedelta(minutes=i)).timestamp() * 1000)
        out.append({"event_type": "pageView", "event_timestamp": ts, "arrival_timestamp": ts + 500,
                    "attributes": {"url": f"https://news.example.com/{tag}/{i}/", "title": f"{tag} {i}", "blogId": "1"},
                    "metrics": {"elapsed": 1000 + i},
                    "endpoint": {"Id": str(uuid.UUID(int=i + 1)), "Demographic": {"Platform": "Linux"}},
                    "session": {"session_id": f"{tag}-s{i // 5}", "start_timestamp": ts}})
    return out


def render(records: list[dict], fmt: str, chunk_size: int) -> list[bytes]:
    """The streamed body, as the pieces sent: one per `chunk_size` records."""
    groups = [records[i:i + chunk_size] for i in range(0, len(records), chunk_size)] or [[]]
    if fmt == "json":
        pieces, first = [], True
        for group in groups:
            text = "".join(("[\n" if first and j == 0 else ",\n") + dumps(r) for j, r in enumerate(group))
            if first and not group:
                text = "["
            pieces.append(text.encode())
            first = False
        pieces[-1] += b"\n]\n"
        return pieces
    rows = [gen._flatten(r) for r in records]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    pieces = []
    for g, group in enumerate(groups):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if g == 0:
            writer.writerow(list(columns))
        for r in group:
            row = gen._flatten(r)
            writer.writerow([gen._cell(row.get(c)) for c in columns])
        pieces.append(buf.getvalue().encode())
    return pieces


class FakeAltis(LoopbackServer):
    def __init__(self, user: str = USER, password: str = PASSWORD, hang_seconds: float = 3.0, port: int = 0):
        self.user, self.password, self.hang_seconds = user, password, hang_seconds
        self.days: dict[str, list[dict]] = {}
        self.requests: list[dict] = []  # day, format, chunk_size, status, outcome
        self._hang_next = 0
        self._break_next = 0
        self._fail_next: list[int] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._serve(port)

    def __exit__(self, *exc) -> None:
        self._closing.set()
        super().__exit__(*exc)

    def set_day(self, day: str, recs: list[dict]) -> None:
        self.days[day] = recs

    def add_samples(self, first_day: date, days: int, seed: int = 7) -> list[str]:
        """The generator's events of `days` days from `first_day`, as their daily exports; returns the days."""
        import json
        import random
        import tempfile
        from pathlib import Path

        start = datetime.combine(first_day, datetime.min.time(), UTC)
        with tempfile.TemporaryDirectory(prefix="fake-altis-") as tmp:
            gen.generate(Path(tmp), start, days * 24, random.Random(seed), daily_format="json")
            for n in range(days):
                day = (first_day + timedelta(days=n)).isoformat()
                self.days[day] = json.loads((Path(tmp) / gen.SOURCE / f"{day}.json").read_text())
        return sorted(self.days)[-days:]

    def hang_next(self, n: int = 1) -> None:
        self._hang_next += n

    def break_next(self, n: int = 1) -> None:
        self._break_next += n

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        self._fail_next.extend([status] * n)

    def _take(self, what: str) -> bool:
        with self._lock:
            if getattr(self, what) > 0:
                setattr(self, what, getattr(self, what) - 1)
                return True
            return False

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, **headers: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                entry = {"day": parts.path.removeprefix(PATH), "format": query.get("format", "json"),
                         "chunk_size": query.get("chunk_size"), "status": 200, "outcome": "ok"}
                fake.requests.append(entry)
                expected = "Basic " + base64.b64encode(f"{fake.user}:{fake.password}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    entry["status"] = 401
                    return self._send(401, b'{"code":"rest_forbidden","message":"Sorry, you are not allowed to do that."}',
                                      **{"WWW-Authenticate": 'Basic realm="WordPress"'})
                if not parts.path.startswith(PATH):
                    entry["status"] = 404
                    return self._send(404, b'{"code":"rest_no_route"}')
                try:
                    size = int(query.get("chunk_size", "3000"))
                except ValueError:
                    size = -1
                entry["chunk_size"] = size
                fmt = entry["format"]
                if not 1 <= size <= 10000 or fmt not in ("csv", "json"):
                    entry["status"] = 400
                    return self._send(400, b'{"code":"rest_invalid_param","message":"Invalid parameter(s): chunk_size"}')
                try:
                    day = date.fromisoformat(entry["day"]).isoformat()
                except ValueError:
                    entry["status"] = 400
                    return self._send(400, b'{"code":"rest_invalid_param","message":"Invalid parameter(s): date"}')
                with fake._lock:
                    failing = fake._fail_next.pop(0) if fake._fail_next else None
                if failing:
                    entry["status"], entry["outcome"] = failing, "failed"
                    return self._send(failing, b'{"code":"internal_server_error","message":"Allowed memory size exhausted"}')
                if fake._take("_hang_next"):
                    entry["outcome"] = "hung"
                    fake._closing.wait(fake.hang_seconds)
                    self.close_connection = True
                    return
                pieces = render(fake.days.get(day, []), fmt, size)
                broken = fake._take("_break_next")
                self.send_response(200)
                self.send_header("Content-Type", "text/csv" if fmt == "csv" else "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in pieces:
                    if broken:  # cut off halfway through the first chunk
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece[: len(piece) // 2])
                        self.wfile.flush()
                        entry["outcome"] = "broken"
                        self.close_connection = True
                        return
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

        return Handler
