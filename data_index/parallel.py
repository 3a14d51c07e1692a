"""One ordered, cancellable thread map for the library's file checks and its copy audit.

Decoding, hashing and OpenCV's image work release the GIL, so threads share the cores without
copying any image or signature to another process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor


def thread_count(threads: int | None) -> int:
    """``threads`` or, when None, every core this process may run on."""
    if threads is not None:
        return max(1, int(threads))
    if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process may use
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def in_threads(fn: Callable, items: Sequence, threads: int) -> Iterator:
    """``map(fn, items)`` in order, on ``threads`` threads. A caller that stops early (an
    exception, a cancelled run) waits only for the items already in progress: the queued rest
    never starts (the executor's own exit would wait for all of them)."""
    if threads <= 1 or len(items) < 2:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        yield from pool.map(fn, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
