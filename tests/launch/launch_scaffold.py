"""Launcher test scaffolding: a tiny test-only cascade (real stage graph, trivial test recipe
and eval hook on a temp PYTHONPATH), and helpers to drive the CLI and a local Slurm.

Its launchers are generated like a user's own cascade's (`generate --cascade`), into
`<root>/launchers/` (the YAML's `launcher_dir:`), so tests never write into the checkout.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cascade.launch.generate import generate_one
from cascade.stages import REPO_ROOT

PYTHON = sys.executable
TINY_MODEL = REPO_ROOT / "nemo_configs" / "base" / "model" / "tiny_qwen3.yaml"
SCAFFOLD = Path(__file__).parent / "recipe_scaffold.py"
EVAL_HOOK = '''"""TEST SCAFFOLDING: an eval hook that records which checkpoint it saw."""
import json
from cascade.runtime.stage_dirs import atomic_write_text

def run(ctx):
    atomic_write_text(ctx.dirs.evals / "result.json", json.dumps({"step": ctx.dirs.latest_step()}))
    return 0
'''
KIND_EXTRA = {"rl": {"reward": {"domain": "math"}}}


@dataclass
class StageSpec:
    name: str
    kind: str = "sft"
    steps: int = 3
    procs: int = 1
    uses: dict[str, str] = field(default_factory=dict)


@dataclass
class ScaffoldCascade:
    yaml: Path
    run_dir: Path
    env: dict[str, str]  # PYTHONPATH with the test recipe + registry overrides
    launcher_dir: Path

    def launcher(self, filename: str) -> Path:
        return self.launcher_dir / filename

    def out(self, stage: str, index: int) -> Path:
        return self.run_dir / (f"side_{stage}" if index == 0 else f"{index:02d}_{stage}")


def write_cascade(root: Path, chain: list[StageSpec], side: list[StageSpec] | None = None,
                  launchers: bool = True) -> ScaffoldCascade:
    """A cascade YAML + stage YAMLs under `root` (and its launchers), and the env that registers the
    test recipe."""
    root.mkdir(parents=True, exist_ok=True)
    base = root / "base_model"
    base.mkdir(exist_ok=True)
    (base / "config.json").write_text("{}")

    def stage_yaml(spec: StageSpec) -> str:
        cfg = {
            "defaults": [str(TINY_MODEL)],
            "kind": spec.kind,
            "launch": {"gpus_per_node": 0, "nodes": 1, "procs_per_node": spec.procs, "time": "00:10:00",
                       "signal_lead_s": 30},
            "train": {"steps": spec.steps},
            **KIND_EXTRA.get(spec.kind, {}),
        }
        (root / f"{spec.name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        return f"{spec.name}.yaml"

    def entry(spec: StageSpec, is_side: bool) -> dict:
        e = {"name": spec.name, "kind": spec.kind, "config": stage_yaml(spec)}
        if spec.uses:
            e["uses"] = spec.uses
        if is_side:
            e["init_path"] = str(base)
        return e

    cascade = {
        "name": f"launch_test_{root.name}",
        "run_dir": str(root / "runs"),
        "launcher_dir": str(root / "launchers"),
        "init_path": str(base),
        "side_stages": [entry(s, True) for s in side or []],
        "stages": [entry(s, False) for s in chain],
    }
    path = root / "cascade.yaml"
    path.write_text(yaml.safe_dump(cascade, sort_keys=False))

    lib = root / "pylib"
    lib.mkdir(exist_ok=True)
    shutil.copy(SCAFFOLD, lib / "launch_test_recipe.py")
    (lib / "launch_test_eval.py").write_text(EVAL_HOOK)
    env = {"PYTHONPATH": os.pathsep.join([str(lib), str(REPO_ROOT)]), "LAUNCH_TEST_STEP_S": "0.05"}
    for kind in ("SFT", "RL", "REWARD_MODEL"):
        env[f"CASCADE_RECIPE_{kind}"] = "launch_test_recipe"
        env[f"CASCADE_EVAL_{kind}"] = "launch_test_eval"
    if launchers:
        assert generate_one(path) == 0
    return ScaffoldCascade(yaml=path, run_dir=root / "runs", env=env, launcher_dir=root / "launchers")


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 60,
            cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """`python -m cascade.launch ...` in a subprocess (its own signal handlers, real exit codes)."""
    return subprocess.run([PYTHON, "-m", "cascade.launch", *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalSlurm:
    dir: Path
    env: dict[str, str]  # SLURM_CONF for the client commands

    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(cmd), env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=timeout)
