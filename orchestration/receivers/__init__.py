"""Receivers: HTTP endpoints for the vendors that push to us, writing into the landing store in the
layout their source contract names, so the `<source>_landed` asset reads what they receive."""
