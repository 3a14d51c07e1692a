"""Checks for the arguments an API caller sends, each failing with a sentence they can act on.

Gradio passes through whatever JSON a script sends (a string for a number, null, a list), so
every endpoint checks its arguments with these before doing any work.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any


def text_argument(value: object, *, name: str, max_chars: int = 200) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be text, not {_kind(value)}.")
    text = value.strip()
    if not text:
        raise ValueError(f"{name} is empty.")
    if len(text) > max_chars:
        raise ValueError(f"{name} is {len(text):,} characters long; at most {max_chars}.")
    return text


def optional_text(value: object, *, name: str, max_chars: int = 200) -> str | None:
    """A string or nothing (None or blank)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return text_argument(value, name=name, max_chars=max_chars)


def whole_number(value: object, *, name: str, low: int, high: int) -> int:
    """An integer from ``low`` to ``high``; a float with no fraction (what sliders send) is
    accepted, a string, None, a bool or a fraction is not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a whole number from {low} to {high}, not {_kind(value)}.")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}.")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{name} must be from {low} to {high}, not {number}.")
    return number


def one_of(value: object, choices: Sequence[str], *, name: str) -> str:
    """One of ``choices`` (exact), else a sentence listing them."""
    text = text_argument(value, name=name)
    if text not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {text!r}.")
    return text


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"[:80]


def checked_by_handler(component: Any) -> Any:
    """Let a value that a component's own preprocessing refuses (``k`` sent as text) reach the
    handler, whose check answers with a sentence; gradio's refusal reaches an API caller with
    no message at all. Done on the instance, like ``ui_search.tolerate_unreadable``."""
    original = component.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return original(payload)
        except Exception:
            return payload

    component.preprocess = preprocess
    return component


# An absolute POSIX path of two or more parts, not preceded by a word character or ':' (so
# ratios such as 3/4 and URLs stay as they are). Its last part is kept: the file's name is
# what a visitor needs, and the folders above it are the server's business.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])/(?:[^\s/'\"`]+/)+([^\s/'\"`]*)")


def without_server_paths(text: str) -> str:
    """``text`` with every absolute path cut down to its last part."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "(folder)", text)
