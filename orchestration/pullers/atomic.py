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
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from orchestration.settings import ATOMIC_FORMATS, Settings, format_hour
from orchestration.storage import S3Store, Store

UTC = timezone.utc
HOUR = timedelta(hours=1)
MAX_RANGE = timedelta(days=30)  # per request, and how long Atomic keeps batches
CHUNK_BYTES = 1024 * 1024
EXPIRED_STATUSES = (400, 403, 410)  # what an expired pre-signed URL answers (S3: 403 AccessDenied)
EXPIRED_ROUNDS = 3  # fresh URLs asked for an hour whose download expired, then left for the next pull
TIMEOUT = (10, 60)  # connect, read (seconds, per attempt)
PREFIX = "atomic"
EMPTY_PREFIX = ".pulls/atomic"

log = logging.getLogger(__name__)


class AtomicNotConfigured(RuntimeError):
    """A variable the puller needs is not set."""


class AtomicApiError(RuntimeError):
    """Atomic's API refused a request (the message never holds the token)."""


@dataclass(frozen=True)
class AtomicConfig:
    base_url: str
    environment_id: str
    token: str = field(repr=False)
    format: str = "ndjson"
    retries: int = 5  # per request, after the first attempt (connection errors, 429, 5xx)
    backoff: float = 0.5  # seconds: backoff * 2^n between attempts
    retention_days: int = 30  # how long Atomic keeps batches (the vendor document: 30 days)

    def __post_init__(self) -> None:
        if self.format not in ATOMIC_FORMATS:
            raise ValueError(f"the Atomic export format must be one of {', '.join(ATOMIC_FORMATS)}, got {self.format!r}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "AtomicConfig":
        missing = [name for name, value in (("ATOMIC_API_URL", settings.atomic_api_url),
                                            ("ATOMIC_ENVIRONMENT_ID", settings.atomic_environment_id),
                                            ("ATOMIC_API_TOKEN", settings.atomic_api_token)) if not value]
        if missing:
            raise AtomicNotConfigured(
                f"cannot pull from Atomic: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set "
                "(ATOMIC_API_URL is the API base such as https://<org>.customer-api.atomic.io, "
                "ATOMIC_ENVIRONMENT_ID the environment, ATOMIC_API_TOKEN a client-credentials token)")
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


def safe_url(url: str) -> str:
    """A URL without its query and fragment (a pre-signed URL's signature stays out of messages)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _session(retries: int, backoff: float, auth: str | None) -> requests.Session:
    session = requests.Session()
    retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=backoff,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=frozenset({"GET"}),
                  respect_retry_after_header=True, raise_on_status=False)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if auth:
        session.headers["Authorization"] = f"Bearer {auth}"
    return session


class AtomicClient:
    """The batched analytics endpoint, and the downloads of its pre-signed URLs (a second session
    without the token: it is for Atomic's API only)."""

    def __init__(self, config: AtomicConfig):
        self.config = config
        self.api = _session(config.retries, config.backoff, config.token)
        self.files = _session(config.retries, config.backoff, None)
        self.requests = 0

    def __repr__(self) -> str:
        return f"AtomicClient({self.config.base_url!r}, environment {self.config.environment_id!r})"

    def close(self) -> None:
        self.api.close()
        self.files.close()

    def batched(self, start: datetime, end: datetime) -> dict[str, list[str]]:
        """The batches of (floor(start), ceil(end)]: batch key -> file URLs (at most 30 days)."""
        start, end = floor_hour(start), ceil_hour(end)
        if end - start > MAX_RANGE:
            raise ValueError(f"Atomic answers at most 30 days per request, asked {_iso(start)} .. {_iso(end)}")
        url = f"{self.config.base_url}/v1/{self.config.environment_id}/analytics/batched"
        self.requests += 1
        try:
            resp = self.api.get(url, params={"from": _iso(start), "to": _iso(end), "format": self.config.format},
                                timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise AtomicApiError(f"Atomic's API at {safe_url(url)} could not be reached: {type(exc).__name__}") from None
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

    def download(self, url: str) -> requests.Response:
        """A streaming GET of a pre-signed URL (the caller closes it); status left to the caller."""
        try:
            return self.files.get(url, stream=True, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise AtomicApiError(f"downloading {safe_url(url)} failed: {type(exc).__name__}") from None


@dataclass
class HourPull:
    """What one batch key gave."""

    written: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    empty: bool = False
    not_processed: bool = False
    expired_retried: int = 0  # downloads that expired and were asked again
    expired_left: list[str] = field(default_factory=list)  # still expired after the retries: next pull
    too_old: bool = False


@dataclass
class PullReport:
    hours: dict[str, HourPull] = field(default_factory=dict)
    requests: int = 0
    messages: list[str] = field(default_factory=list)

    def keys(self, what: str) -> list[str]:
        return sorted(k for k, h in self.hours.items() if getattr(h, what))

    @property
    def written(self) -> list[str]:
        return sorted(key for h in self.hours.values() for key in h.written)

    @property
    def already_there(self) -> list[str]:
        return sorted(key for h in self.hours.values() for key in h.already_there)

    def metadata(self) -> dict[str, Any]:
        """Counts and batch keys for run metadata (no URL, no token)."""
        return {"files_written": len(self.written), "files_already_there": len(self.already_there),
                "empty_hours": self.keys("empty"), "not_processed_hours": self.keys("not_processed"),
                "expired_retried": sum(h.expired_retried for h in self.hours.values()),
                "expired_left_hours": self.keys("expired_left"), "too_old_hours": self.keys("too_old"),
                "api_requests": self.requests}

    def summary(self) -> str:
        parts = [f"{len(self.written)} files written", f"{len(self.already_there)} already there",
                 f"{len(self.keys('empty'))} empty hours", f"{len(self.keys('not_processed'))} hours not processed yet",
                 f"{sum(h.expired_retried for h in self.hours.values())} expired downloads asked again",
                 f"{len(self.keys('expired_left'))} hours left expired", f"{len(self.keys('too_old'))} hours too old",
                 f"{self.requests} API requests"]
        return "; ".join(parts) + "".join(f". {m}" for m in self.messages)


def landing_key(batch_key: str, url: str, fmt: str) -> str:
    """`atomic/{batch key}/{name}.{format}`, the name from the URL's last path segment."""
    name = posixpath.basename(unquote(urlsplit(url).path)).replace("\\", "_").lstrip(".") or "batch"
    stem = name[: -len(fmt) - 1] if name.lower().endswith("." + fmt) else name
    return f"{PREFIX}/{batch_key}/{stem}.{fmt}"


def empty_marker(batch_key: str) -> str:
    return f"{EMPTY_PREFIX}/{batch_key}.empty"


class _Reader:
    """A readable, non-seekable view of a chunk iterator: boto's upload_fileobj reads it part by part
    (multipart past 8 MiB), so memory stays bounded by a part."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.buffer = chunks, b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        if size < 0:
            out, self.buffer = self.buffer, b""
        else:
            out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


def write_stream(store: Store, key: str, chunks: Iterator[bytes]) -> None:
    """Write `chunks` to `key` atomically: an S3 upload (the object appears whole), or a staging
    file in the same folder moved into place."""
    if isinstance(store, S3Store):
        store.client.upload_fileobj(_Reader(chunks), store.bucket, store.prefix + key)
        return
    staging = store.staging_key(key)
    store.prepare(staging)
    try:
        with open(store.uri(staging), "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        store.publish(staging, key)
    except BaseException:
        store.delete([staging])
        raise


def _batch_keys(first: datetime, last_exclusive: datetime) -> list[datetime]:
    out, h = [], floor_hour(first)
    while h < last_exclusive:
        out.append(h)
        h += HOUR
    return out


def pull_atomic(config: AtomicConfig | Settings, store: Store, first_hour: datetime, last_hour_exclusive: datetime,
                now: datetime | None = None, logger: Any = None) -> PullReport:
    """Pull the batch keys `first_hour` .. `last_hour_exclusive` (hours ended, UTC) into `store`."""
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
        for run in runs:
            answer = client.batched(run[0] - HOUR, run[-1])
            for key in run:
                _pull_hour(client, config, store, key, answer, report, logger)
    finally:
        report.requests = client.requests
        client.close()
    logger.info(f"atomic pull {format_hour(floor_hour(first_hour))} .. {format_hour(last_hour_exclusive)} "
                f"(exclusive): {report.summary()}")
    return report


def _pull_hour(client: AtomicClient, config: AtomicConfig, store: Store, key: datetime,
               answer: dict[str, list[str]], report: PullReport, logger: Any) -> None:
    text = format_hour(key)
    hour = report.hours.setdefault(text, HourPull())
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
            target = landing_key(text, url, config.format)
            if store.exists(target):
                if target not in hour.already_there and target not in hour.written:
                    hour.already_there.append(target)
                continue
            with client.download(url) as resp:
                if resp.status_code in EXPIRED_STATUSES:
                    expired.append(target)
                    continue
                if resp.status_code != 200:
                    raise AtomicApiError(f"downloading {safe_url(url)} for {text} answered HTTP {resp.status_code}")
                try:
                    write_stream(store, target, resp.iter_content(CHUNK_BYTES))
                except requests.RequestException as exc:  # broke off: nothing was published
                    raise AtomicApiError(f"downloading {safe_url(url)} for {text} broke off: {type(exc).__name__}; "
                                         "nothing of it was written, the next pull fetches it again") from None
            hour.written.append(target)
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
