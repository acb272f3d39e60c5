"""Finding landing files: a source contract's landing layouts (patterns with date tokens) matched
against keys, and the files that arrived in each hour, with those no layout accounts for reported."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from orchestration.storage import FileInfo, Store

if TYPE_CHECKING:
    from orchestration.contracts import SourceContract


_TOKEN = re.compile(r"\{(YYYY|MM|DD|HH|mm|\*|format)\}")
_TOKEN_REGEX = {"YYYY": r"(?P<Y>\d{4})", "MM": r"(?P<M>\d{2})", "DD": r"(?P<D>\d{2})",
                "HH": r"(?P<H>\d{2})", "mm": r"(?P<m>\d{2})", "*": r"[^/]*"}


@dataclass(frozen=True)
class Layout:
    """Where a vendor's files land, and how a file's path gives its arrival hour."""

    pattern: str
    formats: tuple[str, ...]
    arrival_shift: timedelta = timedelta(0)

    @property
    def hourly(self) -> bool:
        return "{HH}" in self.pattern

    @property
    def regex(self) -> re.Pattern:
        out, pos, seen = [], 0, set()
        for m in _TOKEN.finditer(self.pattern):
            out.append(re.escape(self.pattern[pos:m.start()]))
            token = m.group(1)
            if token == "format":  # extensions match whatever their case
                out.append("(?P<format>(?i:" + "|".join(re.escape(f) for f in sorted(self.formats, key=len, reverse=True)) + "))")
            elif token in seen and token != "*":
                out.append(f"(?P={_TOKEN_REGEX[token][4]})")  # repeated date parts must agree
            else:
                out.append(_TOKEN_REGEX[token])
            seen.add(token)
            pos = m.end()
        out.append(re.escape(self.pattern[pos:]))
        return re.compile("^" + "".join(out) + "$")

    @property
    def any_format(self) -> "Layout":
        """The same layout, whatever the file's extension (to report files of an unknown format)."""
        return Layout(self.pattern.replace("{format}", "{*}"), (), self.arrival_shift)

    def match(self, key: str) -> tuple[datetime, str] | None:
        """(arrival hour, format) of a landing key, or None when the key is not of this layout."""
        m = self.regex.match(key)
        if not m:
            return None
        g = m.groupdict()
        try:
            file_time = datetime(int(g["Y"]), int(g["M"]), int(g["D"]), int(g.get("H") or 0), tzinfo=timezone.utc)
        except ValueError:
            return None
        return file_time + self.arrival_shift, (g.get("format") or "").lower()

    def scan_prefix(self, arrival_hour: datetime) -> str:
        """The folder (or, when the date is in the file name, the name prefix) holding every file of
        the day `arrival_hour`'s files are dated: listing it finds this layout's files and any
        stray file beside them."""
        day = arrival_hour - self.arrival_shift
        values = {"YYYY": f"{day:%Y}", "MM": f"{day:%m}", "DD": f"{day:%d}"}
        out, pos, day_end = [], 0, None
        for m in _TOKEN.finditer(self.pattern):
            out.append(self.pattern[pos:m.start()])
            if m.group(1) not in values:
                break
            out.append(values[m.group(1)])
            if m.group(1) == "DD" and day_end is None:
                day_end = len("".join(out))
            pos = m.end()
        else:
            out.append(self.pattern[pos:])
        prefix = "".join(out)
        folder = prefix[: prefix.rfind("/") + 1]
        return folder if day_end is not None and len(folder) >= day_end else prefix

    def folders_above(self, arrival_hour: datetime) -> list[str]:
        """The folders from the source's root down to the one `scan_prefix` lists: a stray file
        directly in one of them (`omny/README.txt`) is found by listing it, not its sub-folders."""
        prefix = self.scan_prefix(arrival_hour)
        parts = prefix.split("/")[:-1]
        return [f for f in ("/".join(parts[: i + 1]) + "/" for i in range(len(parts))) if f != prefix]



@dataclass
class HourFiles:
    """The landing files of one arrival hour: those to land (with their format) and those
    reported instead (key -> reason: a name the layout does not match, a refused symlink)."""

    files: list[tuple[FileInfo, str]] = field(default_factory=list)
    reported: dict[str, str] = field(default_factory=dict)

    def digest(self) -> str:
        """Changes when a file of the hour appears, goes, or is rewritten (size, time or ETag)."""
        listing = sorted(f"{info.key}\t{info.version}" for info, _ in self.files)
        listing += sorted(f"{key}\treported" for key in self.reported)
        return hashlib.sha1("\n".join(listing).encode()).hexdigest()


def scan_landing(contract: SourceContract, landing: Store, arrival_hours: list[datetime]) -> dict[datetime, HourFiles]:
    """Every landing file of `contract` that arrived in one of `arrival_hours`, found with one
    listing per day folder (and one of the files directly in each folder above it); files there
    that no layout matches are reported under the first of the hours that listed them, so that
    none is skipped in silence."""
    hours = set(arrival_hours)
    out = {h: HourFiles() for h in arrival_hours}
    owner: dict[str, datetime] = {}  # listed prefix -> the first hour listing it
    for hour in sorted(hours):
        for layout in contract.layouts:
            owner.setdefault(layout.scan_prefix(hour), hour)
    first = min(hours)
    above = sorted({f for l in contract.layouts for h in hours for f in l.folders_above(h)} - set(owner))
    listings = [(p, landing.list_files(p)) for p in sorted(owner)] + [(f, landing.list_folder(f)) for f in above]
    owner.update({f: first for f in above})
    seen = set()
    for prefix, infos in listings:
        for info in infos:
            if info.key in seen:
                continue
            seen.add(info.key)
            hit = next((h for h in (l.match(info.key) for l in contract.layouts) if h), None)
            loose = hit or next((h for h in (l.any_format.match(info.key) for l in contract.layouts) if h), None)
            hour = loose[0] if loose else owner[prefix]
            if hour not in hours:
                continue  # another hour's file
            if info.refused:
                out[hour].reported[info.key] = info.refused
            elif hit:
                out[hour].files.append((info, hit[1]))
            elif loose:
                formats = sorted({f for l in contract.layouts for f in l.formats})
                out[hour].reported[info.key] = f"not one of the formats {', '.join(formats)}"
            else:
                out[hour].reported[info.key] = "name does not match the landing layout"
    return out
