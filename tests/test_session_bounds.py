"""What one visitor's session may keep in the server's memory, and for how long.

Driven through gradio's own session store (``StateHolder``), the object the running server
keeps each session in, so the lifetimes tested here are the ones a visitor gets.
"""

from __future__ import annotations

import math
import time

import gradio as gr
from gradio.state_holder import StateHolder

from demo import build_demo
from demo.config import AppConfig, parse_config
from demo.state import AppState

BACKBONE = "efficientnet-lite0"
NO_SHARED = {"DERMSEARCH_SHARED": "/nonexistent-shared"}


def _app(**settings) -> gr.Blocks:
    config = AppConfig(library=None, backbone=BACKBONE, host="127.0.0.1", port=0, **settings)
    return build_demo(config, state=AppState())


def _photo_state(demo: gr.Blocks) -> gr.State:
    """The one session value with a lifetime of its own: the query photo."""
    timed = [
        b for b in demo.blocks.values() if isinstance(b, gr.State) and math.isfinite(b.time_to_live)
    ]
    assert len(timed) == 1, [b.time_to_live for b in timed]
    return timed[0]


def test_photo_lifetime_is_a_flag_with_an_environment_default():
    assert parse_config([], env=NO_SHARED).photo_ttl_minutes == 30
    env = {**NO_SHARED, "DERMSEARCH_PHOTO_TTL_MINUTES": "5"}
    assert parse_config([], env=env).photo_ttl_minutes == 5
    assert parse_config(["--photo-ttl-minutes", "2.5"], env=env).photo_ttl_minutes == 2.5


def test_the_app_keeps_the_query_photo_for_the_configured_time():
    assert _photo_state(_app()).time_to_live == 30 * 60
    assert _photo_state(_app(photo_ttl_minutes=7)).time_to_live == 7 * 60


def test_an_expired_query_photo_leaves_the_session():
    """gradio drops expired state every second; here once, after the photo's time is up."""
    demo = _app(photo_ttl_minutes=0.01)  # 0.6 s
    photo = _photo_state(demo)
    holder = StateHolder()
    holder.set_blocks(demo)
    session = holder["visitor"]
    session[photo._id] = b"jpeg bytes of the query"
    holder.delete_all_expired_state()
    assert session.state_data[photo._id] == b"jpeg bytes of the query"  # not yet
    time.sleep(1.0)
    holder.delete_all_expired_state()
    assert photo._id not in session.state_data
