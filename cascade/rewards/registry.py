"""Reward registry keyed by `RewardDomain` (verl-style decorator registry, no if/elif dispatch).

A domain scorer takes a batch of rows (dicts) and returns one `RewardResult` per row. Scorers
never raise for a bad row: the row gets reward 0 and `info["error"]`, so one malformed rollout
cannot stop an RL step or a CLI run.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable

from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.rewards.code_switch import CodeSwitchScorer
from cascade.rewards.result import (
    DomainScorer,
    RewardResult,
    Row,
    error_result,
    require_fields,
    require_text_response,
)
from cascade.rewards.routing import RoutedScorer

__all__ = ["DomainScorer", "RewardResult", "Row", "build_scorer", "error_result", "register_reward",
           "registered_domains", "require_fields", "require_text_response"]

log = logging.getLogger(__name__)

ScorerFactory = Callable[[RewardConfig], DomainScorer]
_REGISTRY: dict[RewardDomain, ScorerFactory] = {}

# Modules that register the built-in domains; imported lazily so that importing the registry
# stays cheap (no sympy, torch or nltk until a scorer is built).
_BUILTIN_MODULES = (
    "cascade.rewards.math",
    "cascade.rewards.code.reward",
    "cascade.rewards.instruction.reward",
    "cascade.rewards.reward_model.domains",
    "cascade.rewards.swe.reward",
    "cascade.rewards.mcqa",
    "cascade.rewards.structured_output",
    "cascade.rewards.tool_calling.reward",
    "cascade.rewards.genrm.reward",
    "cascade.rewards.long_context",
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


def _domain_scorer(cfg: RewardConfig, domain: RewardDomain) -> DomainScorer:
    try:
        factory = _REGISTRY[domain]
    except KeyError:
        known = ", ".join(d.value for d in _REGISTRY)
        raise ValueError(f"no reward registered for domain {domain.value!r} (known: {known})") from None
    return factory(dataclasses.replace(cfg, domain=domain, domains=[]))


def build_scorer(cfg: RewardConfig) -> DomainScorer:
    """The scorer for `cfg.domain` (or, for `cfg.domains`, one per domain with each row routed to
    its record's), wrapped with the stage's code-switching penalty (applied over the whole batch,
    so RLHF's batch minimum spans every domain)."""
    _load_builtins()
    if cfg.domain is not None:
        return CodeSwitchScorer(_domain_scorer(cfg, RewardDomain(cfg.domain)), cfg.code_switch)
    scorers: dict[RewardDomain, DomainScorer] = {}
    try:
        for domain in cfg.scored_domains:
            scorers[domain] = _domain_scorer(cfg, domain)
    except BaseException:
        for built in scorers.values():
            built.close()
        raise
    return CodeSwitchScorer(RoutedScorer(scorers), cfg.code_switch)
