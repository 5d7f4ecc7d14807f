"""`python -m cascade`: inspect configs and cascade plans.

    python -m cascade plan CASCADE_YAML [--json] [--include-side] [key=value ...]
    python -m cascade config show STAGE_YAML [key=value ...]
    python -m cascade config check [YAML_OR_DIR ...]

key=value overrides may stand anywhere on the line; a mistake is one line on stderr and exit
code 2 (add --debug for the traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from cascade.config import load_stage_config, to_dict
from cascade.config.cli import parse_with_overrides, run_cli
from cascade.config_check import check_paths
from cascade.launch.inputs import missing_inputs
from cascade.launch.overrides import check_stage_overrides, load_with_overrides
from cascade.stages import REPO_ROOT


def _cmd_plan(args: argparse.Namespace) -> int:
    plan, routed = load_with_overrides(args.cascade, args.overrides)  # run_dir=, STAGE.key=, key=
    configs = check_stage_overrides(plan, routed)
    for warning in missing_inputs(plan, configs):  # on stderr: --json stays machine-readable
        print(warning, file=sys.stderr)
    stages = plan.stages if args.include_side else plan.chain
    if args.json:
        print(json.dumps([s.to_json() for s in stages], indent=2))
        return 0
    print(f"cascade {plan.name}  ({plan.source})")
    print(f"run_dir {plan.run_dir}")
    for s in plan.stages:
        if s.side and not args.include_side:
            continue
        tag = " (side)" if s.side else ""
        print(f"\n[{s.index:02d}] {s.name}{tag}  kind={s.kind.value}")
        print(f"     config     {s.to_json()['config']}")
        print(f"     launcher   {s.to_json()['launcher']}")
        print(f"     init_from  {s.init_from}")
        print(f"     output_dir {s.output_dir}")
        for role, path in s.uses.items():
            print(f"     uses       {role}: {path}")
    side = [s.name for s in plan.stages if s.side]
    if side and not args.include_side:
        print(f"\nside stages (show with --include-side): {', '.join(side)}")
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    cfg = load_stage_config(args.file, args.overrides)
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return 0


def _cmd_config_check(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths] or [REPO_ROOT / "nemo_configs"]
    report = check_paths(paths)
    for line in report.lines:
        print(line)
    print(f"{report.ok} valid, {len(report.errors)} invalid")
    for err in report.errors:
        print(f"ERROR {err}", file=sys.stderr)
    return 1 if report.errors else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cascade", description=__doc__.split("\n")[0])
    parser.epilog = "key=value overrides (of the cascade or stage YAML) may stand anywhere; --debug: tracebacks"
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser("plan", help="print the resolved stage list of a cascade")
    plan.add_argument("cascade", help="cascade YAML, e.g. nemo_configs/qwen3_8b/cascade.yaml")
    plan.add_argument("--json", action="store_true", help="machine-readable stage list")
    plan.add_argument("--include-side", action="store_true", help="also list side stages (reward models)")
    plan.set_defaults(func=_cmd_plan)

    config = sub.add_parser("config", help="resolve or check stage configs")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser("show", help="print a stage config after inheritance and overrides")
    show.add_argument("file")
    show.set_defaults(func=_cmd_config_show)
    check = config_sub.add_parser("check", help="validate YAML files (default: all of nemo_configs/)")
    check.add_argument("paths", nargs="*")
    check.set_defaults(func=_cmd_config_check)
    return parser


def _main(argv: list[str]) -> int:
    args = parse_with_overrides(build_parser(), argv)
    if args.overrides and args.command == "config" and args.config_command == "check":
        build_parser().error(f"config check takes paths, not overrides: {args.overrides}")
    return args.func(args)


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog="python -m cascade")


if __name__ == "__main__":
    sys.exit(main())
