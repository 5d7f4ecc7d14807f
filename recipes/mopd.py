"""MOPD stage entry point (Cascade-2 stage 3, multi-domain on-policy distillation; the hooks are
cascade.rl.mopd_trainer, the loop is the stage runtime's).

Through the launcher: the stages the teachers compare (``mopd.teachers.<domain>.best_of``) come
from the stage's ``uses:`` in the cascade YAML, role = stage name::

    stages:
      - {name: sft, kind: sft, config: sft.yaml}
      - {name: if_rl, kind: rl, config: if_rl.yaml}
      - {name: mopd, kind: mopd, config: mopd.yaml, uses: {sft: sft, if_rl: if_rl}}

    python -m cascade.launch run-stage nemo_configs/<model>/cascade.yaml mopd [key=value ...]

Standalone, one stage from its YAML (torchrun/srun for several ranks); ``--stage NAME=DIR`` (repeat)
gives the output dir of each stage a teacher compares::

    python -m recipes.mopd mopd.yaml --init-from STAGE_DIR --output-dir runs/x \
        --stage sft=runs/toy/01_sft --stage if_rl=runs/toy/02_if_rl [key=value ...]

Both resume from ``<output-dir>/checkpoints`` and exit 75 after saving on SIGTERM/SIGUSR1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recipes.standalone import run_from_launcher, run_standalone


def hooks(stage_dirs: Mapping[str, Path] | None = None) -> tuple[Any, Any]:
    from cascade.rl.mopd_trainer import MOPDHooks

    return MOPDHooks(stage_dirs), None


def run(ctx: Any) -> int:
    return run_from_launcher(ctx, hooks)


def parse_stage_dirs(values: list[str] | None) -> dict[str, Path]:
    """``["sft=DIR", ...]`` -> ``{"sft": Path(DIR)}``."""
    out: dict[str, Path] = {}
    for value in values or ():
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--stage takes NAME=DIR, got {value!r}")
        out[name] = Path(path)
    return out


def main(argv: list[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--stage", action="append", default=[])
    known, rest = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    dirs = parse_stage_dirs(known.stage)
    return run_standalone(rest, kind="mopd",
                          description="Run one MOPD stage from its YAML (--stage NAME=DIR per stage a "
                                      "teacher compares, repeatable).",
                          make_hooks=lambda: hooks(dirs))


if __name__ == "__main__":
    sys.exit(main())
