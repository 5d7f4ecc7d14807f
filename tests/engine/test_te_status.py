"""Device selection without a GPU: a broken Transformer Engine is reported and hidden (local layer
spec, Megatron still imports), ``CASCADE_DEVICE`` is honoured, and the local launcher puts its ranks
on the CPU by default and refuses more GPU ranks than GPUs.

Megatron runs only in subprocesses (the CPU shim patches torch process-wide)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.engine import launch

REPO = Path(__file__).resolve().parents[2]

_PROBE = r"""
import json, os, types
from cascade.engine import device, te_status
from cascade.engine.model import layer_spec
import megatron.core.extensions.transformer_engine as mte
import megatron.core.fp8_utils as mfp8
import torch

spec = layer_spec(types.SimpleNamespace(qk_layernorm=True, family=None))  # a dense model
qkv = spec.submodules.self_attention.submodules.linear_qkv
available, reason = te_status.te_status()

# The GPU side of the same decision: a TE that fails to import is not used there either.
te_status._reset_for_tests()
def broken(name):
    raise OSError("libtransformer_engine.so: undefined symbol: cudaGetDriverEntryPointByVersion")
gpu = te_status.probe(True, import_module=broken, find_spec=lambda name: object())

print("RESULT " + json.dumps(dict(
    on_gpu=device.ON_GPU, have_te=device.HAVE_TE, available=available, reason=reason,
    qkv=qkv.__name__, megatron_have_te=[mte.HAVE_TE, mfp8.HAVE_TE],
    cuda_visible=os.environ.get("CUDA_VISIBLE_DEVICES"), torch_cuda=torch.cuda.is_available(),
    gpu_probe=list(gpu))))
"""


def _run(code: str, env_extra: dict[str, str], pythonpath: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*pythonpath, str(REPO)]), OMP_NUM_THREADS="1",
               **env_extra)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=240)


@pytest.mark.parametrize("error", ["OSError('libcudart.so.13: cannot open shared object file')",
                                   "ImportError('transformer_engine_torch was built against torch 2.9')"])
def test_broken_te_is_reported_and_hidden(tmp_path: Path, error: str) -> None:
    fake = tmp_path / "site" / "transformer_engine"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise {error}\n")
    proc = _run(_PROBE, {"CASCADE_DEVICE": "cpu"}, [str(tmp_path / "site")])
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    res = json.loads(line[len("RESULT "):])
    assert res["available"] is False and res["have_te"] is False and res["on_gpu"] is False
    assert "import failed" in res["reason"] and error.split("(")[0] in res["reason"], res["reason"]
    assert res["qkv"] == "ColumnParallelLinear"  # the local spec, not TELayerNormColumnParallelLinear
    assert res["megatron_have_te"] == [False, False]  # Megatron sees TE as absent, and imported fine
    assert res["gpu_probe"][0] is False and "undefined symbol" in res["gpu_probe"][1]
    assert res["cuda_visible"] == "" and res["torch_cuda"] is False


def test_cascade_device_gpu_without_cuda_fails_at_once() -> None:
    proc = _run("import cascade.engine.device", {"CASCADE_DEVICE": "gpu"}, [])
    assert proc.returncode != 0 and "CASCADE_DEVICE=gpu but torch sees no CUDA device" in proc.stderr


def test_cascade_device_rejects_unknown_values() -> None:
    proc = _run("import cascade.engine.device", {"CASCADE_DEVICE": "tpu"}, [])
    assert proc.returncode != 0 and "CASCADE_DEVICE='tpu'" in proc.stderr


def test_launcher_refuses_more_gpu_ranks_than_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch, "visible_gpu_count", lambda: 1)
    with pytest.raises(launch.LaunchError, match="2 GPU ranks requested but 1 GPU"):
        launch.resolve_device(2, "gpu", None)
    with pytest.raises(launch.LaunchError, match="2 GPU ranks requested"):
        launch.resolve_device(2, None, {"CASCADE_DEVICE": "gpu"})
    assert launch.resolve_device(1, "gpu", None) == "gpu"
    assert launch.resolve_device(4, None, None) == "cpu"  # CPU unless asked: never the GPU by accident
    with pytest.raises(launch.LaunchError, match="expected one of"):
        launch.resolve_device(1, "tpu", None)


def test_local_ranks_run_on_cpu_by_default(tmp_path: Path) -> None:
    code = "import os; print(os.environ['CASCADE_DEVICE'], os.environ['LOCAL_RANK'])"
    results = launch.run_local(2, ["-c", code], timeout=60, log_dir=tmp_path)
    assert [r.returncode for r in results] == [0, 0]
    assert [r.output.split() for r in results] == [["cpu", "0"], ["cpu", "1"]]
