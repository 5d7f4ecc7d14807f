"""The cascade stage graph: the only place that knows stage order and checkpoint hand-off.

A cascade YAML lists its policy `stages:` in order (each starts from the previous stage's output
unless it names an earlier stage in `init_from_stage`) and optional `side_stages:` (models the chain
consumes but does not continue from, such as the RLHF reward model), which stages reference through
`uses: {role: stage_name}`. Resolution turns names into typed `ResolvedStage`s with concrete paths;
nothing downstream handles stage names as free strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade.config.errors import ConfigError
from cascade.config.loader import load_raw
from cascade.config.schema.kinds import StageKind
from cascade.config.validate import build_config

STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StageEntry:
    """One stage as written in the cascade YAML."""

    name: str
    kind: StageKind
    config: str  # path relative to the cascade YAML
    init_from_stage: str | None = None  # default: the previous stage of `stages:`
    init_path: str | None = None  # an HF/Megatron directory instead of a stage output
    uses: dict[str, str] = field(default_factory=dict)  # role -> stage name (e.g. reward_model)
    output_dir: str | None = None  # default: <run_dir>/<NN>_<name>; set to share a side model
    overrides: list[str] = field(default_factory=list)  # key=value applied to the stage config

    def __post_init__(self) -> None:
        if not STAGE_NAME.match(self.name):
            raise ValueError(f"stage name {self.name!r} must match {STAGE_NAME.pattern}")
        if self.init_from_stage and self.init_path:
            raise ValueError(f"stage {self.name!r}: set init_from_stage or init_path, not both")


@dataclass(frozen=True)
class CascadeSpec:
    name: str
    run_dir: str
    init_path: str  # the base model (HF directory) the first stage starts from
    stages: list[StageEntry]
    side_stages: list[StageEntry] = field(default_factory=list)
    description: str = ""
    launcher_dir: str = ""  # default: launchers/<the cascade YAML's directory name>


@dataclass(frozen=True)
class ResolvedStage:
    """A stage with every reference resolved to a path: what launchers and recipes consume."""

    index: int  # 1-based position in the chain; 0 for side stages
    name: str
    kind: StageKind
    config: Path
    launcher: Path
    init_from: str
    init_stage: str | None  # the stage whose output `init_from` is (None: an external path)
    output_dir: Path
    uses: dict[str, Path]
    depends_on: tuple[str, ...]  # stages that must finish first (afterok)
    overrides: tuple[str, ...]
    side: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "kind": self.kind.value,
            "config": _display(self.config),
            "launcher": _display(self.launcher),
            "init_from": self.init_from,
            "init_stage": self.init_stage,
            "output_dir": str(self.output_dir),
            "uses": {role: str(p) for role, p in self.uses.items()},
            "depends_on": list(self.depends_on),
            "overrides": list(self.overrides),
            "side": self.side,
        }


@dataclass(frozen=True)
class CascadePlan:
    name: str
    source: Path
    run_dir: Path
    stages: tuple[ResolvedStage, ...]  # side stages first, then the chain in order

    @property
    def chain(self) -> tuple[ResolvedStage, ...]:
        return tuple(s for s in self.stages if not s.side)

    @property
    def launcher_dir(self) -> Path:
        """Where this cascade's generated stage scripts live (one directory per cascade)."""
        return self.stages[0].launcher.parent

    @property
    def run_order(self) -> tuple[ResolvedStage, ...]:
        """The stages one after another as a single machine runs them: each after every stage it
        depends on, otherwise in listed order (side stages first where nothing holds them back)."""
        done: set[str] = set()
        pending, ordered = list(self.stages), []
        while pending:
            ready = next(s for s in pending if set(s.depends_on) <= done)  # the graph is acyclic
            pending.remove(ready)
            ordered.append(ready)
            done.add(ready.name)
        return tuple(ordered)

    def stage(self, name: str) -> ResolvedStage:
        for s in self.stages:
            if s.name == name:
                return s
        raise ConfigError(f"{self.source}: no stage named {name!r}; stages: {[s.name for s in self.stages]}")


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def launcher_dir(source: Path, configured: str = "") -> Path:
    """`launchers/<cascade>/`, <cascade> being the directory name of the cascade YAML: stage numbers
    and job shapes differ between cascades, so each has its own scripts. `launcher_dir:` in the YAML
    (relative to the repo root) moves them, e.g. for two cascades in same-named directories."""
    return _absolute(configured) if configured else REPO_ROOT / "launchers" / source.parent.name


def launcher_path(directory: Path, index: int, name: str) -> Path:
    """`<directory>/stage_NN_<name>.sh` for chain stages, `<directory>/side_<name>.sh` for side stages."""
    filename = f"side_{name}.sh" if index == 0 else f"stage_{index:02d}_{name}.sh"
    return directory / filename


def _absolute(path: str) -> Path:
    """Relative paths in cascade YAMLs are relative to the repository root, not the caller's cwd."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def _topological(entries: dict[str, StageEntry], edges: dict[str, list[str]], source: Path) -> list[str]:
    """Depth-first order that keeps declaration order among independent stages; rejects cycles."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*path[path.index(name):], name])
            raise ConfigError(f"{source}: the stage graph has a cycle: {cycle}")
        state[name] = 1
        for dep in edges[name]:
            visit(dep, [*path, name])
        state[name] = 2
        order.append(name)

    for name in entries:
        visit(name, [])
    return order


def resolve_cascade(spec: CascadeSpec, source: Path) -> CascadePlan:
    """Validate the graph (unknown references, duplicates, cycles) and resolve every path."""
    entries: dict[str, StageEntry] = {}
    side_names = {e.name for e in spec.side_stages}
    for entry in [*spec.side_stages, *spec.stages]:
        if entry.name in entries:
            raise ConfigError(f"{source}: duplicate stage name {entry.name!r}")
        entries[entry.name] = entry
    if not spec.stages:
        raise ConfigError(f"{source}: `stages:` is empty")

    init_stage: dict[str, str | None] = {}
    previous: str | None = None
    for entry in spec.stages:
        init_stage[entry.name] = entry.init_from_stage or (None if entry.init_path else previous)
        previous = entry.name
    for entry in spec.side_stages:
        if not (entry.init_path or entry.init_from_stage):
            raise ConfigError(f"{source}: side stage {entry.name!r} needs init_path or init_from_stage")
        init_stage[entry.name] = entry.init_from_stage

    edges: dict[str, list[str]] = {}
    for name, entry in entries.items():
        refs = [("init_from_stage", init_stage[name])] + [(f"uses.{r}", s) for r, s in entry.uses.items()]
        for what, ref in refs:
            if ref is not None and ref not in entries:
                raise ConfigError(
                    f"{source}: stage {name!r} reads {what}={ref!r}, but no stage writes that output; "
                    f"stages: {sorted(entries)}"
                )
            if ref == name:
                raise ConfigError(f"{source}: the stage graph has a cycle: {name} -> {name}")
        edges[name] = [ref for _, ref in refs if ref is not None]

    order = _topological(entries, edges, source)
    chain_order = [e.name for e in spec.stages]
    if [n for n in order if n not in side_names] != chain_order:
        raise ConfigError(
            f"{source}: a chain stage starts from or uses a stage listed after it; "
            f"list `stages:` in execution order"
        )

    run_dir = _absolute(spec.run_dir)
    launchers = launcher_dir(source, spec.launcher_dir)
    outputs: dict[str, Path] = {}
    numbers: dict[str, int] = {}
    chain_index = 0
    for name in order:  # chain stages are numbered 01..N; side stages are 00 (launcher side_<name>)
        if name not in side_names:
            chain_index += 1
        numbers[name] = 0 if name in side_names else chain_index
    for name in order:  # every output first: a side stage may start from a chain stage
        default_out = run_dir / (f"side_{name}" if numbers[name] == 0 else f"{numbers[name]:02d}_{name}")
        outputs[name] = _absolute(entries[name].output_dir) if entries[name].output_dir else default_out
    resolved: list[ResolvedStage] = []
    for name in sorted(order, key=lambda n: (n not in side_names, order.index(n))):
        entry = entries[name]
        index = numbers[name]
        out = outputs[name]
        upstream = init_stage[name]
        init_from = str(outputs[upstream]) if upstream else str(_absolute(entry.init_path or spec.init_path))
        config = (source.parent / entry.config).resolve()
        if not config.is_file():
            raise ConfigError(f"{source}: stage {name!r}: config {entry.config!r} not found ({config})")
        resolved.append(
            ResolvedStage(
                index=index,
                name=name,
                kind=entry.kind,
                config=config,
                launcher=launcher_path(launchers, index, name),
                init_from=init_from,
                init_stage=upstream,
                output_dir=out,
                uses={role: outputs[s] for role, s in entry.uses.items()},
                depends_on=tuple(edges[name]),
                overrides=tuple(entry.overrides),
                side=name in side_names,
            )
        )
    return CascadePlan(name=spec.name, source=source, run_dir=run_dir, stages=tuple(resolved))


def load_cascade(path: str | Path, overrides: list[str] | None = None) -> CascadePlan:
    """Load, validate and resolve a cascade YAML (with `defaults:` and key=value overrides)."""
    source = Path(path).resolve()
    raw = load_raw(source, overrides)
    spec = build_config(CascadeSpec, raw)
    return resolve_cascade(spec, source)


def check_stage_configs(plan: CascadePlan) -> list[Any]:
    """Load every stage's config through its schema; the kind in the YAML must match the graph's."""
    from cascade.config import load_stage_config

    configs = []
    for stage in plan.stages:
        cfg = load_stage_config(stage.config, list(stage.overrides))
        if cfg.kind != stage.kind:
            raise ConfigError(
                f"{plan.source}: stage {stage.name!r} is kind {stage.kind.value!r} but "
                f"{stage.config} says kind {cfg.kind.value!r}"
            )
        configs.append(cfg)
    return configs
