"""`status` logic without Slurm: markers win, Slurm states map to stage states, and a failure
is traced to the dependents it cancelled (transitively)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascade.config.errors import UserError
from cascade.launch import status
from cascade.launch.slurm import parse_scontrol
from cascade.runtime.stage_dirs import StageDirs


def _jobs(tmp_path: Path) -> dict:
    names = [("rm", []), ("a", []), ("b", ["a", "rm"]), ("c", ["b"])]
    return {"name": "t", "cascade": "t.yaml", "submitted_at": "now", "stages": [
        {"stage": n, "job_id": str(i + 1), "depends_on": deps, "output_dir": str(tmp_path / n), "log": f"{n}.out"}
        for i, (n, deps) in enumerate(names)]}


def test_failure_is_traced_to_the_cancelled_dependents(tmp_path: Path, monkeypatch) -> None:
    jobs = _jobs(tmp_path)
    StageDirs(tmp_path / "rm").mark_complete({"step": 2, "eval": "ok"})
    infos = {
        "1": {"JobState": "COMPLETED"},
        "2": {"JobState": "FAILED", "ExitCode": "3:0", "Reason": "NonZeroExitCode"},
        "3": {"JobState": "CANCELLED", "Reason": "DependencyNeverSatisfied"},
        "4": {"JobState": "CANCELLED", "Reason": "DependencyNeverSatisfied"},
    }
    monkeypatch.setattr(status.slurm, "available", lambda: True)
    monkeypatch.setattr(status.slurm, "job_info", lambda j: infos[j])
    text, code = status.report(jobs, status.collect(jobs))
    assert code == status.EXIT_FAILED
    assert "FAILED: a (job 2: FAILED exit 3:0)" in text
    assert "cancelled because of it: b, c" in text
    assert "c" in text and text.count("because a failed") == 2


def test_states_while_running_and_after_requeue(tmp_path: Path, monkeypatch) -> None:
    jobs = _jobs(tmp_path)
    infos = {
        "1": {"JobState": "RUNNING", "Restarts": "0"},
        "2": {"JobState": "PENDING", "Reason": "BeginTime", "Restarts": "1"},
        "3": {"JobState": "PENDING", "Reason": "Dependency", "Dependency": "afterok:2(unfulfilled)"},
        "4": None,
    }
    monkeypatch.setattr(status.slurm, "available", lambda: True)
    monkeypatch.setattr(status.slurm, "job_info", lambda j: infos[j])
    got = {s.stage: s for s in status.collect(jobs)}
    assert got["rm"].state == status.RUNNING
    assert got["a"].state == status.WAITING and "requeued 1x" in got["a"].detail
    assert got["b"].state == status.WAITING and "afterok:2" in got["b"].detail
    assert got["c"].state == status.UNKNOWN
    assert status.report(jobs, list(got.values()))[1] == status.EXIT_IN_PROGRESS


def test_parse_scontrol_line() -> None:
    info = parse_scontrol("JobId=7 JobName=x JobState=PENDING Reason=DependencyNeverSatisfied Dependency=afterok:5(failed)"
                          " Requeue=1 Restarts=0 ExitCode=0:0")
    assert info["JobState"] == "PENDING" and info["Dependency"] == "afterok:5(failed)" and info["ExitCode"] == "0:0"


def test_status_without_jobs_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="submit with launchers/cascade.sh first"):  # one line, exit 2 (cli.py)
        status.main(str(tmp_path))
