"""`launchers/cascade.sh CASCADE --dry-run` (contract): one sbatch per stage, each after the stages
it depends on, with the init_from the stage graph resolves. No Slurm needed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.runtime.stage_dirs import StageDirs
from cascade.stages import REPO_ROOT

CASCADE_8B = "nemo_configs/qwen3_8b/cascade.yaml"
DESCRIBE = re.compile(r"^# \[(?P<tag>side|\d\d)\] (?P<name>\S+) kind=(?P<kind>\S+) init_from=(?P<init_from>\S+) "
                      r"output_dir=(?P<output_dir>\S+) depends_on=(?P<depends_on>\S*) after=(?P<after>\S*)$")
SUBMIT = re.compile(r"^JOB_(?P<name>\w+)=\$\((?P<cmd>.*)\)$")


def _env(run_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {**env, "CASCADE_RUN_DIR": str(run_dir), "CASCADE_PYTHON": sys.executable}


def dry_run(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO_ROOT / "launchers" / "cascade.sh"), "--dry-run", *args], cwd=REPO_ROOT,
                          env=_env(run_dir), capture_output=True, text=True, timeout=120)


def plan_json(run_dir: Path, cascade: str = CASCADE_8B) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "cascade", "plan", cascade, "--json", "--include-side"],
                          cwd=REPO_ROOT, env=_env(run_dir), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def parse(text: str) -> list[dict]:
    """One dict per submitted stage: the description line, then its sbatch line."""
    jobs: list[dict] = []
    for line in text.splitlines():
        if m := DESCRIBE.match(line):
            jobs.append({**m.groupdict(), "depends_on": [d for d in m["depends_on"].split(",") if d],
                         "after": [d for d in m["after"].split(",") if d]})
        elif m := SUBMIT.match(line):
            assert jobs and jobs[-1]["name"] == m["name"], line
            jobs[-1]["cmd"] = m["cmd"]
    return jobs


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


def test_dry_run_8b_every_stage_after_its_predecessor_with_the_plans_init_from(run_dir: Path) -> None:
    proc = dry_run(run_dir, CASCADE_8B)
    assert proc.returncode == 0, proc.stderr
    jobs = parse(proc.stdout)
    plan = plan_json(run_dir)
    assert [j["name"] for j in jobs] == [s["name"] for s in plan]  # side stages first, then the chain
    by_name = {s["name"]: s for s in plan}
    chain = [s for s in plan if not s["side"]]
    for job in jobs:
        stage = by_name[job["name"]]
        assert job["init_from"] == stage["init_from"]
        assert job["output_dir"] == stage["output_dir"]
        assert sorted(job["after"]) == sorted(stage["depends_on"])
        assert job["cmd"].split()[-1] == str(REPO_ROOT / stage["launcher"])
        assert f"CASCADE={REPO_ROOT / CASCADE_8B}" in job["cmd"]
        deps = re.search(r"--dependency=afterok:(\S+)", job["cmd"])
        if stage["depends_on"]:
            assert deps and sorted(deps.group(1).split(":")) == sorted(f"${{JOB_{d}}}" for d in stage["depends_on"])
            assert "--kill-on-invalid-dep=yes" in job["cmd"]
        else:
            assert deps is None
    for prev, cur in zip(chain, chain[1:]):
        job = next(j for j in jobs if j["name"] == cur["name"])
        assert prev["name"] in job["after"], f"{cur['name']} does not wait for {prev['name']}"
        assert job["init_from"] == prev["output_dir"], f"{cur['name']} does not start from {prev['name']}"
    # a job id variable is always defined before a later line uses it
    seen: set[str] = set()
    for job in jobs:
        assert set(job["after"]) <= seen
        seen.add(job["name"])
    assert subprocess.run(["bash", "-n"], input=proc.stdout, text=True).returncode == 0


def test_dry_run_from_a_stage_skips_the_ones_before_and_warns(run_dir: Path) -> None:
    proc = dry_run(run_dir, CASCADE_8B, "--from", "math_rl_24k", "--", "--partition=batch")
    assert proc.returncode == 0, proc.stderr
    jobs = parse(proc.stdout)
    assert [j["name"] for j in jobs] == ["math_rl_24k", "math_rl_32k", "math_rl_40k", "code_rl_44k", "code_rl_48k", "swe_rl_16k",
                                         "swe_rl_24k"]
    assert jobs[0]["after"] == [] and "--dependency" not in jobs[0]["cmd"]
    assert all("--partition=batch" in j["cmd"] for j in jobs)
    assert "WARNING: math_rl_24k needs if_rl_2, which is neither COMPLETE nor submitted" in proc.stdout


def test_dry_run_from_rlhf_brings_the_reward_model_side_stage(run_dir: Path) -> None:
    jobs = parse(dry_run(run_dir, CASCADE_8B, "--from", "rlhf").stdout)
    assert [j["name"] for j in jobs][:2] == ["reward_model", "rlhf"]


def test_complete_stages_are_not_submitted(tmp_path: Path) -> None:
    plan = {s["name"]: s for s in plan_json(tmp_path)}
    StageDirs(Path(plan["sft_16k"]["output_dir"])).mark_complete({"stage": "sft_16k"})
    proc = dry_run(tmp_path, CASCADE_8B)
    jobs = parse(proc.stdout)
    assert "sft_16k" not in [j["name"] for j in jobs]
    assert "sft_16k: already COMPLETE" in proc.stdout
    sft_32k = next(j for j in jobs if j["name"] == "sft_32k")
    assert sft_32k["after"] == [] and "--dependency" not in sft_32k["cmd"]


def test_unknown_from_stage_is_a_clear_error(run_dir: Path) -> None:
    proc = dry_run(run_dir, CASCADE_8B, "--from", "nope")
    assert proc.returncode == 2
    assert "--from 'nope': not a chain stage" in proc.stderr and "sft_16k" in proc.stderr


def test_dry_run_passes_overrides_to_every_launcher_after_the_script(run_dir: Path) -> None:
    proc = dry_run(run_dir, CASCADE_8B, "train.steps=2", "--", "--partition=batch")
    assert proc.returncode == 0, proc.stderr
    for job in parse(proc.stdout):
        assert job["cmd"].endswith(".sh train.steps=2"), job["cmd"]  # sbatch passes it to the script
        assert job["cmd"].index("--partition=batch") < job["cmd"].index("launchers/")


def test_an_sbatch_option_where_an_override_goes_is_a_clear_error(run_dir: Path) -> None:
    proc = dry_run(run_dir, CASCADE_8B, "steps2")
    assert proc.returncode == 2
    assert "overrides are key=value; sbatch options go after `--`" in proc.stderr
