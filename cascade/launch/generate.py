"""Render launchers/<cascade>/stage_NN_<name>.sh and side_<name>.sh from the stage graph.

Each cascade gets its own directory (cascade/stages.py: launcher_dir): stage numbers and job shapes
differ between cascades, so a script has its cascade and its #SBATCH job shape baked in and refuses
to run another cascade. Scripts of the shipped cascades (nemo_configs/*/cascade.yaml) are committed;
nothing machine-specific is rendered into them, so a fresh clone regenerates the same bytes.

    python -m cascade.launch generate                          # every shipped cascade (and prune)
    python -m cascade.launch generate --cascade my/cascade.yaml   # one cascade of your own
    python -m cascade.launch generate --check                  # exit 1 listing the scripts that differ
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from cascade.fileio import atomic_write_text
from cascade.launch.shape import job_shape
from cascade.runtime.preemption import REQUEUE_EXIT_CODE
from cascade.stages import REPO_ROOT, CascadePlan, ResolvedStage, load_cascade

TEMPLATE = Path(__file__).parent / "templates" / "stage.sh"
LAUNCHERS = REPO_ROOT / "launchers"
GENERATED_GLOBS = ("stage_*.sh", "side_*.sh")
_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
_OWN = re.compile(r"^OWN_CASCADE=(.+)$", re.M)


def _natural_key(text: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def shipped_cascades() -> list[Path]:
    """Every nemo_configs/*/cascade.yaml, in natural order (8b before 14b)."""
    return sorted((REPO_ROOT / "nemo_configs").glob("*/cascade.yaml"), key=lambda p: _natural_key(str(p)))


def display(path: Path) -> str:
    """Repo-relative when inside the checkout (what committed scripts hold), else absolute."""
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def generate_command(cascade: Path) -> str:
    if cascade.resolve() in {p.resolve() for p in shipped_cascades()}:
        return "python -m cascade.launch generate"
    return f"python -m cascade.launch generate --cascade {shlex.quote(display(cascade))}"


def _input_of(plan: CascadePlan, stage: ResolvedStage) -> str:
    src = f"output of stage {stage.init_stage}" if stage.init_stage else "the base model (init_path)"
    by_dir = {s.output_dir: s.name for s in plan.stages}
    used = ", ".join(f"{role}={by_dir.get(path, path)}" for role, path in stage.uses.items())
    return src + (f"; uses {used}" if used else "")


def render(plan: CascadePlan, stage: ResolvedStage) -> str:
    """One stage's script: its cascade, its job shape in the #SBATCH lines."""
    shape = job_shape(stage)
    directory = stage.launcher.parent.resolve()
    to_root = os.path.relpath(REPO_ROOT, directory) if directory.is_relative_to(REPO_ROOT) else str(REPO_ROOT)
    stem = stage.launcher.stem.removeprefix("stage_")
    sbatch = [f"--job-name={plan.name}.{stem}", *shape.sbatch_args(), "--requeue", "--open-mode=append",
              "--output=%x-%j.out"]
    values = {
        "TITLE": f"side `{stage.name}`" if stage.side else f"{stage.index:02d} `{stage.name}`",
        "KIND": stage.kind.value,
        "CASCADE_YAML": shlex.quote(display(plan.source)),
        "CASCADE_NAME": plan.name,
        "CONFIG": display(stage.config),
        "INPUT": _input_of(plan, stage),
        "SHAPE_ARGS": " ".join(shape.sbatch_args()),
        "LAUNCHER": shlex.quote(display(stage.launcher)),
        "ROOT_FROM_SCRIPT": shlex.quote(to_root),
        "SBATCH_LINES": "\n".join(f"#SBATCH {a}" for a in sbatch),
        "STAGE": stage.name,
        "NODES": str(shape.nodes),
        "TASKS_PER_NODE": str(shape.tasks_per_node),
        "GPUS_PER_NODE": str(shape.gpus_per_node),
        "WALLTIME": shape.time,
        "REQUEUE_EXIT_CODE": str(REQUEUE_EXIT_CODE),
        "CONTAINER_IMAGE": shape.container_image,
        "CONTAINER_MOUNTS": shape.container_mounts,
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], TEMPLATE.read_text())


def scripts_for(cascade: Path) -> dict[Path, str]:
    """Launcher path -> script text, for every stage of one cascade."""
    plan = load_cascade(cascade)
    return {s.launcher: render(plan, s) for s in plan.stages}


def expected_scripts(cascades: list[Path] | None = None) -> dict[Path, str]:
    """Launcher path -> the script text the generator produces (default: the shipped cascades)."""
    out: dict[Path, str] = {}
    for cascade in cascades if cascades is not None else shipped_cascades():
        out.update(scripts_for(cascade))
    return dict(sorted(out.items()))


def generated_in(directory: Path) -> list[Path]:
    return sorted(p for pattern in GENERATED_GLOBS for p in directory.glob(pattern))


def baked_cascade(script: Path) -> str | None:
    """The cascade YAML a generated script runs (None: not a per-cascade script)."""
    m = _OWN.search(script.read_text(errors="replace"))
    return shlex.split(m.group(1))[0] if m else None


def existing_scripts() -> list[Path]:
    """Generated scripts of the repo's launchers/: the old flat layout and every cascade directory."""
    dirs = [LAUNCHERS, *sorted(p for p in LAUNCHERS.iterdir() if p.is_dir())]
    return [p for d in dirs for p in generated_in(d)]


def _stale(path: Path, expected: dict[Path, str], shipped: set[str]) -> str | None:
    if path in expected:
        return None
    if path.parent == LAUNCHERS:
        return "stale (old flat layout; scripts live in launchers/<cascade>/)"
    own = baked_cascade(path)
    if own is None or own in shipped or (own.startswith("nemo_configs/") and not (REPO_ROOT / own).exists()):
        return "stale (no cascade has this stage)"
    return None  # the launchers of a user's own cascade: not ours to judge


def drift(expected: dict[Path, str]) -> list[str]:
    """Human-readable differences between `expected` and the scripts on disk."""
    problems = [f"missing: {display(p)}" for p, t in expected.items() if not p.exists()]
    problems += [f"differs: {display(p)}" for p, t in expected.items() if p.exists() and p.read_text() != t]
    shipped = {display(p) for p in shipped_cascades()}
    for path in existing_scripts():
        if why := _stale(path, expected, shipped):
            problems.append(f"{why}: {display(path)}")
    return problems


def _write(expected: dict[Path, str], prune: list[Path]) -> None:
    for path, text in expected.items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)  # a job starting now reads the old script or the new one
            path.chmod(0o755)
            print(f"wrote {display(path)}")
    for path in prune:
        path.unlink()
        print(f"removed {display(path)}")


def _claimed_by_another(cascade: Path, directory: Path) -> str | None:
    for script in generated_in(directory):
        own = baked_cascade(script)
        if own and (REPO_ROOT / own).resolve() != cascade.resolve():
            return own
    return None


def generate_one(cascade: Path) -> int:
    """Write one cascade's launchers (a user's own cascade) and drop that directory's stale ones."""
    plan = load_cascade(cascade)
    if other := _claimed_by_another(cascade, plan.launcher_dir):
        print(f"ERROR: {display(plan.launcher_dir)}/ holds the launchers of {other}; set `launcher_dir:` in "
              f"{display(cascade)} (or rename its directory)")
        return 2
    expected = scripts_for(cascade)
    _write(expected, [p for p in generated_in(plan.launcher_dir) if p not in expected])
    print(f"{len(expected)} launchers of {display(cascade)} up to date in {display(plan.launcher_dir)}/")
    return 0


def generate(check: bool = False, cascade: str | None = None) -> int:
    """Write (or with `check`, compare) the launchers; returns the exit code."""
    if cascade is not None:
        if check:
            problems = drift(scripts_for(Path(cascade)))
            problems = [p for p in problems if not p.startswith("stale")]
            print("\n".join(problems + [f"run: {generate_command(Path(cascade))}"] * bool(problems)))
            return 1 if problems else 0
        return generate_one(Path(cascade))
    expected = expected_scripts()
    problems = drift(expected)
    if check:
        for p in problems:
            print(p)
        if problems:
            print("run: python -m cascade.launch generate")
        return 1 if problems else 0
    shipped = {display(p) for p in shipped_cascades()}
    _write(expected, [p for p in existing_scripts() if _stale(p, expected, shipped)])
    print(f"{len(expected)} launchers up to date")
    return 0


def missing_launchers(plan: CascadePlan) -> str | None:
    """Why this cascade's launchers cannot run it (absent, or another cascade's), with the fix."""
    for stage in plan.stages:
        if not stage.launcher.is_file():
            return (f"the launchers of {display(plan.source)} do not exist ({display(stage.launcher)}); "
                    f"write them with: {generate_command(plan.source)}")
        own = baked_cascade(stage.launcher)
        if own is None or (REPO_ROOT / own).resolve() != plan.source.resolve():
            return (f"{display(stage.launcher)} belongs to cascade {own}, not {display(plan.source)}; set "
                    f"`launcher_dir:` in {display(plan.source)} and run: {generate_command(plan.source)}")
    return None
