"""Wall-clock timing done properly (warm-up, device sync, perf_counter, many repeats), and the
one description of the machine every benchmark records beside its timings.

In the spirit of nanoGPT `bench.py` and faiss `contrib/evaluation.py` RepeatTimer: the first
calls pay for lazy initialisation and caches, GPU work is asynchronous until synchronised,
and one run is noise, so report the median and the spread of several.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Seconds per call (divide by `items` for per-image figures)."""

    median_s: float
    p95_s: float
    min_s: float
    max_s: float
    iqr_s: float  # interquartile range: spread that one slow outlier does not inflate
    repeats: int
    warmup: int
    items: int  # items handled per call (images in a batch, queries in a search)

    @property
    def median_per_item_s(self) -> float:
        return self.median_s / self.items

    def as_record(self, *, prefix: str = "") -> dict:
        """Flat keys for a benchmark record, e.g. prefix="embed_" -> embed_median_s."""
        out = {f"{prefix}{key}": value for key, value in asdict(self).items()}
        out[f"{prefix}median_per_item_s"] = self.median_per_item_s
        return out


def synchroniser(device: str | None) -> Callable[[], None]:
    """A function that waits for queued work on `device` ("cuda", "cuda:0", "mps"), else no-op."""
    if device is None or str(device).startswith("cpu"):
        return lambda: None
    import torch  # only when a GPU is in play: metrics and CPU runs never need torch

    if str(device).startswith("cuda"):
        return lambda: torch.cuda.synchronize(device)
    if str(device).startswith("mps"):
        return torch.mps.synchronize
    raise ValueError(f"unknown device {device!r}; expected 'cpu', 'cuda[:n]' or 'mps'.")


def time_callable(
    fn: Callable[[], object],
    *,
    repeats: int = 10,
    warmup: int = 2,
    device: str | None = None,
    items: int = 1,
    max_seconds: float | None = None,
) -> Timing:
    """Time `fn()` after `warmup` untimed calls; the device is synchronised around each call.

    Stops early once `max_seconds` of timed calls have passed (after at least 3), as faiss's
    RepeatTimer does, so a slow backbone does not stall a benchmark sweep.
    """
    if repeats < 1 or warmup < 0 or items < 1:
        raise ValueError(
            f"need repeats >= 1, warmup >= 0 and items >= 1; got {repeats}, {warmup}, {items}."
        )
    sync = synchroniser(device)
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    budget_start = time.perf_counter()
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
        over = max_seconds is not None and time.perf_counter() - budget_start > max_seconds
        if over and len(times) >= 3:
            break
    t = np.array(times)
    q25, q75 = np.percentile(t, [25, 75])
    return Timing(
        median_s=float(np.median(t)),
        p95_s=float(np.percentile(t, 95)),
        min_s=float(t.min()),
        max_s=float(t.max()),
        iqr_s=float(q75 - q25),
        repeats=len(times),
        warmup=warmup,
        items=items,
    )


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_description(device: str | None = None) -> dict:
    """What the timings ran on, and how busy it was: device kind and name, CPU model and
    counts, platform, Python, torch version and threads, and the 1-, 5- and 15-minute load
    averages now (None where the OS has none).

    Every benchmark and speed script describes its machine through this one function; each
    output file then keeps its own field names for what it takes from here.
    """
    description = {
        "device": "cpu",
        "device_name": cpu_model(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        # On a shared machine the load from other jobs is part of what a timing means.
        "load_average": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
    }
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        description["cpus_available"] = len(affinity(0))
    # torch is described only where this process already uses it: importing it just for this
    # costs seconds and loads a second OpenMP runtime into numpy-only speed scripts.
    torch = sys.modules.get("torch")
    if torch is None:
        return description
    description["torch"] = torch.__version__
    description["torch_threads"] = torch.get_num_threads()
    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        description["device"] = str(device)
        description["device_name"] = torch.cuda.get_device_name(index)
        description["cuda"] = torch.version.cuda
    return description
