"""scripts/toy_cascade.sh: which toy cascade runs is an option; a wrong one is refused at once
(before the environment is built or anything runs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "toy_cascade.sh"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30, cwd=REPO)


@pytest.mark.parametrize("args", [("--cascade", "c3"), ("--cascade=nano",), ("--cascade",)])
def test_unknown_cascade_is_refused_in_one_line(args: tuple[str, ...]) -> None:
    r = run(*args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--cascade must be c1 or c2" in r.stderr


def test_unknown_flag_is_refused() -> None:
    r = run("--fast")
    assert r.returncode == 2 and "unknown argument: --fast" in r.stderr


def test_help_names_both_cascades() -> None:
    r = run("--help")
    assert r.returncode == 0 and "--cascade c2" in r.stdout and "tiny_c2" in r.stdout


def test_each_cascade_config_the_script_names_exists() -> None:
    text = SCRIPT.read_text()
    for cfg in ("nemo_configs/tiny/cascade.yaml", "nemo_configs/tiny_c2/cascade.yaml"):
        assert cfg in text and (REPO / cfg).is_file()
