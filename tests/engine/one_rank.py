"""Tests that run Megatron in a subprocess of themselves on one gloo rank (the CPU shim patches
torch process-wide, so Megatron never loads into the pytest process).

``run_self(test_file, out)`` runs ``python test_file out`` and returns the JSON the worker wrote
to ``out``; inside the worker, ``tiny_config()`` starts the one-rank group and returns the tiny
Qwen3 SFT config (fp32) the engine tests share.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def run_self(test_file: str, out: Path, timeout: float = 300) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, test_file, str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(Path(out).read_text())


def tiny_config() -> Any:
    import warnings

    warnings.filterwarnings("ignore")
    from cascade.config import load_stage_config
    from cascade.engine import init_distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29000 + os.getpid() % 1000), RANK="0",
                      WORLD_SIZE="1", LOCAL_RANK="0")
    cfg = load_stage_config(HERE / "tiny_sft.yaml", ["precision.params_dtype=fp32", "optim.use_distributed_optimizer=false"])
    init_distributed(cfg.parallel, seed=1)
    return cfg
