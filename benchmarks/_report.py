"""Shared printing for benchmarks: percentiles, aligned tables, PASS/FAIL lines and the final JSON line."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100) of values already sorted ascending."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), -(-len(sorted_values) * q // 100)))
    return sorted_values[int(rank) - 1]


def revision() -> str:
    """The commit measured, marked when the work tree differs from it; "unknown" outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def machine() -> str:
    """What the figures were measured on, including how busy the machine was (other work skews wall times)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"commit {revision()}; Python {platform.python_version()} on {os.cpu_count()} CPUs, load average {load:.2f} at start"


def table(title: str, rows: Sequence[tuple[str, str]]) -> None:
    print(title)
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def verdict(claim: str, ok: bool, measured: str) -> bool:
    print(f"  {'PASS' if ok else 'FAIL'}  {claim}: {measured}")
    return ok


def json_line(benchmark: str, metric: str, value: float, unit: str, baseline: float, ratio: float) -> None:
    """The one machine-readable line every benchmark ends with; the baseline was measured in the same run."""
    print(
        json.dumps(
            {
                "benchmark": benchmark,
                "metric": metric,
                "value": round(value, 3),
                "unit": unit,
                "baseline": round(baseline, 3),
                "ratio": round(ratio, 4),
            }
        )
    )
