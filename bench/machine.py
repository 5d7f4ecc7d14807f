"""The machine a benchmark ran on, recorded next to every result (results compare only within one run)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe(cores: int) -> dict:
    return {"cpu_model": cpu_model(), "cores": cores, "python": platform.python_version(),
            "kernel": platform.release(), "host": platform.node(),
            "load_avg_1m_at_start": round(os.getloadavg()[0], 2)}
