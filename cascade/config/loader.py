"""YAML loading with `defaults:` inheritance, `key=value` overrides and `${...}` interpolation.

Every leaf remembers which file (or override) set it, so a schema error can name its source.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cascade.config.errors import ConfigError

DEFAULTS_KEY = "defaults"
OVERRIDE_SOURCE = "command-line override"


@dataclass
class RawConfig:
    """A merged, not yet validated config tree plus the source of every dotted key."""

    data: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    root_file: str = "<memory>"

    def source_of(self, dotted: str) -> str:
        """The file or override that set `dotted`, or its nearest ancestor's source."""
        key = dotted
        while key:
            if key in self.sources:
                return self.sources[key]
            key = key.rpartition(".")[0]
        return self.root_file


def _record_sources(tree: Any, source: str, prefix: str, sources: dict[str, str]) -> None:
    if prefix:
        sources[prefix] = source
    if isinstance(tree, dict):
        for k, v in tree.items():
            _record_sources(v, source, f"{prefix}.{k}" if prefix else str(k), sources)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Merge `top` into a copy of `base`; dicts merge recursively, anything else replaces."""
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _resolve_default_path(entry: Any, parent: Path) -> Path:
    if not isinstance(entry, str):
        raise ConfigError(f"{parent}: every `{DEFAULTS_KEY}` entry must be a file path, got {entry!r}")
    path = (parent.parent / entry).resolve()
    if path.suffix not in (".yaml", ".yml"):
        path = path.with_name(path.name + ".yaml")
    if not path.is_file():
        raise ConfigError(f"{parent}: `{DEFAULTS_KEY}` entry {entry!r} not found (looked for {path})")
    return path


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        if path.suffix not in (".yaml", ".yml"):  # e.g. a launcher script where the cascade YAML goes
            raise ConfigError(f"{path}: not a YAML file (a cascade or stage .yaml goes here)") from e
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a YAML file (not UTF-8 text)") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _load_tree(path: Path, stack: tuple[Path, ...]) -> tuple[dict[str, Any], dict[str, str]]:
    if path in stack:
        chain = " -> ".join(str(p) for p in (*stack, path))
        raise ConfigError(f"cycle in `{DEFAULTS_KEY}`: {chain}")
    raw = _read_yaml(path)
    defaults = raw.pop(DEFAULTS_KEY, []) or []
    if not isinstance(defaults, list):
        raise ConfigError(f"{path}: `{DEFAULTS_KEY}` must be a list of file paths")
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for entry in defaults:
        sub, sub_sources = _load_tree(_resolve_default_path(entry, path), (*stack, path))
        merged = _deep_merge(merged, sub)
        sources.update(sub_sources)
    merged = _deep_merge(merged, raw)
    _record_sources(raw, str(path), "", sources)
    return merged, sources


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=1e-5` -> ("a.b", 1e-05). The value is parsed as YAML, so `[1,2]`, `null`, `true` work."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{OVERRIDE_SOURCE} {text!r}: expected KEY=VALUE with a dotted KEY")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    # YAML reads 1e-5 as a string (no dot); treat anything float() accepts as a number.
    if isinstance(parsed, str):
        try:
            parsed = float(parsed) if any(c in parsed.lower() for c in ".e") else parsed
        except ValueError:
            pass
    return key, parsed


def apply_overrides(raw: RawConfig, overrides: list[str]) -> RawConfig:
    data = copy.deepcopy(raw.data)
    sources = dict(raw.sources)
    for text in overrides:
        key, value = parse_override(text)
        node = data
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
                # a section this override creates is its doing: an unknown-key error names it
                sources[".".join(parts[: i + 1])] = f"{OVERRIDE_SOURCE} {text!r}"
            elif not isinstance(child, dict):
                prefix = ".".join(parts[: i + 1])
                raise ConfigError(f"{OVERRIDE_SOURCE} {text!r}: {prefix!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
        _record_sources(value, f"{OVERRIDE_SOURCE} {text!r}", key, sources)
    return RawConfig(data=data, sources=sources, root_file=raw.root_file)


def resolve_interpolations(raw: RawConfig) -> RawConfig:
    """Resolve `${a.b}` and `${oc.env:VAR,default}` with OmegaConf."""
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(raw.data), resolve=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise ConfigError(f"{raw.source_of(str(key))}: cannot resolve interpolation at {key!r}: {e.msg if hasattr(e, 'msg') else e}") from e
    assert isinstance(resolved, dict)
    return RawConfig(data=resolved, sources=raw.sources, root_file=raw.root_file)


def load_raw(path: str | Path, overrides: list[str] | None = None) -> RawConfig:
    """Read `path` with its defaults chain, apply overrides, resolve interpolation."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    data, sources = _load_tree(path, ())
    raw = RawConfig(data=data, sources=sources, root_file=str(path))
    raw = apply_overrides(raw, overrides or [])
    return resolve_interpolations(raw)
