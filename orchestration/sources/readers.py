"""Readers: one vendor file in, a table of raw records out.

Every reader returns an Arrow table with the same columns, whatever the format:
`source_line` (1-based line of a text file, or row of a CSV / Parquet file), `raw` (the record as
JSON text: the line itself for JSON Lines, a flattened object keyed by the contract's dotted paths
for CSV and Parquet) and `file_error` (set when the file itself is damaged: every row of it is then
quarantined with that reason). Bulk work only: polars splits lines, DuckDB parses CSV and Parquet.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

RAW_SCHEMA = pa.schema([("source_line", pa.int64()), ("raw", pa.string()), ("file_error", pa.string())])
FLAT_FORMATS = ("csv", "parquet")


@dataclass
class ReadResult:
    table: pa.Table  # RAW_SCHEMA
    flat: bool  # raw holds flattened dotted keys (CSV, Parquet) rather than a nested record


def _table(lines, raws, errors) -> pa.Table:
    return pa.table({"source_line": pa.array(lines, pa.int64()), "raw": pa.array(raws, pa.string()),
                     "file_error": pa.array(errors, pa.string())}, schema=RAW_SCHEMA)


def file_error_table(error: str, raw: str | None = None) -> pa.Table:
    return _table([None], [raw], [error])


def _is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def read_json_lines(data: bytes) -> pa.Table:
    """JSON Lines, gzipped or not. Blank lines are not records and are skipped."""
    try:
        df = pl.read_csv(io.BytesIO(data), has_header=False, separator="\x01", quote_char=None,
                         new_columns=["raw"], infer_schema=False, row_index_name="source_line",
                         row_index_offset=1, encoding="utf8")
        if df.width != 2:
            raise ValueError("unexpected columns")
        df = df.filter(pl.col("raw").is_not_null() & (pl.col("raw").str.strip_chars() != ""))
        table = df.select(pl.col("source_line").cast(pl.Int64), "raw", pl.lit(None, pl.Utf8).alias("file_error")).to_arrow()
        return table.cast(RAW_SCHEMA)
    except Exception:  # damaged file: take the slow, careful path
        return _read_json_lines_salvage(data)


def _read_json_lines_salvage(data: bytes) -> pa.Table:
    """Recover what a truncated gzip or a file with stray bytes still holds, line by line.
    Only damaged files come here."""
    error = None
    if _is_gzip(data):
        d = zlib.decompressobj(wbits=31)
        try:
            text = d.decompress(data)
            if not d.eof:
                error = "truncated gzip file: the compressed stream ends early"
        except zlib.error as exc:
            text = b""
            error = f"corrupt gzip file: {exc}"
    else:
        text = data
    lines, raws, errors = [], [], []
    for number, line in enumerate(text.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            raws.append(line.rstrip(b"\r").decode("utf-8"))
            errors.append(error)
        except UnicodeDecodeError:
            raws.append(line.decode("utf-8", errors="replace"))
            errors.append(error or "line is not valid UTF-8")
        lines.append(number)
    if not lines and error:
        return file_error_table(error)
    return _table(lines, raws, errors)


def read_json_document(data: bytes, con: duckdb.DuckDBPyConnection) -> pa.Table:
    """A JSON array of records (a JSON Lines file is accepted too)."""
    if _is_gzip(data):
        try:
            data = zlib.decompressobj(wbits=31).decompress(data)
        except zlib.error as exc:
            return file_error_table(f"corrupt gzip file: {exc}")
    if not data.lstrip()[:1] == b"[":
        return read_json_lines(data)
    text = data.decode("utf-8", errors="replace")
    try:
        return con.execute(
            "SELECT (generate_subscripts(items, 1))::BIGINT AS source_line, unnest(items)::VARCHAR AS raw, "
            "NULL::VARCHAR AS file_error FROM (SELECT json_extract(CAST(? AS JSON), '$[*]') AS items)",
            [text],
        ).fetch_arrow_table().cast(RAW_SCHEMA)
    except duckdb.Error as exc:
        return file_error_table(f"file is not a valid JSON array: {str(exc).splitlines()[0][:200]}", text)


def _flat_select(columns: list[str], paths: dict[str, str], csv: bool) -> str:
    """SELECT that turns a flattened row into JSON keyed by the contract's dotted paths
    (matched case-insensitively), undoing CSV formula-escaping."""
    parts = []
    for col in columns:
        key = paths.get(col.lower(), col)
        ident = '"' + col.replace('"', '""') + '"'
        if csv:
            value = f"CASE WHEN regexp_matches({ident}, '^''[=+\\-@\\t\\r]') THEN substr({ident}, 2) ELSE {ident} END"
        else:
            value = ident
        parts.append('"' + key.replace('"', '""') + f'" := {value}')
    return "to_json(struct_pack(" + ", ".join(parts) + "))::VARCHAR"


def read_csv(uri: str, con: duckdb.DuckDBPyConnection, paths: dict[str, str]) -> pa.Table:
    """A flattened CSV export. Rows DuckDB cannot parse are returned with their line and reason."""
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _csv AS SELECT * FROM read_csv(?, all_varchar = true, header = true, "
            "delim = ',', quote = '\"', escape = '\"', "
            "store_rejects = true, rejects_scan = '_csv_scan', rejects_table = '_csv_rejects')",
            [uri],
        )
    except duckdb.Error as exc:
        return file_error_table(f"unreadable CSV file: {str(exc).splitlines()[0][:200]}")
    columns = [r[0] for r in con.execute("DESCRIBE _csv").fetchall()]
    good = con.execute(
        f"SELECT (row_number() OVER ())::BIGINT AS source_line, {_flat_select(columns, paths, csv=True)} AS raw, "
        f"NULL::VARCHAR AS file_error FROM _csv"
    ).fetch_arrow_table()
    bad = con.execute(
        "SELECT (line - 1)::BIGINT AS source_line, any_value(csv_line)::VARCHAR AS raw, "
        "('malformed CSV row: ' || string_agg(DISTINCT error_message, '; '))::VARCHAR AS file_error "
        "FROM _csv_rejects GROUP BY line ORDER BY line"
    ).fetch_arrow_table()
    con.execute("DROP TABLE IF EXISTS _csv; DROP TABLE IF EXISTS _csv_rejects; DROP TABLE IF EXISTS _csv_scan")
    if bad.num_rows:  # number the good rows as in the file, around the rejected ones
        rejected = np.asarray(bad.column("source_line").to_numpy(), dtype=np.int64)
        rows = np.setdiff1d(np.arange(1, good.num_rows + bad.num_rows + 1), rejected)[: good.num_rows]
        good = good.set_column(0, "source_line", pa.array(rows, pa.int64()))
    return pa.concat_tables([good.cast(RAW_SCHEMA), bad.cast(RAW_SCHEMA)])


def read_parquet(uri: str, con: duckdb.DuckDBPyConnection, paths: dict[str, str]) -> pa.Table:
    """A flattened Parquet export."""
    try:
        columns = [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [uri]).fetchall()]
        return con.execute(
            f"SELECT (file_row_number + 1)::BIGINT AS source_line, {_flat_select(columns, paths, csv=False)} AS raw, "
            f"NULL::VARCHAR AS file_error FROM read_parquet(?, file_row_number = true)",
            [uri],
        ).fetch_arrow_table().cast(RAW_SCHEMA)
    except duckdb.Error as exc:
        return file_error_table(f"unreadable Parquet file: {str(exc).splitlines()[0][:200]}")


def read_file(fmt: str, uri: str, load_bytes, con: duckdb.DuckDBPyConnection, paths: dict[str, str]) -> ReadResult:
    """Read one file of format `fmt` (as named by the contract's layout)."""
    base = fmt.removesuffix(".gz")
    if base in ("jsonl", "ndjson"):
        return ReadResult(read_json_lines(load_bytes()), flat=False)
    if base == "json":
        return ReadResult(read_json_document(load_bytes(), con), flat=False)
    if base == "csv":
        return ReadResult(read_csv(uri, con, paths), flat=True)
    if base == "parquet":
        return ReadResult(read_parquet(uri, con, paths), flat=True)
    raise ValueError(f"no reader for format {fmt!r}")
