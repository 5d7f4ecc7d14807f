"""Helpers of the CLI tests (tests/cli/conftest.py makes `sh` a fixture): each runs a user's command line exactly as written, in the repo
root, with `python` the project's interpreter, a private run dir, a fake `sbatch` that records
any call, and asserts on what a user sees (exit code, one line on stderr)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Shell:
    home: Path  # scratch dir; CASCADE_RUN_DIR points below it
    env: dict[str, str]
    sbatch_log: Path

    def __call__(self, command: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", command], cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def sbatch_calls(self) -> list[str]:
        return self.sbatch_log.read_text().splitlines() if self.sbatch_log.exists() else []


def make_shell(tmp_path: Path) -> Shell:
    """`sh("python -m cascade ...")`: run as a user would, from the repo root."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch_calls.txt"
    for tool, out in (("sbatch", "echo 4242"), ("scontrol", "true"), ("scancel", "true"), ("squeue", "true")):
        script = bin_dir / tool
        script.write_text(f'#!/usr/bin/env bash\necho "{tool} $*" >> {log}\n{out}\n')
        script.chmod(0o755)
    python_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(PATH=f"{bin_dir}:{python_dir}:{env.get('PATH', '')}", CASCADE_RUN_DIR=str(tmp_path / "runs"),
               CASCADE_PYTHON=sys.executable, PYTHONPATH=str(REPO))
    return Shell(tmp_path, env, log)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str, code: int = 2) -> str:
    """The user's answer: exit `code`, no traceback, one line on stderr holding every needle."""
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
