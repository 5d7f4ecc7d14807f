"""Stage timing: phases accumulate, attempts append atomically, the report sums them per column."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cascade.runtime.stage_timing import TIMING_FILE, PhaseClock, process_age_s, read_attempts, summarize, write_attempt
from evals.report import StageColumn, render_times, stage_times


def test_a_phase_that_runs_twice_accumulates_its_seconds() -> None:
    clock = PhaseClock()
    for _ in range(2):
        with clock.phase("steps"):
            time.sleep(0.01)
    clock.add("eval", 1.5)
    assert clock.seconds["steps"] >= 0.02 and clock.seconds["eval"] == 1.5


def test_a_phase_that_raises_is_still_timed() -> None:
    clock = PhaseClock()
    try:
        with clock.phase("export"):
            raise OSError("disk full")
    except OSError:
        pass
    assert "export" in clock.seconds


def test_a_resumed_stage_appends_an_attempt_and_the_summary_sums_them(tmp_path: Path) -> None:
    for steps, ev in ((10.0, 0.0), (5.0, 20.0)):  # killed during training, then resumed to the end
        clock = PhaseClock()
        clock.add("startup", 3.0)
        clock.add("ready", 2.0)
        clock.add("steps", steps)
        clock.add("checkpoint", 1.0)
        clock.add("eval", ev)
        write_attempt(tmp_path, 40.0, clock)
    assert len(read_attempts(tmp_path / TIMING_FILE)) == 2
    s = summarize(tmp_path / TIMING_FILE)
    assert s["start-up"] == 10.0 and s["training"] == 15.0 and s["checkpoint/export"] == 2.0
    assert s["evals"] == 20.0 and s["total"] == 80.0 and s["other"] == 33.0 and s["attempts"] == 2


def test_an_unreadable_timing_file_counts_as_untimed(tmp_path: Path) -> None:
    (tmp_path / TIMING_FILE).write_text("{not json")
    assert summarize(tmp_path / TIMING_FILE) is None
    assert summarize(tmp_path / "missing.json") is None


def test_process_age_counts_from_interpreter_start() -> None:
    assert 0 < process_age_s() < 24 * 3600


def test_report_lists_chain_and_side_stages_with_a_total_row(tmp_path: Path) -> None:
    for name, steps in (("side_reward_model", 30.0), ("01_sft", 60.0)):
        d = tmp_path / name
        d.mkdir()
        clock = PhaseClock()
        clock.add("steps", steps)
        write_attempt(d, steps + 10, clock)
        time.sleep(0.01)  # mtime order is run order
    times = stage_times(tmp_path, [StageColumn(1, "sft", tmp_path / "01_sft", None)])
    assert list(times) == ["side_reward_model", "01 sft"]
    md = "\n".join(render_times(times))
    assert "| 01 sft | 0m00s | 1m00s | 0m00s | 0m00s | 0m10s | 1m10s |" in md
    assert "| **all** | 0m00s | 1m30s | 0m00s | 0m00s | 0m20s | 1m50s |" in md
    json.dumps(times)  # report.json carries it
