"""Shared timing for the benchmark scripts (imported as a sibling module: run them as
``python benchmarks/NAME.py``)."""

from __future__ import annotations

import time


def best_time(fn, repeats: int, warmup: bool = True) -> float:
    """Best wall time of ``fn()`` over ``repeats`` runs (after one warm-up run), in seconds."""
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best
