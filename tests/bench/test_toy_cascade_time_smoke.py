"""bench/toy_cascade_time.py on a small recorded run: per-stage columns and the RL step parts add up.

A wiring check (no timing asserted): the run dir is written here in the layout a toy cascade
leaves (every stage's timing.json; an RL stage's metrics.jsonl with time/* per step).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cascade.runtime.stage_timing import PhaseClock, write_attempt

REPO = Path(__file__).resolve().parents[2]


def _stage(run: Path, name: str, phases: dict[str, float], total: float, steps: list[dict] | None = None) -> None:
    d = run / name
    d.mkdir(parents=True)
    clock = PhaseClock()
    for k, v in phases.items():
        clock.add(k, v)
    write_attempt(d, total, clock)
    if steps:
        (d / "metrics.jsonl").write_text("".join(json.dumps({"step": i + 1, **s}) + "\n" for i, s in enumerate(steps)))
    time.sleep(0.01)  # mtime order is run order


@pytest.mark.bench_smoke
def test_toy_cascade_time_smoke(tmp_path: Path) -> None:
    run = tmp_path / "toy"
    _stage(run, "01_sft", {"startup": 5, "setup": 3, "steps": 60, "checkpoint": 2, "export": 1, "eval": 20}, 95)
    step = {"time/step": 10.0, "time/generation": 3.0, "time/reward": 1.0, "time/reward_busy": 1.5,
            "time/train": 5.0, "time/logprobs": 1.0, "time/refit": 0.5}
    _stage(run, "02_rlhf", {"startup": 5, "ready": 4, "steps": 20, "checkpoint": 1, "eval": 10}, 42, [step, step])
    r = subprocess.run([sys.executable, "-m", "bench.toy_cascade_time", str(run), "--wall-s", "150",
                        "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((tmp_path / "out" / "toy_cascade_time_cpu2.json").read_text())
    assert [s["stage"] for s in res["stages"]] == ["01_sft", "02_rlhf"]
    assert res["stage_total"]["total"] == 137 and res["stage_total"]["evals"] == 30
    b = res["stages"][1]["rl_steps"]
    assert (b["generation"], b["reward"], b["logprobs"], b["train"], b["refit"]) == (6.0, 2.0, 2.0, 8.0, 1.0)
    assert b["other"] == pytest.approx(1.0) and b["steps"] == 2
    md = (tmp_path / "out" / "toy_cascade_time_cpu2.md").read_text()
    assert "| 02_rlhf | 2 |" in md and "2.5 min" in md


def test_a_dir_without_timing_is_a_one_line_error(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "bench.toy_cascade_time", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
