"""What each visitor's session leaves in the running app's memory, counted, not guessed.

Starts app.py (through this module's ``serve`` mode, which traces allocations with
``tracemalloc`` once the app is warm), sends one photo search from each of ``--sessions``
distinct gradio_client sessions (closed afterwards, as a tab is), and compares the server
before and after: resident memory, live Python objects by type, the allocation sites that grew
most, and the size of gradio's per-session tables. All traffic goes to 127.0.0.1.

    .venv/bin/python -m benchmarks.perf.session_memory --sessions 100

The report is printed and kept in benchmarks/results/session_memory.md;
``benchmarks.perf.app_load`` is the load test with its targets.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import runpy
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from benchmarks.perf.app_latency import code_state, pick_queries
from benchmarks.perf.app_load import DEFAULT_LIBRARY, _client, rss_mb, search_once
from benchmarks.perf.app_process import app_process
from benchmarks.timing import machine_description
from data_index.locations import REPO_ROOT

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
FRAMES = 8
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "session_memory.md"


# --- inside the server ---------------------------------------------------------------------
def _tables(blocks) -> dict[str, int]:
    """Lengths of gradio's per-session tables (read through the running Blocks' attributes)."""
    holder = getattr(blocks, "state_holder", None)
    queue = getattr(blocks, "_queue", None)
    out = {}
    if holder is not None:
        out["sessions held"] = len(holder.session_data)
        out["session state values"] = sum(len(s.state_data) for s in holder.session_data.values())
    if queue is not None:
        out["message queues"] = len(queue.pending_messages_per_session)
        out["pending event sets"] = len(queue.pending_event_ids_session)
        out["events"] = len(queue.event_ids_to_events)
    return out


def _dump(folder: Path, tag: str) -> None:
    if not tracemalloc.is_tracing():
        # From the first look on: tracing the start-up too makes it too slow to wait for, and
        # only what sessions add afterwards is of interest.
        tracemalloc.start(FRAMES)
    gc.collect()
    tracemalloc.take_snapshot().dump(str(folder / f"{tag}.snapshot"))
    counts = Counter(type(o).__qualname__ for o in gc.get_objects())
    main = sys.modules.get("__main__")
    blocks = getattr(main, "demo", None)
    info = {"types": dict(counts), "tables": _tables(blocks) if blocks is not None else {}}
    (folder / f"{tag}.json").write_text(json.dumps(info))


def _watch(folder: Path) -> None:
    """Answer each ``<tag>.want`` file the driver drops with a snapshot ``<tag>.json``."""
    while True:
        for want in sorted(folder.glob("*.want")):
            want.unlink()
            _dump(folder, want.stem)
        time.sleep(0.3)


def serve(dump: Path, app_args: list[str]) -> None:
    threading.Thread(target=_watch, args=(dump,), daemon=True).start()
    sys.argv = ["app.py", *app_args]
    runpy.run_path(str(REPO_ROOT / "app.py"), run_name="__main__")


# --- the driver ----------------------------------------------------------------------------
def snapshot(folder: Path, tag: str, *, timeout_s: float = 300) -> dict:
    (folder / f"{tag}.want").touch()
    deadline = time.monotonic() + timeout_s
    while not (folder / f"{tag}.json").is_file():
        if time.monotonic() > deadline:
            raise RuntimeError(f"The server wrote no {tag} snapshot.")
        time.sleep(0.5)
    time.sleep(0.5)
    return json.loads((folder / f"{tag}.json").read_text())


def sessions(url: str, *, count: int, threads: int, downloads: Path, run) -> int:
    errors = 0
    lock = threading.Lock()
    left = iter(range(count))

    def worker() -> None:
        nonlocal errors
        while True:
            with lock:
                i = next(left, None)
            if i is None:
                return
            client = None
            try:
                client = _client(url, downloads)
                run(client, i)
            except Exception as err:  # counted: the figures are still worth reading
                with lock:
                    errors += 1
                print(f"  session {i}: {type(err).__name__}: {err}"[:200], flush=True)
            finally:
                if client is not None:
                    client.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return errors


def report(folder: Path, before: dict, after: dict, *, count: int, top: int) -> list[str]:
    per = max(count, 1)
    lines = ["", "gradio's per-session tables (before -> after):"]
    for name in sorted(set(before["tables"]) | set(after["tables"])):
        lines.append(f"  {name}: {before['tables'].get(name)} -> {after['tables'].get(name)}")
    grown = Counter(after["types"])
    grown.subtract(before["types"])
    lines += ["", "live objects that grew most (count, per session):"]
    for name, n in grown.most_common(top):
        lines.append(f"  {name:40s} {n:+9d}  {n / per:7.1f}")
    old = tracemalloc.Snapshot.load(str(folder / "before.snapshot"))
    new = tracemalloc.Snapshot.load(str(folder / "after.snapshot"))
    stats = new.compare_to(old, "traceback")
    total = sum(s.size_diff for s in stats)
    lines += [
        "",
        f"Python heap growth (tracemalloc): {total / 1024**2:.1f} MiB, "
        f"{total / per / 1024:.1f} KiB per session",
        f"allocation sites that grew most (KiB per session; innermost frame first), {top} of "
        f"{len(stats)}:",
    ]
    for stat in sorted(stats, key=lambda s: -s.size_diff)[:top]:
        frames = list(stat.traceback)[::-1][:4]  # tracemalloc lists the oldest frame first
        where = [
            f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno}" for f in frames
        ]
        lines.append(f"  {stat.size_diff / 1024 / per:8.2f}  " + " < ".join(where))
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        split = argv.index("--")
        serve(Path(argv[1]), argv[split + 1 :])
        return 0
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf.session_memory")
    p.add_argument("--library", type=Path, default=DEFAULT_LIBRARY)
    p.add_argument("--backbone", default="efficientnet-lite0")
    p.add_argument("--sessions", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--settle-seconds", type=float, default=5.0, help="wait before the last look")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the printed report, as text")
    args, app_args = p.parse_known_args(argv)
    library = args.library.expanduser().resolve()
    queries = pick_queries(pd.read_csv(library / "manifest.csv"), root=library, per_class=4)
    with tempfile.TemporaryDirectory(prefix="session-memory-") as scratch:
        folder = Path(scratch)
        downloads = folder / "downloads"
        downloads.mkdir()
        launcher = [sys.executable, "-m", "benchmarks.perf.session_memory", "serve", scratch, "--"]
        with app_process(
            library=library,
            backbone=args.backbone,
            log=folder / "app.log",
            extra_args=app_args,
            launcher=launcher,
        ) as (url, proc):

            def one(client, i: int) -> None:
                search_once(
                    client,
                    library=library.name,
                    backbone=args.backbone,
                    k=args.k,
                    query=queries[i % len(queries)],
                )

            print(f"app at {url} (pid {proc.pid}); warming up...", flush=True)
            sessions(url, count=8, threads=args.threads, downloads=downloads, run=one)
            before = snapshot(folder, "before")
            rss_before = rss_mb(proc.pid)
            print(f"RSS {rss_before:.0f} MiB; {args.sessions} sessions...", flush=True)
            started = time.perf_counter()
            errors = sessions(
                url, count=args.sessions, threads=args.threads, downloads=downloads, run=one
            )
            took = time.perf_counter() - started
            time.sleep(args.settle_seconds)
            after = snapshot(folder, "after")
            rss_after = rss_mb(proc.pid)
            lines = [
                f"{args.sessions} sessions ({args.threads} at a time) in {took:.0f} s, {errors} "
                f"errors; RSS {rss_before:.0f} -> {rss_after:.0f} MiB "
                f"({rss_after - rss_before:+.0f}, "
                f"{(rss_after - rss_before) * 1024 / max(args.sessions, 1):.0f} KiB per session)",
                *report(folder, before, after, count=args.sessions, top=args.top),
            ]
    print("\n".join(lines))
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    head = [
        f"# session memory, {stamp}",
        f"code: {code_state()}",
        f"machine: {machine_description()}",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join([*head, "", "```", *lines, "```"]) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
