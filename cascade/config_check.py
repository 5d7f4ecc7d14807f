"""Validate every shipped YAML by what it is: a cascade, a stage config (its own `kind:` or one it
inherits through `defaults:`), or a partial (a file only inherited through `defaults:`), whose
keys must still exist in some stage schema. Every problem is one line naming the file."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade.config.errors import ConfigError
from cascade.config.loader import load_raw
from cascade.config.schema import StageKind, schema_for
from cascade.config.validate import all_keys


@dataclass
class CheckReport:
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ok: int = 0


def classify(path: Path) -> str:
    """'cascade', 'stage' or 'partial', from the keys after `defaults:` are merged (a stage that
    inherits its `kind:` is a stage, validated in full). A YAML error is a ConfigError."""
    data = load_raw(path).data
    if "stages" in data:
        return "cascade"
    if "kind" in data:
        return "stage"
    return "partial"


def _schema_keys() -> set[str]:
    keys: set[str] = set()
    for kind in StageKind:
        keys.update(all_keys(schema_for(kind)))
    return keys


def _partial_keys(tree: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(tree, dict):
        for k, v in tree.items():
            dotted = f"{prefix}{k}"
            out.append(dotted)
            out.extend(_partial_keys(v, dotted + "."))
    return out


def _free_below(dotted: str, known: set[str]) -> bool:
    """True when an ancestor of `dotted` is a known mapping-valued leaf (its children are free)."""
    parts = dotted.split(".")
    for i in range(1, len(parts)):
        ancestor = ".".join(parts[:i])
        if ancestor in known and not any(k.startswith(ancestor + ".") for k in known):
            return True
    return False


def check_partial(path: Path) -> None:
    """A partial may set any key that some stage schema accepts."""
    raw = load_raw(path)
    known = _schema_keys()
    for dotted in _partial_keys(raw.data):
        if dotted in known or _free_below(dotted, known):
            continue
        close = difflib.get_close_matches(dotted, sorted(known), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{raw.source_of(dotted)}: {dotted!r}: unknown key{hint}")


def check_file(path: Path) -> str:
    """Validate one YAML; returns its class. Raises ConfigError."""
    from cascade.config import load_stage_config
    from cascade.stages import check_stage_configs, load_cascade

    what = classify(path)
    if what == "cascade":
        check_stage_configs(load_cascade(path))
    elif what == "stage":
        load_stage_config(path)
    else:
        check_partial(path)
    return what


def check_paths(paths: list[Path]) -> CheckReport:
    report = CheckReport()
    files: list[Path] = []
    for p in paths:
        if not p.exists():
            report.errors.append(f"{p}: no such file or directory")
        elif p.is_dir():
            found = sorted([*p.rglob("*.yaml"), *p.rglob("*.yml")])
            files.extend(found)
            if not found:
                report.errors.append(f"{p}: no *.yaml files in this directory")
        else:
            files.append(p)
    for f in files:
        try:
            what = check_file(f)
            report.ok += 1
            report.lines.append(f"ok  {what:8s} {f}")
        except ConfigError as e:
            report.errors.append(" ".join(str(e).split()))  # one line per file
    return report
