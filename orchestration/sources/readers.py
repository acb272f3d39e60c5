"""Readers: one vendor file in, batches of raw records out, in bounded memory.

Every reader yields Arrow tables with the same columns, whatever the format: `source_line` (1-based
line of a text file, or row of a CSV / Parquet file), `raw` (the record as JSON text: the line
itself for JSON Lines, a flattened object keyed by the contract's dotted paths for CSV and
Parquet), `file_error` (set when the record cannot be read as one: a line too long, not UTF-8,
the rest of a file past its size limit) and `max_keys` (at most how many keys the record holds:
counted from its text by the JSON Lines splitter, its cells with a value for CSV and Parquet;
NULL where not counted). A flattened file typed by the source contract's query as it is read
(`typing`) gives its good rows as `TypedRows` instead: a DuckDB table. Text is decompressed and
split as a stream, a chunk at a time, so neither a gzip bomb nor a 1 GB line is ever held whole;
DuckDB reads CSV, Parquet and JSON arrays itself, under its memory limit.

A file found damaged only at its end (a truncated or corrupt gzip stream) raises `DamagedFile`
after its batches: the caller drops what it took and reads the file again with `damaged=reason`,
so that every record of it is quarantined with that reason.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import queue
import threading
from dataclasses import dataclass
from typing import IO, Callable, Iterator

import duckdb
import numpy as np
import pyarrow as pa
from isal import isal_zlib  # zlib's API, a third of its time to gunzip (bench/README.md)

from orchestration.sources.records import RAW_CUT
from orchestration.sql import ident, sql_str
from orchestration.threads import yield_to_main_thread

RAW_SCHEMA = pa.schema([("source_line", pa.int64()), ("raw", pa.large_string()), ("file_error", pa.string()),
                        ("max_keys", pa.int32())])
FLAT_FORMATS = ("csv", "parquet")
CHUNK_BYTES = 16 * 1024 * 1024  # decompressed text split per batch
READ_BYTES = 1024 * 1024  # compressed bytes read per call
SMALL_MEMBER_BYTES = 16 * 1024  # a gzip member smaller than this: the next are fed this much at a time
HELD_BYTES = 256 * 1024  # decompressed pieces smaller than this are joined into a chunk
SCAN_BYTES = 256 * 1024  # text scanned for line ends and keys at a time: it stays in the CPU's cache
BATCH_ROWS = 200_000  # rows per batch from DuckDB readers
HEADER_BYTES = 1024 * 1024  # a CSV header is read from the file's first bytes (decompressed)
BOM = b"\xef\xbb\xbf"
JSON_WHITESPACE = np.frombuffer(b" \t\r", np.uint8)  # and the line end: a line of these alone is blank
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ReadLimits:
    max_line_bytes: int = 8 * 1024 * 1024
    max_file_bytes: int = 2 * 1024 * 1024 * 1024


class DamagedFile(Exception):
    """The file's bytes end badly: every record of it goes to quarantine with this reason."""


def _table(lines, raws, errors) -> pa.Table:
    return pa.table({"source_line": pa.array(lines, pa.int64()), "raw": pa.array(raws, pa.large_string()),
                     "file_error": pa.array(errors, pa.string()), "max_keys": pa.nulls(len(lines), pa.int32())},
                    schema=RAW_SCHEMA)


def file_error_table(error: str, raw: str | None = None, line: int | None = None) -> pa.Table:
    return _table([line], [raw], [error])


def empty_table() -> pa.Table:
    return RAW_SCHEMA.empty_table()


def _first_line(message: str) -> str:
    return (str(message).strip().splitlines() or [""])[0][:300]


# --- Text: decompress and split as a stream -----------------------------------------------------

def _decompressed(stream: IO[bytes], limits: ReadLimits) -> Iterator[bytes]:
    """The file's text in chunks, gunzipped when it is gzip (by its bytes, not its name; members
    concatenated are read in turn, zero bytes after them skipped as gzip does). Raises DamagedFile
    for a truncated or corrupt gzip stream, after the text before it. Small members (a writer that
    appends a member a record) are fed small pieces, and their text is joined into chunks: each
    member's end copies what it was fed past it, and 50,000 one-record members took 19 s and
    676 MB where one member takes 0.3 s (bench/README.md)."""
    data = stream.read(READ_BYTES)
    if data[:2] != GZIP_MAGIC:
        while data:
            yield data
            data = stream.read(READ_BYTES)
        return
    d, in_member, member_in, feed = isal_zlib.decompressobj(wbits=31), False, 0, READ_BYTES
    held: list[bytes] = []  # small pieces of text (held_bytes of it), joined into one chunk
    held_bytes = 0
    try:
        while data:
            view, pos = memoryview(data), 0
            while pos < len(view):
                if not in_member:
                    if view[pos] == 0:  # zero bytes padding the file after a member: gzip skips them
                        nonzero = np.flatnonzero(np.frombuffer(view[pos:], np.uint8))
                        if not len(nonzero):
                            break
                        pos += int(nonzero[0])
                    if not GZIP_MAGIC.startswith(bytes(view[pos: pos + 2])):  # (two bytes, or the first of them)
                        raise DamagedFile("corrupt gzip file: bytes after its gzip stream that are not gzip")
                    in_member, member_in = True, 0
                piece = view[pos: pos + feed]
                try:
                    out = d.decompress(piece, CHUNK_BYTES)
                except isal_zlib.error as exc:
                    raise DamagedFile(f"corrupt gzip file: {exc}") from None
                used = len(piece) - len(d.unconsumed_tail) - (len(d.unused_data) if d.eof else 0)
                pos, member_in = pos + used, member_in + used
                if len(out) >= HELD_BYTES:
                    if held:
                        yield b"".join(held)
                        held, held_bytes = [], 0
                    yield out
                elif out:
                    held.append(out)
                    held_bytes += len(out)
                    if held_bytes >= CHUNK_BYTES:
                        yield b"".join(held)
                        held, held_bytes = [], 0
                if d.eof:  # another gzip member may follow, or padding
                    feed = SMALL_MEMBER_BYTES if member_in < SMALL_MEMBER_BYTES else READ_BYTES
                    d, in_member = isal_zlib.decompressobj(wbits=31), False
            data = stream.read(READ_BYTES)
        if in_member:
            held.append(d.flush())
            if not d.eof:
                raise DamagedFile("truncated gzip file: the compressed stream ends early")
    except DamagedFile:
        if any(held):
            yield b"".join(held)
        raise
    if any(held):
        yield b"".join(held)


def split_lines(buf: np.ndarray, block: int = SCAN_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """(ends, bounds): the position of each newline of `buf`, and for each line at most how many
    keys its JSON holds: the colons right after a quote or JSON whitespace. Every key ends so (a
    quote, maybe whitespace, a colon); a colon inside a string may count too, so the bound is never
    too low. Both are found `block` bytes at a time: both scans of a block find its bytes in the
    CPU's cache, where two scans of a 16 MB chunk each read it from memory (~25 % more time,
    bench/README.md)."""
    ends, keys = [], []
    for start in range(0, len(buf), block):
        part = buf[start: start + block + 1]  # a byte more: a colon right after the block
        ends.append(np.flatnonzero(part[:block] == 10) + start)
        keys.append(_key_colons(buf, np.flatnonzero(part[1:] == 58) + start))
    line_ends = np.concatenate(ends) if ends else np.zeros(0, np.int64)
    return line_ends, _per_line(np.concatenate(keys) if keys else np.zeros(0, np.int64), line_ends)


def _key_colons(buf: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Of the positions `before` a colon, those of a quote or JSON whitespace."""
    byte = buf[before]
    return before[(byte == 34) | (byte == 32) | (byte == 9) | (byte == 13)]


def _per_line(keys: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many of `keys` (positions before a key's colon, sorted) each line ending at `ends` holds:
    the keys up to its end less those up to the line before's (far fewer ends than keys to look up)."""
    return np.diff(np.searchsorted(keys, ends - 1), prepend=0).astype(np.int32)


def _lines_table(chunk: bytes | memoryview, first_line: int, limits: ReadLimits, error: str | None) -> tuple[pa.Table, int]:
    """(records, lines) of `chunk` (which ends with a newline), numbered from `first_line`; blank
    lines (empty, or JSON whitespace alone) are not records. Lines too long or not UTF-8 are kept as
    records with their reason. The text keeps its line end (JSON ignores it; quarantine trims it):
    no copy of the chunk is made."""
    buf = np.frombuffer(chunk, np.uint8)
    ends, bounds = split_lines(buf)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    cr = buf[np.maximum(ends - 1, 0)] == 13
    offsets = pa.py_buffer(np.concatenate(([0], ends + 1)).astype(np.int64))
    binary = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(ends), [None, offsets, pa.py_buffer(chunk)])
    numbers = np.arange(first_line, first_line + len(ends), dtype=np.int64)
    keep = lengths > 0
    maybe_blank = np.flatnonzero(keep & (bounds == 0))  # no key: rare, but a file of garbage is all such lines
    maybe_blank = maybe_blank[np.isin(buf[starts[maybe_blank]], JSON_WHITESPACE)]  # and starting with whitespace
    for i in maybe_blank:
        keep[i] = not np.isin(buf[starts[i]: ends[i]], JSON_WHITESPACE).all()
    too_long = lengths - cr > limits.max_line_bytes
    normal = keep & ~too_long
    texts = binary if normal.all() else binary.filter(pa.array(normal))
    try:
        texts = texts.cast(pa.large_string())
    except pa.ArrowInvalid:
        bad = np.zeros(len(ends), bool)
        bad[np.flatnonzero(normal)] = ~_utf8_mask(texts)
        normal &= ~bad
        texts = binary.filter(pa.array(normal)).cast(pa.large_string())
    n = len(texts)
    good = pa.table({"source_line": pa.array(numbers[normal]), "raw": texts,
                     "file_error": pa.nulls(n, pa.string()) if error is None else pa.array([error] * n, pa.string()),
                     "max_keys": pa.array(bounds[normal])},
                    schema=RAW_SCHEMA)
    special = keep & ~normal
    if not special.any():
        return good, len(ends)
    lines, raws, errors = [], [], []
    for i in np.flatnonzero(special):
        piece = bytes(chunk[starts[i]: starts[i] + min(int(lengths[i]), RAW_CUT * 4)])
        lines.append(int(numbers[i]))
        raws.append(piece.decode("utf-8", errors="replace").rstrip("\r")[:RAW_CUT])
        errors.append(error or (f"line longer than {limits.max_line_bytes} bytes (WAREHOUSE_MAX_LINE_BYTES)"
                                if too_long[i] else "line is not valid UTF-8"))
    return pa.concat_tables([good, _table(lines, raws, errors)]), len(ends)


def _utf8_mask(arr: pa.Array) -> np.ndarray:
    """Which values of a binary array are valid UTF-8, found by halving (bulk casts only)."""
    try:
        arr.cast(pa.large_string())
        return np.ones(len(arr), bool)
    except pa.ArrowInvalid:
        if len(arr) == 1:
            return np.zeros(1, bool)
        mid = len(arr) // 2
        return np.concatenate((_utf8_mask(arr.slice(0, mid)), _utf8_mask(arr.slice(mid))))


def read_json_lines(stream: IO[bytes], limits: ReadLimits, damaged: str | None = None) -> Iterator[pa.Table]:
    """JSON Lines, gzipped or not, as a stream: at most one chunk and one line held at a time.
    A UTF-8 byte-order mark and CR line ends are accepted."""
    pending = b""
    line = 1  # number of the line `pending` starts
    skipping = False  # inside a line already reported as too long
    total = yielded = 0
    chunks = _decompressed(stream, limits)
    try:
        for chunk in chunks:
            if total == 0 and chunk.startswith(BOM):
                chunk = chunk[len(BOM):]
            total += len(chunk)
            over = total > limits.max_file_bytes
            if over:  # read up to the limit, land what it holds, report the rest
                chunk = chunk[: len(chunk) - (total - limits.max_file_bytes)]
            start = 0
            if skipping:
                cut = chunk.find(b"\n")
                if cut < 0:
                    continue
                start, skipping, line = cut + 1, False, line + 1
            last = chunk.rfind(b"\n", start)
            if last >= 0:  # the lines of the chunk are split where they lie: only the one begun before is copied
                tables = []
                if pending:
                    first = chunk.find(b"\n", start)
                    table, lines = _lines_table(pending + chunk[start: first + 1], line, limits, damaged)
                    tables.append(table)
                    line, start = line + lines, first + 1
                if last >= start:
                    table, lines = _lines_table(memoryview(chunk)[start: last + 1], line, limits, damaged)
                    tables.append(table)
                    line += lines
                table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
                pending = chunk[last + 1:]
                if table.num_rows:
                    yielded += table.num_rows
                    yield table
            else:
                pending += chunk[start:] if start else chunk
            if over:
                yield file_error_table(
                    f"file larger than {limits.max_file_bytes} bytes decompressed (WAREHOUSE_MAX_FILE_BYTES): "
                    f"not read from line {line} on", line=line)
                return
            if len(pending) > limits.max_line_bytes:
                yielded += 1
                yield _table([line], [pending[: RAW_CUT * 4].decode("utf-8", errors="replace")[:RAW_CUT]],
                             [damaged or f"line longer than {limits.max_line_bytes} bytes (WAREHOUSE_MAX_LINE_BYTES)"])
                pending, skipping = b"", True
    except DamagedFile:
        if damaged is None:
            raise
        if pending and not skipping:
            table, _ = _lines_table(pending + b"\n", line, limits, damaged)
            yielded += table.num_rows
            yield table
        if not yielded:
            yield file_error_table(damaged)
        return
    if pending and not skipping:
        table, _ = _lines_table(pending + b"\n", line, limits, damaged)
        if table.num_rows:
            yield table


def is_text(fmt: str) -> bool:
    """A format read by our own streaming splitter (JSON Lines, gzipped or not)."""
    return fmt.lower().removesuffix(".gz") in ("jsonl", "ndjson")


class ReadAhead:
    """The files of a run, read in order on one thread, at most `depth` batches ahead of the caller:
    reading the next files (isal's gunzip, numpy and Arrow release the GIL; DuckDB reads CSV and Parquet on
    a cursor of its own) overlaps DuckDB's work on the ones before. `files` pairs each key with
    what reads its batches (`read_batches` of it); `batches(key)` gives one file's batches, files
    asked in the order given (one skipped is passed over); an error of the reader reaches the
    caller where it happened, after the batches before it. Memory: `depth` batches (two keep the
    typing fed as well as four did, with ~40 MB less at the peak; bench/README.md, "ninth")."""

    def __init__(self, files: list[tuple[str, Callable[[], Iterator[pa.Table | TypedRows]]]], depth: int = 2):
        self._waiting: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._files = files
        self._worker = threading.Thread(target=self._produce, name="read-ahead", daemon=True)
        self._worker.start()

    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        yield_to_main_thread()  # the caller's work on what was read comes first
        self._run()
        self._put(("", "done", None))

    def _run(self) -> None:
        for key, read in self._files:
            try:
                with contextlib.closing(read()) as batches:  # a reader stopped early cleans up here, on its thread
                    for batch in batches:
                        if not self._put((key, "batch", batch)):
                            return
            except BaseException as exc:  # handed to the caller, raised there
                if not self._put((key, "error", exc)):
                    return
                continue
            if not self._put((key, "end", None)):
                return

    def batches(self, key: str) -> Iterator[pa.Table | TypedRows]:
        while True:
            item_key, kind, item = self._waiting.get()
            if kind == "done":
                raise RuntimeError(f"read-ahead: {key} asked out of order")
            if item_key != key:  # a file the caller passed over
                continue
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._worker.join()


# --- Formats DuckDB reads itself ----------------------------------------------------------------

def _batches(relation: duckdb.DuckDBPyConnection) -> Iterator[pa.Table]:
    """The result's batches of raw records."""
    reader = relation.fetch_record_batch(BATCH_ROWS)
    for batch in reader:
        if batch.num_rows:
            yield pa.Table.from_batches([batch]).cast(RAW_SCHEMA)


@dataclass(frozen=True)
class TypedRows:
    """A flattened file's rows typed by the source contract's query, in the DuckDB table `table` of
    the reader's database (not TEMP: every cursor sees it), which the caller takes over: the rows
    are written once, where through Arrow they were exported, then inserted again (bench/README.md)."""

    table: str
    num_rows: int
    nbytes = 0  # held by DuckDB, under its memory limit


_TYPED_TABLES = itertools.count()


def read_json_document(uri: str, con: duckdb.DuckDBPyConnection, limits: ReadLimits) -> Iterator[pa.Table]:
    """A JSON array of records (gzipped or not), one record per element, streamed by DuckDB."""
    yield from _batches(con.execute(
        "SELECT row_number() OVER ()::BIGINT AS source_line, json::VARCHAR AS raw, NULL::VARCHAR AS file_error, "
        "NULL::INTEGER AS max_keys FROM read_json_objects(?, format = 'array', maximum_object_size = ?)", [uri, limits.max_line_bytes]))


# A flattened file typed from its columns by the source contract's query (given by the caller):
# (rows: a SELECT of source_line and cells, the struct of the file's columns; each contract field's
# text over cells, by dotted path; each other column's cell, by key; the row as JSON text) -> SELECT.
FlatTyping = Callable[[str, dict[str, str], dict[str, str], str], str]


def _cell(name: str, csv: bool) -> str:
    """A cell's value, undoing CSV formula-escaping."""
    if csv:
        return f"CASE WHEN regexp_matches({name}, '^''[=+\\-@\\t\\r]') THEN substr({name}, 2) ELSE {name} END"
    return name


def _flat_select(columns: list[str], paths: dict[str, str], csv: bool, prefix: str = "") -> str:
    """SELECT that turns a flattened row into JSON keyed by the contract's dotted paths
    (matched case-insensitively), undoing CSV formula-escaping. Empty cells are left out of it,
    as a nested record leaves out what it lacks: a row then carries a column the contract does
    not name only where it has a value (schema drift), and its keys are checked cheaply."""
    members = []
    for col in columns:
        key = paths.get(col.lower(), col)
        name = prefix + ident(col)
        members.append(f"CASE WHEN {name} IS NOT NULL THEN {sql_str(json.dumps(key) + ':')} || to_json({_cell(name, csv)}) END")
    return "('{' || concat_ws(',', " + ", ".join(members) + ") || '}')::VARCHAR"


def _typed_flat(con: duckdb.DuckDBPyConnection, typing: FlatTyping, line: str, source: str, columns: dict[str, str],
                paths: dict[str, str], csv: bool, params: list | None = None) -> Iterator[TypedRows]:
    """The typed rows of a flattened file (`line` numbers the rows of `source`, whose columns are
    `columns`, name -> type): each contract field's text is what JSON text built from the row gives it."""
    texts, unknown = {}, {}
    for col, type_ in columns.items():
        cell = "cells." + ident(col)
        if col.lower() in paths:
            text = _cell(cell, csv)
            texts[paths[col.lower()]] = text if type_ == "VARCHAR" else f"from_json(to_json({text}), '\"VARCHAR\"')"
        else:
            unknown[col] = cell  # only whether it holds a value counts (schema drift)
    cells = "struct_pack(" + ", ".join(f"{ident(col)} := {ident(col)}" for col in columns) + ")"
    sql = typing(f"SELECT {line} AS source_line, {cells} AS cells FROM {source}", texts, unknown,
                 _flat_select(list(columns), paths, csv, prefix="cells."))
    table = ident(f"_typed_rows_{next(_TYPED_TABLES)}")
    rows = con.execute(f"CREATE TABLE {table} AS {sql}", params or []).fetchone()[0]
    if rows:
        yield TypedRows(table, rows)
    else:
        con.execute(f"DROP TABLE {table}")


def _flat_keys(columns: list[str]) -> str:
    """How many keys `_flat_select` gives a row: its cells with a value (the bound is exact)."""
    return "(" + " + ".join(f"({ident(col)} IS NOT NULL)::INTEGER" for col in columns) + ")::INTEGER" if columns else "0"


def _duplicate_columns(columns: list[str], paths: dict[str, str]) -> list[str]:
    seen, dupes = set(), []
    for col in columns:
        key = paths.get(col.lower(), col).lower()
        if key in seen:
            dupes.append(col)
        seen.add(key)
    return dupes


def _csv_names(open_stream: Callable[[], IO[bytes]]) -> list[str] | None:
    """The names of a CSV file's header, parsed from its first bytes (gunzipped when gzip), for
    DuckDB to read the rows by without sniffing the file (~50 ms a file; bench/README.md). None
    where DuckDB would name a column otherwise (a name empty or padded with spaces), or the header
    is not whole UTF-8 text within HEADER_BYTES: DuckDB then reads it itself."""
    with open_stream() as stream:
        data = stream.read(HEADER_BYTES)
    if data[:2] == GZIP_MAGIC:
        try:
            data = isal_zlib.decompressobj(wbits=31).decompress(data, HEADER_BYTES)
        except isal_zlib.error:
            return None
    end = data.rfind(b"\n")
    if end < 0:
        return None
    try:
        names = next(csv.reader(io.StringIO(data[: end + 1].decode("utf-8-sig"), newline=""), strict=True), None)
    except (UnicodeDecodeError, csv.Error):
        return None
    return names if names and all(name and name == name.strip(" ") for name in names) else None


def read_csv(uri: str, con: duckdb.DuckDBPyConnection, paths: dict[str, str], limits: ReadLimits,
             typing: FlatTyping | None = None, open_stream: Callable[[], IO[bytes]] | None = None) -> Iterator[pa.Table | TypedRows]:
    """A flattened CSV export, typed by `typing` when given (straight from DuckDB's reader when the
    header was parsed here, else from a table of the raw rows). Rows DuckDB cannot parse are
    returned with their line and reason."""
    dialect = "delim = ',', quote = '\"', escape = '\"', max_line_size = ?"
    names = _csv_names(open_stream) if open_stream is not None else None
    if names is None:
        header = con.execute(f"SELECT * FROM read_csv(?, header = false, all_varchar = true, {dialect}, ignore_errors = true) "
                             "LIMIT 1", [uri, limits.max_line_bytes]).fetchone()
        names = [h for h in (header or ()) if h is not None]
        read_as = "all_varchar = true"
    else:
        read_as = "auto_detect = false, columns = {" + ", ".join(f"{sql_str(n)}: 'VARCHAR'" for n in names) + "}"
    dupes = _duplicate_columns(names, paths)
    if dupes:
        yield file_error_table(f"duplicate column in the CSV header: {', '.join(dupes[:5])}")
        return
    rows = (f"read_csv(?, {read_as}, header = true, {dialect}, "
            "store_rejects = true, rejects_scan = '_csv_scan', rejects_table = '_csv_rejects')")
    params = [uri, limits.max_line_bytes]
    typed: list[TypedRows] = []  # the reader's tables of typed rows, until handed over
    try:
        if typing is not None and read_as.startswith("auto_detect"):  # names parsed here: typed as read, no table between
            source, columns = rows, dict.fromkeys(names, "VARCHAR")
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _csv AS SELECT * FROM {rows}", params)
            source, params = "_csv", []
            columns = {r[0]: r[1] for r in con.execute("DESCRIBE _csv").fetchall()}
        line = "(row_number() OVER ())::BIGINT"  # the g-th good row
        if typing is not None:
            typed = list(_typed_flat(con, typing, line, source, columns, paths, csv=True, params=params))
        bad = con.execute(
            "SELECT (line - 1)::BIGINT AS source_line, left(min(csv_line), ?)::VARCHAR AS raw, "
            "('malformed CSV row: ' || string_agg(DISTINCT error_message, '; ' ORDER BY error_message))::VARCHAR AS file_error, "
            "NULL::INTEGER AS max_keys FROM _csv_rejects GROUP BY line ORDER BY line", [RAW_CUT]
        ).fetch_arrow_table().cast(RAW_SCHEMA)
        if bad.num_rows:  # numbered as in the file, around the rejected lines: the g-th good row is line g + (r_k with r_k - k < g)
            rejected = np.asarray(bad.column("source_line").to_numpy(), dtype=np.int64)
            con.register("_csv_shifts", pa.table({"shift": rejected - np.arange(1, len(rejected) + 1)}))
            shifted = "(SELECT count(*) FROM _csv_shifts WHERE shift < {})"
            for rows_ in typed:
                con.execute(f"UPDATE {rows_.table} SET source_line = source_line + {shifted.format('source_line')}")
            line, source = f"(_row + {shifted.format('_row')})::BIGINT", f"(SELECT *, row_number() OVER () AS _row FROM {source})"
        while typed:
            yield typed.pop(0)
        if typing is None:
            yield from _batches(con.execute(f"SELECT {line} AS source_line, {_flat_select(list(columns), paths, csv=True)} AS raw, "
                                            f"NULL::VARCHAR AS file_error, {_flat_keys(list(columns))} AS max_keys FROM {source}"))
        if bad.num_rows:
            yield bad
    finally:
        for rows_ in typed:  # not handed over: a failure before it
            con.execute(f"DROP TABLE IF EXISTS {rows_.table}")
        con.execute("DROP TABLE IF EXISTS _csv; DROP TABLE IF EXISTS _csv_rejects; DROP TABLE IF EXISTS _csv_scan")
        con.unregister("_csv_shifts")


def read_parquet(uri: str, con: duckdb.DuckDBPyConnection, paths: dict[str, str],
                 typing: FlatTyping | None = None) -> Iterator[pa.Table | TypedRows]:
    """A flattened Parquet export, typed by `typing` when given."""
    columns = {r[0]: r[1] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [uri]).fetchall()}
    dupes = _duplicate_columns(list(columns), paths)
    if dupes:
        yield file_error_table(f"duplicate column in the Parquet schema: {', '.join(dupes[:5])}")
        return
    line, source = "(file_row_number + 1)::BIGINT", "read_parquet(?, file_row_number = true)"
    if typing:
        yield from _typed_flat(con, typing, line, source, columns, paths, csv=False, params=[uri])
        return
    yield from _batches(con.execute(
        f"SELECT {line} AS source_line, {_flat_select(list(columns), paths, csv=False)} AS raw, "
        f"NULL::VARCHAR AS file_error, {_flat_keys(list(columns))} AS max_keys FROM {source}", [uri]))


# --- One entry point ----------------------------------------------------------------------------

def is_typed(batch: pa.Table | TypedRows) -> bool:
    """Rows typed from a flattened file's columns, not a batch of raw records."""
    return isinstance(batch, TypedRows)


def is_flat(fmt: str) -> bool:
    return fmt.removesuffix(".gz") in FLAT_FORMATS


def read_batches(fmt: str, uri: str, open_stream: Callable[[], IO[bytes]], con: duckdb.DuckDBPyConnection,
                 paths: dict[str, str], limits: ReadLimits, damaged: str | None = None,
                 typing: FlatTyping | None = None) -> Iterator[pa.Table | TypedRows]:
    """Batches of raw records of one file of format `fmt` (as named by the contract's layout); a
    flattened file's good rows already typed, in a table, when `typing` is given (`is_typed`). DuckDB errors on
    a file DuckDB reads itself are the file's: one record with the reason."""
    base = fmt.lower().removesuffix(".gz")
    if is_text(fmt):
        with open_stream() as stream:
            yield from read_json_lines(stream, limits, damaged)
        return
    if damaged is not None:
        yield file_error_table(damaged)
        return
    readers = {"json": lambda: read_json_document(uri, con, limits),
               "csv": lambda: read_csv(uri, con, paths, limits, typing, open_stream),
               "parquet": lambda: read_parquet(uri, con, paths, typing)}
    if base not in readers:
        raise ValueError(f"no reader for format {fmt!r}")
    try:
        yield from readers[base]()
    except (duckdb.HTTPException, duckdb.OutOfMemoryException):
        raise  # the store's (retried by httpfs, then the run fails) or DuckDB's memory (the landing tells whose)
    except duckdb.Error as exc:
        raise DamagedFile(f"unreadable {base.upper()} file: {_first_line(exc)}") from None
