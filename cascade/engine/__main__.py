"""`python -m cascade.engine`: engine utilities that need no GPU.

    python -m cascade.engine params CONFIG_YAML [key=value ...]     (contract)

``params`` builds the stage's model on the meta device (no weights, no GPU, a 1-process gloo group)
and prints ``total_params=<int>``, the count of the equivalent HF model (tied embeddings once).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings


def _cmd_params(args: argparse.Namespace) -> int:
    from cascade.config import ConfigError, load_stage_config

    try:
        cfg = load_stage_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model_cfg = getattr(cfg, "model", None)
    if model_cfg is None:
        print(f"error: {args.config} has no model section", file=sys.stderr)
        return 2

    # Counting needs Megatron's process groups but no accelerator: force a local gloo world.
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID"):
        os.environ.pop(key, None)
    warnings.filterwarnings("ignore")
    logging.getLogger("megatron").setLevel(logging.ERROR)
    import torch.distributed as dist
    from megatron.core import parallel_state as ps

    from cascade.engine.launch import free_port
    from cascade.engine.model import count_parameters_on_meta

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1
    )
    try:
        ps.initialize_model_parallel()
        total = count_parameters_on_meta(model_cfg)
    finally:
        ps.destroy_model_parallel()
        dist.destroy_process_group()
    print(f"total_params={total}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cascade.engine")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("params", help="print total_params=<int> for a stage config's model")
    p.add_argument("config", help="stage YAML")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p.set_defaults(func=_cmd_params)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
