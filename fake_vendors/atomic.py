"""A fake of Atomic's batched analytics API on loopback (http.server in a thread, port 0), behaving
as the vendor document says (shared/vendor-docs/atomic-analytics-export.txt):

- `GET /v1/{environmentId}/analytics/batched?from=&to=&format=` needs `Authorization: Bearer <token>`
  (401 otherwise); `from` is rounded down and `to` up to the hour; more than 30 days is a 400; the
  format is ndjson (default), csv or parquet.
- The answer `{"data": {batch key: [pre-signed URL, ...]}}` holds the keys in (from, to] that are
  processed: an empty list for an hour without events; an hour not yet processed is absent, and so
  is one older than 30 days (gone from the vendor).
- A pre-signed URL `/files/...?expires=&signature=` answers 403 (S3's "Request has expired") once
  `url_ttl` seconds have passed; `expire_next(n)` issues the next n answers already expired.
- `truncate_next(n)` breaks the next n downloads off halfway.
- `fail_next(n, status, retry_after)` answers the next n API requests with `status` (a 429 with a
  `Retry-After` header when given); `fail_downloads_next(n, status)` the next n downloads.
- `add_samples(start, hours, seed)` holds the warehouse's sample batches (sample_exports/atomic.py,
  in each format) for the batch keys start+1h .. start+hours: what `python -m fake_vendors atomic`
  serves to try the puller by hand.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from fake_vendors.loopback import LoopbackServer

from sample_exports import atomic as gen

UTC = timezone.utc
HOUR = timedelta(hours=1)
FORMATS = {"ndjson": gen.write_ndjson, "csv": gen.write_csv, "parquet": gen.write_parquet}
KEY = b"fake-atomic-signing-key"


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)


def _floor(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _ceil(t: datetime) -> datetime:
    return _floor(t) if _floor(t) == t else _floor(t) + HOUR


class FakeAtomic(LoopbackServer):
    def __init__(self, token: str, environment_id: str = "env-1", now: datetime | None = None, url_ttl: float = 900,
                 retention_days: int = 30, port: int = 0):
        self.token, self.environment_id, self.url_ttl = token, environment_id, url_ttl
        self.retention_days = retention_days  # the vendor document: 30 days
        self.now = now or datetime.now(UTC)
        self.batches: dict[str, list[tuple[str, list[dict]]]] = {}  # batch key -> [(file stem, records)]
        self.api_requests: list[dict] = []  # from, to (rounded), format, status
        self.request_times: list[float] = []  # time.monotonic() of every API request, answered or not
        self.samples: dict[str, dict[str, list[tuple[str, Path]]]] = {}  # format -> batch key -> [(stem, file)]
        self.downloads: list[tuple[str, int]] = []  # path, status
        self.download_delay = 0.0  # seconds each download waits before answering
        self.in_flight = self.most_in_flight = 0  # downloads being answered at once, and the most seen
        self._expire_next = 0
        self._fail_next: list[tuple[int, int | None]] = []
        self._fail_downloads_next: list[int] = []
        self._truncate_next = 0
        self._rendered: dict[tuple[str, str, str], bytes] = {}
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-atomic-")
        self._serve(port)

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self._tmp.cleanup()

    # --- what the vendor holds -----------------------------------------------------------------
    def add_batch(self, key: str, files: dict[str, list[dict]]) -> None:
        self.batches[key] = list(files.items())

    def add_empty(self, key: str) -> None:
        self.batches[key] = []

    def expire_next(self, answers: int = 1) -> None:
        self._expire_next += answers

    def truncate_next(self, downloads: int = 1) -> None:
        """The next downloads send half their bytes (under the full Content-Length), then close."""
        self._truncate_next += downloads

    def fail_next(self, requests: int, status: int = 503, retry_after: int | None = None) -> None:
        self._fail_next += [(status, retry_after)] * requests

    def fail_downloads_next(self, downloads: int, status: int = 500) -> None:
        self._fail_downloads_next += [status] * downloads

    def add_samples(self, start: datetime, hours: int, seed: int = 7) -> list[str]:
        """The sample batches of keys start+1h .. start+hours in every format (an hour without
        events is answered with an empty list); returns the batch keys."""
        import random

        keys = [f"{start + HOUR * (i + 1):%Y-%m-%dT%H}" for i in range(hours)]
        for fmt in FORMATS:
            root = Path(self._tmp.name, "samples", fmt)
            gen.generate(root, start, hours, random.Random(seed), formats=(fmt,))
            self.samples[fmt] = {key: sorted((p.stem, p) for p in (root / "atomic" / key).glob(f"*.{fmt}"))
                                 for key in keys}
        return keys

    # --- behaviour -----------------------------------------------------------------------------
    def _sign(self, path: str, expires: int) -> str:
        return hmac.new(KEY, f"{path}|{expires}".encode(), hashlib.sha256).hexdigest()

    def _render(self, key: str, stem: str, fmt: str, records: list[dict]) -> bytes:
        with self._lock:
            if (key, stem, fmt) not in self._rendered:
                path = Path(self._tmp.name, key, f"{stem}.{fmt}")
                FORMATS[fmt](path, records)
                self._rendered[key, stem, fmt] = path.read_bytes()
            return self._rendered[key, stem, fmt]

    def batched(self, query: dict[str, str]) -> tuple[int, dict]:
        try:
            start, end = _floor(_parse_time(query["from"])), _ceil(_parse_time(query["to"]))
        except (KeyError, ValueError):
            return 400, {"error": "from and to must be ISO 8601 timestamps"}
        fmt = query.get("format") or "ndjson"
        if fmt not in FORMATS:
            return 400, {"error": f"format must be ndjson, parquet or csv, got {fmt}"}
        if end - start > timedelta(days=30):
            return 400, {"error": "the maximum allowed date range is 30 days"}
        self.api_requests.append({"from": start, "to": end, "format": fmt})
        with self._lock:
            expired, self._expire_next = self._expire_next > 0, max(0, self._expire_next - 1)
        expires = int(time.time() + (-60 if expired else self.url_ttl))
        oldest = self.now - timedelta(days=self.retention_days)
        data = {}
        held = {key: [stem for stem, _ in files] for key, files in self.batches.items()}
        held.update({key: [stem for stem, _ in files] for key, files in self.samples.get(fmt, {}).items()})
        for key, stems in sorted(held.items()):
            hour = datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC)
            if not (start < hour <= end) or hour - HOUR < oldest:
                continue  # outside the range, or gone from the vendor
            urls = []
            for stem in stems:
                path = f"/files/{self.environment_id}/{key}/{quote(stem)}.{fmt}"
                urls.append(f"{self.base_url}{path}?expires={expires}&signature={self._sign(path, expires)}")
            data[key] = urls
        return 200, {"data": data}

    def file(self, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        try:
            expires = int(query["expires"])
            good = hmac.compare_digest(query["signature"], self._sign(path, expires))
        except (KeyError, ValueError):
            good = False
        if not good:
            return 403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>"
        if time.time() > expires:
            return 403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
        _, _, env, key, name = path.split("/", 4)
        stem, _, fmt = unquote(name).rpartition(".")
        sample = dict(self.samples.get(fmt, {}).get(key, [])).get(stem)
        if env == self.environment_id and sample is not None:
            return 200, sample.read_bytes()
        records = dict(self.batches.get(key, [])).get(stem)
        if env != self.environment_id or records is None:
            return 404, b"<Error><Code>NoSuchKey</Code></Error>"
        return 200, self._render(key, stem, fmt, records)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, content_type: str, truncate: bool = False,
                      retry_after: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if retry_after is not None:
                    self.send_header("Retry-After", str(retry_after))
                self.send_header("Content-Length", str(len(body)))
                if truncate:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if truncate else body)
                if truncate:
                    self.close_connection = True

            def _download(self, path: str, query: dict[str, str]) -> None:
                with fake._lock:
                    failure = fake._fail_downloads_next.pop(0) if fake._fail_downloads_next else None
                if failure:
                    fake.downloads.append((path, failure))
                    return self._send(failure, b"<Error><Code>InternalError</Code></Error>", "application/xml")
                status, body = fake.file(path, query)
                fake.downloads.append((path, status))
                with fake._lock:
                    truncate, fake._truncate_next = (status == 200 and fake._truncate_next > 0), (
                        fake._truncate_next - 1 if status == 200 and fake._truncate_next > 0 else fake._truncate_next)
                return self._send(status, body, "application/octet-stream", truncate)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path.startswith("/files/"):
                    with fake._lock:
                        fake.in_flight += 1
                        fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
                    # Counted while it waits, not while the answer is sent: a client that read it
                    # all may start its next download before this handler returns.
                    try:
                        time.sleep(fake.download_delay)
                    finally:
                        with fake._lock:
                            fake.in_flight -= 1
                    return self._download(parts.path, query)
                if parts.path != f"/v1/{fake.environment_id}/analytics/batched":
                    return self._send(404, b'{"error": "not found"}', "application/json")
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._send(401, b'{"error": "unauthorized"}', "application/json")
                with fake._lock:
                    fake.request_times.append(time.monotonic())
                    failure, retry_after = fake._fail_next.pop(0) if fake._fail_next else (None, None)
                if failure:
                    return self._send(failure, b'{"error": "try again"}', "application/json", retry_after=retry_after)
                status, answer = fake.batched(query)
                self._send(status, json.dumps(answer).encode(), "application/json")

        return Handler


TOKEN = "s3cr3t-atomic-token-0123456789"  # the tests' bearer token: it must show up nowhere


def records(key: str, n: int, tag: str) -> list[dict]:
    start = datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=timezone.utc) - timedelta(hours=1)  # batch K holds the events of K-1h .. K
    return [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}/{tag}/{i}")), "endUserId": f"user-{i % 3}",
             "analyticsEvent": "card-published", "timestamp": (start + timedelta(minutes=5 * i + 1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
             "cardContext": {"cardTemplateId": "tpl", "cardInstanceId": f"card-{i}"}} for i in range(n)]
