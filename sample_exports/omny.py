"""Sample Omny Studio download-event exports, in the vendor's own layout and file naming."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from sample_exports.common import (
    UTC, GenerationSummary, dumps, event_time_in, hours, iso_offset, iso_z, lateness, new_uuid,
    truncate_gzip, write_lines,
)

PROGRAMS = [("Morning Markets", "morning-markets"), ("Deep Space Weekly", "deep-space-weekly"),
            ("The Long Read", "the-long-read"), ("Kitchen Table", "kitchen-table")]
DEVICES = [({"Type": "Mobile", "Brand": "Apple", "Family": "iPhone"}, {"Family": "iOS", "MajorVersion": "17"},
            {"Family": "Apple Podcasts", "MajorVersion": "1"},
            "AppleCoreMedia/1.0.0.21E236 (iPhone; U; CPU OS 17_4 like Mac OS X; en_au)"),
           ({"Type": "Mobile", "Brand": "Samsung", "Family": "Galaxy S23"}, {"Family": "Android", "MajorVersion": "14"},
            {"Family": "Spotify", "MajorVersion": "8"}, "Spotify/8.9.10 Android/34 (SM-S911B)"),
           ({"Type": "Desktop", "Brand": None, "Family": "Other"}, {"Family": "Windows", "MajorVersion": "10"},
            {"Family": "Chrome", "MajorVersion": "124"},
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"),
           ({"Type": "Tablet", "Brand": "Apple", "Family": "iPad"}, {"Family": "iPadOS", "MajorVersion": "17"},
            {"Family": "Overcast", "MajorVersion": "2024"}, "Overcast/2024.1 (+http://overcast.fm/; iOS podcast app)"),
           ({"Type": "HiFi", "Brand": "Sonos", "Family": "Sonos One"}, {"Family": "Other", "MajorVersion": None},
            {"Family": "Sonos", "MajorVersion": "77"}, "Sonos/77.4 (ZPS27)")]
GEOS = [{"Country": "Australia", "CountryIsoCode": "AU", "State": "New South Wales", "City": "Sydney", "Postcode": "2000"},
        {"Country": "Australia", "CountryIsoCode": "AU", "State": "Victoria", "City": "Melbourne", "Postcode": "3000"},
        {"Country": "United States", "CountryIsoCode": "US", "State": "California", "City": "San Francisco", "Postcode": "94103"},
        {"Country": "United Kingdom", "CountryIsoCode": "GB", "State": "England", "City": "London", "Postcode": "EC1A"},
        {"Country": "New Zealand", "CountryIsoCode": "NZ", "State": "Auckland", "City": "Auckland", "Postcode": "1010"}]
SOURCES = ["Podcast", "Podcast", "Podcast", "Embed", "MobileApp", "ApplePodcastsWeb"]


def _catalogue(rng: random.Random) -> list[dict]:
    clips = []
    for name, slug in PROGRAMS:
        program = {"Id": new_uuid(rng), "Name": name, "Slug": slug}
        for episode in range(1, 4):
            seconds = round(rng.uniform(600, 5400), 3)
            h, rem = divmod(seconds, 3600)
            m, s = divmod(rem, 60)
            clips.append({"Program": program, "Network": {"Id": "bc8305f4-52e8-4df5-a7b7-3937939adb2d", "Name": "Harbour Audio"},
                          "Clip": {"Id": new_uuid(rng), "Slug": f"{slug}-ep-{episode}", "Title": f"{name}, episode {episode}",
                                   "AudioDuration": f"{int(h):02d}:{int(m):02d}:{s:010.7f}", "AudioDurationSeconds": seconds}})
    return clips


def _event(ts: datetime, clips: list[dict], listeners: list[tuple], rng: random.Random) -> dict:
    clip = rng.choice(clips)
    ip, device = rng.choice(listeners)
    dev, os_, ua, raw_ua = device
    download = {"RawUserAgent": raw_ua, "RawDownloadUrl": f"https://omnystudio.com/d/clips/{clip['Clip']['Id']}/audio.mp3",
                "RawReferrerUrl": None, "EmbeddedUrl": None, "DownloadedAtUtc": iso_z(ts), "IpAddress": ip,
                "Device": dev, "OS": os_, "UserAgent": ua, "Source": rng.choice(SOURCES)}
    if rng.random() < 0.85:  # Geo is a paid add-on: not every record has it
        download["Geo"] = rng.choice(GEOS)
    return {"EventId": new_uuid(rng), **clip, "Download": download}


def generate(out: Path, start: datetime, hours_: int, rng: random.Random) -> GenerationSummary:
    summary = GenerationSummary(source="omny")
    clips = _catalogue(rng)
    listeners = [(f"203.0.{rng.randrange(256)}.{rng.randrange(1, 255)}", rng.choice(DEVICES)) for _ in range(300)]
    window = hours(start, hours_)
    last_hour = window[-1]
    files: dict[datetime, list[list[str]]] = defaultdict(lambda: [[], []])  # arrival hour -> two files of lines
    first_ts: dict[tuple[datetime, int], datetime] = {}

    def deliver(arrival: datetime, line: str, ts: datetime, which: int | None = None) -> None:
        which = rng.randrange(2) if which is None else which
        files[arrival][which].append(line)
        k = (arrival, which)
        first_ts[k] = min(first_ts.get(k, ts), ts)

    for i, hour in enumerate(window):
        for n in range(rng.randrange(40, 90)):
            ts = event_time_in(hour, rng)
            if n == 0:
                ts = hour  # exactly on the hour boundary
            record = _event(ts, clips, listeners, rng)
            if n == 1:  # the same instant written with an offset
                record["Download"]["DownloadedAtUtc"] = iso_offset(ts, 10)
            arrival = ts.replace(minute=0, second=0, microsecond=0) + lateness(rng)
            if arrival > last_hour:
                arrival = hour
            if arrival > hour:
                summary.late += 1
            summary.records += 1
            deliver(arrival, dumps(record), ts)
            if rng.random() < 0.06:  # at-least-once: a second copy, same hour or up to 24 h later
                again = arrival + timedelta(hours=rng.choice([0, 0, 1, 5, 23]))
                if again <= last_hour:
                    deliver(again, dumps(record), ts)
                    summary.duplicates += 1
        for _ in range(3 if i < 6 else 0):  # late from the day before: delivered across midnight
            ts = hour - timedelta(minutes=rng.randrange(30, 24 * 60))
            deliver(hour, dumps(_event(ts, clips, listeners, rng)), ts)
            summary.records += 1
            summary.late += 1
        if i % 6 == 2:  # a line that is not JSON, and a record without its id
            deliver(hour, '{"EventId": "broken", "Program": {', hour)
            bad = _event(event_time_in(hour, rng), clips, listeners, rng)
            del bad["EventId"]
            deliver(hour, dumps(bad), hour)
            summary.malformed += 1
            summary.missing_required += 1

    for arrival, parts in sorted(files.items()):
        for which, lines in enumerate(parts):
            if not lines:
                continue
            ts = first_ts[(arrival, which)].astimezone(UTC)
            written = arrival + timedelta(minutes=52 if which else 12)
            name = f"{written:%Y-%m-%dT%H%M}_{ts:%H%M%S}.{ts.microsecond // 1000:03d}_{new_uuid(rng)}.jsonl.gz"
            write_lines(out / f"omny/{written:%Y}/{written:%Y-%m}/{written:%Y-%m-%d}" / name, lines, gz=True)
            summary.files += 1
    if len(window) >= 3:  # an interrupted upload: a re-delivery of an earlier file, cut short
        arrival = window[2]
        lines = files[window[1]][0] or files[window[1]][1]
        if lines:
            path = out / f"omny/{arrival:%Y}/{arrival:%Y-%m}/{arrival:%Y-%m-%d}/{arrival:%Y-%m-%dT%H}59_000000.000_{new_uuid(rng)}.jsonl.gz"
            write_lines(path, lines, gz=True)
            truncate_gzip(path)
            summary.files += 1
            summary.notes.append(f"truncated gzip file: {path.relative_to(out)}")
    return summary
