"""The cluster shell scripts on a machine without CUDA: they parse, the environment check names
what is missing and exits non-zero, gpu_check.sh exits 2 with "no CUDA device", and the installer's
dry run keeps the installed torch (constraints) and installs vllm with --no-deps.

CUDA is hidden (CUDA_VISIBLE_DEVICES="") so that these run the same on a GPU machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ["install_cluster_env.sh", "check_cluster_env.sh", "gpu_check.sh"]


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", **extra)


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_parse(name: str) -> None:
    proc = subprocess.run(["bash", "-n", str(REPO / "scripts" / name)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_check_cluster_env_names_what_is_missing() -> None:
    proc = subprocess.run(["bash", str(REPO / "scripts" / "check_cluster_env.sh")], env=_env(),
                          capture_output=True, text=True, timeout=600)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert any(x.startswith("FAIL cuda: no CUDA device") for x in lines), lines
    assert any(x.startswith("FAIL fp8:") for x in lines), lines
    assert any(x.startswith("ok   torch:") for x in lines), lines
    assert any(x.startswith(("ok   megatron_core: 0.19.2", "FAIL megatron_core:")) for x in lines), lines
    assert all(x.startswith(("ok   ", "FAIL ", "summary: ")) for x in lines), lines  # one line per check
    assert lines[-1].startswith("summary: ") and "cuda" in lines[-1]


def test_gpu_check_without_cuda_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path / "out")],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no CUDA device" in proc.stderr
    assert '"no CUDA device"' in (tmp_path / "out" / "results.json").read_text()


def test_install_dry_run_keeps_torch_and_installs_vllm_without_deps(tmp_path: Path) -> None:
    import torch

    constraints = tmp_path / "constraints.txt"
    proc = subprocess.run(["bash", str(REPO / "scripts" / "install_cluster_env.sh"), "--dry-run",
                           "--allow-torch-mismatch"], env=_env(CASCADE_CONSTRAINTS=str(constraints)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"torch=={torch.__version__}" in constraints.read_text().splitlines()
    cmds = [x for x in proc.stderr.splitlines() if "+ " in x and "pip install" in x]
    resolve = next(x for x in cmds if "-r " in x)
    assert f"-c {constraints}" in resolve and "requirements-vllm.txt" in resolve
    assert any("--no-deps vllm==0.32.0" in x for x in cmds), cmds
    assert "dry run: nothing installed" in proc.stderr


def test_vllm_requirements_leave_torch_out() -> None:
    names = [line.split("#")[0].strip() for line in (REPO / "requirements-vllm.txt").read_text().splitlines()]
    names = [n for n in names if n]
    assert not [n for n in names if n.split("=")[0].split("<")[0].split(">")[0].split("[")[0]
                in ("torch", "torchvision", "torchaudio")], names
