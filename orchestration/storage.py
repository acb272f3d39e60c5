"""Where files live: a local folder or an S3 prefix, behind one small interface.

Keys are relative, `/`-separated paths below the store's root. DuckDB reads and writes the
same locations through `uri(key)` (httpfs for S3, see `duckdb_connection`).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable

import duckdb

import duckdb_ext

HTTPFS_DIR = str(Path(list(duckdb_ext.__path__)[0]) / "extensions")  # from duckdb-ext-httpfs


class Store:
    root: str

    def uri(self, key: str) -> str:
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        """Every key starting with `prefix` (a plain string prefix, recursive), sorted."""
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def delete(self, keys: Iterable[str]) -> None:
        raise NotImplementedError

    def prepare(self, key: str) -> None:
        """Make `key` writable by DuckDB's COPY (local folders must exist first)."""

    def staging_key(self, final_key: str) -> str:
        """Where to write before `publish(staging, final)` moves the result into place."""
        raise NotImplementedError

    def publish(self, staging_key: str, final_key: str) -> None:
        """Replace `final_key` (a file or a folder of files) by what was written at `staging_key`."""
        raise NotImplementedError


def _compatible(folder: str, prefix: str) -> bool:
    return folder.startswith(prefix) or prefix.startswith(folder)


class LocalStore(Store):
    def __init__(self, root: str):
        self.root = str(Path(root))

    def _path(self, key: str) -> Path:
        return Path(self.root, key)

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def list(self, prefix: str) -> list[str]:
        # Walk only the deepest existing folder the prefix names.
        base_dir, _, _ = prefix.rpartition("/")
        start = self._path(base_dir)
        if not start.is_dir():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            # Descend only into folders that can hold keys with this prefix.
            dirnames[:] = [d for d in dirnames if _compatible(rel_dir + d + "/", prefix)]
            out.extend(rel_dir + f for f in filenames if (rel_dir + f).startswith(prefix))
        return sorted(out)

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


class S3Store(Store):
    """An S3 prefix. Each object PUT is atomic, so results are written in place and stale
    objects removed afterwards; `publish` is a server-side copy for single files."""

    def __init__(self, root: str, client: Any):
        assert root.startswith("s3://")
        self.root = root.rstrip("/")
        bucket, _, prefix = self.root[len("s3://"):].partition("/")
        self.bucket, self.prefix = bucket, (prefix + "/" if prefix else "")
        self.client = client

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def list(self, prefix: str) -> list[str]:
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            out.extend(obj["Key"][len(self.prefix):] for obj in page.get("Contents", []))
        return sorted(out)

    def read_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()

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

    def staging_key(self, final_key: str) -> str:
        return final_key  # object writes are atomic: write in place

    def publish(self, staging_key: str, final_key: str) -> None:
        if staging_key != final_key:
            self.client.copy_object(
                Bucket=self.bucket, Key=self.prefix + final_key,
                CopySource={"Bucket": self.bucket, "Key": self.prefix + staging_key},
            )
            self.delete([staging_key])


def duckdb_connection(s3_client: Any | None = None, *, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB in UTC that can read and write the stores (httpfs for S3)."""
    config = {"extension_directory": HTTPFS_DIR, "autoinstall_known_extensions": "false",
              "autoload_known_extensions": "false"}
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(config=config)
    con.execute("SET TimeZone = 'UTC'")
    if s3_client is not None:
        con.execute("LOAD httpfs")
        con.execute(s3_secret_sql(s3_client))
    return con


def s3_secret_sql(s3_client: Any) -> str:
    """CREATE SECRET for DuckDB from a boto3 client's own credentials and endpoint (never logged)."""
    creds = s3_client._request_signer._credentials.get_frozen_credentials()
    endpoint = s3_client.meta.endpoint_url or ""
    region = s3_client.meta.region_name or "us-east-1"
    parts = [f"TYPE s3", f"KEY_ID '{creds.access_key}'", f"SECRET '{creds.secret_key}'", f"REGION '{region}'"]
    if creds.token:
        parts.append(f"SESSION_TOKEN '{creds.token}'")
    if endpoint and "amazonaws.com" not in endpoint:
        host = endpoint.split("://", 1)[-1].rstrip("/")
        parts += [f"ENDPOINT '{host}'", "URL_STYLE 'path'", f"USE_SSL {'true' if endpoint.startswith('https') else 'false'}"]
    return "CREATE OR REPLACE SECRET warehouse_s3 (" + ", ".join(parts) + ")"
