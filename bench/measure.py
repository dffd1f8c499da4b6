"""Timing, peak memory of child processes and a description of the machine.

Every figure in the document is the median of ``repeats`` runs with the minimum and the
maximum beside it; a single run is reported as such.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
TIME = "/usr/bin/time"
PACKAGES = (
    "hamrisk",
    "numpy",
    "pandas",
    "pyarrow",
    "pandera",
    "scipy",
    "scikit-learn",
    "lightgbm",
    "mlflow",
)


@dataclass(frozen=True)
class Spread:
    """Median, minimum and maximum of repeated measurements."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def format(self, digits: int = 2, scale: float = 1.0) -> str:
        """``median (min–max, n runs)``, or ``value (1 run)``."""
        med, lo, hi = (v * scale for v in (self.median, self.low, self.high))
        if len(self.values) == 1:
            return f"{med:,.{digits}f} (1 run)"
        return f"{med:,.{digits}f} ({lo:,.{digits}f}–{hi:,.{digits}f}, {len(self.values)} runs)"

    def map(self, fn: Callable[[float], float]) -> Spread:
        return Spread(tuple(fn(v) for v in self.values))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def repeat(fn: Callable[[], Any], repeats: int) -> tuple[Spread, Any]:
    """Call ``fn`` ``repeats`` times; the spread of wall seconds and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        elapsed, result = timed(fn)
        seconds.append(elapsed)
    return Spread(tuple(seconds)), result


@dataclass(frozen=True)
class ChildRun:
    """One finished child process: wall seconds, peak resident memory, exit code, output."""

    seconds: float
    max_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str


def run_child(
    argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> ChildRun:
    """Run a command to completion and measure its wall time and its own peak RSS.

    The peak comes from ``/usr/bin/time -f %M``, a small process that forks the command
    and reads its usage with ``wait4``. Reading it here instead would be wrong twice:
    ``getrusage(RUSAGE_CHILDREN)`` reports the largest child ever waited for, and Linux
    counts the pages a child shares with its parent between fork and exec, so a child of
    this (large) process would inherit its size. Without ``/usr/bin/time`` the peak is 0.
    """
    scratch = PROJECT_DIR / ".bench"
    scratch.mkdir(parents=True, exist_ok=True)
    out_path = scratch / f"child-{os.getpid()}.out"
    err_path = out_path.with_suffix(".err")
    rss_path = out_path.with_suffix(".rss")
    command = list(argv)
    if Path(TIME).exists():
        command = [TIME, "-f", "%M", "-o", str(rss_path), *command]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        returncode = subprocess.run(command, stdout=out, stderr=err, env=env, cwd=cwd).returncode
        seconds = time.perf_counter() - start
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    peak_kib = 0
    if rss_path.exists():
        # The last line is the peak in KiB; "Command exited with non-zero status" may precede it.
        lines = rss_path.read_text().split()
        peak_kib = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        rss_path.unlink()
    out_path.unlink()
    err_path.unlink()
    return ChildRun(seconds, peak_kib * 1024, returncode, stdout, stderr)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "bench", "pipeline", "features", "models"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} with uncommitted changes to the code" if changed else head


def machine() -> dict[str, str]:
    """CPU, cores, memory, OS, Python, package versions, commit and load at the start."""
    memory = _memory_gib()
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": f"{memory:.1f} GiB" if memory else "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(versions),
        "commit": _git_commit(),
        "load": ", ".join(f"{v:.2f}" for v in load) if load else "unknown",
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
    }


def progress(message: str) -> None:
    """One progress line on stderr, with the time since the bench started."""
    elapsed = time.perf_counter() - _START
    print(f"[bench {elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)


_START = time.perf_counter()
