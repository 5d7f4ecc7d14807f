"""bench/core_attention.py at --smoke size: both attentions train a step and the results are written.

A wiring check only; no timing is asserted (numbers: bench/results/core_attention_cpu2.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.bench_smoke
def test_core_attention_bench_smoke(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "bench.core_attention", "--smoke", "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    res = json.loads((tmp_path / "core_attention_cpu2.json").read_text())
    assert res["sft"]["packed"] and not res["rl"]["packed"]
    for kind in ("sft", "rl"):
        assert all(res[kind]["tokens_per_s"][s] > 0 for s in ("ours", "megatron")) and res[kind]["ratio"] > 0
    assert (tmp_path / "core_attention_cpu2.md").is_file()
