"""What every recipe shares: the two ways into a stage, both ending in the stage runtime's
`run_training_stage(job, hooks)`.

  * through the launcher (`python -m cascade.launch run-stage CASCADE STAGE`): `run_from_launcher`;
  * standalone, one stage from its YAML: `python -m recipes.<kind> CONFIG --init-from DIR
    --output-dir DIR [--name NAME] [key=value ...]`: `run_standalone`.

A recipe names its kind's hooks (and an optional pre-flight check); nothing else differs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cascade.runtime import preemption

AddArgs = Callable[[argparse.ArgumentParser], None]
# () -> (the kind's hooks, a check(config) that refuses what the kind cannot run, or None)
MakeHooks = Callable[[], tuple[Any, Callable[[Any], None] | None]]


def stage_name(a: argparse.Namespace) -> str:
    return a.name or Path(a.config).stem


def train(job: Any, make_hooks: MakeHooks) -> int:
    from cascade.runtime.skeleton import run_training_stage

    hooks, check = make_hooks()
    return run_training_stage(job, hooks, check)


def run_from_launcher(ctx: Any, make_hooks: MakeHooks) -> int:
    """The recipe protocol (cascade/launch/registry.py): train the stage `ctx` describes."""
    from cascade.runtime.skeleton import StageJob

    return train(StageJob(config=ctx.config, init_from=ctx.stage.init_from, output_dir=ctx.dirs.root,
                          stage_name=ctx.stage.name, config_path=str(ctx.stage.config),
                          overrides=tuple(ctx.overrides), uses=dict(ctx.stage.uses)), make_hooks)


def run_standalone(argv: list[str] | None, *, kind: str, description: str, make_hooks: MakeHooks,
                   init_help: str = "HF model dir, or an earlier stage's output dir",
                   uses: dict[str, str] | None = None) -> int:
    """Parse, load and check the config (exit 2 with the error), train, flag a requeue on exit 75.
    `uses`: side inputs as options, e.g. {"reward_model": "reward model dir"} -> --reward-model."""
    preemption.install()  # first: a signal during the slow imports below must not kill the rank
    p = argparse.ArgumentParser(prog=f"python -m recipes.{kind}", description=description)
    p.add_argument("config", help=f"stage YAML (kind: {kind})")
    p.add_argument("--init-from", required=True, help=init_help)
    p.add_argument("--output-dir", required=True, help="stage output dir (checkpoints/, hf/, metrics.jsonl)")
    p.add_argument("--name", default=None, help="stage name for logs and the manifest (default: the YAML's stem)")
    for key, help_text in (uses or {}).items():
        p.add_argument(f"--{key.replace('_', '-')}", dest=f"use_{key}", default=None, help=help_text)
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    a = p.parse_intermixed_args(argv)

    from cascade.config import ConfigError, load_stage_config
    from cascade.runtime.skeleton import StageJob

    try:
        cfg = load_stage_config(a.config, a.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    if cfg.kind.value != kind:
        print(f"config error: {a.config} is kind {cfg.kind.value!r}, not {kind!r}", file=sys.stderr)
        return 2
    side = {k: Path(getattr(a, f"use_{k}")) for k in (uses or {}) if getattr(a, f"use_{k}")}
    job = StageJob(config=cfg, init_from=a.init_from, output_dir=Path(a.output_dir), stage_name=stage_name(a),
                   config_path=str(a.config), overrides=tuple(a.overrides), uses=side)
    rc = train(job, make_hooks)
    if rc == preemption.REQUEUE_EXIT_CODE:
        preemption.flag_requeue()
    return rc
