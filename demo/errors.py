"""Turn exceptions from handlers into messages a user can act on, never a traceback."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import gradio as gr

from demo.state import Cancelled
from models import NoTextTower, UnknownBackbone, WeightsUnavailable

log = logging.getLogger("dermsearch.demo")

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


def user_message(err: BaseException) -> str:
    """The sentence to show for an exception (unexpected ones get a generic, safe sentence)."""
    if isinstance(err, Cancelled):
        return str(err) or "Cancelled: nothing was changed beyond what had finished."
    if isinstance(err, USER_ERRORS):
        return str(err) or f"{type(err).__name__} without a message; please report it."
    return (
        f"Something went wrong ({type(err).__name__}). The server log has the details; try "
        "again, or pick another backbone or library."
    )


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap an event handler so that every failure reaches the browser as a ``gr.Error``."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            if not isinstance(err, (*USER_ERRORS, Cancelled)):
                log.exception("Unexpected error in %s", getattr(fn, "__name__", fn))
            raise gr.Error(user_message(err), print_exception=False) from err

    return wrapper
