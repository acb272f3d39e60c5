"""What the pullers share on the wire: one retrying `requests` session, URLs named without their
query (a pre-signed URL's signature is a credential for its lifetime) in our messages and in
urllib3's own log lines, and a response streamed into the landing store."""

from __future__ import annotations

import logging
import re
from typing import Iterator
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from orchestration.storage import S3Store, Store

CHUNK_BYTES = 1024 * 1024
RETRY_STATUSES = (429, 500, 502, 503, 504)


def safe_url(url: str) -> str:
    """A URL without its query and fragment."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class _WithoutQueries(logging.Filter):
    """urllib3 logs the URLs it requests and retries (DEBUG, and WARNING on a retried connection):
    their queries are cut before any handler sees them."""

    QUERY = re.compile(r"\?[^\s'\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = self.QUERY.sub("?…", message), None
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_WithoutQueries())


def session(retries: int, backoff: float, pool: int = 10, read_retries: int | None = None,
            bearer: str | None = None, basic: tuple[str, str] | None = None) -> requests.Session:
    """GETs retried on connection errors, 429 and 5xx with exponential backoff, honouring Retry-After.
    The last answer is returned when the retries are spent (the caller judges its status)."""
    retry = Retry(total=retries, connect=retries, read=retries if read_retries is None else read_retries,
                  status=retries, backoff_factor=backoff, status_forcelist=RETRY_STATUSES,
                  allowed_methods=frozenset({"GET"}), respect_retry_after_header=True, raise_on_status=False)
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool)
    out = requests.Session()
    out.mount("http://", adapter)
    out.mount("https://", adapter)
    if bearer:
        out.headers["Authorization"] = f"Bearer {bearer}"
    if basic:
        out.auth = basic
    return out


def retries_of(resp: requests.Response) -> int:
    """How many times urllib3 asked again before this answer."""
    retry = getattr(resp.raw, "retries", None)
    return len(retry.history) if retry is not None else 0


def refused(exc: requests.RequestException) -> bool:
    """The host could not be connected to at all (not a timeout or a break of an answer)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


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


def write_stream(store: Store, key: str, chunks: Iterator[bytes]) -> int:
    """Write `chunks` to `key` atomically (an S3 upload appears whole; a local staging file in the
    same folder is moved into place) and return the bytes written."""
    written = [0]

    def counted() -> Iterator[bytes]:
        for chunk in chunks:
            written[0] += len(chunk)
            yield chunk

    if isinstance(store, S3Store):
        store.client.upload_fileobj(_Reader(counted()), store.bucket, store.prefix + key)
        return written[0]
    staging = store.staging_key(key)
    store.prepare(staging)
    try:
        with open(store.uri(staging), "wb") as out:
            for chunk in counted():
                out.write(chunk)
        store.publish(staging, key)
    except BaseException:
        store.delete([staging])
        raise
    return written[0]
