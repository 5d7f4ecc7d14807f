"""`python -m evals.run --stage-dir STAGE_OUTPUT_DIR --suite toy`: evaluate a stage's checkpoint.

Writes `<stage_dir>/evals/<stage>.json` (stage = the `NN_name` directory's name part) and caches
every generation and score under `<stage_dir>/evals/cache/`, so a killed run continues where it
stopped. Exit 0 when every benchmark ran or was skipped with a reason; 75 if interrupted by
SIGTERM/SIGUSR1 (rerun to resume); 2 on a configuration error or a missing model.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from cascade.config.cli import parse_with_overrides, run_cli
from cascade.config.errors import UserError
from evals.runner import EvalInterrupted, evaluate_stage, results_path
from evals.suite import load_suite

INTERRUPTED_EXIT = 75  # the launchers' requeue code (cascade.runtime.preemption.REQUEUE_EXIT_CODE)


def _main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m evals.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage-dir", required=True, help="a stage's output dir (holds hf/ and evals/)")
    ap.add_argument("--suite", default="toy", help="suite name (evals/suites/<name>.yaml) or a YAML path")
    ap.add_argument("--model", help="HF model dir to evaluate (default: <stage-dir>/hf)")
    ap.add_argument("--stage-name", help="stage name for the results file (default: from the dir name NN_name)")
    ap.add_argument("--benchmarks", help="comma-separated subset of the suite's benchmarks")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.epilog = "key=value suite overrides (e.g. benchmarks.gsm8k.limit=4) may stand anywhere on the line."
    args = parse_with_overrides(ap, argv)

    stop = {"requested": False}

    def _request_stop(signum: int, frame: object) -> None:
        stop["requested"] = True
        print(f"[evals] signal {signum}: stopping after the current chunk (it is cached)", file=sys.stderr)

    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        suite = load_suite(args.suite, args.overrides)
        only = [b.strip() for b in args.benchmarks.split(",") if b.strip()] if args.benchmarks else None
        doc = evaluate_stage(args.stage_dir, suite, model_path=args.model, stage_name=args.stage_name, only=only,
                             progress=not args.no_progress, stop_check=lambda: stop["requested"])
    except FileNotFoundError as e:  # no HF export in the stage dir, or a missing suite file
        raise UserError(str(e)) from e
    except EvalInterrupted as e:
        print(f"[evals] interrupted: {e}; rerun the same command to resume", file=sys.stderr)
        return INTERRUPTED_EXIT
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"[evals] wrote {results_path(Path(args.stage_dir).resolve(), doc['stage'])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """A ConfigError or a missing model/suite is one line with exit code 2 (--debug: traceback)."""
    return run_cli(_main, argv, prog="python -m evals.run")


if __name__ == "__main__":
    sys.exit(main())
