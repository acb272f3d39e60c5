"""Where files live: a local folder or an S3 prefix, behind one small interface.

Keys are relative, `/`-separated paths below the store's root. DuckDB reads and writes the
same locations through `uri(key)` (httpfs for S3, see `duckdb_connection`).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator
from urllib.parse import urlsplit

import duckdb
from filelock import FileLock, Timeout

import duckdb_ext

from orchestration.settings import Settings

SPILL_DIR = os.path.join(tempfile.gettempdir(), "events-warehouse-duckdb")
HTTPFS_DIR = str(Path(list(duckdb_ext.__path__)[0]) / "extensions")  # from duckdb-ext-httpfs


@dataclass(frozen=True)
class FileInfo:
    """A file found under a prefix. `version` changes when the file is rewritten (size and
    modification time, or the ETag); `refused` says why the file must not be read (a symlink
    that leaves the store's root, a dangling one, a symlinked folder)."""

    key: str
    size: int
    version: str
    refused: str | None = None


class Store:
    root: str
    writes_in_place = False  # True where each write is atomic (S3): nothing staged, nothing left behind
    remote = False  # True where reads and writes are network requests (S3), which DuckDB's threads overlap

    def root_exists(self) -> bool:
        raise NotImplementedError

    def list_files(self, prefix: str) -> list[FileInfo]:
        """Every file whose key starts with `prefix` (recursive), sorted by key."""
        raise NotImplementedError

    def list_folder(self, folder: str) -> list[FileInfo]:
        """The files directly in `folder` (a key prefix ending in `/`), not in its sub-folders."""
        raise NotImplementedError

    def open(self, key: str) -> IO[bytes]:
        """A binary stream of the file (FileNotFoundError when it is gone)."""
        raise NotImplementedError

    def uri(self, key: str) -> str:
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        """Every key starting with `prefix` (a plain string prefix, recursive), sorted."""
        return [info.key for info in self.list_files(prefix)]

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def delete(self, keys: Iterable[str]) -> None:
        raise NotImplementedError

    def copy(self, source_key: str, key: str) -> None:
        """Copy the file `source_key` to `key`, bytes unchanged (within the store: no download)."""
        raise NotImplementedError

    def prepare(self, key: str) -> None:
        """Make `key` writable by DuckDB's COPY (local folders must exist first)."""

    def staging_key(self, final_key: str) -> str:
        """Where to write before `publish(staging, final)` moves the result into place."""
        raise NotImplementedError

    def publish(self, staging_key: str, final_key: str) -> None:
        """Replace `final_key` (a file or a folder of files) by what was written at `staging_key`."""
        raise NotImplementedError

    def sweep_leftovers(self, prefix: str, older_than: timedelta) -> list[str]:
        """Remove what a killed run left behind under `prefix` (a plain key prefix): staging
        folders or files (`.staging-*`), folders moved aside by `publish` (`.trash-*`) and
        half-written files of `write_bytes` (`.*.tmp`), when nothing in them changed for
        `older_than` (a live run's staging is younger). Returns the keys removed, sorted."""
        raise NotImplementedError


def is_leftover(name: str) -> bool:
    """A file or folder name that only a run in progress, or a killed one, leaves in a store."""
    return name.startswith((".staging-", ".trash-")) or (name.startswith(".") and name.endswith(".tmp"))


def _compatible(folder: str, prefix: str) -> bool:
    return folder.startswith(prefix) or prefix.startswith(folder)


def _newest_mtime(path: str) -> float:
    """The latest modification time of a file, or of a folder and everything in it."""
    newest = os.lstat(path).st_mtime
    if os.path.isdir(path) and not os.path.islink(path):
        for dirpath, dirnames, filenames in os.walk(path):
            for name in [*dirnames, *filenames]:
                try:
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
                except FileNotFoundError:
                    pass
    return newest


class LocalStore(Store):
    def __init__(self, root: str):
        self.root = str(Path(root))

    def _path(self, key: str) -> Path:
        return Path(self.root, key)

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def root_exists(self) -> bool:
        return Path(self.root).is_dir()

    def list_files(self, prefix: str) -> list[FileInfo]:
        base_dir, _, _ = prefix.rpartition("/")
        start = self._path(base_dir)
        if not start.is_dir():
            return []
        real_root = os.path.realpath(self.root)
        out = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            for d in dirnames:  # os.walk does not descend into symlinked folders: say so
                if os.path.islink(os.path.join(dirpath, d)) and (rel_dir + d).startswith(prefix):
                    out.append(FileInfo(rel_dir + d, 0, "", "symlinked folder: not followed"))
            dirnames[:] = [d for d in dirnames if _compatible(rel_dir + d + "/", prefix)
                           and not os.path.islink(os.path.join(dirpath, d))]
            for f in filenames:
                if (rel_dir + f).startswith(prefix):
                    info = self._info(os.path.join(dirpath, f), rel_dir + f, real_root)
                    out.extend([info] if info else [])
        return sorted(out, key=lambda i: i.key)

    def list_folder(self, folder: str) -> list[FileInfo]:
        path, real_root = self._path(folder), os.path.realpath(self.root)
        if not path.is_dir():
            return []
        infos = (self._info(entry.path, folder + entry.name, real_root) for entry in os.scandir(path)
                 if entry.is_file() or (entry.is_symlink() and not entry.is_dir()))
        return sorted((i for i in infos if i), key=lambda i: i.key)

    @staticmethod
    def _info(path: str, key: str, real_root: str) -> FileInfo | None:
        refused = None
        if os.path.islink(path):
            target = os.path.realpath(path)
            if os.path.commonpath([real_root, target]) != real_root:
                refused = "symlink to a file outside the landing root: not followed"
            elif not os.path.isfile(target):
                refused = "dangling symlink: its target does not exist"
        try:
            st = os.stat(path) if refused is None else os.lstat(path)
        except FileNotFoundError:  # gone since the listing
            return None
        return FileInfo(key, st.st_size, f"{st.st_size}:{st.st_mtime_ns}", refused)

    def open(self, key: str) -> IO[bytes]:
        return open(self._path(key), "rb")

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def prepare(self, key: str) -> None:
        self._path(key).parent.mkdir(parents=True, exist_ok=True)

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def copy(self, source_key: str, key: str) -> None:
        self.prepare(key)  # a real copy (the kernel's), not a link: the two layers never share a file
        shutil.copyfile(self._path(source_key), self._path(key))

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self._path(key)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def staging_key(self, final_key: str) -> str:
        head, _, name = final_key.rpartition("/")
        return f"{head}/.staging-{name}-{uuid.uuid4().hex}" if head else f".staging-{name}-{uuid.uuid4().hex}"

    def publish(self, staging_key: str, final_key: str) -> None:
        src, dst = self._path(staging_key), self._path(final_key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            # A folder cannot be renamed over another: move the old one aside first.
            trash = dst.with_name(f".trash-{dst.name}-{uuid.uuid4().hex}")
            if dst.exists():
                os.rename(dst, trash)
            os.rename(src, dst)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(src, dst)

    def sweep_leftovers(self, prefix: str, older_than: timedelta) -> list[str]:
        base_dir, _, _ = prefix.rpartition("/")
        start = self._path(base_dir)
        if not start.is_dir():
            return []
        cutoff = time.time() - older_than.total_seconds()
        removed = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            for name in [*dirnames, *filenames]:
                key = rel_dir + name
                if not (is_leftover(name) and key.startswith(prefix)):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    if _newest_mtime(path) >= cutoff:
                        continue
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                except FileNotFoundError:  # published or removed meanwhile
                    continue
                removed.append(key)
            dirnames[:] = [d for d in dirnames if _compatible(rel_dir + d + "/", prefix)
                           and not is_leftover(d) and not os.path.islink(os.path.join(dirpath, d))]
        return sorted(removed)


class S3Store(Store):
    """An S3 prefix. Each object PUT is atomic, so results are written in place and stale
    objects removed afterwards; `publish` is a server-side copy for single files."""

    def __init__(self, root: str, client: Any, attempts: int = Settings.s3_max_attempts):
        assert root.startswith("s3://")
        self.root = root.rstrip("/")
        bucket, _, prefix = self.root[len("s3://"):].partition("/")
        self.bucket, self.prefix = bucket, (prefix + "/" if prefix else "")
        self.client, self.attempts = client, attempts
        # A request that still fails after boto's retries names the endpoint it could not reach.
        client.meta.events.register("after-call.s3", _name_endpoint_in_errors, unique_id=_NAME_ENDPOINT_HANDLER)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def root_exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return True
        except self.client.exceptions.ClientError as exc:  # an outage is not a missing bucket: raise it
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                return False
            raise

    def list_folder(self, folder: str) -> list[FileInfo]:
        return self.list_files(folder, delimiter="/")

    def list_files(self, prefix: str, delimiter: str = "") -> list[FileInfo]:
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix, Delimiter=delimiter):
            for obj in page.get("Contents", []):
                version = f"{obj['Size']}:{obj.get('ETag', '')}:{obj['LastModified'].isoformat()}"
                out.append(FileInfo(obj["Key"][len(self.prefix):], obj["Size"], version))
        return sorted(out, key=lambda i: i.key)

    def open(self, key: str) -> IO[bytes]:
        try:
            return self._body(key)
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"{key}: no such object") from None

    def read_bytes(self, key: str) -> bytes:
        with self._body(key) as body:
            return body.read()

    def _body(self, key: str) -> IO[bytes]:
        return ResumedBody(partial(self.client.get_object, Bucket=self.bucket, Key=self.prefix + key), self.attempts)

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
            return True
        except self.client.exceptions.ClientError:
            return False

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        expanded = []
        for key in keys:
            listed = self.list(key.rstrip("/") + "/")
            expanded.extend(listed or [key])
        for i in range(0, len(expanded), 1000):
            chunk = [{"Key": self.prefix + k} for k in expanded[i : i + 1000]]
            if chunk:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})

    writes_in_place = True  # object writes are atomic
    remote = True

    def copy(self, source_key: str, key: str) -> None:
        self.client.copy_object(Bucket=self.bucket, Key=self.prefix + key,
                                CopySource={"Bucket": self.bucket, "Key": self.prefix + source_key})

    def staging_key(self, final_key: str) -> str:
        return final_key

    def publish(self, staging_key: str, final_key: str) -> None:
        if staging_key != final_key:
            self.copy(staging_key, final_key)
            self.delete([staging_key])

    def sweep_leftovers(self, prefix: str, older_than: timedelta) -> list[str]:
        # Object writes are atomic, so only folders copied from a local lake can hold such names.
        cutoff = datetime.now(timezone.utc) - older_than
        leftovers = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"][len(self.prefix):]
                if any(is_leftover(part) for part in key.split("/")) and obj["LastModified"] < cutoff:
                    leftovers.append(key)
        for i in range(0, len(leftovers), 1000):
            chunk = [{"Key": self.prefix + k} for k in leftovers[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
        return sorted(leftovers)


class ChangedWhileRead(OSError):
    """The S3 object was replaced while it was read: what was read is of a version that is gone."""


class ResumedBody(io.RawIOBase):
    """An S3 object's body that, when its download is cut short (the connection dropped mid-body,
    a read timed out), asks for the rest of the same version (a `Range` request with `IfMatch`
    its ETag), up to `attempts` downloads in all, waiting between them as httpfs does between its
    retries (at most boto's 20 s). botocore retries a request, never a body it has
    begun to stream; and its body used as a context manager hands out the raw stream, which ends
    quietly where the connection dropped (a good file read as a truncated one)."""

    def __init__(self, get: Callable[..., dict], attempts: int):
        import botocore.exceptions as bex

        self._cut = (bex.IncompleteReadError, bex.ResponseStreamingError, bex.ReadTimeoutError, bex.ConnectionClosedError)
        self._client_error = bex.ClientError
        answer = get()
        self._get, self._etag, self._body = get, answer["ETag"], answer["Body"]
        self._received, self._resumes = 0, 0
        self._attempts = attempts

    def readable(self) -> bool:
        return True

    def readall(self) -> bytes:  # RawIOBase's reads 8 KB a call
        chunks = []
        while chunk := self.read(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    def readinto(self, buffer: Any) -> int:
        while True:
            try:
                n = self._body.readinto(buffer)
            except self._cut:
                self._resumes += 1
                if self._resumes >= self._attempts:
                    raise
                self._body.close()
                time.sleep(min(20.0, HTTP_RETRY_WAIT_MS / 1000 * HTTP_RETRY_BACKOFF ** (self._resumes - 1)))  # as httpfs waits
                try:
                    self._body = self._get(Range=f"bytes={self._received}-", IfMatch=self._etag)["Body"]
                except self._client_error as exc:
                    if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                        raise ChangedWhileRead("the object was replaced while it was read") from None
                    raise
                continue
            self._received += n
            return n

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


_NAME_ENDPOINT_HANDLER = "warehouse-name-endpoint-in-errors"
_UNAVAILABLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestTimeout",
                      "ServiceUnavailable", "InternalError", "TooManyRequestsException"}


def _name_endpoint_in_errors(http_response: Any, parsed: dict, **_: Any) -> None:
    """botocore `after-call` hook: an S3 error that outlived the retries (5xx, throttling) says
    which endpoint gave it and after how many attempts. Never the request's headers."""
    error = parsed.get("Error") if isinstance(parsed, dict) else None
    status = getattr(http_response, "status_code", 0) or 0
    if not error or not (status >= 500 or error.get("Code") in _UNAVAILABLE_CODES):
        return
    url = urlsplit(getattr(http_response, "url", "") or "")
    attempts = (parsed.get("ResponseMetadata") or {}).get("RetryAttempts", 0) + 1
    message = error.get("Message") or f"HTTP {status}"
    error["Message"] = (f"{message} [the S3 endpoint {url.scheme}://{url.netloc} answered HTTP {status} "
                        f"to {attempts} attempt{'s' if attempts != 1 else ''}]")


@dataclass(frozen=True)
class S3Access:
    """How DuckDB's httpfs reaches S3: the credentials boto3 resolved (None: none found), the region
    and the endpoint. Never printed: the credentials are left out of its repr."""

    credentials: Any = field(repr=False)  # botocore's ReadOnlyCredentials
    region: str
    endpoint_url: str

    @classmethod
    def of(cls, client: Any, session: Any) -> S3Access:
        """The region and endpoint of a boto3 S3 client, and the credentials of the boto3 session
        it was made from (`Session.get_credentials`: boto3's public API, not the client's insides)."""
        credentials = session.get_credentials()
        return cls(credentials.get_frozen_credentials() if credentials is not None else None,
                   client.meta.region_name or "us-east-1", client.meta.endpoint_url or "")


def duckdb_connection(s3: S3Access | None = None, *, memory_limit: str | None = None,
                      max_attempts: int = Settings.s3_max_attempts) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB in UTC that can read and write the stores (httpfs for S3)."""
    # No external file cache: it kept every Parquet file read (most are read once) until the memory
    # limit, so a long run's peak grew with its length (bench/README.md, 10x the data). No automatic
    # checkpoints: nothing is kept, and they rewrote a table the landing grows (+2 s on 2 M events).
    config = {"extension_directory": HTTPFS_DIR, "autoinstall_known_extensions": "false",
              "autoload_known_extensions": "false", "enable_external_file_cache": "false",
              "checkpoint_threshold": "1TB"}
    if memory_limit:
        config["memory_limit"] = memory_limit
        config["temp_directory"] = SPILL_DIR  # past the limit DuckDB spills here, not into the cwd
    con = duckdb.connect(config=config)
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    if s3 is not None:
        configure_s3(con, s3, max_attempts)
    return con


@contextmanager
def duckdb_settings(con: duckdb.DuckDBPyConnection, **values: object) -> Iterator[None]:
    """DuckDB settings for the statements inside, reset after."""
    for name, value in values.items():
        con.execute(f"SET {name} = {value}")
    try:
        yield
    finally:
        for name in values:
            con.execute(f"RESET {name}")


# Rows in any order: with insertion order kept, the contract query ran on one core, and even on one
# thread the landing took ~0.4 s more (bench/README.md). A setting of the DuckDB instance, seen by
# every cursor: set it only where no query relies on the order rows come in, and never beside a
# running query (SET then crashed DuckDB).
UNORDERED = {"preserve_insertion_order": "false"}


# DuckDB's httpfs retries a failed request (connection error, 408, 429, 5xx such as 503 SlowDown)
# at once, then after WAIT, WAIT*BACKOFF, WAIT*BACKOFF^2, ...: with 10 attempts the last one is
# 51 s after the first, so an outage of that long is ridden out; boto's standard mode (the other
# S3 client) waits a random 0..2^n s, at most 20 s, between its attempts.
HTTP_RETRY_WAIT_MS = 200
HTTP_RETRY_BACKOFF = 2
HTTP_TIMEOUT_SECONDS = 30  # per attempt: connect, read or write


def configure_s3(con: duckdb.DuckDBPyConnection, s3: S3Access, max_attempts: int = Settings.s3_max_attempts) -> None:
    """Load httpfs on `con`, retry its HTTP requests with backoff (`max_attempts` in all) and give it
    `s3`'s credentials and endpoint as a temporary secret.

    The credentials are bound as prepared-statement parameters: they never appear in SQL text,
    so no quote, backslash or semicolon in a key can change the statement, and no log line,
    query profile or error message that quotes the statement can show them."""
    con.execute("LOAD httpfs")
    # GLOBAL: these are session settings, and cursors of `con` (dbt's) must have them too.
    con.execute(f"SET GLOBAL http_retries = {max(0, int(max_attempts) - 1)}")
    con.execute(f"SET GLOBAL http_retry_wait_ms = {HTTP_RETRY_WAIT_MS}")
    con.execute(f"SET GLOBAL http_retry_backoff = {HTTP_RETRY_BACKOFF}")
    con.execute(f"SET GLOBAL http_timeout = {HTTP_TIMEOUT_SECONDS}")
    options, values = s3_secret_options(s3)
    con.execute("CREATE OR REPLACE TEMPORARY SECRET warehouse_s3 ("
                + ", ".join(f"{name} ?" for name in options) + ")", values)


def s3_secret_options(s3: S3Access) -> tuple[list[str], list[Any]]:
    """The options of DuckDB's S3 secret (names, then values to bind). The values must only ever
    be bound as parameters."""
    names, values = ["TYPE"], ["s3"]

    def add(name: str, value: Any) -> None:
        names.append(name)
        values.append(value)

    if s3.credentials is not None:
        add("KEY_ID", s3.credentials.access_key)
        add("SECRET", s3.credentials.secret_key)
        if s3.credentials.token:
            add("SESSION_TOKEN", s3.credentials.token)
    add("REGION", s3.region)
    if s3.endpoint_url and "amazonaws.com" not in s3.endpoint_url:
        add("ENDPOINT", s3.endpoint_url.split("://", 1)[-1].rstrip("/"))
        add("URL_STYLE", "path")
        add("USE_SSL", s3.endpoint_url.startswith("https"))
    return names, values


# --- the DuckDB file of the marts: one process at a time -------------------------------------

class DuckDBFileBusy(TimeoutError):
    """The DuckDB file stayed locked by another process past WAREHOUSE_DUCKDB_LOCK_TIMEOUT."""


def lock_path(duckdb_path: str) -> str:
    """The lock file beside the DuckDB file (an OS lock on it: released when its process dies)."""
    return duckdb_path + ".lock"


def holder_path(duckdb_path: str) -> str:
    """Who holds the lock, written by the holder while it holds it: pid, host, run, purpose, since."""
    return duckdb_path + ".lock.holder"


def describe_holder(duckdb_path: str) -> str:
    try:
        holder = json.loads(Path(holder_path(duckdb_path)).read_text())
    except (OSError, ValueError):
        return "held by a process that has not said who it is"
    since = datetime.fromisoformat(holder["since"])
    ago = int((datetime.now(timezone.utc) - since).total_seconds())
    run = f" of run {holder['run_id']}" if holder.get("run_id") else ""
    return (f"held by pid {holder.get('pid')} on {holder.get('host')} ({holder.get('purpose')}{run}) "
            f"since {since:%Y-%m-%d %H:%M:%S} UTC, {ago} s ago")


@contextmanager
def duckdb_file_lock(duckdb_path: str, timeout: float, purpose: str, run_id: str | None = None,
                     log: Any = None) -> Iterator[None]:
    """Hold the DuckDB file for this process: wait up to `timeout` seconds for whoever has it
    (another backfill's dbt step, a check, a summary), then fail naming them."""
    Path(duckdb_path).parent.mkdir(parents=True, exist_ok=True)
    # One lock object per file in a process (is_singleton): a nested acquire in the same thread
    # re-enters instead of waiting for itself.
    lock = FileLock(lock_path(duckdb_path), is_singleton=True)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        if log is not None:
            log.warning(f"waiting up to {timeout:g} s for the DuckDB file {duckdb_path}: {describe_holder(duckdb_path)}")
        started = time.monotonic()
        try:
            lock.acquire(timeout=timeout, poll_interval=0.2)
        except Timeout:
            raise DuckDBFileBusy(
                f"the DuckDB file {duckdb_path} is still in use after waiting {timeout:g} s "
                f"(WAREHOUSE_DUCKDB_LOCK_TIMEOUT): {describe_holder(duckdb_path)}") from None
        if log is not None:
            log.warning(f"got the DuckDB file {duckdb_path} after waiting {time.monotonic() - started:.0f} s")
    outermost = lock.lock_counter == 1
    try:
        if outermost:
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose, "run_id": run_id,
                      "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            tmp = f"{holder_path(duckdb_path)}.{os.getpid()}.tmp"
            Path(tmp).write_text(json.dumps(holder))
            os.replace(tmp, holder_path(duckdb_path))
        yield
    finally:
        if outermost:
            Path(holder_path(duckdb_path)).unlink(missing_ok=True)
        lock.release()
