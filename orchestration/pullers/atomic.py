"""Atomic's batched analytics API into the landing store.

`GET {base}/v1/{environmentId}/analytics/batched?from=&to=&format=` (bearer token) answers
`{"data": {batch key: [pre-signed file URL, ...]}}`, a batch key being the UTC hour the batch
*ended* (`YYYY-MM-DDTHH`, so the key K holds the events of K-1h .. K). The vendor's rules, and what
`pull_atomic` does with them:

- `from` is rounded down and `to` up to the hour; the keys answered are those in (from, to].
- At most 30 days per request: longer ranges are split.
- Pre-signed URLs expire after 15 minutes: a download answered 403 (or 400/410) asks for that hour
  again, a few times, and then leaves it for the next pull; it never fails the run.
- An empty list: no events that hour. Recorded under `.pulls/atomic/{key}.empty` in the landing
  store (outside the layout the landed asset reads) and not asked again.
- An hour absent from the answer is not processed yet: asked again by the next pull.
- Batches are kept 30 days: an older hour is not asked for and is reported as too old.

Each file is written to `atomic/{batch key}/{name}.{format}` (the source contract's landingLayout),
streamed in chunks into a staging file that is then moved into place (an S3 PUT, which is atomic,
for an S3 landing store); a file already there is not downloaded again, so re-pulling changes
nothing. The token goes in the Authorization header of API requests only (never to the file URLs),
and into no log line, error message or repr; file URLs are named without their query (signature).
"""

from __future__ import annotations

import logging
import posixpath
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from orchestration.pullers import require
from orchestration.pullers.http import CHUNK_BYTES, retries_of, safe_url, session, write_stream
from orchestration.settings import ATOMIC_FORMATS, Settings, format_hour
from orchestration.storage import Store

UTC = timezone.utc
HOUR = timedelta(hours=1)
MAX_RANGE = timedelta(days=30)  # per request, and how long Atomic keeps batches
EXPIRED_STATUSES = (400, 403, 410)  # what an expired pre-signed URL answers (S3: 403 AccessDenied)
EXPIRED_ROUNDS = 3  # fresh URLs asked for an hour whose download expired, then left for the next pull
TIMEOUT = (10, 60)  # connect, read (seconds, per attempt)
PREFIX = "atomic"
EMPTY_PREFIX = ".pulls/atomic"

log = logging.getLogger(__name__)




class AtomicApiError(RuntimeError):
    """Atomic's API refused a request (the message never holds the token)."""


@dataclass(frozen=True)
class AtomicConfig:
    base_url: str
    environment_id: str
    token: str = field(repr=False)
    format: str = "ndjson"
    retries: int = 5  # per request, after the first attempt (connection errors, 429, 5xx, a download broken off)
    backoff: float = 0.5  # seconds: backoff * 2^n between attempts (a Retry-After is honoured instead)
    retention_days: int = 30  # how long Atomic keeps batches (the vendor document: 30 days)
    max_downloads: int = 4  # hours downloaded at once

    def __post_init__(self) -> None:
        if self.format not in ATOMIC_FORMATS:
            raise ValueError(f"the Atomic export format must be one of {', '.join(ATOMIC_FORMATS)}, got {self.format!r}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "AtomicConfig":
        require("Atomic", {"ATOMIC_API_URL": settings.atomic_api_url, "ATOMIC_ENVIRONMENT_ID": settings.atomic_environment_id,
                           "ATOMIC_API_TOKEN": settings.atomic_api_token},
                "ATOMIC_API_URL is the API base such as https://<org>.customer-api.atomic.io, "
                "ATOMIC_ENVIRONMENT_ID the environment, ATOMIC_API_TOKEN a client-credentials token")
        return cls(base_url=settings.atomic_api_url.rstrip("/"), environment_id=settings.atomic_environment_id,
                   token=settings.atomic_api_token, format=settings.atomic_export_format, **overrides)


def floor_hour(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    f = floor_hour(t)
    return f if f == t.astimezone(UTC) else f + HOUR


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AtomicClient:
    """The batched analytics endpoint, and the downloads of its pre-signed URLs (a second session
    without the token: it is for Atomic's API only). Safe to share between download threads."""

    def __init__(self, config: AtomicConfig):
        self.config = config
        self.api = session(config.retries, config.backoff, bearer=config.token)
        self.files = session(config.retries, config.backoff, pool=config.max_downloads)
        self.requests = self.retries = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AtomicClient({self.config.base_url!r}, environment {self.config.environment_id!r})"

    def close(self) -> None:
        self.api.close()
        self.files.close()

    def count(self, requests_: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += requests_
            self.retries += retries

    def batched(self, start: datetime, end: datetime) -> dict[str, list[str]]:
        """The batches of (floor(start), ceil(end)]: batch key -> file URLs (at most 30 days)."""
        start, end = floor_hour(start), ceil_hour(end)
        if end - start > MAX_RANGE:
            raise ValueError(f"Atomic answers at most 30 days per request, asked {_iso(start)} .. {_iso(end)}")
        url = f"{self.config.base_url}/v1/{self.config.environment_id}/analytics/batched"
        try:
            resp = self.api.get(url, params={"from": _iso(start), "to": _iso(end), "format": self.config.format},
                                timeout=TIMEOUT)
        except requests.RequestException as exc:
            self.count(1, self.config.retries)
            raise AtomicApiError(f"Atomic's API at {safe_url(url)} could not be reached: {type(exc).__name__}") from None
        self.count(1, retries_of(resp))
        if resp.status_code == 401 or resp.status_code == 403:
            raise AtomicApiError(f"Atomic's API refused the token (HTTP {resp.status_code}) for environment "
                                 f"{self.config.environment_id}: check ATOMIC_API_TOKEN")
        if resp.status_code != 200:
            raise AtomicApiError(f"Atomic's API answered HTTP {resp.status_code} to {_iso(start)} .. {_iso(end)}: "
                                 f"{resp.text[:300].replace(self.config.token, '***')}")
        data = resp.json().get("data")
        if not isinstance(data, dict):
            raise AtomicApiError("Atomic's API answered without a `data` object")
        return {str(k): list(v or []) for k, v in data.items()}

    def download(self, url: str, store: Store, target: str, hour: "HourPull") -> int | None:
        """Stream a pre-signed URL into `target`: its bytes, or None when the URL has expired. A
        download broken off is asked again (nothing of it was published); _Failed when it cannot be had."""
        for attempt in range(self.config.retries + 1):
            hour.retries += attempt > 0
            try:
                resp = self.files.get(url, stream=True, timeout=TIMEOUT)
            except requests.RequestException as exc:
                hour.retries += self.config.retries
                raise _Failed(f"{safe_url(url)} could not be downloaded: {type(exc).__name__}") from None
            with resp:
                hour.retries += retries_of(resp)
                if resp.status_code in EXPIRED_STATUSES:
                    return None
                if resp.status_code != 200:
                    raise _Failed(f"{safe_url(url)} answered HTTP {resp.status_code}")
                try:
                    return write_stream(store, target, resp.iter_content(CHUNK_BYTES))
                except requests.RequestException as exc:  # broke off: nothing was published
                    error = type(exc).__name__
        raise _Failed(f"{safe_url(url)} broke off {self.config.retries + 1} times ({error}); nothing of it was written")


class _Failed(Exception):
    """A file of an hour that could not be downloaded (not expired): the hour fails, the others go on."""


@dataclass
class HourPull:
    """What one batch key gave."""

    written: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    bytes_written: int = 0
    empty: bool = False
    not_processed: bool = False
    expired_retried: int = 0  # downloads that expired and were asked again
    expired_left: list[str] = field(default_factory=list)  # still expired after the retries: next pull
    too_old: bool = False
    retries: int = 0  # downloads asked again (connection errors, 429, 5xx, broken off)
    failed: str = ""  # why the hour could not be pulled (the next pull asks again)


@dataclass
class PullReport:
    hours: dict[str, HourPull] = field(default_factory=dict)
    requests: int = 0
    api_retries: int = 0
    messages: list[str] = field(default_factory=list)

    def keys(self, what: str) -> list[str]:
        return sorted(k for k, h in self.hours.items() if getattr(h, what))

    @property
    def written(self) -> list[str]:
        return sorted(key for h in self.hours.values() for key in h.written)

    @property
    def already_there(self) -> list[str]:
        return sorted(key for h in self.hours.values() for key in h.already_there)

    @property
    def retries(self) -> int:
        return self.api_retries + sum(h.retries for h in self.hours.values())

    def metadata_of(self, key: str) -> dict[str, Any]:
        """One batch key's own outcome, for its partition."""
        h = self.hours[key]
        return {"files_written": len(h.written), "bytes_written": h.bytes_written,
                "files_already_there": len(h.already_there), "empty": h.empty, "not_ready": h.not_processed,
                "expired_asked_again": h.expired_retried, "too_old": h.too_old, "retries": h.retries}

    @property
    def failures(self) -> dict[str, str]:
        return {k: self.hours[k].failed for k in self.keys("failed")}

    def metadata(self) -> dict[str, Any]:
        """The ledger for run metadata (counts and batch keys: no URL, no token)."""
        return {"hours_asked": len(self.hours), "hours_empty": self.keys("empty"),
                "hours_not_ready": self.keys("not_processed"), "hours_failed": self.keys("failed"),
                "hours_left_expired": self.keys("expired_left"), "hours_too_old": self.keys("too_old"),
                "files_written": len(self.written), "bytes_written": sum(h.bytes_written for h in self.hours.values()),
                "files_already_there": len(self.already_there),
                "expired_asked_again": sum(h.expired_retried for h in self.hours.values()),
                "retries": self.retries, "api_requests": self.requests}

    def summary(self) -> str:
        m = self.metadata()
        parts = [f"{m['hours_asked']} hours asked", f"{m['files_written']} files written ({m['bytes_written']} bytes)",
                 f"{m['files_already_there']} already there", f"{len(m['hours_empty'])} empty hours",
                 f"{len(m['hours_not_ready'])} hours not ready yet", f"{len(m['hours_failed'])} hours failed",
                 f"{m['expired_asked_again']} expired downloads asked again",
                 f"{len(m['hours_left_expired'])} hours left expired", f"{len(m['hours_too_old'])} hours too old",
                 f"{m['retries']} retries", f"{m['api_requests']} API requests"]
        failed = "".join(f". {k} failed: {why}" for k, why in self.failures.items())
        return "; ".join(parts) + "".join(f". {m}" for m in self.messages) + failed


def landing_key(batch_key: str, url: str, fmt: str) -> str:
    """`atomic/{batch key}/{name}.{format}`, the name from the URL's last path segment."""
    name = posixpath.basename(unquote(urlsplit(url).path)).replace("\\", "_").lstrip(".") or "batch"
    stem = name[: -len(fmt) - 1] if name.lower().endswith("." + fmt) else name
    return f"{PREFIX}/{batch_key}/{stem}.{fmt}"


def empty_marker(batch_key: str) -> str:
    return f"{EMPTY_PREFIX}/{batch_key}.empty"


def _batch_keys(first: datetime, last_exclusive: datetime) -> list[datetime]:
    out, h = [], floor_hour(first)
    while h < last_exclusive:
        out.append(h)
        h += HOUR
    return out


def pull_atomic(config: AtomicConfig | Settings, store: Store, first_hour: datetime, last_hour_exclusive: datetime,
                now: datetime | None = None, logger: Any = None) -> PullReport:
    """Pull the batch keys `first_hour` .. `last_hour_exclusive` (hours ended, UTC) into `store`.
    An hour whose files cannot be had is recorded as failed (`report.failures`) and the others go on;
    only an API that cannot be reached or refuses the token raises."""
    config = config if isinstance(config, AtomicConfig) else AtomicConfig.from_settings(config)
    logger = logger or log
    now = (now or datetime.now(UTC)).astimezone(UTC)
    report = PullReport()
    oldest = ceil_hour(now - timedelta(days=config.retention_days)) + HOUR  # the oldest batch key whose whole hour is within 30 days
    wanted: list[datetime] = []
    for key in _batch_keys(first_hour, last_hour_exclusive):
        text = format_hour(key)
        if key < oldest:
            report.hours[text] = HourPull(too_old=True)
        elif key > now:
            report.hours[text] = HourPull(not_processed=True)
        elif store.exists(empty_marker(text)):
            report.hours[text] = HourPull(empty=True)
        else:
            report.hours[text] = HourPull()
            wanted.append(key)
    too_old = report.keys("too_old")
    if too_old:
        report.messages.append(
            f"Atomic keeps batched analytics for {config.retention_days} days only: {len(too_old)} hours from {too_old[0]} to {too_old[-1]} "
            f"are older than {format_hour(oldest)} and can no longer be pulled from the vendor")
        logger.warning(report.messages[-1])
    client = AtomicClient(config)
    try:
        # contiguous runs of at most 30 days: keys k0..k1 are the answer to (k0-1h, k1]
        runs: list[list[datetime]] = []
        for key in wanted:
            if runs and key - runs[-1][-1] == HOUR and key - runs[-1][0] < MAX_RANGE:
                runs[-1].append(key)
            else:
                runs.append([key])
        with ThreadPoolExecutor(config.max_downloads, thread_name_prefix="atomic-download") as pool:
            for run in runs:
                answer = client.batched(run[0] - HOUR, run[-1])
                list(pool.map(lambda key: _pull_hour(client, store, key, answer, report, logger), run))
    finally:
        report.requests, report.api_retries = client.requests, client.retries
        client.close()
    logger.info(f"atomic pull {format_hour(floor_hour(first_hour))} .. {format_hour(last_hour_exclusive)} "
                f"(exclusive): {report.summary()}")
    return report


def _pull_hour(client: AtomicClient, store: Store, key: datetime, answer: dict[str, list[str]],
               report: PullReport, logger: Any) -> None:
    text = format_hour(key)
    hour = report.hours[text]
    if text not in answer:
        hour.not_processed = True
        return
    urls = answer[text]
    if not urls:
        hour.empty = True
        store.write_bytes(empty_marker(text), b"")
        return
    for round_ in range(EXPIRED_ROUNDS + 1):
        expired = []
        for url in urls:
            target = landing_key(text, url, client.config.format)
            if store.exists(target):
                if target not in hour.already_there and target not in hour.written:
                    hour.already_there.append(target)
                continue
            try:
                size = client.download(url, store, target, hour)
            except _Failed as exc:
                hour.failed = str(exc)
                logger.warning(f"atomic {text}: {exc}; the hour is left for the next pull")
                return
            if size is None:
                expired.append(target)
                continue
            hour.written.append(target)
            hour.bytes_written += size
        if not expired:
            hour.expired_left = []
            return
        hour.expired_left = expired
        if round_ == EXPIRED_ROUNDS:
            break
        hour.expired_retried += len(expired)
        logger.info(f"atomic {text}: {len(expired)} file URLs expired, asking for the hour again")
        urls = client.batched(key - HOUR, key).get(text, [])
    logger.warning(f"atomic {text}: {len(hour.expired_left)} file URLs still expired after {EXPIRED_ROUNDS} "
                   "fresh answers; the next pull asks again")
