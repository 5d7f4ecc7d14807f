"""bench/trainer_overhead.py at --smoke size: every side runs on two gloo ranks and writes results.

A wiring check only (no timing asserted: the machine is shared; numbers live in
bench/results/trainer_overhead_cpu2.md). TP=2 alone: the TP=1 path is the same code on one rank.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.bench_smoke
def test_trainer_overhead_bench_smoke(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "bench.trainer_overhead", "--smoke", "--tp", "2", "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    (path,) = tmp_path.glob("trainer_overhead_*.json")
    res = json.loads(path.read_text())
    (lay,) = [x for x in res["layouts"] if x["tp"] == 2]
    for side in ("sft", "sft_all_rows", "bare_sft", "rl", "rl_all_rows", "bare_rl"):
        assert lay[side]["tokens_per_s"] > 0
    assert all(lay[f"ratio_{s}"] > 0 for s in ("sft", "sft_all_rows", "rl", "rl_all_rows"))
    assert (tmp_path / f"{res['name']}.md").is_file()
