"""Where a stage's wall time goes: start-up, set-up, training steps, checkpoints, export, evals.

Why: the cost of a stage around its steps (interpreter and library imports, model build, engine
start, saves, the HF export, the eval suite) is invisible in the per-step metrics, and on a small
run it is most of the time. One process runs one stage, so the clock is process-wide: the
skeleton and the launcher time their phases into it and the launcher writes it, once per attempt,
to ``<stage>/timing.json`` (a resumed stage appends an attempt). `evals.report` tabulates it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cascade.fileio import atomic_write_text

TIMING_FILE = "timing.json"
# The report's columns, in the order a stage runs them; each sums the phases named.
COLUMNS: dict[str, tuple[str, ...]] = {
    "start-up": ("startup", "setup", "load", "ready"),
    "training": ("start_eval", "steps", "finish"),
    "checkpoint/export": ("checkpoint", "export"),
    "evals": ("eval",),
}


def process_age_s() -> float:
    """Seconds since this process was created (interpreter start, imports included)."""
    try:
        import psutil

        return max(0.0, time.time() - psutil.Process().create_time())
    except Exception:  # psutil absent or /proc unreadable: start-up is then not counted
        return 0.0


class PhaseClock:
    """Accumulated wall seconds per named phase (a phase may run several times, e.g. steps)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.started_at = time.time()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def attempt(self, total_s: float) -> dict[str, Any]:
        return {"started_at": round(self.started_at, 3), "total_s": round(total_s, 3),
                "phases": {k: round(v, 3) for k, v in self.seconds.items()}}


CLOCK = PhaseClock()


def write_attempt(stage_dir: Path, total_s: float, clock: PhaseClock = CLOCK) -> None:
    """Append this process's attempt to ``stage_dir/timing.json`` (atomically)."""
    path = Path(stage_dir) / TIMING_FILE
    attempts = read_attempts(path)
    attempts.append(clock.attempt(total_s))
    atomic_write_text(path, json.dumps({"attempts": attempts}, indent=1) + "\n")


def read_attempts(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text())
        return list(data.get("attempts", []))
    except (OSError, ValueError, AttributeError):
        return []


def summarize(path: Path) -> dict[str, float] | None:
    """Seconds per report column over every attempt of a stage, plus ``total``; None if untimed."""
    attempts = read_attempts(path)
    if not attempts:
        return None
    out = {col: sum(a.get("phases", {}).get(p, 0.0) for a in attempts for p in phases)
           for col, phases in COLUMNS.items()}
    out["total"] = sum(a.get("total_s", 0.0) for a in attempts)
    out["other"] = max(0.0, out["total"] - sum(out[c] for c in COLUMNS))
    out["attempts"] = float(len(attempts))
    return out
