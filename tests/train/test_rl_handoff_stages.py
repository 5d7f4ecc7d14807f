"""Two chained RL stages through the launcher's run-stage entry point (tiny Qwen3, 1 rank): the first
writes its prompt stream's hand-off at its end, the second (``filters.epoch_pass_rate.carry_over``)
starts from it, as Math RL 24K -> 32K does (C1 Table 17)."""

from __future__ import annotations

import json
from pathlib import Path

from cascade.data.records import write_records
from cascade.engine.launch import run_local
from cascade.rl.filters import HANDOFF_FILE
from test_rl_support import (
    REPO,
    cascade_yaml,
    job_env,
    keyword_records,
    read_metrics,
    run_stage_argv,
    stage_yaml,
    tiny_hf,
)

FILTER = {"filters": {"epoch_pass_rate": {"readmit_hard": 0.10, "readmit_easy": 0.01}},
          "train": {"steps": 3}, "rollout": {"prompts_per_step": 4, "num_generations": 2}}


def _ok(tmp: Path, cascade: Path, stage: str) -> str:
    (r,) = run_local(1, run_stage_argv(cascade, stage), timeout=900, log_dir=tmp / f"logs_{stage}", env=job_env(),
                     cwd=REPO)
    assert r.returncode == 0, r.output[-5000:]
    return r.output


def test_the_second_stage_continues_the_first_stages_prompt_stream(tmp_path: Path) -> None:
    data = tmp_path / "kw.parquet"
    write_records(data, keyword_records(6))
    first = stage_yaml(tmp_path / "first.yaml", data=data, extra=FILTER)
    second = stage_yaml(tmp_path / "second.yaml", data=data, extra={
        **FILTER, "filters": {"epoch_pass_rate": {"carry_over": True}}, "train": {"steps": 1}})
    policy = tiny_hf(tmp_path / "policy")
    cascade = cascade_yaml(tmp_path / "cascade.yaml", run_dir=tmp_path / "run", init=policy, stages=[
        {"name": "first", "kind": "rl", "config": str(first)}, {"name": "second", "kind": "rl", "config": str(second)}])

    _ok(tmp_path, cascade, "first")
    handed = json.loads((tmp_path / "run" / "01_first" / HANDOFF_FILE).read_text())["stream"]
    assert handed["epoch"] >= 1 and handed["pass_rate"]["status"]  # 12 prompts of 6: epochs closed, classes set
    log = _ok(tmp_path, cascade, "second")
    assert (f"prompt stream carried over from {tmp_path / 'run' / '01_first'}: epoch {handed['epoch']}, "
            f"index {handed['index']}") in log
    (step,) = [m for m in read_metrics(tmp_path / "run" / "02_second") if "data/epoch" in m]
    assert step["data/epoch"] >= handed["epoch"]  # a fresh stream would be at epoch 0
    after = json.loads((tmp_path / "run" / "02_second" / HANDOFF_FILE).read_text())["stream"]
    assert dict(map(tuple, handed["pass_rate"]["status"])).keys() <= dict(map(tuple, after["pass_rate"]["status"])).keys()
