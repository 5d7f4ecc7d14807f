"""The architecture as checks: import layers point down (the contract in pyproject.toml), no
trainer imports the launcher, and no copied code is marked as such."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_layers_point_down():
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        exe = shutil.which("lint-imports")  # type: ignore[assignment]
    if not exe:
        pytest.fail("lint-imports is missing: scripts/setup_env.sh installs import-linter (requirements-cpu.txt)")
    r = subprocess.run([str(exe), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_trainers_never_import_the_launcher_or_the_runtime():
    for pkg in ("sft", "reward_model", "rl"):
        for f in (REPO / "cascade" / pkg).rglob("*.py"):
            text = f.read_text()
            assert "cascade.launch" not in text and "cascade.runtime" not in text, f


def test_no_file_says_it_was_copied():
    hits = subprocess.run(["grep", "-rli", "vendored", "--include=*.py", "--include=*.md", "--include=*.toml",
                           "--include=*.txt", "--include=*.sh", "--include=*.yaml", "cascade", "recipes", "data_prep",
                           "evals", "bench", "scripts", "launchers", "nemo_configs", "README.md"],
                          cwd=REPO, capture_output=True, text=True).stdout.split()
    assert hits == [], hits


def test_ruff_is_clean():
    exe = Path(sys.executable).parent / "ruff"
    if not exe.exists():
        pytest.fail("ruff is missing: scripts/setup_env.sh installs it (requirements-cpu.txt)")
    r = subprocess.run([str(exe), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:]
