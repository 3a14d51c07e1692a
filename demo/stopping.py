"""Cancel buttons for long work (a benchmark run, a first index build, an upload's validation).

Gradio's own ``cancels=`` only stops the browser waiting: a handler running in a worker thread
goes on. So each run takes a fresh flag for its browser session, its progress callback looks at
that flag between batches, and the Cancel button sets it; the run then stops with ``Cancelled``.
A fresh flag per run means a Cancel meant for an old run can never stop the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from demo.state import Cancelled, Progress


class StopFlags:
    """One flag per (browser session, kind of work): set by Cancel, seen by the run."""

    def __init__(self) -> None:
        self._flags: dict[tuple[str, str], threading.Event] = {}
        self._running: dict[tuple[str, str], int] = {}
        self._guard = threading.Lock()

    def start(self, session: str, kind: str = "") -> threading.Event:
        """A new, clear flag for a run that begins now (the session's older flag is left set
        if Cancel set it, so the run it belongs to still stops)."""
        with self._guard:
            flag = self._flags[(session, kind)] = threading.Event()
            self._running[(session, kind)] = self._running.get((session, kind), 0) + 1
            return flag

    def finish(self, session: str, kind: str = "") -> None:
        with self._guard:
            left = self._running.get((session, kind), 1) - 1
            if left > 0:
                self._running[(session, kind)] = left
            else:
                self._running.pop((session, kind), None)

    def stop(self, session: str, kind: str = "") -> bool:
        """Ask the session's current run to stop; whether one was running."""
        with self._guard:
            flag = self._flags.get((session, kind))
            running = self._running.get((session, kind), 0) > 0
        if flag is not None:
            flag.set()
        return running


def stoppable(
    progress: Progress, flag: threading.Event, *, message: str = "Cancelled."
) -> Progress:
    """``progress`` that raises ``Cancelled(message)`` once ``flag`` is set."""

    def report(fraction: float, text: str) -> None:
        if flag.is_set():
            raise Cancelled(message)
        progress(fraction, text)

    return report


def run_stoppable(
    flags: StopFlags, session: str, kind: str, work: Callable[[threading.Event], object]
) -> object:
    """Run ``work(flag)`` with a fresh flag of the session, marked running while it runs."""
    flag = flags.start(session, kind)
    try:
        return work(flag)
    finally:
        flags.finish(session, kind)
