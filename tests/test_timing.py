"""Timer bookkeeping and device description (never asserts how long anything took)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.timing import machine_description, synchroniser, time_callable


def test_time_callable_warms_up_then_repeats():
    calls = []
    a = np.random.default_rng(0).normal(size=(64, 64))

    def work():
        calls.append(1)
        return a @ a

    timing = time_callable(work, repeats=5, warmup=2, items=8)
    assert len(calls) == 7 and timing.repeats == 5 and timing.warmup == 2
    assert timing.min_s <= timing.median_s <= timing.p95_s <= timing.max_s
    assert timing.iqr_s >= 0
    assert timing.median_per_item_s == pytest.approx(timing.median_s / 8)
    record = timing.as_record(prefix="search_")
    assert {"search_median_s", "search_p95_s", "search_repeats", "search_median_per_item_s"} <= set(
        record
    )


def test_time_budget_stops_after_three_repeats():
    timing = time_callable(lambda: sum(range(1000)), repeats=50, warmup=0, max_seconds=0.0)
    assert timing.repeats == 3


def test_bad_arguments_and_devices():
    with pytest.raises(ValueError, match="repeats >= 1"):
        time_callable(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="unknown device"):
        synchroniser("tpu")
    assert synchroniser("cpu")() is None


def test_machine_description_names_the_cpu_and_its_load():
    import torch  # described only where the process uses it

    info = machine_description()
    assert info["device"] == "cpu"
    assert isinstance(info["cpu_model"], str) and info["cpu_model"]
    assert info["cpu_count"] >= 1 and info["torch_threads"] == torch.get_num_threads()
    assert info["python"].count(".") == 2
    load = info["load_average"]
    assert load is None or (len(load) == 3 and all(x >= 0 for x in load))
