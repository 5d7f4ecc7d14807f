"""`python -m cascade.launch {generate,run-stage,run-local,submit,status,shape,local-log}`; see cascade/launch/__init__.py."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from cascade.config.cli import parse_with_overrides, run_cli
from cascade.config.errors import UserError
from cascade.launch.slurm import SlurmError


def _generate(a: argparse.Namespace) -> int:
    from cascade.launch.generate import generate

    return generate(check=a.check, cascade=a.cascade)


def _run_stage(a: argparse.Namespace) -> int:
    from cascade.runtime import preemption

    preemption.install()  # first, so a signal during the imports below is not fatal
    from cascade.launch.run_stage import main

    return main(a.cascade, a.stage, a.overrides)


def _submit(a: argparse.Namespace) -> int:
    from cascade.launch.submit import main

    return main(a.cascade, a.from_stage, a.dry_run, a.extra, a.overrides)


def _status(a: argparse.Namespace) -> int:
    from cascade.launch.status import main

    return main(a.target, a.wait)


def _run_local(a: argparse.Namespace) -> int:
    from cascade.launch.local_chain import run_local_cascade

    return run_local_cascade(a.cascade, a.overrides)


def _shape(a: argparse.Namespace) -> int:
    from cascade.launch.run_stage import LaunchError, find_stage
    from cascade.launch.shape import job_shape
    from cascade.stages import load_cascade

    plan = load_cascade(a.cascade)
    try:
        shape = job_shape(find_stage(plan, a.stage))
    except LaunchError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 2
    print(getattr(shape, a.field) if a.field else " ".join(shape.sbatch_args()))
    return 0


def _local_log(a: argparse.Namespace) -> int:
    from cascade.launch.overrides import load_with_overrides
    from cascade.launch.submit import local_log

    plan, _ = load_with_overrides(a.cascade, a.overrides)  # run_dir=... moves the log with the run
    print(local_log(plan, plan.stage(a.stage)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cascade.launch", description="Slurm launchers for the cascade")
    sub = p.add_subparsers(dest="command", required=True)
    commands: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
        "generate": (_generate, "render launchers/<cascade>/stage_*.sh and side_*.sh from the stage graph"),
        "run-stage": (_run_stage, "run one stage on this rank (what the launchers call)"),
        "submit": (_submit, "submit the cascade as an afterok chain (launchers/cascade.sh)"),
        "status": (_status, "state of each stage of the last submission"),
        "run-local": (_run_local, "run every stage of a cascade on this machine, in order (no Slurm)"),
        "shape": (_shape, "a stage's job shape (sbatch resource options)"),
        "local-log": (_local_log, "the log file of a stage run without Slurm (what the launchers write)"),
    }
    parsers = {name: sub.add_parser(name, help=help_) for name, (_, help_) in commands.items()}
    for name, (fn, _) in commands.items():
        parsers[name].set_defaults(func=fn)
    gen = parsers["generate"]
    gen.add_argument("--check", action="store_true", help="exit 1 if a committed script differs")
    gen.add_argument("--cascade", help="only this cascade YAML (your own): writes launchers/<its directory name>/")
    rs = parsers["run-stage"]
    rs.add_argument("cascade")
    rs.add_argument("stage")
    sm = parsers["submit"]
    sm.add_argument("cascade")
    sm.add_argument("--from", dest="from_stage", help="start the chain at this stage")
    sm.add_argument("--dry-run", action="store_true", help="print the sbatch lines, submit nothing")
    sm.epilog = ("key=value overrides may stand anywhere before `--`: cascade keys (run_dir=...) go to the "
                 "cascade, STAGE.key=value to one stage, any other key to every stage (launch.* changes the "
                 "sbatch line). Options after `--` go to every sbatch call (e.g. -- --partition=batch --account=me).")
    for name in ("run-stage", "run-local"):
        parsers[name].epilog = "key=value overrides may stand anywhere (run_dir=..., STAGE.key=value, key=value)."
    st = parsers["status"]
    st.add_argument("target", help="run dir, cascade YAML or jobs.json")
    st.add_argument("--wait", type=float, default=None, help="poll up to this many seconds until settled")
    rl = parsers["run-local"]
    rl.add_argument("cascade")
    ll = parsers["local-log"]
    ll.add_argument("cascade")
    ll.add_argument("stage")
    sh = parsers["shape"]
    sh.add_argument("cascade")
    sh.add_argument("stage")
    sh.add_argument("--field", choices=["nodes", "tasks_per_node", "gpus_per_node", "time", "signal_lead_s",
                                        "world_size", "container_image", "container_mounts"])
    return p


def _main(argv: list[str]) -> int:
    args = parse_with_overrides(build_parser(), argv,
                                unknown_hint="overrides are key=value; sbatch options go after `--`")
    args.extra = args.passthrough
    if args.extra and args.command != "submit":
        raise UserError(f"options after `--` are only for submit: {args.extra}")
    if args.overrides and args.command not in ("submit", "run-stage", "run-local", "local-log"):
        raise UserError(f"{args.command} takes no key=value overrides: {args.overrides}")
    try:
        return args.func(args)
    except SlurmError as e:
        print(f"error: sbatch failed: {e}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog="python -m cascade.launch")


if __name__ == "__main__":
    sys.exit(main())
