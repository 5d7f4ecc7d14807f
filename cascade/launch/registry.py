"""Which module runs each stage kind, and which evaluates its checkpoint (registries, no if/elif).

The recipe entry-point protocol: a recipe module exposes

    def run(ctx: StageRun) -> int

and returns 0 when training finished (final checkpoint saved and, if configured, exported),
`preemption.REQUEUE_EXIT_CODE` after saving because `preemption.should_stop()` said so, or any
other code on failure. Its checkpoint root is `ctx.dirs.checkpoints` (give it to
cascade.engine.checkpoint.Checkpointer, which commits iter_N/ and the `latest` pointer); it
resumes from there when `ctx.resume_step` is set, starts from `ctx.stage.init_from` otherwise,
and exports the final weights to `ctx.dirs.hf`. An eval hook has the same signature and
evaluates the finished checkpoint into `ctx.dirs.evals`.

`CASCADE_RECIPE_<KIND>=module` (e.g. CASCADE_RECIPE_SFT) and `CASCADE_EVAL_<KIND>=module|none`
replace a registry entry for one run: for experiments and for the launcher's own tests.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from cascade.config.schema.kinds import StageKind
from cascade.runtime.stage_dirs import StageDirs
from cascade.stages import REPO_ROOT, CascadePlan, ResolvedStage

RECIPES: dict[StageKind, str] = {
    StageKind.SFT: "recipes.sft",
    StageKind.RL: "recipes.rl",
    StageKind.MOPD: "recipes.mopd",
    StageKind.REWARD_MODEL: "recipes.reward_model",
}
# Every kind's checkpoint goes through the same benchmark hook (evals/ chooses per kind).
EVAL_HOOKS: dict[StageKind, str] = {kind: "evals.stage_eval" for kind in StageKind}


@dataclass(frozen=True)
class StageRun:
    """Everything a recipe needs: the resolved stage, its validated config, where to write."""

    plan: CascadePlan
    stage: ResolvedStage  # init_from, uses, output_dir come from the stage graph
    config: Any  # the validated stage config (SFTStageConfig, RLStageConfig, ...)
    overrides: tuple[str, ...]  # the command-line overrides already applied to `config`
    dirs: StageDirs
    resume_step: int | None  # newest complete checkpoint in dirs.checkpoints; None: fresh start
    rank: int
    local_rank: int
    world_size: int


class StageFn(Protocol):
    def __call__(self, ctx: StageRun) -> int: ...


class RecipeMissing(RuntimeError):
    """The registry names a module that does not exist (yet)."""


def _module_file(module: str) -> str:
    return str(Path(*module.split(".")).with_suffix(".py"))


def _override(prefix: str, kind: StageKind) -> str | None:
    return os.environ.get(f"{prefix}_{kind.name}") or None


def _import(module: str) -> Any | None:
    """The module, or None when it (not one of its own imports) does not exist."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            return None
        raise  # the module exists but one of its imports is missing: a real error


def _entry(module: Any, name: str) -> StageFn:
    fn: Callable[..., int] | None = getattr(module, "run", None)
    if not callable(fn):
        raise RecipeMissing(f"{module.__name__} ({module.__file__}) has no `run(ctx: StageRun) -> int`; {name}")
    return fn


def load_recipe(kind: StageKind) -> StageFn:
    """The `run` function of the recipe registered for `kind`; RecipeMissing names the module."""
    module_name = _override("CASCADE_RECIPE", kind) or RECIPES[kind]
    module = _import(module_name)
    if module is None:
        raise RecipeMissing(
            f"no recipe for stage kind {kind.value!r}: module {module_name!r} "
            f"({REPO_ROOT / _module_file(module_name)}) does not exist yet. It must define "
            "`run(ctx: cascade.launch.registry.StageRun) -> int` (see cascade/launch/registry.py)."
        )
    return _entry(module, "see cascade/launch/registry.py")


def load_eval_hook(kind: StageKind) -> tuple[str, StageFn | None]:
    """(module name, its `run`), or (reason, None) when this kind has no eval hook yet."""
    module_name = _override("CASCADE_EVAL", kind) or EVAL_HOOKS[kind]
    if module_name.lower() == "none":
        return f"disabled by CASCADE_EVAL_{kind.name}=none", None
    module = _import(module_name)
    if module is None:
        return f"{module_name} ({_module_file(module_name)}) does not exist yet", None
    return module_name, _entry(module, "eval hooks share the recipe protocol")
