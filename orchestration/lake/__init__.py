"""The two Parquet lake layers: landed (by arrival hour) and events (by event hour)."""
