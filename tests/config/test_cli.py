"""`python -m cascade` subcommands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cascade", *args], cwd=REPO, capture_output=True, text=True)


def test_config_show_prints_the_resolved_config_with_overrides() -> None:
    r = run("config", "show", "nemo_configs/qwen3_8b/rlhf.yaml", "rollout.temperature=0.7")
    assert r.returncode == 0, r.stderr
    assert "temperature: 0.7" in r.stdout and "max_response_length: 12288" in r.stdout


def test_config_show_misspelled_override_fails_naming_the_key() -> None:
    r = run("config", "show", "nemo_configs/qwen3_8b/sft_stage1_16k.yaml", "optim.lrr=1e-5")
    assert r.returncode == 2
    assert "'optim.lrr'" in r.stderr and "did you mean 'optim.lr'" in r.stderr
    assert "Traceback" not in r.stderr


def test_config_check_validates_the_whole_tree() -> None:
    r = run("config", "check")
    assert r.returncode == 0, r.stderr
    assert ", 0 invalid" in r.stdout


def test_plan_text_output_names_side_stages() -> None:
    r = run("plan", "nemo_configs/tiny/cascade.yaml", "--include-side")
    assert r.returncode == 0, r.stderr
    assert "reward_model (side)" in r.stdout and "uses       reward_model:" in r.stdout


def test_a_user_mistake_is_one_line_and_debug_shows_the_traceback() -> None:
    r = run("config", "show", "nemo_configs/qwen3_8b/nope.yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "config file not found" in r.stderr
    r = run("config", "show", "nemo_configs/qwen3_8b/nope.yaml", "--debug")
    assert r.returncode == 1 and "Traceback" in r.stderr and "ConfigError" in r.stderr
