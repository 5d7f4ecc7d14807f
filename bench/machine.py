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


def git_commit(repo: Path | None = None) -> str:
    """The short commit a result was measured at ("unknown" outside a checkout)."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo or Path(__file__).parent,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_result(out: str | Path, name: str, res: dict, markdown: str) -> None:
    """``<out>/<name>.json`` and ``.md`` (the markdown also printed)."""
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(res, indent=2))
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
