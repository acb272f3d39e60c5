"""A receiver for Altis's `altis.analytics.export.data.process` push hook: the site POSTs each
batch of events (an NDJSON string) here, and the batch is written, gzipped, to
`altis/batches/{YYYY-MM-DD}/{HH}/hook-{HHMMSS}-{id}.ndjson.gz` of the landing store, under the
hour it arrived, where `altis_landed` reads it.

- `POST /altis/batches` with the shared secret in the `X-Altis-Hook-Secret` header (compared in
  constant time): 401 without it or with another; the secret is in no log line or answer.
- A `Content-Length` is required (411 without) and at most `ALTIS_HOOK_MAX_BYTES` (413 above,
  before a byte of the body is read). The body is streamed through gzip into the store (a staging
  file moved into place, or one S3 upload), so memory stays bounded by a chunk.
- 202 with the landing key once the file is in place; a body cut short leaves nothing (400); a
  landing store that fails leaves nothing either (503: send the batch again).
- A client gone mid-request is one log line; no traceback reaches the terminal.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
import uuid
import zlib
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

from orchestration.pullers.http import CHUNK_BYTES, write_stream
from orchestration.storage import Store

PATH = "/altis/batches"
SECRET_HEADER = "X-Altis-Hook-Secret"

log = logging.getLogger(__name__)


class AltisHookNotConfigured(RuntimeError):
    """ALTIS_HOOK_SECRET is not set: the receiver would take anyone's batches."""


class _CutShort(Exception):
    pass


def landing_key(now: datetime) -> str:
    now = now.astimezone(timezone.utc)
    return f"altis/batches/{now:%Y-%m-%d}/{now:%H}/hook-{now:%H%M%S}-{uuid.uuid4().hex[:12]}.ndjson.gz"


def _gzipped(body, length: int) -> Iterator[bytes]:
    """`length` bytes of `body`, gzipped chunk by chunk."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    left = length
    while left:
        chunk = body.read(min(CHUNK_BYTES, left))
        if not chunk:
            raise _CutShort(f"the body ended {left} bytes before its Content-Length")
        left -= len(chunk)
        yield packer.compress(chunk)
    yield packer.flush()


def make_server(store: Store, secret: str | None, max_bytes: int, host: str = "127.0.0.1",
                port: int = 8710) -> ThreadingHTTPServer:
    if not secret:
        raise AltisHookNotConfigured("cannot receive Altis's push hook: ALTIS_HOOK_SECRET is not set (the shared "
                                     f"secret the site sends in the {SECRET_HEADER} header)")
    expected = secret.encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args) -> None:  # the request line only: no header is logged
            log.info("%s %s", self.address_string(), fmt % args)

        def _answer(self, status: int, **body) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self.close_connection = True  # a refused body is never read: the connection is not reused
            if self.path.split("?")[0] != PATH:
                return self._answer(404, error=f"POST the batches to {PATH}")
            if not hmac.compare_digest((self.headers.get(SECRET_HEADER) or "").encode(), expected):
                return self._answer(401, error=f"missing or wrong {SECRET_HEADER}")
            try:
                length = int(self.headers.get("Content-Length") or "")
            except ValueError:
                return self._answer(411, error="a Content-Length is required")
            if length > max_bytes:
                return self._answer(413, error=f"a batch may hold at most {max_bytes} bytes, this one {length}")
            key = landing_key(datetime.now(timezone.utc))
            try:
                written = write_stream(store, key, _gzipped(self.rfile, length))
            except _CutShort as exc:
                return self._answer(400, error=f"{exc}: nothing written")
            except (ConnectionError, TimeoutError):
                raise  # the client went away: nothing to answer
            except Exception as exc:
                log.error(f"altis hook: the landing store failed ({type(exc).__name__}): {length} bytes not written")
                return self._answer(503, error=f"the landing store failed ({type(exc).__name__}): nothing written, "
                                               "send the batch again")
            log.info(f"altis hook: {length} bytes -> {key} ({written} bytes gzipped)")
            self._answer(202, key=key, bytes=length)

    return _Server((host, port), Handler)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.info(f"altis hook: {client_address[0]} went away mid-request ({type(exc).__name__})")
        else:
            log.exception(f"altis hook: the request from {client_address[0]} failed")
