"""Load on the running app: 16 concurrent gradio_client sessions for a bounded time.

Each of ``--clients`` threads sends photo searches back to back through ``/search_photo`` and
downloads the result tiles, until ``--seconds`` have passed. With ``--fresh-sessions`` (the
default) every request opens a new ``gradio_client.Client``, so each one is a distinct session,
as many visitors would be. Reports requests, errors (any exception, a wrong number of results,
a tile that did not download), median and p95 latency, and the server's resident memory
before and after. All traffic goes to 127.0.0.1.

    .venv/bin/python -m benchmarks.perf.app_load                    # starts app.py itself
    .venv/bin/python -m benchmarks.perf.app_load --clients 16 --seconds 120

Results go to benchmarks/results/app_load.json (one entry per clients/sessions setting).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.perf.app_latency import code_state, pick_queries
from benchmarks.perf.app_process import app_process
from benchmarks.timing import machine_description
from data_index.locations import REPO_ROOT

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio_client reads it

DEFAULT_LIBRARY = REPO_ROOT.parent / "shared" / "datasets" / "infectious-8"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "app_load.json"
API_NAME = "/search_photo"


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"No VmRSS for process {pid}.")


@dataclass
class Tally:
    """Every request's seconds and every error, shared by the client threads."""

    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sessions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def summarise(tally: Tally, *, clients: int, wall_s: float) -> dict:
    ok = np.array(tally.seconds) * 1000
    return {
        "clients": clients,
        "sessions": tally.sessions,
        "requests": len(tally.seconds) + len(tally.errors),
        "errors": len(tally.errors),
        "median_ms": round(float(np.median(ok)), 1) if len(ok) else None,
        "p95_ms": round(float(np.percentile(ok, 95)), 1) if len(ok) else None,
        "throughput_rps": round(len(ok) / wall_s, 2) if wall_s > 0 else None,
        "first_errors": sorted(set(tally.errors))[:5],
    }


def _client(url: str, downloads: Path):
    from gradio_client import Client

    return Client(
        url,
        verbose=False,
        download_files=tempfile.mkdtemp(dir=downloads),
        analytics_enabled=False,
        ssl_verify=False,
    )


def search_once(client, *, library: str, backbone: str, k: int, query: tuple[str, str]) -> None:
    """One photo search; raises on any failure, including a tile that did not arrive."""
    from gradio_client import handle_file

    path, label = query
    outputs = client.predict(
        handle_file(path), library, backbone, k, "cosine", label, api_name=API_NAME
    )
    gallery = next((o for o in outputs if isinstance(o, list)), None)
    if gallery is None or len(gallery) != k:
        got = "no gallery" if gallery is None else f"{len(gallery)} results"
        raise RuntimeError(f"expected {k} results, got {got}")
    for item in gallery:
        image = item.get("image") if isinstance(item, dict) else None
        tile = image.get("path") if isinstance(image, dict) else image
        if not tile or not Path(tile).is_file() or Path(tile).stat().st_size == 0:
            raise RuntimeError("a result tile did not download")


def drive(
    url: str,
    *,
    library: str,
    backbone: str,
    k: int,
    queries: list[tuple[str, str]],
    clients: int,
    seconds: float,
    fresh_sessions: bool,
    downloads: Path,
    tally: Tally | None = None,
) -> tuple[Tally, float]:
    tally = tally if tally is not None else Tally()
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        client = None
        i = 0
        while time.monotonic() < deadline:
            query = queries[(index * 7919 + i) % len(queries)]
            i += 1
            try:
                if client is None or fresh_sessions:
                    if client is not None:
                        client.close()
                    client = _client(url, downloads)
                    with tally.lock:
                        tally.sessions += 1
                started = time.perf_counter()
                search_once(client, library=library, backbone=backbone, k=k, query=query)
                took = time.perf_counter() - started
                with tally.lock:
                    tally.seconds.append(took)
            except Exception as err:  # every failure counts, whatever its kind
                with tally.lock:
                    tally.errors.append(f"{type(err).__name__}: {err}"[:200])
        if client is not None:
            client.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 300)
    return tally, time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.perf.app_load", description=__doc__.split("\n")[0]
    )
    p.add_argument("--library", type=Path, default=DEFAULT_LIBRARY, help="library folder")
    p.add_argument("--backbone", default="efficientnet-lite0")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=60.0, help="how long the load lasts")
    p.add_argument("-k", type=int, default=10)
    p.add_argument(
        "--warmup-seconds",
        type=float,
        default=30.0,
        help="untimed concurrent load first, so RSS growth is what sessions add",
    )
    p.add_argument(
        "--fresh-sessions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a new client (session) per request (default) or one per thread",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    library = args.library.expanduser().resolve()
    manifest_path = library / "manifest.csv"
    if not manifest_path.is_file():
        raise SystemExit(f"No manifest.csv in {library}: pass --library a shared dataset folder.")
    queries = pick_queries(pd.read_csv(manifest_path), root=library, per_class=4)
    with tempfile.TemporaryDirectory(prefix="app-load-") as scratch:
        log = Path(scratch) / "app.log"
        downloads = Path(scratch) / "downloads"
        downloads.mkdir()
        with app_process(library=library, backbone=args.backbone, log=log) as (url, proc):
            print(f"app at {url} (pid {proc.pid}); warming up...", flush=True)
            warm = _client(url, downloads)
            for query in queries[:2]:
                search_once(
                    warm, library=library.name, backbone=args.backbone, k=args.k, query=query
                )
            warm.close()
            # The warm-up and the measured load send the same searches; only how long differs.
            load = functools.partial(
                drive,
                url,
                library=library.name,
                backbone=args.backbone,
                k=args.k,
                queries=queries,
                clients=args.clients,
                fresh_sessions=args.fresh_sessions,
                downloads=downloads,
            )
            if args.warmup_seconds > 0:
                # The server's one-time growth under concurrency (worker threads, their
                # buffers) is not what sessions cost: it happens before the first reading.
                warm_tally, _ = load(seconds=args.warmup_seconds)
                print(
                    f"warm-up: {warm_tally.sessions} sessions, {len(warm_tally.errors)} errors",
                    flush=True,
                )
            before = rss_mb(proc.pid)
            print(
                f"RSS {before:.0f} MiB; {args.clients} clients for {args.seconds:.0f} s...",
                flush=True,
            )
            tally = Tally()
            samples: list[tuple[float, int, float]] = []  # (seconds, sessions, RSS MiB)
            done = threading.Event()

            def sample() -> None:
                began = time.monotonic()
                while not done.wait(5.0):
                    with tally.lock:
                        sessions = tally.sessions
                    samples.append((time.monotonic() - began, sessions, rss_mb(proc.pid)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            tally, wall_s = load(seconds=args.seconds, tally=tally)
            done.set()
            sampler.join()
            after = rss_mb(proc.pid)
    row = summarise(tally, clients=args.clients, wall_s=wall_s)
    row |= {"rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1)}
    # RSS once N sessions had started: growth per session, apart from how long the run was.
    for mark in (100, 250, 500, 750, 1000):
        reached = next((rss for _, n, rss in samples if n >= mark), None)
        if reached is not None:
            row[f"rss_at_{mark}_sessions_mb"] = round(reached, 1)
    row["rss_samples"] = [[round(t), n, round(r, 1)] for t, n, r in samples]
    print(
        "| clients | sessions | requests | errors | median ms | p95 ms | req/s | RSS before MiB "
        "| RSS after MiB |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    cells = ["clients", "sessions", "requests", "errors", "median_ms", "p95_ms"]
    cells += ["throughput_rps", "rss_before_mb", "rss_after_mb"]
    print("| " + " | ".join(str(row[c]) for c in cells) + " |")
    marks = [f"{k.split('_')[2]}: {v:.0f}" for k, v in row.items() if k.startswith("rss_at_")]
    if marks:
        print(f"RSS MiB after this many sessions: {', '.join(marks)}")
    for error in row["first_errors"]:
        print(f"  error: {error}")
    record = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "code": code_state(),
        "library": library.name,
        "backbone": args.backbone,
        "k": args.k,
        "seconds": args.seconds,
        "warmup_seconds": args.warmup_seconds,
        "fresh_sessions": args.fresh_sessions,
        **row,
    }
    runs = json.loads(args.out.read_text())["runs"] if args.out.is_file() else []
    same = ("clients", "fresh_sessions", "library", "backbone")
    runs = [r for r in runs if [r.get(s) for s in same] != [record[s] for s in same]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": [*runs, record]}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if row["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
