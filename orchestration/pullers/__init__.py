"""Pullers: clients for the vendors that must be polled; each writes what it fetches into the
landing store, in the layout its source contract names, so the `<source>_landed` asset reads it."""
