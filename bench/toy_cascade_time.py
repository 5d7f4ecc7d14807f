"""Where the toy cascade's time goes: per stage (start-up, training, checkpoint/export, evals) and,
inside every RL step, generation, reward (exposed and busy), logprob forwards, the update and the
refit, each as a fraction of what it is part of (the stage's wall time, the step's time).

Why: the toy cascade is the check users run before spending GPU hours, so its minutes are the
repository's first impression, and most of a toy stage is not training steps. This reads what a
finished run already recorded, so it costs nothing to rerun and never drifts from the run:
every stage's ``timing.json`` (written by the launcher, ``cascade.runtime.stage_timing``) and the
RL stages' per-step ``time/*`` metrics (``metrics.jsonl``).

Run: ``bash scripts/toy_cascade.sh`` (a fresh run dir), then
``.venv/bin/python -m bench.toy_cascade_time runs/toy [--wall-s SECONDS]``; writes
bench/results/toy_cascade_time_cpu2.json and .md. ``--wall-s`` is the command's wall time as
measured outside (data build and report included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
STEP_PARTS = ("generation", "reward", "logprobs", "train", "refit")  # time/<part> per RL step


def _stage_dirs(run_dir: Path) -> list[Path]:
    dirs = [p.parent for p in run_dir.glob("*/timing.json")]
    return sorted(dirs, key=lambda d: (d / "timing.json").stat().st_mtime)


def _steps(stage_dir: Path) -> list[dict[str, float]]:
    from cascade.runtime.metrics_logger import METRICS_FILE, read_metrics

    return [row for row in read_metrics(stage_dir / METRICS_FILE) if "time/step" in row]


def step_breakdown(steps: list[dict[str, float]]) -> dict[str, float] | None:
    """Seconds per RL step part summed over the stage's steps (``other`` = the rest of the step:
    batch building, advantages, metrics), with ``reward_busy`` beside ``reward`` (exposed)."""
    if not steps:
        return None
    total = sum(s["time/step"] for s in steps)
    parts = {p: sum(s.get(f"time/{p}", 0.0) for s in steps) for p in STEP_PARTS}
    # logprob forwards run inside the update's timer: show them apart, not twice
    parts["train"] = max(0.0, parts["train"] - parts["logprobs"])
    out = {**parts, "reward_busy": sum(s.get("time/reward_busy", 0.0) for s in steps),
           "other": max(0.0, total - sum(parts.values())), "step_total": total, "steps": float(len(steps))}
    return out


def collect(run_dir: Path) -> dict[str, Any]:
    from cascade.runtime.stage_timing import COLUMNS, summarize

    stages = []
    for d in _stage_dirs(run_dir):
        t = summarize(d / "timing.json")
        if t is None:
            continue
        stages.append({"stage": d.name, "seconds": {k: round(v, 2) for k, v in t.items()},
                       "rl_steps": step_breakdown(_steps(d))})
    total = {c: round(sum(s["seconds"][c] for s in stages), 2) for c in [*COLUMNS, "other", "total"]}
    return {"stages": stages, "stage_total": total}


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole > 0 else "-"


def render(res: dict[str, Any]) -> str:
    from cascade.runtime.stage_timing import COLUMNS

    cols = [*COLUMNS, "other"]
    lines = [f"# Toy cascade: where the time goes ({res['date']}, commit {res['commit']})", "",
             f"Machine: {res['machine']['cpu_model']}, {res['machine']['cores']} cores, 1-min load at "
             f"start {res['machine']['load_avg_1m_at_start']}; run dir `{res['run_dir']}`.", ""]
    if res.get("wall_s"):
        lines.append(f"Command wall time (data build and report included): **{res['wall_s'] / 60:.1f} min**; "
                     f"stages: {res['stage_total']['total'] / 60:.1f} min.")
        lines.append("")
    lines += ["Per stage, seconds (share of the stage):", "", "| stage | " + " | ".join(cols) + " | total |",
              "|---|" + "---|" * (len(cols) + 1)]
    for s in res["stages"] + [{"stage": "**all**", "seconds": res["stage_total"]}]:
        sec = s["seconds"]
        lines.append(f"| {s['stage']} | " + " | ".join(f"{sec[c]:.0f} ({_pct(sec[c], sec['total'])})" for c in cols)
                     + f" | {sec['total']:.0f} |")
    rl = [s for s in res["stages"] if s["rl_steps"]]
    if rl:
        parts = [*STEP_PARTS, "other"]
        lines += ["", "Inside the RL steps, seconds over the stage's steps (share of step time); reward busy = "
                  "verifier time including what overlapped generation:", "",
                  "| stage | steps | " + " | ".join(parts) + " | reward busy | step total |",
                  "|---|---|" + "---|" * (len(parts) + 2)]
        for s in rl:
            b = s["rl_steps"]
            lines.append(f"| {s['stage']} | {int(b['steps'])} | "
                         + " | ".join(f"{b[p]:.1f} ({_pct(b[p], b['step_total'])})" for p in parts)
                         + f" | {b['reward_busy']:.1f} | {b['step_total']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO))
    from bench.machine import describe

    ap = argparse.ArgumentParser(prog="python -m bench.toy_cascade_time", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="a finished toy cascade's run dir (e.g. runs/toy)")
    ap.add_argument("--wall-s", type=float, help="the command's wall time, measured outside")
    ap.add_argument("--out", default=str(RESULTS), help="results dir (default bench/results)")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        print(f"bench.toy_cascade_time: {run_dir} is not a run dir", file=sys.stderr)
        return 2
    res = collect(run_dir)
    if not res["stages"]:
        print(f"bench.toy_cascade_time: no stage of {run_dir} has a timing.json (run it with this version)",
              file=sys.stderr)
        return 2
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    res.update(run_dir=str(run_dir), wall_s=args.wall_s, commit=commit,
               date=datetime.now(timezone.utc).strftime("%Y-%m-%d"), machine=describe(os.cpu_count() or 0))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "toy_cascade_time_cpu2.json").write_text(json.dumps(res, indent=1) + "\n")
    md = render(res)
    (out / "toy_cascade_time_cpu2.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
