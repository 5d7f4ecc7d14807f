"""Route a cascade command line's `key=value` overrides to where they belong, and check each one
against every stage it reaches before anything is submitted or run.

    run_dir=/x                  a cascade key (CascadeSpec): the plan, and every stage job
    launch.nodes=1              a stage key: every stage (job-shape keys also change the sbatch line)
    math_rl_24k.train.steps=2   `<stage name>.`: that stage only
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade.config import ConfigError, load_stage_config
from cascade.config.schema import schema_for
from cascade.launch.shape import shape_from_config
from cascade.stages import CascadePlan, CascadeSpec, load_cascade

CASCADE_KEYS = frozenset(f.name for f in dataclasses.fields(CascadeSpec)) - {"stages", "side_stages"}


@dataclass(frozen=True)
class RoutedOverrides:
    cascade: tuple[str, ...]  # keys of the cascade YAML (run_dir, init_path, ...)
    every_stage: tuple[str, ...]  # stage-config keys for every stage
    per_stage: dict[str, tuple[str, ...]]  # stage name -> stage-config keys (prefix removed)
    origins: dict[str, str] = dataclasses.field(default_factory=dict)  # per-stage text -> as the user wrote it
    stages: tuple[str, ...] = ()  # the cascade's stage names

    def for_stage(self, name: str) -> list[str]:
        """The stage-config overrides stage `name` gets (common first, its own last)."""
        return [*self.every_stage, *self.per_stage.get(name, ())]

    def for_launcher(self, name: str) -> list[str]:
        """What a stage's launcher is given: run-stage routes them again on the node, so a key that
        starts with a stage name (`mopd.loss...` of the mopd stage) keeps its stage prefix."""
        own = [f"{name}.{o}" if o.partition(".")[0] in self.stages else o for o in self.per_stage.get(name, ())]
        return [*self.cascade, *self.every_stage, *own]


def route(overrides: list[str] | tuple[str, ...], stage_names: list[str] | tuple[str, ...],
          top_keys: dict[str, set[str]] | None = None) -> RoutedOverrides:
    """Split overrides by their first key component: a cascade key, a stage name, or a stage key.

    A stage named like a config section (Cascade-2's `mopd` stage and `mopd:` section) takes
    `mopd.loss.x=1` as its own `loss.x` and `mopd.teachers...` as its own `mopd.teachers...`
    (`top_keys`: each stage's top-level config keys).
    """
    cascade: list[str] = []
    common: list[str] = []
    per_stage: dict[str, list[str]] = {}
    origins: dict[str, str] = {}
    for text in overrides:
        key, sep, value = text.partition("=")
        head, _, rest = key.partition(".")
        if not sep:
            raise ConfigError(f"command-line override {text!r}: expected KEY=VALUE")
        if head in CASCADE_KEYS:
            cascade.append(text)
        elif head in stage_names:
            if not rest:
                raise ConfigError(f"command-line override {text!r}: {head!r} is a stage; "
                                  f"set one of its keys: {head}.KEY=VALUE")
            own = (top_keys or {}).get(head)
            if own and head in own and rest.partition(".")[0] not in own:
                per_stage.setdefault(head, []).append(text)  # the stage's own section of that name
            else:
                per_stage.setdefault(head, []).append(f"{rest}={value}")
                origins[f"{rest}={value}"] = text
        else:
            common.append(text)
    return RoutedOverrides(tuple(cascade), tuple(common), {k: tuple(v) for k, v in per_stage.items()}, origins,
                           tuple(stage_names))


def _stage_keys(path: str | Path) -> dict[str, set[str]]:
    """Each stage's top-level config keys, by stage name as written in the cascade YAML."""
    plan = load_cascade(path)
    return {s.name: {f.name for f in dataclasses.fields(schema_for(s.kind))} for s in plan.stages}


def load_with_overrides(path: str | Path, overrides: list[str] | tuple[str, ...]) -> tuple[CascadePlan, RoutedOverrides]:
    """The plan with its cascade-level overrides applied, and the routed rest (not yet checked)."""
    if overrides:
        keys = _stage_keys(path)
        routed = route(overrides, list(keys), keys)
    else:
        routed = RoutedOverrides((), (), {})
    plan = load_cascade(path, list(routed.cascade))
    return plan, routed


def check_stage_overrides(plan: CascadePlan, routed: RoutedOverrides, names: list[str] | None = None) -> dict[str, Any]:
    """Load every stage config (of `names`, default all) with the overrides it gets; the first
    invalid one is a ConfigError naming the stage and the override. Returns name -> config."""
    configs: dict[str, Any] = {}
    for stage in plan.stages:
        if names is not None and stage.name not in names:
            continue
        own = routed.for_stage(stage.name)
        try:
            cfg = load_stage_config(stage.config, [*stage.overrides, *own])
            shape_from_config(cfg, f"{stage.config}{' with ' + ' '.join(own) if own else ''}")
        except ConfigError as e:
            message = str(e)
            for routed_text, original in routed.origins.items():  # name the override as the user wrote it
                message = message.replace(f"command-line override {routed_text!r}", f"command-line override {original!r}")
            hint = ""
            if routed.every_stage and any(o in str(e) for o in routed.every_stage):
                hint = f" (an override without a stage prefix goes to every stage; for one stage write {stage.name}.KEY=VALUE)"
            raise ConfigError(f"stage {stage.name!r}: {message}{hint}") from e
        if cfg.kind != stage.kind:
            raise ConfigError(f"{plan.source}: stage {stage.name!r} is kind {stage.kind.value!r} but "
                              f"{stage.config} says kind {cfg.kind.value!r}")
        configs[stage.name] = cfg
    return configs
