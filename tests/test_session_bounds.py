"""What one visitor's session may keep in the server's memory, and for how long.

Driven through gradio's own session store (``StateHolder``), the object the running server
keeps each session in, so the lifetimes tested here are the ones a visitor gets.
"""

from __future__ import annotations

import math
import time

import gradio as gr
from gradio.state_holder import StateHolder

from benchmarks.perf.app_process import free_port
from demo import build_demo
from demo.config import AppConfig, parse_config
from demo.layout import release_session
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


def test_a_closed_session_leaves_gradios_store_at_once():
    """Through a running app: a client's session is held while it is open and gone as soon
    as it closes (its heartbeat ends and the app's unload handler runs), not an hour later."""
    from gradio_client import Client

    demo = _app()
    _, url, _ = demo.launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True
    )
    try:
        held = demo.state_holder.session_data
        before = set(held)
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        client.predict(None, api_name="/select_library")  # any event: the session is now held
        session = client.session_hash
        assert session in held
        client.close()
        deadline = time.monotonic() + 60
        while session in held and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session not in held
        assert set(held) <= before
    finally:
        demo.close()


def test_release_session_runs_delete_callbacks_and_forgets_the_session():
    demo = _app()
    deleted = []
    photo = _photo_state(demo)
    photo.delete_callback = deleted.append
    holder = StateHolder()
    holder.set_blocks(demo)
    holder["visitor"][photo._id] = b"jpeg"
    holder["other"][photo._id] = b"theirs"
    assert release_session(demo, "visitor") is True
    assert deleted == [b"jpeg"]
    assert "visitor" not in holder and "visitor" not in holder.time_last_used
    assert "other" in holder and holder["other"].state_data[photo._id] == b"theirs"
    assert release_session(demo, "visitor") is False
    assert release_session(demo, None) is False
