"""Reward registry keyed by `RewardDomain` (verl-style decorator registry, no if/elif dispatch).

A domain scorer takes a batch of rows (dicts) and returns one `RewardResult` per row. Scorers
never raise for a bad row: the row gets reward 0 and `info["error"]`, so one malformed rollout
cannot stop an RL step or a CLI run.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cascade.config.schema.rl import RewardConfig, RewardDomain

log = logging.getLogger(__name__)

Row = Mapping[str, Any]


@dataclass
class RewardResult:
    """One row's score: `reward` is what the RL loss sees, `info` is for logs and debugging."""

    reward: float
    info: dict[str, Any] = field(default_factory=dict)


def error_result(message: str, **info: Any) -> RewardResult:
    """The result for a row that cannot be scored (contract: reward 0 plus `info.error`)."""
    return RewardResult(0.0, {"error": message, **info})


class DomainScorer(Protocol):
    """What every registered domain builds: a batch scorer with an explicit lifetime."""

    def score(self, rows: Sequence[Row]) -> list[RewardResult]: ...

    def close(self) -> None: ...


ScorerFactory = Callable[[RewardConfig], DomainScorer]
_REGISTRY: dict[RewardDomain, ScorerFactory] = {}

# Modules that register the built-in domains; imported lazily so that importing the registry
# stays cheap (no sympy, torch or nltk until a scorer is built).
_BUILTIN_MODULES = (
    "cascade.rewards.math_reward",
    "cascade.rewards.code.reward",
    "cascade.rewards.instruction",
    "cascade.rewards.rm_reward",
    "cascade.rewards.swe",
)


def register_reward(domain: RewardDomain) -> Callable[[ScorerFactory], ScorerFactory]:
    """Class/function decorator: `@register_reward(RewardDomain.MATH) class MathReward: ...`."""

    def deco(factory: ScorerFactory) -> ScorerFactory:
        if domain in _REGISTRY and _REGISTRY[domain] is not factory:
            raise ValueError(f"reward domain {domain.value!r} registered twice")
        _REGISTRY[domain] = factory
        return factory

    return deco


def _load_builtins() -> None:
    for name in _BUILTIN_MODULES:
        importlib.import_module(name)


def registered_domains() -> list[RewardDomain]:
    """Every domain with a scorer (after importing the built-in domain modules)."""
    _load_builtins()
    return sorted(_REGISTRY, key=lambda d: d.value)


def build_scorer(cfg: RewardConfig) -> DomainScorer:
    """The scorer for `cfg.domain`, wrapped with the stage's code-switching penalty."""
    from cascade.rewards.code_switch import CodeSwitchScorer

    _load_builtins()
    try:
        factory = _REGISTRY[RewardDomain(cfg.domain)]
    except KeyError:
        known = ", ".join(d.value for d in _REGISTRY)
        raise ValueError(f"no reward registered for domain {cfg.domain!r} (known: {known})") from None
    return CodeSwitchScorer(factory(cfg), cfg.code_switch)


def require_fields(row: Row, names: Sequence[str]) -> str | None:
    """None if `row` has every field in `names`, else an error message naming what is missing."""
    if not isinstance(row, Mapping):
        return f"row is {type(row).__name__}, not an object"
    missing = [n for n in names if n not in row or row[n] is None]
    return f"missing field(s): {', '.join(missing)}" if missing else None
