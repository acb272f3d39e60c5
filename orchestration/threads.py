"""Helper threads that must not slow the thread they help."""

from __future__ import annotations

import os
import sys
import threading

HELPER_NICENESS = 10  # added to a helper thread's nice value (Linux: one per thread)


def yield_to_main_thread() -> None:
    """Lower the calling thread's CPU priority: a thread reading ahead or writing behind takes the
    cores the main thread leaves, and the main thread's queries (the critical path of a landing run)
    are not slowed by the threads that feed and follow them (bench/README.md). Where nice values
    are per process (not Linux), nothing changes."""
    if sys.platform != "linux":
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + HELPER_NICENESS))
    except OSError:  # not allowed here: the thread runs at its priority as it was
        pass
