"""The standalone command line every recipe shares: `python -m recipes.<kind> CONFIG --init-from DIR
--output-dir DIR [--name NAME] [key=value ...]`, for running one stage from its YAML without a
cascade (the launcher's run-stage is the other way in).

Why here: the three recipes differed only in the job they build; parsing, the kind check and the
requeue flag were copied in each.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cascade.launch import preemption

AddArgs = Callable[[argparse.ArgumentParser], None]
Train = Callable[[argparse.Namespace, Any], int]  # (parsed args, validated stage config) -> exit code


def stage_name(a: argparse.Namespace) -> str:
    return a.name or Path(a.config).stem


def run_standalone(argv: list[str] | None, *, kind: str, description: str, train: Train,
                   init_help: str = "HF model dir, or an earlier stage's output dir",
                   add_args: AddArgs | None = None) -> int:
    """Parse, load and check the config (exit 2 with the error), train, flag a requeue on exit 75."""
    preemption.install()  # first: a signal during the slow imports below must not kill the rank
    p = argparse.ArgumentParser(prog=f"python -m recipes.{kind}", description=description)
    p.add_argument("config", help=f"stage YAML (kind: {kind})")
    p.add_argument("--init-from", required=True, help=init_help)
    p.add_argument("--output-dir", required=True, help="stage output dir (checkpoints/, hf/, metrics.jsonl)")
    p.add_argument("--name", default=None, help="stage name for logs and the manifest (default: the YAML's stem)")
    if add_args is not None:
        add_args(p)
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    a = p.parse_intermixed_args(argv)

    from cascade.config import ConfigError, load_stage_config

    try:
        cfg = load_stage_config(a.config, a.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    if cfg.kind.value != kind:
        print(f"config error: {a.config} is kind {cfg.kind.value!r}, not {kind!r}", file=sys.stderr)
        return 2
    rc = train(a, cfg)
    if rc == preemption.REQUEUE_EXIT_CODE:
        preemption.flag_requeue()
    return rc
