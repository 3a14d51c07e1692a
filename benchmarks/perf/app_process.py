"""Start app.py as its own process group on a free 127.0.0.1 port, wait for it, stop it.

Not a script: the perf scripts (`benchmarks.perf.app_latency`, `app_load`, `session_memory`)
and the browser tests all start and stop the app through these helpers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from data_index.locations import REPO_ROOT

START_TIMEOUT_S = 300


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(url: str, proc: subprocess.Popen | None, *, timeout_s: float) -> None:
    """Return once ``url`` answers 200; a RuntimeError if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"app.py exited with code {proc.returncode}; see its log above.")
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"Nothing answered at {url} within {timeout_s:.0f} s.")


def stop_process_group(proc: subprocess.Popen, *, timeout_s: float = 20) -> None:
    """End a process started with ``start_new_session=True`` and all it started: TERM, then KILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout_s)


@contextmanager
def running_app(
    *, library: Path, backbone: str, log: Path, torch_threads: int | None = None
) -> Iterator[str]:
    """app.py in its own process group on a free 127.0.0.1 port; ended on exit, whatever
    happens. Gradio's temporary files go to a folder deleted afterwards. ``torch_threads``
    sets the app's intra-op threads per request; None leaves the app's default."""
    with app_process(library=library, backbone=backbone, log=log, torch_threads=torch_threads) as (
        url,
        _proc,
    ):
        yield url


@contextmanager
def app_process(
    *,
    library: Path | None,
    backbone: str | None,
    log: Path,
    torch_threads: int | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    launcher: Sequence[str] | None = None,
    start_timeout_s: float = START_TIMEOUT_S,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``running_app`` that also hands over the process (to read its memory) and takes more
    flags and environment variables; ``library`` or ``backbone`` None starts the app without
    one (its own default). ``launcher`` replaces ``python app.py`` (a wrapper that runs app.py
    under a profiler). An app that does not start raises with the end of its log."""
    port = free_port()
    scratch = Path(tempfile.mkdtemp(prefix="bench-app-"))
    env = {
        **os.environ,
        "GRADIO_TEMP_DIR": str(scratch),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        **(env or {}),
    }
    if torch_threads is not None:
        env |= {
            "DERMSEARCH_TORCH_THREADS": str(torch_threads),
            "OMP_NUM_THREADS": str(torch_threads),
        }
    command = [*(launcher or [sys.executable, "app.py"]), *extra_args]
    if backbone is not None:
        command += ["--backbone", backbone]
    if library is not None:
        command += ["--library", str(library)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        try:
            wait_until_serving(url, proc, timeout_s=start_timeout_s)
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n{log.read_text()[-3000:]}") from None
        yield url, proc
    finally:
        stop_process_group(proc)
        shutil.rmtree(scratch, ignore_errors=True)
