"""`python -m cascade.engine` follows the shared CLI rules: overrides anywhere, one-line errors, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MOPD = "nemo_configs/tiny_c2/mopd.yaml"


def engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cascade.engine", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_memory_overrides_before_and_after_options() -> None:
    a = engine("memory", MOPD, "--gpu-memory-gib", "40", "mopd.offload_teachers=false")
    b = engine("memory", "mopd.offload_teachers=false", "--gpu-memory-gib", "40", MOPD)
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout
    assert "up to 4 forward-only models, resident" in a.stdout and "of 40 GiB" in a.stdout


def test_unknown_flag_and_bad_override_are_one_line_exit_2() -> None:
    r = engine("params", "nemo_configs/tiny/sft.yaml", "--bogus")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--bogus" in r.stderr
    r = engine("memory", MOPD, "optim.lrr=1")
    assert r.returncode == 2 and "did you mean 'optim.lr'" in r.stderr and "Traceback" not in r.stderr
