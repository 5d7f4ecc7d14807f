"""Which rollouts and prompts train: DAPO dynamic sampling, overlong filtering, and the Math RL
epoch-level pass-rate filter.

- Dynamic sampling (C1 §4.4 IF-RL, C2 §4.2; DAPO): a group whose rewards are all equal has zero
  advantage everywhere, so it is dropped and the batch is refilled from further generation rounds.
  When the bound on rounds is reached the batch trains on what it has and a warning is logged:
  crashing there (verl #953) or spinning forever (NeMo-RL PR #3154) are the known failure modes.
- Overlong filtering (C1 Tables 16–20, per stage): a truncated rollout is either *skipped* (masked
  out of the loss and of its group's statistics) or kept with reward 0.
- Epoch pass-rate filter (C1 §4.5): after each epoch, problems solved by 0% or 100% of their
  rollouts leave the pool; each epoch a left-out hard problem comes back with probability 0.10 and
  an easy one with 0.01. Stateful and serialisable for resume; its draws are hashed from
  (seed, epoch, problem id), so they do not depend on order or sharding. Sub-stages of one
  curriculum (Math RL 24K -> 32K -> 40K, C1 Table 17) hand the whole prompt stream on
  (``write_handoff``/``read_handoff``) so the filter's classes and the epoch continue.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from cascade import fileio
from cascade.config.schema.rl import EpochPassRateFilter, FilterConfig
from cascade.rl._rng import stable_uniform
from cascade.rl.advantages import constant_groups
from cascade.rl.aggregation import as_mask

log = logging.getLogger(__name__)

G = TypeVar("G")  # whatever the trainer keeps per prompt group (its G rollouts, tokens, infos)


# ----------------------------------------------------------------------------- dynamic sampling


def informative_groups(rewards: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``[num_groups]`` bool: True where the group's valid rewards are not all equal (DAPO keep-mask)."""
    return ~constant_groups(rewards, valid)


@dataclass
class GenerationRound(Generic[G]):
    """One generation round as the trainer hands it to :func:`fill_batch`: per-group items and their
    rewards ``[n, G]`` (plus the valid mask after overlong filtering, if any)."""

    groups: Sequence[G]
    rewards: torch.Tensor
    valid: torch.Tensor | None = None


@dataclass
class FillResult(Generic[G]):
    """The kept groups (at most ``target``), their rewards/valid rows, and the bookkeeping."""

    groups: list[G]
    rewards: torch.Tensor
    valid: torch.Tensor
    target: int
    rounds: int
    generated_groups: int
    dropped_groups: int

    @property
    def filled(self) -> bool:
        return len(self.groups) >= self.target

    @property
    def dropped_frac(self) -> float:
        """Fraction of generated groups dropped as uninformative (metric ``filter/groups_dropped_frac``)."""
        return self.dropped_groups / self.generated_groups if self.generated_groups else 0.0


def fill_batch(
    generate: Callable[[int], GenerationRound[G]], target_groups: int, cfg: FilterConfig | None = None
) -> FillResult[G]:
    """Generate until ``target_groups`` informative groups are kept (DAPO dynamic sampling).

    ``generate(needed)`` produces one round (ideally ``needed`` groups; more or fewer is fine).
    With ``cfg.dynamic_sampling`` off, one round is generated and every group kept. With it on,
    uninformative groups are dropped and up to ``cfg.max_refill_rounds`` further rounds refill the
    batch (so at most ``1 + max_refill_rounds`` rounds); surplus groups of the last round are
    discarded. If the batch cannot be filled (or a round comes back empty) this logs a warning with
    the counts and returns the partial, possibly empty, batch: it never raises for that.
    """
    cfg = cfg or FilterConfig()
    max_rounds = 1 + (cfg.max_refill_rounds if cfg.dynamic_sampling else 0)
    kept: list[G] = []
    rewards: list[torch.Tensor] = []
    valid: list[torch.Tensor] = []
    generated = dropped = rounds = 0
    while len(kept) < target_groups and rounds < max_rounds:
        batch = generate(target_groups - len(kept))
        rounds += 1
        n = len(batch.groups)
        if n == 0:
            break
        if batch.rewards.shape[0] != n:
            raise ValueError(f"round has {n} groups but rewards for {batch.rewards.shape[0]}")
        v = torch.ones_like(batch.rewards, dtype=torch.bool) if batch.valid is None else as_mask(batch.valid)
        keep = (informative_groups(batch.rewards, v) if cfg.dynamic_sampling
                else torch.ones(n, dtype=torch.bool))
        idx = keep.nonzero().flatten().tolist()
        generated += n
        dropped += n - len(idx)
        idx = idx[: target_groups - len(kept)]
        kept.extend(batch.groups[i] for i in idx)
        rewards.append(batch.rewards[idx])
        valid.append(v[idx])
    result = FillResult(
        groups=kept,
        rewards=torch.cat(rewards) if rewards else torch.empty(0, 0),
        valid=torch.cat(valid) if valid else torch.empty(0, 0, dtype=torch.bool),
        target=target_groups,
        rounds=rounds,
        generated_groups=generated,
        dropped_groups=dropped,
    )
    if not result.filled:
        log.warning(
            "dynamic sampling filled %d/%d groups after %d round(s) (%d groups generated, %d dropped as "
            "all-equal rewards); training on the partial batch",
            len(kept), target_groups, rounds, generated, dropped,
        )
    return result


# ----------------------------------------------------------------------------- overlong filtering


@dataclass
class OverlongResult:
    """Rewards after the overlong rule, and which rollouts take part in the loss and group stats."""

    rewards: torch.Tensor
    valid: torch.Tensor


def _skip_truncated(rewards: torch.Tensor, truncated: torch.Tensor) -> OverlongResult:
    return OverlongResult(rewards=rewards, valid=~truncated)


def _zero_truncated(rewards: torch.Tensor, truncated: torch.Tensor) -> OverlongResult:
    return OverlongResult(rewards=torch.where(truncated, torch.zeros_like(rewards), rewards),
                          valid=torch.ones_like(truncated))


_OVERLONG: dict[bool, Callable[[torch.Tensor, torch.Tensor], OverlongResult]] = {
    True: _skip_truncated,
    False: _zero_truncated,
}


def apply_overlong(
    rewards: torch.Tensor, truncated: torch.Tensor, overlong_filtering: bool
) -> OverlongResult:
    """``overlong_filtering=True``: truncated rollouts are skipped (``valid`` False, reward kept but
    unused); False: they stay in and earn reward 0. Any matching shapes (``[groups, G]`` usually)."""
    if rewards.shape != truncated.shape:
        raise ValueError(f"rewards shape {tuple(rewards.shape)} != truncated shape {tuple(truncated.shape)}")
    return _OVERLONG[bool(overlong_filtering)](rewards, as_mask(truncated))


# ----------------------------------------------------------------------------- epoch pass-rate filter

HARD, EASY, INFORMATIVE = "hard", "easy", "informative"


@dataclass
class PassRateFilter:
    """C1 §4.5 epoch-level filter over a problem pool (ids: ints or strings).

    During an epoch call :meth:`record` with each rollout's problem id and reward. At the epoch's
    end :meth:`end_epoch` classifies every recorded problem by its pass rate (0 → hard, 1 → easy,
    else informative) and returns the pool for the next epoch: informative and never-seen problems
    stay; hard ones are kept with probability ``readmit_hard``, easy ones with ``readmit_easy``.
    A problem keeps its last class until it is seen again, so a left-out problem gets a new draw
    every epoch.
    """

    cfg: EpochPassRateFilter = field(default_factory=EpochPassRateFilter)
    seed: int = 0
    epoch: int = 0
    status: dict[Hashable, str] = field(default_factory=dict)
    _counts: dict[Hashable, list[int]] = field(default_factory=dict, init=False, repr=False)  # [passes, n]
    last_stats: dict[str, float] = field(default_factory=dict, init=False)

    def record(self, problem_ids: Sequence[Hashable], rewards: torch.Tensor | Sequence[float]) -> None:
        """Add one batch's rollouts: ``problem_ids[k]`` is the problem of rollout k."""
        values = torch.as_tensor(rewards, dtype=torch.float64).flatten().tolist()
        if len(values) != len(problem_ids):
            raise ValueError(f"{len(problem_ids)} problem ids for {len(values)} rewards")
        for pid, r in zip(problem_ids, values):
            c = self._counts.setdefault(pid, [0, 0])
            c[0] += int(r >= self.cfg.pass_threshold)
            c[1] += 1

    def _admit_probability(self, pid: Hashable) -> float:
        return {HARD: self.cfg.readmit_hard, EASY: self.cfg.readmit_easy}.get(self.status.get(pid, ""), 1.0)

    def admits(self, pid: Hashable, epoch: int | None = None) -> bool:
        """Whether ``pid`` is in the pool of ``epoch`` (default: the current one)."""
        p = self._admit_probability(pid)
        epoch = self.epoch if epoch is None else epoch
        return p >= 1.0 or stable_uniform(self.seed, epoch, pid) < p

    def end_epoch(self, pool: Iterable[Hashable]) -> list[Hashable]:
        """Close the epoch: classify what was recorded, advance the epoch, and return the problems of
        ``pool`` (in order) that the next epoch trains on."""
        for pid, (passes, total) in self._counts.items():
            self.status[pid] = HARD if passes == 0 else EASY if passes == total else INFORMATIVE
        seen = len(self._counts)
        self._counts = {}
        self.epoch += 1
        pool = list(pool)
        kept = [pid for pid in pool if self.admits(pid)]
        cls = [self.status.get(pid, INFORMATIVE) for pid in pool]
        kept_cls = [self.status.get(pid, INFORMATIVE) for pid in kept]
        self.last_stats = {
            "pass_rate_filter/epoch": float(self.epoch),
            "pass_rate_filter/seen": float(seen),
            "pass_rate_filter/hard": float(cls.count(HARD)),
            "pass_rate_filter/easy": float(cls.count(EASY)),
            "pass_rate_filter/readmitted_hard": float(kept_cls.count(HARD)),
            "pass_rate_filter/readmitted_easy": float(kept_cls.count(EASY)),
            "pass_rate_filter/kept_frac": len(kept) / len(pool) if pool else 0.0,
        }
        log.info("epoch pass-rate filter: %s", self.last_stats)
        return kept

    def state_dict(self) -> dict[str, Any]:
        """Plain data (lists, not dict keys, so int ids survive JSON too)."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "status": [[pid, s] for pid, s in self.status.items()],
            "counts": [[pid, c[0], c[1]] for pid, c in self._counts.items()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.status = {_key(pid): s for pid, s in state["status"]}
        self._counts = {_key(pid): [int(p), int(n)] for pid, p, n in state["counts"]}


def _key(pid: Any) -> Hashable:
    return tuple(pid) if isinstance(pid, list) else pid  # JSON turns tuple ids into lists


# ----------------------------------------------------------------------------- hand-off between stages

HANDOFF_FILE = "prompt_stream_handoff.json"


def write_handoff(stage_dir: str | Path, stream_state: dict[str, Any], fingerprint: str) -> Path:
    """At a stage's end: its prompt stream's state (epoch, index, pass-rate filter) beside its
    outputs, so a following sub-stage of the same curriculum (``carry_over``) continues it."""
    path = Path(stage_dir) / HANDOFF_FILE
    fileio.atomic_write_text(path, json.dumps({"fingerprint": fingerprint, "stream": stream_state}))
    return path


def read_handoff(stage_dir: str | Path, fingerprint: str) -> dict[str, Any]:
    """The stream state a previous stage handed on; refuses a missing file or another prompt set
    (the epoch orders are functions of the records, so a state of other records means nothing)."""
    path = Path(stage_dir) / HANDOFF_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"filters.epoch_pass_rate.carry_over=true but {path} does not exist: the stage this one starts "
            "from wrote no prompt-stream hand-off (was it an RL stage with filters.epoch_pass_rate?)")
    data = json.loads(path.read_text())
    if data.get("fingerprint") != fingerprint:
        raise ValueError(
            f"filters.epoch_pass_rate.carry_over=true but {path} was written for another prompt set "
            f"(fingerprint {data.get('fingerprint')} != {fingerprint}): the sub-stages must read the same data")
    return data["stream"]
