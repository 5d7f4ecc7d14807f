"""Range and divisibility rules checked at load time, once the whole config is built, so a rule
may span sections (TP must divide the model's attention heads). Each names its key and the rule;
a value the loop would silently run with (0 RL steps, a negative temperature) is refused here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cascade.config.errors import ConfigError

_MISSING = object()


@dataclass(frozen=True)
class Rule:
    key: str  # dotted path into the built config
    ok: Callable[[Any], bool]
    rule: str  # what the value must be, in words
    kinds: tuple[str, ...] = ()  # stage kinds it applies to (empty: any config that has the key)


RULES = (
    Rule("train.steps", lambda v: v >= 1, "must be >= 1 (an RL stage with no steps trains nothing)", ("rl", "mopd")),
    Rule("train.global_batch_size", lambda v: v >= 1, "must be >= 1"),
    Rule("train.micro_batch_size", lambda v: v >= 1, "must be >= 1"),
    Rule("rollout.temperature", lambda v: v >= 0, "must be >= 0 (0: greedy)"),
    Rule("rollout.prompts_per_step", lambda v: v >= 1, "must be >= 1"),
    Rule("rollout.max_prompt_length", lambda v: v >= 1, "must be >= 1"),
    Rule("rollout.max_response_length", lambda v: v >= 1, "must be >= 1"),
    Rule("rollout.tensor_parallel", lambda v: v >= 1, "must be >= 1"),
    Rule("rollout.gpu_memory_utilization", lambda v: 0 < v <= 1, "must be in (0, 1]"),
    Rule("optim.weight_decay", lambda v: v >= 0, "must be >= 0"),
    Rule("checkpoint.save_interval", lambda v: v >= 0, "must be >= 0 (0: only the final save)"),
)


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING or obj is None:
            return _MISSING
    return obj


def check_ranges(cfg: Any, fail: Callable[[str, str], ConfigError]) -> None:
    """Raise `fail(key, message)` for the first value outside its rule."""
    kind = getattr(getattr(cfg, "kind", None), "value", None)
    for rule in RULES:
        if rule.kinds and kind not in rule.kinds:
            continue
        value = _get(cfg, rule.key)
        if value is _MISSING or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not rule.ok(value):
            raise fail(rule.key, f"{rule.rule}, got {value!r}")
    _check_tensor_parallel(cfg, fail)


def _check_tensor_parallel(cfg: Any, fail: Callable[[str, str], ConfigError]) -> None:
    """Megatron splits attention heads across TP ranks (TP must divide them); KV groups are
    split too, or replicated when there are fewer groups than ranks (then they must divide TP),
    the rule of megatron.core's TransformerConfig."""
    tp = _get(cfg, "parallel.tensor")
    model = getattr(cfg, "model", None)
    if tp is _MISSING or model is None:
        return
    heads = getattr(model, "num_attention_heads", None)
    if isinstance(heads, int) and heads > 0 and heads % tp:
        raise fail("parallel.tensor", f"must divide model.num_attention_heads={heads}, got {tp} "
                                      f"(Megatron splits attention heads across tensor-parallel ranks)")
    groups = getattr(model, "num_query_groups", None)
    if isinstance(groups, int) and groups > 0 and groups % tp and tp % groups:
        raise fail("parallel.tensor", f"must divide model.num_query_groups={groups} or be a multiple of it, "
                                      f"got {tp}")
