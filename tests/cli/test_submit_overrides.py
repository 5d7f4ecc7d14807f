"""Issue 20 item 1: submitting validates every override against every stage it goes to before
any sbatch, routes cascade keys to the cascade and job-shape keys to the sbatch line, and takes
per-stage overrides as `<stage>.key=value`."""

from __future__ import annotations

import re

from cli_helpers import Shell, assert_one_line_error

CASCADE_8B = "nemo_configs/qwen3_8b/cascade.yaml"


def test_an_override_unknown_to_some_stage_stops_the_submission_before_any_sbatch(sh: Shell) -> None:
    run_dir = sh.home / "x"
    proc = sh(f"bash launchers/cascade.sh {CASCADE_8B} optim.lrr=1 rollout.temperature=0.9 run_dir={run_dir}")
    line = assert_one_line_error(proc, "stage '", "command-line override")
    assert "optim.lrr=1" in line or "rollout.temperature=0.9" in line
    assert sh.sbatch_calls() == []
    assert not run_dir.exists()  # nothing written for a submission that did not happen


def test_an_rl_only_key_sent_to_every_stage_names_the_stage_and_the_per_stage_syntax(sh: Shell) -> None:
    proc = sh(f"bash launchers/cascade.sh {CASCADE_8B} rollout.temperature=0.9")
    assert_one_line_error(proc, "'rollout.temperature'", "unknown key", "KEY=VALUE")
    assert sh.sbatch_calls() == []


def test_a_per_stage_override_reaches_only_that_stage(sh: Shell) -> None:
    proc = sh(f"bash launchers/cascade.sh {CASCADE_8B} --dry-run math_rl_24k.rollout.temperature=0.9")
    assert proc.returncode == 0, proc.stderr
    lines = {m[1]: m[2] for m in re.finditer(r"^JOB_(\w+)=\$\((.*)\)$", proc.stdout, re.M)}
    assert lines["math_rl_24k"].endswith("_math_rl_24k.sh rollout.temperature=0.9")
    assert not any("temperature" in cmd for name, cmd in lines.items() if name != "math_rl_24k")


def test_a_misspelled_per_stage_override_names_the_stage_and_suggests(sh: Shell) -> None:
    proc = sh(f"bash launchers/cascade.sh {CASCADE_8B} --dry-run math_rl_24k.rollout.temprature=0.9")
    assert_one_line_error(proc, "stage 'math_rl_24k'", "'rollout.temprature'", "did you mean 'rollout.temperature'")


def test_run_dir_goes_to_the_cascade_and_every_job(sh: Shell) -> None:
    run_dir = sh.home / "x"
    proc = sh(f"bash launchers/cascade.sh {CASCADE_8B} --dry-run run_dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    assert f"run_dir {run_dir}" in proc.stdout
    jobs = re.findall(r"^JOB_\w+=\$\((.*)\)$", proc.stdout, re.M)
    assert len(jobs) == 13
    assert all(f"--output={run_dir}/logs/" in j and j.endswith(f".sh run_dir={run_dir}") for j in jobs)


def test_job_shape_overrides_reach_the_sbatch_line(sh: Shell) -> None:
    proc = sh(f"bash launchers/cascade.sh {CASCADE_8B} --dry-run launch.nodes=16 launch.time=01:00:00")
    assert proc.returncode == 0, proc.stderr
    jobs = re.findall(r"^JOB_\w+=\$\((.*)\)$", proc.stdout, re.M)
    assert len(jobs) == 13
    assert all("--nodes=16 " in j and "--time=01:00:00 " in j and "--nodes=8" not in j for j in jobs)


def test_a_job_shape_that_cannot_hold_a_stage_is_refused_naming_it(sh: Shell) -> None:
    proc = sh(f"bash launchers/cascade.sh {CASCADE_8B} launch.nodes=1 launch.time=01:00:00")
    assert_one_line_error(proc, "stage 'reward_model'", "launch.nodes=1", "TP*PP*CP")
    assert sh.sbatch_calls() == []


def test_a_valid_submission_records_its_jobs_atomically(sh: Shell) -> None:
    run_dir = sh.home / "toy"
    proc = sh(f"bash launchers/cascade.sh nemo_configs/tiny/cascade.yaml run_dir={run_dir} sft.train.steps=2")
    assert proc.returncode == 0, proc.stderr
    calls = sh.sbatch_calls()
    assert len(calls) == 7 and calls[1].endswith(f"stage_01_sft.sh run_dir={run_dir} train.steps=2")
    assert not any("train.steps" in c for c in calls[2:])
    assert (run_dir / "jobs.json").is_file()
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_a_stage_named_like_a_config_section_takes_both_spellings(sh: Shell) -> None:
    """Cascade-2's `mopd` stage has a `mopd:` section: `mopd.train.steps` is the stage's train.steps,
    `mopd.mopd.loss...` its section; a wrong one is named as the user wrote it."""
    cascade = "nemo_configs/nano3_30b_a3b/cascade.yaml"
    proc = sh(f"bash launchers/cascade.sh {cascade} --dry-run mopd.mopd.loss.is_eps_high=5 mopd.train.steps=3")
    assert proc.returncode == 0, proc.stderr
    # the section keeps its stage prefix: run-stage routes the launcher's arguments the same way
    assert re.search(r"stage_\d+_mopd\.sh mopd\.mopd\.loss\.is_eps_high=5 train\.steps=3\)$", proc.stdout, re.M)
    from cascade.launch.overrides import load_with_overrides

    _, routed = load_with_overrides(cascade, ["mopd.mopd.loss.is_eps_high=5", "train.steps=3"])
    assert routed.for_stage("mopd") == ["train.steps=3", "mopd.loss.is_eps_high=5"]
    proc = sh(f"bash launchers/cascade.sh {cascade} --dry-run mopd.loss.is_eps_low=0.5")
    assert_one_line_error(proc, "stage 'mopd'", "command-line override 'mopd.loss.is_eps_low=0.5'",
                          "did you mean 'mopd.loss.is_eps_low'")
