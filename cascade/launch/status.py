"""`python -m cascade.launch status RUN_DIR|CASCADE_YAML|jobs.json [--wait S]`: where each stage
of the last submission stands, which stage failed and which dependents were cancelled by it.

The COMPLETE marker is the truth for finished stages (it outlives Slurm's memory of the job);
for the rest it asks `scontrol show job` (then `sacct`). Exit code: 0 every stage COMPLETE,
1 a stage failed or was cancelled, 3 still running/pending (or --wait timed out).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from cascade.config.errors import UserError
from cascade.launch import slurm
from cascade.launch.submit import JOBS_FILE
from cascade.runtime.stage_dirs import StageDirs

DONE, FAILED, CANCELLED, RUNNING, WAITING, UNKNOWN = "COMPLETE", "FAILED", "CANCELLED", "RUNNING", "WAITING", "UNKNOWN"
EXIT_OK, EXIT_FAILED, EXIT_IN_PROGRESS = 0, 1, 3


@dataclass
class StageStatus:
    stage: str
    job_id: str
    state: str  # one of the constants above
    detail: str
    depends_on: list[str]
    log: str


def find_jobs_file(target: str | Path) -> Path:
    path = Path(target)
    if path.is_dir():
        return path / JOBS_FILE
    if path.suffix in (".yaml", ".yml"):
        from cascade.stages import load_cascade

        return load_cascade(path).run_dir / JOBS_FILE
    return path


def _classify(entry: dict, info: dict[str, str] | None) -> tuple[str, str]:
    dirs = StageDirs(Path(entry["output_dir"]))
    marker = dirs.read_marker()
    if marker is not None:
        return DONE, f"step {marker.get('step')}, eval {marker.get('eval')}"
    step = dirs.latest_step()
    ckpt = f", checkpoint at step {step}" if step is not None else ""
    if info is None:
        return UNKNOWN, f"Slurm does not know job {entry['job_id']} and there is no COMPLETE marker{ckpt}"
    state, reason = info.get("JobState", "?"), info.get("Reason", "None")
    restarts = int(info.get("Restarts", "0") or 0)
    requeued = f", requeued {restarts}x" if restarts else ""
    if state in ("RUNNING", "COMPLETING", "CONFIGURING"):
        return RUNNING, f"{state.lower()}{requeued}{ckpt}"
    if state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "SUSPENDED"):
        if reason == "DependencyNeverSatisfied":
            return CANCELLED, "dependency never satisfied (pending forever)"
        if reason == "Dependency":
            return WAITING, f"waiting for {info.get('Dependency', 'its dependencies')}"
        return WAITING, f"pending ({reason}){requeued}{ckpt}"
    if state == "CANCELLED":
        if reason == "DependencyNeverSatisfied":
            return CANCELLED, "cancelled: dependency never satisfied"
        return CANCELLED, f"cancelled ({reason}){ckpt}"
    if state == "COMPLETED":
        return FAILED, f"job exited 0 but wrote no COMPLETE marker{ckpt}"
    return FAILED, f"{state} exit {info.get('ExitCode', '?')}{requeued}{ckpt}"


def collect(jobs: dict) -> list[StageStatus]:
    out = []
    for entry in jobs["stages"]:
        info = slurm.job_info(entry["job_id"]) if slurm.available() else None
        state, detail = _classify(entry, info)
        out.append(StageStatus(entry["stage"], entry["job_id"], state, detail, entry["depends_on"], entry["log"]))
    return out


def _root_causes(name: str, by_name: dict[str, StageStatus], seen: set[str] | None = None) -> list[str]:
    """The failed (not merely cancelled-by-dependency) stages upstream of `name`."""
    seen = seen if seen is not None else set()
    causes: list[str] = []
    for dep in by_name[name].depends_on:
        if dep in seen or dep not in by_name:
            continue
        seen.add(dep)
        st = by_name[dep]
        if st.state == FAILED or (st.state == CANCELLED and "dependency" not in st.detail):
            causes.append(dep)
        elif st.state == CANCELLED:
            causes.extend(_root_causes(dep, by_name, seen))
    return causes


def report(jobs: dict, statuses: list[StageStatus]) -> tuple[str, int]:
    by_name = {s.stage: s for s in statuses}
    lines = [f"cascade {jobs['name']} ({jobs['cascade']}), submitted {jobs['submitted_at']}",
             *(f"  note: {n}" for n in jobs.get("notes", [])),
             f"  {'stage':<16} {'job':>8}  {'state':<10} detail"]
    for s in statuses:
        detail = s.detail
        if s.state == CANCELLED and "dependency" in s.detail:
            causes = _root_causes(s.stage, by_name)
            if causes:
                detail += f" because {', '.join(causes)} failed"
        lines.append(f"  {s.stage:<16} {s.job_id:>8}  {s.state:<10} {detail}")
    failed = [s for s in statuses if s.state == FAILED or (s.state == CANCELLED and "dependency" not in s.detail)]
    for f in failed:
        victims = [s.stage for s in statuses if s.state == CANCELLED and f.stage in _root_causes(s.stage, by_name)]
        lines.append(f"FAILED: {f.stage} (job {f.job_id}: {f.detail}); log {f.log}")
        if victims:
            lines.append(f"  cancelled because of it: {', '.join(victims)}")
    if any(s.state in (FAILED, CANCELLED) for s in statuses):
        code = EXIT_FAILED
    elif all(s.state == DONE for s in statuses):
        code = EXIT_OK
        lines.append("all stages COMPLETE")
    else:
        code = EXIT_IN_PROGRESS
    return "\n".join(lines), code


def _settled(statuses: list[StageStatus]) -> bool:
    """Nothing left that can still make progress (pending-forever counts as settled)."""
    return not any(s.state in (RUNNING, WAITING) and "never satisfied" not in s.detail for s in statuses)


def read_jobs(path: Path) -> dict:
    """jobs.json as submit wrote it; anything else is a UserError naming the file."""
    try:
        jobs = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: corrupt ({e}); {path.with_suffix('.json.prev')} holds the submission before, "
                        f"or re-submit (COMPLETE stages are skipped)") from e
    stages = jobs.get("stages") if isinstance(jobs, dict) else None
    keys = ("stage", "job_id", "output_dir", "depends_on", "log")
    if not isinstance(stages, list) or not all(isinstance(e, dict) and all(k in e for k in keys) for e in stages):
        raise UserError(f"{path}: not a jobs file of launchers/cascade.sh (needs `stages` with {', '.join(keys)})")
    jobs.setdefault("name", "?")
    jobs.setdefault("cascade", "?")
    jobs.setdefault("submitted_at", "?")
    return jobs


def _local_stage_dirs(target: Path) -> tuple[str, list[tuple[str, Path]]]:
    """(title, [(stage, output dir)]) of a cascade or run dir run without Slurm (run-local)."""
    if target.suffix in (".yaml", ".yml"):
        from cascade.stages import load_cascade

        plan = load_cascade(target)
        return f"cascade {plan.name} ({plan.source}), run locally", [(s.name, s.output_dir) for s in plan.run_order]
    dirs = sorted(d for d in target.iterdir() if d.is_dir() and (d.name[:2].isdigit() or d.name.startswith("side_")))
    for d in dirs:  # run-stage records its cascade in COMPLETE: then every stage is known
        source = (StageDirs(d).read_marker() or {}).get("cascade")
        if source and Path(source).is_file():
            from cascade.stages import load_cascade

            plan = load_cascade(source, [f"run_dir={target}"])
            return (f"cascade {plan.name} ({plan.source}), run locally in {target}",
                    [(s.name, s.output_dir) for s in plan.run_order])
    return f"run dir {target}, run locally (cascade unknown: only the stage dirs found)", [(d.name, d) for d in dirs]


def local_report(target: Path) -> tuple[str, int]:
    """Where each stage stands from its markers alone (no jobs.json: the stages ran without Slurm)."""
    title, stages = _local_stage_dirs(target)
    if not stages:
        raise UserError(f"no {JOBS_FILE} and no stage directories at {target}: submit with launchers/cascade.sh "
                        f"first (or run python -m cascade.launch run-local)")
    lines = [title, f"  {'stage':<16} {'state':<10} detail"]
    done = 0
    for name, out in stages:
        dirs = StageDirs(out)
        marker = dirs.read_marker()
        if marker is not None:
            done += 1
            lines.append(f"  {name:<16} {DONE:<10} step {marker.get('step')}, eval {marker.get('eval')}")
        else:
            step = dirs.latest_step()
            detail = f"checkpoint at step {step}" if step is not None else "not started"
            lines.append(f"  {name:<16} {'INCOMPLETE':<10} {detail} ({out})")
    if done == len(stages):
        lines.append("all stages COMPLETE")
        return "\n".join(lines), EXIT_OK
    return "\n".join(lines), EXIT_IN_PROGRESS


def main(target: str, wait_s: float | None = None, poll_s: float = 1.0) -> int:
    path = find_jobs_file(target)
    if not path.is_file():
        where = Path(target)
        if where.is_dir() or where.suffix in (".yaml", ".yml") and where.is_file():
            text, code = local_report(where)  # run-local: the markers are the whole truth
            print(text)
            return code
        raise UserError(f"no {JOBS_FILE} at {path}: submit with launchers/cascade.sh first")
    jobs = read_jobs(path)
    deadline = time.monotonic() + (wait_s or 0)
    statuses = collect(jobs)
    while wait_s and not _settled(statuses) and time.monotonic() < deadline:
        time.sleep(poll_s)
        statuses = collect(jobs)
    text, code = report(jobs, statuses)
    print(text)
    if wait_s and not _settled(statuses):
        print(f"still in progress after --wait {wait_s:g}s")
    return code
