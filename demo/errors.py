"""Turn exceptions from handlers into messages a user can act on, never a traceback.

An expected error (a ``ValueError`` with a sentence, a cancelled run) is only shown; an
unexpected one is also logged with its traceback under the handler's module logger, so the
server log says what the browser's one sentence leaves out.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import gradio as gr

from demo.arguments import without_server_paths
from demo.state import Cancelled
from models import NoTextTower, UnknownBackbone, WeightsUnavailable

P = ParamSpec("P")
R = TypeVar("R")

# Errors whose message is already a sentence for the user (the project's convention).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    UnknownBackbone,
    WeightsUnavailable,
    NoTextTower,
    FileNotFoundError,
)


def is_expected(err: BaseException) -> bool:
    """Whether ``err`` carries its own sentence for the user (no traceback needed)."""
    return isinstance(err, (*USER_ERRORS, Cancelled))


def user_message(err: BaseException) -> str:
    """The sentence to show for an exception (unexpected ones get a generic, safe sentence);
    a path a message happens to carry is cut to its file name."""
    if isinstance(err, Cancelled):
        return without_server_paths(
            str(err) or "Cancelled: nothing was changed beyond what had finished."
        )
    if isinstance(err, USER_ERRORS):
        return without_server_paths(
            str(err) or f"{type(err).__name__} without a message; please report it."
        )
    return (
        f"Something went wrong ({type(err).__name__}). The server log has the details; try "
        "again, or pick another backbone or library."
    )


def log_unexpected(err: BaseException, *, handler: Callable) -> None:
    """Log an unexpected error with its traceback under the logger of the handler's module."""
    if is_expected(err):
        return
    logger = logging.getLogger(getattr(handler, "__module__", None) or __name__)
    name = getattr(handler, "__qualname__", None) or getattr(handler, "__name__", repr(handler))
    logger.exception("Unexpected error in %s", name, exc_info=err)


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap an event handler so that every failure reaches the browser as a ``gr.Error``."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            log_unexpected(err, handler=fn)
            raise gr.Error(user_message(err), print_exception=False) from err

    return wrapper


class PageMessages:
    """The last error sentence of each (browser session, place), so an event can also show it
    on the page beside the control that caused it, where it stays: gradio runs an event's
    ``.failure`` callback without the exception, and a toast vanishes after a few seconds.
    The event itself still fails, so API callers get the error as before."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], str] = {}
        self._guard = threading.Lock()

    def guarded(self, fn: Callable[P, R], *, place: str) -> Callable[P, R]:
        """``guarded(fn)`` that also keeps the sentence; ``fn`` takes a ``request`` argument."""
        inner = guarded(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return inner(*args, **kwargs)
            except gr.Error as err:
                request = kwargs.get("request") or next(
                    (a for a in args if isinstance(a, gr.Request)), None
                )
                with self._guard:
                    self._last[(_session(request), place)] = str(err.message)
                # The page shows it beside the control; a toast as well would only cover it.
                raise gr.Error(err.message, visible=False, print_exception=False) from err

        return wrapper

    def shown(self, *, place: str, title: str) -> Callable[[gr.Request], str]:
        """A ``.failure`` callback: the session's last sentence for ``place``, under ``title``."""

        def show(request: gr.Request) -> str:
            with self._guard:
                message = self._last.pop((_session(request), place), "")
            return f"**{title}** {message}".strip()

        return show


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"
