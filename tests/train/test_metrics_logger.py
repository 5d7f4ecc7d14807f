"""The metrics logger every trainer shares: metrics.jsonl (one line per step, clean after a
restart), TensorBoard, W&B (optional, resumed by run id), the progress line with ETA, rank 0 only."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from cascade.config.schema.common import LoggingConfig, WandbConfig
from cascade.runtime.metrics_logger import (
    MetricsLogger,
    StepClock,
    check_sinks_available,
    format_duration,
    progress_line,
    read_metrics,
)

NO_TB = LoggingConfig(log_interval=2, tensorboard=False)


def _logger(out: Path, cfg: LoggingConfig = NO_TB, resume: int | None = None, rank: int = 0, total: int = 4):
    return MetricsLogger(out, cfg, total_steps=total, resume_step=resume, rank=rank, run_name="t", prefix="sft")


def test_one_json_line_per_step_with_nulls_for_non_finite(tmp_path: Path) -> None:
    with _logger(tmp_path) as log:
        log.log(0, {"val/loss": 2.5})
        log.log(1, {"loss": 2.0, "mfu": None, "grad_norm": float("nan"), "ok": True}, step_seconds=1.0)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    assert rows[1]["mfu"] is None and rows[1]["grad_norm"] is None and rows[1]["ok"] == 1
    assert "time" in rows[0] and rows[0]["val/loss"] == 2.5


def test_restart_drops_the_lines_past_the_checkpoint(tmp_path: Path) -> None:
    with _logger(tmp_path) as log:
        for step in range(0, 4):
            log.log(step, {"loss": float(step)})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "lo')  # torn line from a kill mid-write
    with _logger(tmp_path, resume=2) as log:  # the checkpoint was at step 2: steps 3.. run again
        log.log(3, {"loss": 30.0})
        log.log(4, {"loss": 40.0})
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[3]["loss"] == 30.0


def test_fresh_start_clears_an_orphaned_metrics_file(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"step": 0}\n{"step": 1}\n')
    with _logger(tmp_path, resume=None) as log:
        log.log(0, {"val/loss": 1.0})
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0]


def test_only_rank_zero_writes_and_prints(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with _logger(tmp_path, rank=1) as log:
        log.info("hello")
        log.log(2, {"loss": 1.0}, step_seconds=0.5)
    assert not (tmp_path / "metrics.jsonl").exists()
    assert capsys.readouterr().out == ""


def test_progress_line_every_log_interval_and_at_the_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with _logger(tmp_path, total=3) as log:
        for step in (1, 2, 3):
            log.log(step, {"loss": 1.0, "lr": 1e-5, "mfu": None, "packing_efficiency": 0.9}, step_seconds=2.0)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[sft] step")]
    assert [ln.split("|")[0].strip() for ln in lines] == ["[sft] step 2/3 (67%)", "[sft] step 3/3 (100%)"]
    assert "mfu n/a" in lines[0] and "pack 90.0%" in lines[0] and "ETA" in lines[0]


def test_eta_and_durations() -> None:
    clock = StepClock()
    for s in (10.0, 2.0, 4.0):  # the first step (warm-up) is left out once others exist
        clock.add(s)
    assert clock.seconds_per_step() == 3.0 and clock.eta(10) == 30.0
    assert (format_duration(42), format_duration(185), format_duration(3720), format_duration(None)) == \
        ("42s", "3m05s", "1h02m", "?")
    line = progress_line("rl", 5, 10, {"reward/mean": 0.5, "loss": 0.1}, clock)
    assert line.startswith("[rl] step 5/10 (50%) | loss 0.1000 | reward 0.500") and "ETA 15s" in line


def test_tensorboard_scalars_and_purge_on_restart(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = LoggingConfig(log_interval=1, tensorboard=True)
    with _logger(tmp_path, cfg) as log:
        for step in (1, 2, 3):
            log.log(step, {"loss": float(step), "mfu": None})
    with _logger(tmp_path, cfg, resume=1) as log:
        log.log(2, {"loss": 20.0})
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    events = {(e.step, e.value) for e in acc.Scalars("loss")}
    assert events == {(1, 1.0), (2, 20.0)}
    assert "mfu" not in acc.Tags()["scalars"]
    with _logger(tmp_path, cfg, resume=None) as log:  # a fresh start after an uncheckpointed attempt
        log.log(1, {"loss": 100.0})
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert {(e.step, e.value) for e in acc.Scalars("loss")} == {(1, 100.0)}


class _RecordingWandb(types.ModuleType):
    """Records what the logger asks of W&B (the real package is optional and not installed in
    the CPU environment)."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.inits: list[dict] = []
        self.logged: list[tuple[dict, int]] = []
        self.util = types.SimpleNamespace(generate_id=lambda: "run123")
        self.finished = 0

    def init(self, **kw):  # noqa: ANN003, ANN201
        self.inits.append(kw)
        parent = self

        class Run:
            def log(self, data, step):  # noqa: ANN001, ANN201
                parent.logged.append((data, step))

            def finish(self):  # noqa: ANN201
                parent.finished += 1

        return Run()


def test_wandb_when_configured_resumes_the_same_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _RecordingWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = LoggingConfig(tensorboard=False, wandb=WandbConfig(project="cascade", entity="team"))
    with _logger(tmp_path, cfg) as log:
        log.log(1, {"loss": 1.0, "mfu": None})
    fake.util = types.SimpleNamespace(generate_id=lambda: "other")
    with _logger(tmp_path, cfg, resume=1) as log:
        log.log(2, {"loss": 0.5})
    assert [i["id"] for i in fake.inits] == ["run123", "run123"]
    assert fake.inits[0]["project"] == "cascade" and fake.inits[0]["resume"] == "allow"
    assert fake.logged == [({"loss": 1.0}, 1), ({"loss": 0.5}, 2)] and fake.finished == 2


def test_missing_wandb_fails_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "wandb" else object())
    with pytest.raises(RuntimeError, match="pip install wandb"):
        check_sinks_available(LoggingConfig(wandb=WandbConfig(project="p")))
    check_sinks_available(LoggingConfig())
