"""`launchers/cascade.sh CASCADE [--from STAGE] [--dry-run] [key=value ...] [-- SBATCH_ARGS...]`: one sbatch per
stage, each with `--dependency=afterok:<every stage in its depends_on>` and
`--kill-on-invalid-dep=yes`, so a failed stage cancels everything downstream of it.

Stages already COMPLETE are not submitted (their dependents start at once); `--from STAGE` skips
the chain before STAGE (those must be COMPLETE; side stages are submitted when a selected stage
needs them and they are not complete). The job ids go to <run_dir>/jobs.json for `status`.
`--dry-run` prints the same submission as a bash script, without submitting. key=value overrides
may stand anywhere before `--` and are routed (cascade/launch/overrides.py): cascade keys (`run_dir=`)
to the plan and every job, `<stage>.key=value` to that stage only, any other key to every stage;
each is checked against every stage it reaches before the first sbatch, and job-shape keys
(`launch.nodes=1`, `launch.time=01:00:00`) change the sbatch line. They reach each stage's launcher
after the script path (`sbatch launchers/<cascade>/stage_*.sh key=value`); the launchers must exist
(`python -m cascade.launch generate [--cascade YAML]` writes them).
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from cascade.config.errors import UserError
from cascade.fileio import atomic_write_text
from cascade.launch import slurm
from cascade.launch.generate import missing_launchers
from cascade.launch.inputs import missing_inputs
from cascade.launch.overrides import RoutedOverrides, check_stage_overrides, load_with_overrides
from cascade.launch.shape import JobShape, job_shape
from cascade.runtime.stage_dirs import StageDirs
from cascade.stages import REPO_ROOT, CascadePlan, ResolvedStage

JOBS_FILE = "jobs.json"


@dataclass(frozen=True)
class Submission:
    stage: ResolvedStage
    shape: JobShape
    after: tuple[str, ...]  # stages (submitted in this run) it waits for
    log: Path
    overrides: tuple[str, ...] = ()  # key=value for the stage config, passed to the launcher

    @property
    def var(self) -> str:
        return f"JOB_{self.stage.name}"

    def argv(self, plan: CascadePlan, dependency: str | None, extra: list[str]) -> list[str]:
        argv = ["sbatch", "--parsable", f"--job-name={plan.name}.{log_stem(self.stage)}", *self.shape.sbatch_args(),
                f"--output={self.log}"]
        if dependency:
            argv += [f"--dependency=afterok:{dependency}", "--kill-on-invalid-dep=yes"]
        return [*argv, *extra, str(self.stage.launcher), *self.overrides]


def log_stem(stage: ResolvedStage) -> str:
    """`01_sft` / `side_reward_model`: the stage's part of job and log names."""
    return stage.launcher.stem.removeprefix("stage_")


def local_log(plan: CascadePlan, stage: ResolvedStage) -> Path:
    """Where a stage run without Slurm logs (appended across runs, like a requeued job's log)."""
    return plan.run_dir / "logs" / f"{log_stem(stage)}-local.out"


def _needed(plan: CascadePlan, from_stage: str | None) -> list[str]:
    """Names to consider, in submission order (dependencies first, side stages early)."""
    chain = [s.name for s in plan.chain]
    if from_stage is None:
        wanted = {s.name for s in plan.stages}
    else:
        if from_stage not in chain:
            raise UserError(f"--from {from_stage!r}: not a chain stage of {plan.source} (chain: {', '.join(chain)})")
        wanted = set(chain[chain.index(from_stage):])
        side = {s.name for s in plan.stages if s.side}
        frontier = list(wanted)
        while frontier:  # side stages the selected ones need, transitively
            for dep in plan.stage(frontier.pop()).depends_on:
                if dep in side and dep not in wanted:
                    wanted.add(dep)
                    frontier.append(dep)
    return [s.name for s in plan.run_order if s.name in wanted]  # never before a dependency


def plan_submissions(plan: CascadePlan, from_stage: str | None = None,
                     overrides: RoutedOverrides | None = None) -> tuple[list[Submission], list[str]]:
    """(jobs to submit, notes about stages not submitted); every override is checked against
    every stage it reaches (ConfigError) before anything is submitted."""
    routed = overrides or RoutedOverrides((), (), {})
    names = _needed(plan, from_stage)
    configs = check_stage_overrides(plan, routed, names)
    subs: list[Submission] = []
    notes: list[str] = []
    submitted: set[str] = set()
    for name in names:
        stage = plan.stage(name)
        if StageDirs(stage.output_dir).is_complete():
            notes.append(f"{name}: already COMPLETE ({stage.output_dir}); not submitted")
            continue
        for dep in stage.depends_on:
            if dep not in submitted and not StageDirs(plan.stage(dep).output_dir).is_complete():
                notes.append(f"WARNING: {name} needs {dep}, which is neither COMPLETE nor submitted: it will not start")
        log = plan.run_dir / "logs" / f"{log_stem(stage)}-%j.out"
        subs.append(Submission(stage, job_shape(stage, routed.for_stage(name)),
                               tuple(d for d in stage.depends_on if d in submitted), log,
                               tuple(routed.for_launcher(name))))
        submitted.add(name)
    notes += missing_inputs(plan, {s.stage.name: configs[s.stage.name] for s in subs})
    return subs, notes


def job_env(plan: CascadePlan, shape: JobShape) -> dict[str, str]:
    env = {"CASCADE": str(plan.source), "CASCADE_ROOT": str(REPO_ROOT)}
    if shape.container_image:
        env["CONTAINER_IMAGE"] = shape.container_image
    if shape.container_mounts:
        env["CONTAINER_MOUNTS"] = shape.container_mounts
    return env


def _describe(sub: Submission) -> str:
    s = sub.stage
    tag = "side" if s.side else f"{s.index:02d}"
    return (f"# [{tag}] {s.name} kind={s.kind.value} init_from={s.init_from} output_dir={s.output_dir} "
            f"depends_on={','.join(s.depends_on)} after={','.join(sub.after)}")


def dry_run(plan: CascadePlan, subs: list[Submission], notes: list[str], extra: list[str]) -> str:
    """The submission as a bash script: `JOB_<stage>=$(sbatch --parsable ...)` per stage."""
    lines = [f"# cascade {plan.name} ({plan.source}); run_dir {plan.run_dir}", *(f"# {n}" for n in notes),
             f"mkdir -p {shlex.quote(str(plan.run_dir / 'logs'))}"]
    for sub in subs:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in job_env(plan, sub.shape).items())
        dependency = ":".join(f"${{JOB_{d}}}" for d in sub.after) or None
        # the dependency stays unquoted so that the shell expands the job ids
        cmd = " ".join(a if a.startswith("--dependency=") else shlex.quote(a)
                       for a in sub.argv(plan, dependency, extra))
        lines += [_describe(sub), f"{sub.var}=$({env} {cmd})"]
    return "\n".join(lines)


def submit(plan: CascadePlan, subs: list[Submission], notes: list[str], extra: list[str]) -> Path:
    """Submit every job in order; on an sbatch error cancel what this call submitted."""
    (plan.run_dir / "logs").mkdir(parents=True, exist_ok=True)
    ids: dict[str, str] = {}
    try:
        for sub in subs:
            dependency = ":".join(ids[d] for d in sub.after) or None
            ids[sub.stage.name] = slurm.sbatch(sub.argv(plan, dependency, extra), job_env(plan, sub.shape))
            after = f" after {', '.join(f'{d} ({ids[d]})' for d in sub.after)}" if sub.after else ""
            print(f"submitted {sub.stage.name:<16} job {ids[sub.stage.name]}{after}")
    except slurm.SlurmError:
        slurm.scancel(list(ids.values()))
        if ids:
            print(f"sbatch failed: cancelled the jobs this call submitted ({', '.join(ids.values())})")
        raise
    jobs = {
        "cascade": str(plan.source),
        "name": plan.name,
        "run_dir": str(plan.run_dir),
        "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "notes": notes,
        "stages": [
            {"stage": s.stage.name, "index": s.stage.index, "job_id": ids[s.stage.name],
             "depends_on": list(s.stage.depends_on), "launcher": str(s.stage.launcher),
             "output_dir": str(s.stage.output_dir), "log": str(s.log).replace("%j", ids[s.stage.name])}
            for s in subs
        ],
    }
    path = plan.run_dir / JOBS_FILE
    if path.exists():
        path.replace(path.with_suffix(".json.prev"))
    atomic_write_text(path, json.dumps(jobs, indent=2) + "\n")
    return path


def main(cascade: str, from_stage: str | None, dry: bool, extra: list[str], overrides: list[str] | None = None) -> int:
    if "--dry-run" in extra or "--from" in extra:
        raise UserError(f"{extra}: --dry-run and --from go before `--`; what follows `--` goes to sbatch")
    if misplaced := [a for a in extra if "=" in a and not a.startswith("-")]:
        raise UserError(f"{misplaced}: key=value overrides go before `--`; what follows `--` goes to sbatch")
    plan, routed = load_with_overrides(cascade, overrides or [])
    if problem := missing_launchers(plan):
        raise UserError(problem)
    subs, notes = plan_submissions(plan, from_stage, routed)
    if dry:
        print(dry_run(plan, subs, notes, extra))
        return 0
    for note in notes:
        print(note)
    if not subs:
        print(f"nothing to submit: every selected stage of {plan.name} is COMPLETE")
        return 0
    if not slurm.available():
        print("ERROR: sbatch/scontrol not found: run on a Slurm login node (or launchers/local_slurm/start.sh), "
              f"or run a stage locally with `bash {plan.launcher_dir}/<stage>.sh`")
        return 2
    path = submit(plan, subs, notes, extra)
    ids = ",".join(json.loads(path.read_text())["stages"][i]["job_id"] for i in range(len(subs)))
    print(f"jobs: {path}")
    print(f"status: python -m cascade.launch status {plan.run_dir}")
    print(f"        squeue -j {ids} -o '%.10i %.40j %.10T %r'")
    return 0
