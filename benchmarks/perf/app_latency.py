"""End-to-end latency of the running app's photo search, as API clients meet it.

Each client is a thread with its own ``gradio_client.Client``; a request uploads a photo, runs
``/search_photo`` (the endpoint the browser's upload triggers) and downloads the k framed
thumbnails. Reports median and p95 at 1 and 8 concurrent clients, plus errors. All traffic
goes to 127.0.0.1. Warm-up requests (model load, index load or build) are never timed.

    .venv/bin/python -m benchmarks.perf.app_latency                  # starts app.py itself
    .venv/bin/python -m benchmarks.perf.app_latency --url http://127.0.0.1:7860/
    .venv/bin/python -m benchmarks.perf.app_latency --torch-threads 1 --no-download

Results go to benchmarks/results/app_latency.json, one entry per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.perf.app_process import running_app
from benchmarks.timing import machine_description
from data_index.locations import REPO_ROOT

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio_client reads it

DEFAULT_LIBRARY = REPO_ROOT.parent / "shared" / "datasets" / "infectious-8"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "app_latency.json"
API_NAME = "/search_photo"
SERVER_TIMING = re.compile(r"embedding the photo (\d+) ms · search ([\d.]+) ms")


@dataclass
class Outcome:
    """One timed request: wall-clock seconds, whether it failed and why, server timings."""

    seconds: float
    error: str | None = None
    embed_ms: float | None = None
    search_ms: float | None = None


@dataclass
class Level:
    """All requests made at one concurrency level."""

    clients: int
    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0
    stopped_early: bool = False


# --- pure helpers (tested in tests/test_perf_app_latency.py) --------------------------------
def pick_queries(manifest: pd.DataFrame, *, root: Path, per_class: int = 2) -> list[tuple]:
    """(absolute path, label) of the first ``per_class`` test-split photos of each class (all
    splits when there is no test split), interleaved across classes so any prefix is mixed."""
    if manifest.empty or not {"path", "label"} <= set(manifest.columns):
        raise ValueError("The library's manifest needs 'path' and 'label' columns and rows.")
    rows = manifest
    if "split" in manifest.columns and (manifest["split"] == "test").any():
        rows = manifest[manifest["split"] == "test"]
    picked = rows.sort_values("path").groupby("label", sort=True).head(per_class)
    by_class = [list(g.itertuples(index=False)) for _, g in picked.groupby("label", sort=True)]
    interleaved = [r for group in zip(*by_class, strict=False) for r in group]
    return [(str((root / r.path).resolve()), str(r.label)) for r in interleaved]


def summarise(level: Level) -> dict:
    """Median, p95 and max in ms of the successful requests, counts and throughput."""
    ok = np.array([o.seconds for o in level.outcomes if o.error is None]) * 1000
    embed = [o.embed_ms for o in level.outcomes if o.embed_ms is not None]
    errors = [o.error for o in level.outcomes if o.error is not None]
    return {
        "clients": level.clients,
        "requests": len(level.outcomes),
        "errors": len(errors),
        "median_ms": round(float(np.median(ok)), 1) if len(ok) else None,
        "p95_ms": round(float(np.percentile(ok, 95)), 1) if len(ok) else None,
        "max_ms": round(float(ok.max()), 1) if len(ok) else None,
        "throughput_rps": round(len(ok) / level.wall_s, 2) if level.wall_s > 0 else None,
        "server_embed_median_ms": round(float(np.median(embed)), 1) if embed else None,
        "stopped_early": level.stopped_early,
        "first_errors": sorted(set(errors))[:5],
    }


def render_table(rows: Sequence[dict]) -> str:
    head = (
        "| clients | requests | errors | median ms | p95 ms | max ms | req/s | embed ms (server) |"
    )
    lines = [head, "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = [r["clients"], r["requests"], r["errors"], r["median_ms"], r["p95_ms"]]
        cells += [r["max_ms"], r["throughput_rps"], r["server_embed_median_ms"]]
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines)


SAME_RUN = ("backbone", "library", "k", "downloads", "app_started_by_script", "app_torch_threads")


def write_run(path: Path, record: dict) -> None:
    """Keep one run per configuration in ``path``: a rerun replaces its earlier self."""
    runs = []
    if path.is_file():
        runs = json.loads(path.read_text(encoding="utf-8")).get("runs", [])
    same = [record.get(key) for key in SAME_RUN]
    runs = [r for r in runs if [r.get(key) for key in SAME_RUN] != same] + [record]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"runs": runs}, indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def code_state() -> dict:
    """The commit measured and the app's files that differ from it (uncommitted edits)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    dirty = git("status", "--porcelain", "--", "app.py", "demo", "models", "data_index")
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted": dirty.splitlines()}


# --- driving it --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    url: str
    library: str
    backbone: str
    k: int
    queries: list[tuple[str, str]]
    request_timeout_s: float
    downloads: Path | None  # None: leave the thumbnails on the server (URLs only)


def make_client(work: Workload):
    from gradio_client import Client

    if not work.url.startswith(("http://127.0.0.1", "http://localhost")):
        raise ValueError(f"This benchmark talks to 127.0.0.1 only, not {work.url}.")
    folder = tempfile.mkdtemp(dir=work.downloads) if work.downloads else False
    # ssl_verify=False: the traffic is plain HTTP on loopback, so nothing is verified either
    # way; it only stops httpx loading the CA bundle for each of the client's connections
    # (about 60 ms apiece on this 2-core box, three or more per request), which a browser
    # that keeps its connections open never pays.
    return Client(
        work.url,
        verbose=False,
        download_files=folder,
        analytics_enabled=False,
        ssl_verify=False,
    )


def one_request(client, work: Workload, query: tuple[str, str]) -> Outcome:
    from gradio_client import handle_file

    path, label = query
    started = time.perf_counter()
    try:
        job = client.submit(
            handle_file(path), work.library, work.backbone, work.k, "cosine", label,
            api_name=API_NAME,
        )  # fmt: skip
        _preview, _image, gallery, summary = job.result(timeout=work.request_timeout_s)
    except Exception as err:  # every failure counts, whatever its kind
        return Outcome(time.perf_counter() - started, error=f"{type(err).__name__}: {err}"[:200])
    seconds = time.perf_counter() - started
    if not isinstance(gallery, list) or len(gallery) != work.k:
        got = len(gallery) if isinstance(gallery, list) else type(gallery).__name__
        return Outcome(seconds, error=f"expected {work.k} results, got {got}")
    found = SERVER_TIMING.search(str(summary))
    embed, search = (float(found[1]), float(found[2])) if found else (None, None)
    return Outcome(seconds, embed_ms=embed, search_ms=search)


def run_level(work: Workload, *, clients: int, requests: int, max_seconds: float) -> Level:
    """``clients`` threads, each with its own Client, making ``requests`` requests back to back;
    no new request starts after ``max_seconds``."""
    level = Level(clients=clients)
    lock = threading.Lock()
    pool = [make_client(work) for _ in range(clients)]  # connecting is not timed
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        start.wait()
        for i in range(requests):
            if time.monotonic() > deadline[0]:
                with lock:
                    level.stopped_early = True
                return
            query = work.queries[(index * requests + i) % len(work.queries)]
            outcome = one_request(pool[index], work, query)
            with lock:
                level.outcomes.append(outcome)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + max_seconds
    began = time.perf_counter()
    start.wait()
    for t in threads:
        t.join(max_seconds + work.request_timeout_s + 30)
    level.wall_s = time.perf_counter() - began
    for client in pool:
        client.close()
    return level


def warm_up(work: Workload, *, count: int) -> list[float]:
    """Untimed requests: the first loads the backbone and the index (building it if needed)."""
    client = make_client(work)
    seconds = []
    for i in range(count):
        outcome = one_request(client, work, work.queries[i % len(work.queries)])
        if outcome.error:
            raise RuntimeError(f"Warm-up request failed: {outcome.error}")
        seconds.append(round(outcome.seconds, 3))
    client.close()
    return seconds


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="a running app (127.0.0.1); default: start app.py here")
    p.add_argument("--library", type=Path, default=DEFAULT_LIBRARY, help="library folder")
    p.add_argument("--backbone", default="efficientnet-lite0")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--clients", default="1,8", help="concurrency levels, comma separated")
    p.add_argument("--requests", type=int, default=20, help="requests per client and level")
    p.add_argument("--max-seconds", type=float, default=120.0, help="per level")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--request-timeout", type=float, default=60.0)
    p.add_argument(
        "--torch-threads",
        type=int,
        help="start the app with this many torch threads per request (default: the app's own)",
    )
    p.add_argument(
        "--no-download",
        action="store_true",
        help="do not fetch the result thumbnails (gradio_client fetches them one by one)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    args.levels = [int(c) for c in str(args.clients).split(",") if c.strip()]
    if not args.levels or min(args.levels) < 1 or args.requests < 1 or args.k < 1:
        raise SystemExit("--clients, --requests and --k must be positive whole numbers.")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    library = args.library.expanduser().resolve()
    manifest_path = library / "manifest.csv"
    if not manifest_path.is_file():
        raise SystemExit(f"No manifest.csv in {library}: pass --library a shared dataset folder.")
    queries = pick_queries(pd.read_csv(manifest_path), root=library)
    before = machine_description()
    code = code_state()  # before the app starts: what it imports
    with tempfile.TemporaryDirectory(prefix="bench-app-dl-") as downloads:
        log = Path(downloads) / "app.log"
        if args.url:
            app = nullcontext(args.url)
        else:
            app = running_app(
                library=library, backbone=args.backbone, log=log, torch_threads=args.torch_threads
            )
        try:
            with app as url:
                work = Workload(
                    url, library.name, args.backbone, args.k, queries, args.request_timeout,
                    None if args.no_download else Path(downloads),
                )  # fmt: skip
                print(f"app at {url}; warming up ({args.warmup} untimed requests)...", flush=True)
                warm = warm_up(work, count=args.warmup)
                print(f"warm-up seconds: {warm}", flush=True)
                rows = []
                for clients in args.levels:
                    level = run_level(
                        work, clients=clients, requests=args.requests, max_seconds=args.max_seconds
                    )
                    rows.append(summarise(level))
                    print(f"{clients} client(s): {rows[-1]}", flush=True)
        except Exception:
            if log.is_file():
                print(log.read_text()[-3000:], file=sys.stderr)
            raise
    table = render_table(rows)
    print(table)
    record = {
        "what": f"end-to-end {API_NAME} latency: upload photo, search, "
        + ("thumbnail URLs only" if args.no_download else "download the k thumbnails"),
        "downloads": not args.no_download,
        "backbone": args.backbone,
        "library": library.name,
        "library_size": len(pd.read_csv(manifest_path)),
        "app_started_by_script": not args.url,
        "app_torch_threads": args.torch_threads,
        "k": args.k,
        "queries": len(queries),
        "requests_per_client": args.requests,
        "warmup_seconds": warm,
        "code": code,
        "levels": rows,
        "table_markdown": table,
        "machine": {
            "cpus": before["cpu_count"],
            "loadavg_before": before["load_average"],
            "loadavg_after": machine_description()["load_average"],
            "python": before["python"],
            "gradio_client": version("gradio_client"),
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_run(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
