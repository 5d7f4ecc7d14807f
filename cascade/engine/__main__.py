"""`python -m cascade.engine`: engine utilities that need no GPU.

    python -m cascade.engine params CONFIG_YAML [key=value ...]     (contract)
    python -m cascade.engine memory STAGE_YAML [--gpu-memory-gib N] [key=value ...]   (contract)

``params`` builds the stage's model on the meta device (no weights, no GPU, a 1-process gloo group)
and prints ``total_params=<int>``, the count of the equivalent HF model (tied embeddings once);
for MoE models also ``active_params=<int>``: what one token passes through (all but the routed
experts, of which top_k; embedding and output layer included).

``memory`` prints the per-GPU memory plan of the stage's layout (``cascade.engine.memory_plan``:
arithmetic only, no torch) as a table whose last line is ``fits=true ...`` or ``fits=false <the
first thing that does not fit>``; exit 0 when it fits, 3 when it does not, 2 on a config error.
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
    from cascade.engine.model import parameter_counts_on_meta

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1
    )
    try:
        ps.initialize_model_parallel()
        from megatron.core import tensor_parallel

        tensor_parallel.model_parallel_cuda_manual_seed(0)  # Mamba mixers fork the RNG tracker
        total, active = parameter_counts_on_meta(model_cfg)
    finally:
        ps.destroy_model_parallel()
        dist.destroy_process_group()
    print(f"total_params={total}")
    if getattr(model_cfg, "moe", None) is not None:  # (contract) MoE models: per-token count too
        print(f"active_params={active}")
    return 0


EXIT_DOES_NOT_FIT = 3


def _cmd_memory(args: argparse.Namespace) -> int:
    from cascade.config import ConfigError, load_stage_config
    from cascade.engine.memory_plan import plan_memory

    if not args.gpu_memory_gib > 0:
        print(f"error: --gpu-memory-gib must be positive, got {args.gpu_memory_gib:g}", file=sys.stderr)
        return 2
    try:
        cfg = load_stage_config(args.config, args.overrides)
        if getattr(cfg, "model", None) is None or getattr(cfg, "parallel", None) is None:
            raise ConfigError(f"{args.config} has no model/parallel section: not an engine stage")
        plan = plan_memory(cfg, args.gpu_memory_gib, source=str(args.config))
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(plan.table())
    return 0 if plan.fits else EXIT_DOES_NOT_FIT


def _main(argv: list[str]) -> int:
    from cascade.config.cli import parse_with_overrides

    parser = argparse.ArgumentParser(prog="python -m cascade.engine",
                                     epilog="key=value overrides may stand anywhere on the line")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("params", help="print total_params=<int> for a stage config's model")
    p.add_argument("config", help="stage YAML")
    p.set_defaults(func=_cmd_params)
    m = sub.add_parser("memory", help="per-GPU memory plan of a stage's layout; last line fits=true|false")
    m.add_argument("config", help="stage YAML")
    m.add_argument("--gpu-memory-gib", type=float, default=80.0, help="memory per GPU (default 80: H100)")
    m.set_defaults(func=_cmd_memory)
    args = parse_with_overrides(parser, argv)
    return args.func(args)


def main(argv: list[str] | None = None) -> int:
    """The shared CLI rules: overrides in any position, a user mistake is one line (exit 2)."""
    from cascade.config.cli import run_cli

    return run_cli(_main, argv, prog="python -m cascade.engine")


if __name__ == "__main__":
    sys.exit(main())
