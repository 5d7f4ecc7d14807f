"""Fixtures of the launcher tests: a real single-node Slurm, started once per session by
launchers/local_slurm/start.sh (installing the Debian packages when missing) and stopped after.
Tests that need it are marked `slurm`; without root or packages they skip with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from cascade.stages import REPO_ROOT
from launch_scaffold import LocalSlurm, free_port


@pytest.fixture(scope="session")
def local_slurm():
    """A real single-node Slurm for this session (private ports, state in a temp dir)."""
    if os.geteuid() != 0:
        pytest.skip("the local Slurm needs root (SlurmUser=root, munged, apt-get install)")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip("Slurm is not installed and there is no apt-get to install it")
    # not tmp_path: munged needs world-executable parents, and pytest's base temp dir is 0700
    d = Path(tempfile.mkdtemp(prefix="cascade-slurm-", dir="/tmp"))
    d.chmod(0o755)
    start = REPO_ROOT / "launchers" / "local_slurm" / "start.sh"
    stop = REPO_ROOT / "launchers" / "local_slurm" / "stop.sh"
    env = {**os.environ, "SLURM_LOCAL_CTLD_PORT": str(free_port()), "SLURM_LOCAL_SLURMD_PORT": str(free_port()),
           "SLURM_LOCAL_CRED_EXPIRE": "5"}  # a requeued job restarts ~6 s later
    try:
        proc = subprocess.run(["bash", str(start), str(d)], env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        subprocess.run(["bash", str(stop), str(d)], capture_output=True, timeout=60)
        pytest.skip("starting the local Slurm (apt-get install) took more than 300 s")
    if proc.returncode != 0:
        subprocess.run(["bash", str(stop), str(d)], capture_output=True, timeout=60)
        if "apt-get install failed" in proc.stderr or "no apt-get" in proc.stderr:
            pytest.skip(f"slurm packages cannot be installed here: {proc.stderr.strip()[-400:]}")
        pytest.fail(f"local Slurm did not start:\n{proc.stdout}\n{proc.stderr}")
    try:
        yield LocalSlurm(dir=d, env={"SLURM_CONF": str(d / "etc" / "slurm.conf")})
    finally:
        subprocess.run(["bash", str(stop), str(d)], env={**os.environ, "CASCADE_SLURM_PURGE": "1"},
                       capture_output=True, timeout=120)
