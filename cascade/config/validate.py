"""Build frozen dataclasses from a merged config tree, refusing unknown keys and wrong types.

Errors name the dotted key, the file (or override) that set it, and the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from typing import Any, TypeVar, get_args, get_origin

from cascade.config.errors import ConfigError
from cascade.config.loader import OVERRIDE_SOURCE, RawConfig
from cascade.config.ranges import check_ranges

T = TypeVar("T")


def all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key a dataclass schema accepts (sections and leaves)."""
    keys: list[str] = []
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        keys.append(dotted)
        for sub in _dataclasses_in(f.type if not isinstance(f.type, str) else _hints(cls)[f.name]):
            keys.extend(all_keys(sub, dotted + "."))
    return keys


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dataclasses_in(tp: Any) -> list[type]:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return [tp]
    return [t for arg in get_args(tp) for t in _dataclasses_in(arg)]


# Names users bring from NeMo-RL and verl (and their own habits) -> ours; a hint is given only
# when the target exists in the schema being validated.
ALIASES: dict[str, str] = {
    "rollout.n": "rollout.num_generations",
    "actor_rollout_ref.rollout.n": "rollout.num_generations",
    "grpo.num_generations_per_prompt": "rollout.num_generations",
    "grpo.num_prompts_per_step": "rollout.prompts_per_step",
    "data.train_batch_size": "rollout.prompts_per_step",
    "grpo.max_num_steps": "train.steps",
    "trainer.total_training_steps": "train.steps",
    "sft.max_num_steps": "train.steps",
    "cluster.num_nodes": "launch.nodes",
    "trainer.nnodes": "launch.nodes",
    "cluster.gpus_per_node": "launch.gpus_per_node",
    "trainer.n_gpus_per_node": "launch.gpus_per_node",
    "policy.generation.temperature": "rollout.temperature",
    "actor_rollout_ref.rollout.temperature": "rollout.temperature",
    "policy.generation.top_p": "rollout.top_p",
    "data.max_response_length": "rollout.max_response_length",
    "data.max_prompt_length": "rollout.max_prompt_length",
    "policy.optimizer.kwargs.lr": "optim.lr",
    "actor_rollout_ref.actor.optim.lr": "optim.lr",
    "optim.learning_rate": "optim.lr",
    "loss_fn.reference_policy_kl_penalty": "loss.kl_coef",
    "actor_rollout_ref.actor.kl_loss_coef": "loss.kl_coef",
    "policy.train_global_batch_size": "train.global_batch_size",
    "policy.train_micro_batch_size": "train.micro_batch_size",
    "policy.megatron_cfg.tensor_model_parallel_size": "parallel.tensor",
    "actor_rollout_ref.actor.megatron.tensor_model_parallel_size": "parallel.tensor",
    "parallel.tp": "parallel.tensor",
    "parallel.pp": "parallel.pipeline",
    "parallel.cp": "parallel.context",
    "policy.max_total_sequence_length": "data.seq_length",
    "checkpointing.save_period": "checkpoint.save_interval",
}


def alias_hint(key: str, candidates: list[str] | set[str]) -> str:
    """`; did you mean 'ours' (NeMo-RL/verl name)?` when `key` is a known foreign name."""
    target = ALIASES.get(key)
    if target and target != key and target in candidates:
        return f"; did you mean {target!r}? (our name for it)"
    return ""


def _closest(key: str, candidates: list[str]) -> str:
    if hint := alias_hint(key, candidates):
        return hint
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    if not match:
        leaf = key.rpartition(".")[2]
        match = [c for c in candidates if c.rpartition(".")[2] == leaf][:1]
    return f"; did you mean {match[0]!r}?" if match else ""


def _deepest_from_same_source(dotted: str, value: Any, ctx: "_Ctx") -> str:
    """An unknown section set by one override (`grpo.num_prompts_per_step=128`) is reported
    as that override's full key, so its hint is the one for the whole name."""
    source = ctx.raw.source_of(dotted)
    if not source.startswith(OVERRIDE_SOURCE):
        return dotted
    while isinstance(value, dict) and len(value) == 1:
        (child, value), = value.items()
        if ctx.raw.source_of(f"{dotted}.{child}") != source:
            break
        dotted = f"{dotted}.{child}"
    return dotted


class _Ctx:
    def __init__(self, raw: RawConfig, root_cls: type):
        self.raw = raw
        self.root_cls = root_cls
        self._keys: list[str] | None = None

    def keys(self) -> list[str]:
        if self._keys is None:
            self._keys = all_keys(self.root_cls)
        return self._keys

    def fail(self, dotted: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.raw.source_of(dotted)}: {dotted!r}: {msg}")


def _convert(value: Any, tp: Any, dotted: str, ctx: _Ctx) -> Any:
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors: list[ConfigError] = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, dotted, ctx)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise ctx.fail(dotted, f"{value!r} matches none of {tp}")
    if origin is typing.Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ctx.fail(dotted, f"must be one of {list(choices)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ctx.fail(dotted, f"expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ctx.fail(dotted, f"expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{dotted}[{i}]", ctx) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_convert(v, item, f"{dotted}[{i}]", ctx) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ctx.fail(dotted, f"expected a mapping, got {type(value).__name__}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_convert(k, kt, dotted, ctx): _convert(v, vt, f"{dotted}.{k}", ctx) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ctx.fail(dotted, f"expected a section (mapping), got {type(value).__name__} {value!r}")
        return _build(tp, value, dotted + ".", ctx)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ctx.fail(dotted, f"must be one of {[m.value for m in tp]}, got {value!r}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ctx.fail(dotted, f"expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ctx.fail(dotted, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool):
            raise ctx.fail(dotted, f"expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # PyYAML reads `5e-5` as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ctx.fail(dotted, f"expected a number, got {value!r}")
    if tp is str:
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            raise ctx.fail(dotted, f"expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ctx.fail(dotted, f"schema type {tp!r} is not supported by the config validator")


def _build(cls: type[T], data: dict[str, Any], prefix: str, ctx: _Ctx) -> T:
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            dotted = _deepest_from_same_source(f"{prefix}{key}", data[key], ctx)
            raise ctx.fail(dotted, f"unknown key{_closest(dotted, ctx.keys())}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        dotted = f"{prefix}{name}"
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], dotted, ctx)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{ctx.raw.root_file}: required key {dotted!r} is missing")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, ArithmeticError) as e:  # e.g. a modulo by a zero batch size
        section = prefix.rstrip(".") or "<root>"
        raise ConfigError(f"{ctx.raw.source_of(section)}: section {section!r}: {e}") from e


def build_config(cls: type[T], raw: RawConfig) -> T:
    """Validate `raw` against the dataclass `cls`; raise ConfigError naming key, file, suggestion.

    Then the range rules (cascade/config/ranges.py), which see across sections (TP vs heads).
    """
    ctx = _Ctx(raw, cls)
    obj = _build(cls, raw.data, "", ctx)
    check_ranges(obj, ctx.fail)
    return obj


def to_dict(obj: Any) -> Any:
    """A dataclass config back to plain YAML-able data (enums as values, tuples as lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {to_dict(k): to_dict(v) for k, v in obj.items()}
    return obj
