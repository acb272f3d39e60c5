"""Altis's analytics events API into the landing store: one file a day.

`GET {site}/wp-json/analytics/v1/events/<YYYY-MM-DD>?format=csv|json&chunk_size=N` with HTTP basic
auth (user name + application password) streams the events of that UTC day. What `pull_altis` does
with the vendor's rules (shared/vendor-docs/altis-data-export.txt):

- A day is pulled once it has ended (UTC); a day not ended yet is reported and not asked for.
- `chunk_size` (records per streamed chunk) defaults to 3000 and may not exceed 10000. A request
  that times out, fails at the server (5xx, after a few retries) or breaks off mid-stream is asked again with a smaller chunk size (3000, 1000,
  300); when the smallest fails too, the day fails with a message naming the day and the sizes tried.
- The response is streamed into a staging key (`.pulls/altis/`, outside the layout the landed asset
  reads; a killed pull's leftovers are swept after a day) while its SHA-256 is computed, so memory stays bounded whatever the day's size. The file
  `altis/{YYYY-MM-DD}.{format}` is replaced (a rename, or an S3 copy: atomic) only when its content
  changed; otherwise the staged copy is dropped and the file, and its arrival, stay as they were.

The application password goes into the basic-auth header only: never into a log line, an error
message, run metadata or a repr.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterator

import requests

from orchestration.pullers import require
from orchestration.pullers.http import CHUNK_BYTES, refused, safe_url, session, write_stream
from orchestration.settings import ALTIS_FORMATS, Settings
from orchestration.storage import Store

UTC = timezone.utc
DEFAULT_CHUNK_SIZE = 3000
MAX_CHUNK_SIZE = 10000
SMALLER = (3, 10)  # after a timeout / a break: chunk_size // 3, then chunk_size // 10
MIN_CHUNK_SIZE = 100
PREFIX = "altis"
STAGING_PREFIX = ".pulls/altis"
LEFTOVER_AGE = timedelta(days=1)  # a staged download untouched this long was left by a killed pull

log = logging.getLogger(__name__)




class AltisApiError(RuntimeError):
    """Altis refused a request or the day could not be pulled (the message never holds the password)."""


@dataclass(frozen=True)
class AltisConfig:
    site_url: str
    username: str
    app_password: str = field(repr=False)
    format: str = "json"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    timeout: tuple[float, float] = (10, 300)  # connect, read between chunks (seconds)
    retries: int = 3  # connection errors, 429, 5xx, at one chunk size
    backoff: float = 0.5

    def __post_init__(self) -> None:
        if self.format not in ALTIS_FORMATS:
            raise ValueError(f"the Altis export format must be one of {', '.join(ALTIS_FORMATS)}, got {self.format!r}")
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"Altis's chunk_size must be between 1 and {MAX_CHUNK_SIZE}, got {self.chunk_size}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "AltisConfig":
        require("Altis", {"ALTIS_URL": settings.altis_url, "ALTIS_USERNAME": settings.altis_username,
                          "ALTIS_APP_PASSWORD": settings.altis_app_password},
                "ALTIS_URL is the site such as https://example.com, ALTIS_USERNAME the user the application "
                "password was created for, ALTIS_APP_PASSWORD that application password")
        return cls(site_url=settings.altis_url.rstrip("/"), username=settings.altis_username,
                   app_password=settings.altis_app_password, format=settings.altis_export_format, **overrides)

    def chunk_sizes(self) -> list[int]:
        sizes = [self.chunk_size] + [max(MIN_CHUNK_SIZE, self.chunk_size // d) for d in SMALLER]
        return [s for i, s in enumerate(sizes) if s <= self.chunk_size and s not in sizes[:i]]


@dataclass
class AltisPull:
    """What pulling one day gave."""

    day: str
    key: str
    written: bool = False
    unchanged: bool = False
    not_ended: bool = False
    chunk_sizes_tried: list[int] = field(default_factory=list)
    bytes: int = 0
    sha256: str | None = None

    def metadata(self) -> dict[str, Any]:
        """For run metadata (no URL credentials, no password)."""
        out = asdict(self)
        out["sha256"] = out["sha256"] or ""
        out["files_written"] = int(self.written)  # as Atomic's ledger counts them
        return out

    def summary(self) -> str:
        what = ("not ended yet, not pulled" if self.not_ended else
                f"written ({self.bytes} bytes)" if self.written else f"unchanged ({self.bytes} bytes), file kept")
        tried = f"; chunk sizes tried {self.chunk_sizes_tried}" if self.chunk_sizes_tried else ""
        return f"altis {self.day} -> {self.key}: {what}{tried}"


def landing_key(day: date, fmt: str) -> str:
    return f"{PREFIX}/{day:%Y-%m-%d}.{fmt}"


def _day(day: date | datetime | str) -> date:
    if isinstance(day, str):
        return date.fromisoformat(day)
    if isinstance(day, datetime):
        return day.astimezone(UTC).date()
    return day


def _hash_existing(store: Store, key: str) -> str | None:
    if not store.exists(key):
        return None
    digest = hashlib.sha256()
    with store.open(key) as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class _Broken(Exception):
    """A timeout or a break mid-stream: worth asking again with a smaller chunk size."""


def pull_altis(config: AltisConfig | Settings, store: Store, day: date | datetime | str,
               now: datetime | None = None, logger: Any = None) -> AltisPull:
    """Pull Altis's export of the UTC `day` into `altis/{day}.{format}` of `store`, if the day ended."""
    config = config if isinstance(config, AltisConfig) else AltisConfig.from_settings(config)
    logger = logger or log
    day = _day(day)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    key = landing_key(day, config.format)
    report = AltisPull(day=day.isoformat(), key=key)
    if datetime.combine(day + timedelta(days=1), time(), UTC) > now:
        report.not_ended = True
        logger.info(report.summary())
        return report
    url = f"{config.site_url}/wp-json/analytics/v1/events/{day.isoformat()}"
    staging = f"{STAGING_PREFIX}/.staging-{day.isoformat()}.{config.format}-{uuid.uuid4().hex}"
    store.sweep_leftovers(f"{STAGING_PREFIX}/.staging-", LEFTOVER_AGE)  # what a killed pull left
    # read=0: a read timeout is answered by a smaller chunk size, not by the same request again
    http = session(config.retries, config.backoff, read_retries=0, basic=(config.username, config.app_password))
    try:
        failures = []
        for size in config.chunk_sizes():
            report.chunk_sizes_tried.append(size)
            digest, count = hashlib.sha256(), [0]
            try:
                _fetch(http, config, url, day, size, store, staging, digest, count)
            except _Broken as exc:
                failures.append(f"chunk_size {size}: {exc}")
                logger.warning(f"altis {day}: the export with chunk_size {size} {exc}; "
                               + ("asking again with a smaller chunk size" if size != config.chunk_sizes()[-1] else "giving up"))
                store.delete([staging])
                continue
            report.bytes, report.sha256 = count[0], digest.hexdigest()
            break
        else:
            raise AltisApiError(f"Altis's export of {day} could not be pulled from {url}: {'; '.join(failures)}. "
                                f"Nothing was written; {key} is as it was") from None
        if _hash_existing(store, key) == report.sha256:
            report.unchanged = True
            store.delete([staging])
        else:
            store.publish(staging, key)
            report.written = True
    except BaseException:
        store.delete([staging])
        raise
    finally:
        http.close()
    logger.info(report.summary())
    return report


def _fetch(http: requests.Session, config: AltisConfig, url: str, day: date, size: int, store: Store,
           staging: str, digest: Any, count: list[int]) -> None:
    try:
        resp = http.get(url, params={"format": config.format, "chunk_size": size}, stream=True, timeout=config.timeout)
    except requests.RequestException as exc:
        if refused(exc) or not isinstance(exc, (requests.Timeout, requests.ConnectionError)):
            raise AltisApiError(f"Altis's API at {safe_url(url)} could not be reached: {type(exc).__name__}") from None
        raise _Broken(f"got no answer ({type(exc).__name__})") from None
    with resp:
        if resp.status_code in (401, 403):
            raise AltisApiError(f"Altis refused the credentials of user {config.username!r} (HTTP {resp.status_code}) "
                                f"for {url}: check ALTIS_USERNAME and ALTIS_APP_PASSWORD")
        if resp.status_code == 408 or resp.status_code >= 500:  # a timeout or out of memory at the server
            raise _Broken(f"failed at the server (HTTP {resp.status_code})")
        if resp.status_code != 200:
            text = resp.text[:300].replace(config.app_password, "***")
            raise AltisApiError(f"Altis answered HTTP {resp.status_code} to the export of {day} "
                                f"(chunk_size {size}): {text}")

        def chunks() -> Iterator[bytes]:
            for chunk in resp.iter_content(CHUNK_BYTES):
                digest.update(chunk)
                count[0] += len(chunk)
                yield chunk

        try:
            write_stream(store, staging, chunks())
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise _Broken(f"broke off after {count[0]} bytes ({type(exc).__name__})") from None
