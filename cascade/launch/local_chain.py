"""Run a whole cascade on this machine, stage after stage, through the same generated launchers
that Slurm runs (their no-Slurm branch: torchrun here). This is how the toy cascade runs on a laptop.

A finished stage (COMPLETE marker) is skipped, a half-finished one resumes from its checkpoint, so
re-running the command continues where it stopped. A failure ends with that stage's own error, its
log and its exit code (the launcher's: run-stage's code, 2 = cannot start), not torchrun's report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cascade.launch.generate import missing_launchers
from cascade.launch.overrides import check_stage_overrides, load_with_overrides
from cascade.launch.submit import local_log
from cascade.runtime.stage_dirs import StageDirs
from cascade.stages import REPO_ROOT, CascadePlan, ResolvedStage


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def _banner(text: str) -> None:
    line = "=" * min(100, max(60, len(text) + 4))
    print(f"\n{line}\n  {text}\n{line}", flush=True)


def run_stage_locally(plan: CascadePlan, stage: ResolvedStage, overrides: list[str]) -> int:
    """Run one stage's launcher script in local mode; its output streams to this terminal."""
    env = dict(os.environ)
    env.pop("SLURM_JOB_ID", None)  # the launcher's local branch
    env["CASCADE"] = str(plan.source)
    return subprocess.call(["bash", str(stage.launcher), *overrides], cwd=REPO_ROOT, env=env)


def run_local_cascade(cascade: str | Path, overrides: list[str] | None = None) -> int:
    """Every stage, each after those it depends on (`CascadePlan.run_order`); stop at the first
    failure with its exit code."""
    plan, routed = load_with_overrides(cascade, overrides or [])
    if problem := missing_launchers(plan):
        print(f"ERROR: {problem}", file=sys.stderr)
        return 2
    check_stage_overrides(plan, routed)  # every override against every stage, before any runs
    stages = list(plan.run_order)
    total = len(stages)
    started = time.monotonic()
    durations: list[tuple[str, str, float]] = []
    for k, stage in enumerate(stages, start=1):
        label = f"[{k}/{total}] {stage.name} ({stage.kind.value})"
        if StageDirs(stage.output_dir).is_complete():
            print(f"{label}: COMPLETE in {stage.output_dir}, skipping", flush=True)
            durations.append((stage.name, "skipped", 0.0))
            continue
        _banner(f"{label}  from {stage.init_from}  ->  {stage.output_dir}  (elapsed {_fmt(time.monotonic() - started)})")
        t0 = time.monotonic()
        code = run_stage_locally(plan, stage, routed.for_launcher(stage.name))
        durations.append((stage.name, "ok" if code == 0 else f"exit {code}", time.monotonic() - t0))
        if code != 0:
            _summary(durations, time.monotonic() - started)
            print(f"{label}: FAILED with exit code {code} (its error is the launcher's last line above); "
                  f"log: {local_log(plan, stage)}; re-run the same command to resume", file=sys.stderr, flush=True)
            return code
    _summary(durations, time.monotonic() - started)
    return 0


def _summary(durations: list[tuple[str, str, float]], total: float) -> None:
    print("\nstage                 result     time")
    for name, result, secs in durations:
        print(f"{name:20s}  {result:9s}  {_fmt(secs)}")
    print(f"total {_fmt(total)}", flush=True)
