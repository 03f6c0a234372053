"""Shared by the benchmarks: run commands alternately in one process tree, report medians."""

from __future__ import annotations

import statistics
import subprocess
import time


def time_command(argv: list[str], **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - started


def compare(name: str, candidate, baseline, rounds: int, target: float | None = None) -> float:
    """Call candidate() and baseline() alternately; print medians and the ratio; return it."""
    candidate(), baseline()  # warm caches
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(candidate())
        theirs.append(baseline())
    ratio = statistics.median(ours) / statistics.median(theirs)
    verdict = f" (target <= {target})" if target is not None else ""
    print(
        f"{name}: median {statistics.median(ours) * 1000:.1f} ms vs baseline {statistics.median(theirs) * 1000:.1f} ms"
        f" over {rounds} alternating runs -> ratio {ratio:.2f}{verdict}"
    )
    return ratio
