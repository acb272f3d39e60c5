"""The two Parquet lake layers: landed (by arrival hour) and events (by event hour)."""

from datetime import timedelta

DEDUPE_WINDOW = timedelta(hours=24)  # an id landed again within this many event hours is a duplicate
CHUNK = timedelta(hours=24)  # hours of a run handled per pass (ids held, files per COPY): bounds memory
