"""Issue 20 item 8: `python -m evals.report` answers a missing/empty/mistyped run dir, stages
without results and a corrupt results file in one line (exit 2), and creates nothing for them."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import Shell, assert_one_line_error

from evals.runner import RESULTS_SCHEMA


def _results(stage_dir: Path, name: str, text: str | None = None) -> Path:
    path = stage_dir / "evals" / f"{name}.json"
    path.parent.mkdir(parents=True)
    doc = {"schema": RESULTS_SCHEMA, "benchmarks": {"aime24": {"score": 40.0, "stderr": 2.0, "n_items": 30,
                                                                "metric": "avg@4", "title": "AIME 2024"}}}
    path.write_text(json.dumps(doc) if text is None else text)
    return path


def test_a_missing_run_dir_is_one_line_and_not_created(sh: Shell) -> None:
    run = sh.home / "runs" / "toyy"
    proc = sh(f"python -m evals.report {run} --no-plots")
    assert_one_line_error(proc, str(run), "does not exist")
    assert not run.exists()


def test_a_mistyped_dir_with_cascade_gets_no_report(sh: Shell) -> None:
    run = sh.home / "runs" / "toyy"
    proc = sh(f"python -m evals.report {run} --cascade nemo_configs/tiny/cascade.yaml --no-plots")
    assert_one_line_error(proc, str(run), "does not exist")
    assert not run.exists()


def test_an_empty_run_dir_is_one_line(sh: Shell) -> None:
    run = sh.home / "empty"
    run.mkdir()
    proc = sh(f"python -m evals.report {run} --no-plots")
    assert_one_line_error(proc, str(run), "no stage directories")
    assert list(run.iterdir()) == []


def test_stage_dirs_without_results_are_one_line_naming_where_it_looked(sh: Shell) -> None:
    run = sh.home / "run"
    (run / "01_sft").mkdir(parents=True)
    (run / "02_rlhf").mkdir()
    proc = sh(f"python -m evals.report {run} --no-plots")
    assert_one_line_error(proc, "no stage has eval results yet", "01_sft/evals/sft.json")
    assert not (run / "report").exists()


def test_a_corrupt_results_file_is_named(sh: Shell) -> None:
    run = sh.home / "run"
    _results(run / "01_sft", "sft")
    bad = _results(run / "02_rlhf", "rlhf", text='{"schema": ')
    proc = sh(f"python -m evals.report {run} --no-plots")
    assert_one_line_error(proc, str(bad), "not a results file")
    assert not (run / "report").exists()


def test_a_stage_without_results_is_listed_beside_those_with(sh: Shell) -> None:
    run = sh.home / "run"
    _results(run / "01_sft", "sft")
    (run / "02_rlhf").mkdir()
    proc = sh(f"python -m evals.report {run} --no-plots")
    assert proc.returncode == 0, proc.stderr
    md = (run / "report" / "report.md").read_text()
    assert "| benchmark | 01 sft |" in md and "No results yet: 02 rlhf" in md
    assert sorted(p.name for p in (run / "report").iterdir()) == ["report.json", "report.md"]


def test_evals_run_takes_overrides_anywhere_and_a_missing_model_is_one_line(sh: Shell) -> None:
    stage = sh.home / "01_sft"
    stage.mkdir()
    proc = sh(f"python -m evals.run --stage-dir {stage} benchmarks.gsm8k.limit=4 --suite toy --no-progress")
    assert_one_line_error(proc, f"no HF model at {stage}/hf")
    assert not (stage / "evals").exists()
