"""Rollout rounds: prompts -> rendered prompt ids -> G seeded samples each -> rewards -> groups.

Why here and not in the loop: a round is what DAPO dynamic sampling asks for
(``cascade.rl.fill_batch`` calls ``round(needed)`` until the batch is full), and it is the
only collective piece of generation: each rank generates and scores its shard of the round's
prompts (generation-TP groups share a shard), then every rank receives every group, so all
ranks make the same filtering decisions and build the same training batch.

Determinism (resume regenerates identically): sample j of a group is seeded by
``derive_seed(train.seed, "rollout", step, round, slot, j)``, independent of which rank or batch
generated it; thinking/instruct modes come from ``assign_modes`` seeded by (seed, step, round).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from cascade.config.schema.common import ChatMode
from cascade.config.schema.rl import CodeSwitchPenalty, RewardDomain, RLStageConfig
from cascade.data.records import RLRecord
from cascade.generation import Generator, Sample, SamplingParams, derive_seed
from cascade.rewards import RewardResult
from cascade.rewards.code_switch import whole_batch_marks, whole_batch_min_minus_ten
from cascade.rl import GenerationRound, apply_overlong, assign_modes
from cascade.rl.async_reward import ROUND_SCHEDULES, BatchScorer, PromptJob, RoundTiming
from cascade.rl.data import PromptStream

log = logging.getLogger(__name__)

PromptEncoder = Callable[[RLRecord, ChatMode], list[int]]

# Without overlong filtering a truncated rollout earns 0 (C1 Table 17: "overlong -> reward 0"),
# except where the paper has the scorer judge the unfinished text itself: RLHF sends a response
# without `</think>` to the reward model whole, "which naturally gets a low score" (C1 §4.3); an
# RM score of 0 could even beat that, rewarding truncation.
TRUNCATED_KEEPS_SCORE: frozenset[RewardDomain] = frozenset({RewardDomain.REWARD_MODEL})


@dataclass
class Group:
    """One prompt's G rollouts with their rewards (``rewards`` after the overlong rule)."""

    key: str  # "<step>.<round>.<slot>": unique within the stage
    record: RLRecord
    mode: ChatMode
    prompt_ids: tuple[int, ...]
    samples: tuple[Sample, ...]
    raw_rewards: list[float]
    rewards: list[float] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    errors: int = 0  # rollouts the scorer could not score (reward 0, info.error)
    unsolved_masked: bool = False  # filters.mask_unsolved_below: no rollout beat the bar, no loss


@dataclass
class StepRollouts:
    """Everything generated during one step (all rounds, kept or dropped): for metrics."""

    groups: list[Group] = field(default_factory=list)
    timing: RoundTiming = field(default_factory=RoundTiming)
    rounds: int = 0


def sampling_seed(seed: int, step: int, round_index: int, slot: int) -> int:
    """The base seed of one group; the generator derives sample j's seed from it."""
    return derive_seed(seed, "rollout", step, round_index, slot)


class RolloutCollector:
    """Produces ``GenerationRound[Group]`` for ``fill_batch`` (collective over all ranks)."""

    def __init__(self, cfg: RLStageConfig, generator: Generator, scorer: BatchScorer,
                 stream: PromptStream, encode: PromptEncoder, *, gen_tp: int = 1,
                 chunk_groups: int = 1) -> None:
        self.cfg, self.generator, self.scorer = cfg, generator, scorer
        self.stream, self.encode = stream, encode
        self.gen_tp, self.chunk_groups = gen_tp, chunk_groups
        self.schedule = ROUND_SCHEDULES[bool(cfg.reward is not None and cfg.reward.asynchronous)]  # MOPD: no reward
        self.step = 0
        self.current = StepRollouts()

    def begin_step(self, step: int) -> None:
        self.step, self.current = step, StepRollouts()

    # ---- one round --------------------------------------------------------------------------
    def _params(self, round_index: int, slot: int) -> SamplingParams:
        r = self.cfg.rollout
        return SamplingParams(n=r.num_generations, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                              max_new_tokens=r.max_response_length,
                              seed=sampling_seed(self.cfg.train.seed, self.step, round_index, slot))

    def _shard(self) -> tuple[int, int]:
        world = dist.get_world_size() if dist.is_initialized() else 1
        rank = dist.get_rank() if dist.is_initialized() else 0
        if world % self.gen_tp:
            raise ValueError(f"rollout.tensor_parallel={self.gen_tp} does not divide the world size {world}")
        return rank // self.gen_tp, world // self.gen_tp

    def round(self, needed: int) -> GenerationRound[Group]:
        round_index = self.current.rounds
        self.current.rounds += 1
        records = self.stream.take(needed)
        modes = assign_modes(needed, self.cfg.rollout.mode, seed=derive_seed(self.cfg.train.seed, "modes", round_index),
                             step=self.step)
        shard, num_shards = self._shard()
        mine = list(range(shard, needed, num_shards))
        jobs = [PromptJob(tuple(self.encode(records[k], modes[k])), self._params(round_index, k),
                          self._row_fn(records[k], round_index, k)) for k in mine]
        scored, timing = self.schedule(self.generator, self.scorer, jobs, self.chunk_groups)
        local = [(k, sg.output.prompt_token_ids, sg.output.samples, [r.reward for r in sg.results],
                  _errors(sg.results), whole_batch_marks(sg.results)) for k, sg in zip(mine, scored)]
        everything, timings = _gather((local, timing), self.gen_tp)
        by_slot = {item[0]: item for part in everything for item in part}
        groups = []
        for k in range(needed):
            _, ids, samples, rewards, errors, _marks = by_slot[k]
            groups.append(Group(f"{self.step}.{round_index}.{k}", records[k], modes[k], tuple(ids),
                                tuple(samples), list(rewards), errors=errors))
        if self.cfg.reward is not None and self.cfg.reward.code_switch is CodeSwitchPenalty.BATCH_MIN_MINUS_TEN:
            _rebase_batch_min(groups, [by_slot[k][5] for k in range(needed)])  # C1 §4.3: the whole batch
        self.current.timing = self.current.timing.merge(_slowest(timings))
        return self._finish(groups)

    def _row_fn(self, record: RLRecord, round_index: int, slot: int) -> Callable[[str], dict[str, Any]]:
        base = record.reward_fields()
        group = f"{self.step}.{round_index}.{slot}"  # instruction_rm z-normalises the RM score per group
        return lambda text: {**base, "response": text, "group": group}

    def _finish(self, groups: list[Group]) -> GenerationRound[Group]:
        if not groups:
            return GenerationRound(groups, torch.empty(0, self.cfg.rollout.num_generations))
        raw = torch.tensor([g.raw_rewards for g in groups], dtype=torch.float32)
        truncated = torch.tensor([[s.truncated for s in g.samples] for g in groups], dtype=torch.bool)
        if not self.cfg.filters.overlong_filtering:
            keeps = torch.tensor([g.record.domain in TRUNCATED_KEEPS_SCORE for g in groups])[:, None]
            truncated = truncated & ~keeps
        over = apply_overlong(raw, truncated, self.cfg.filters.overlong_filtering)
        empty = torch.tensor([[len(s.token_ids) == 0 for s in g.samples] for g in groups], dtype=torch.bool)
        valid = over.valid & ~empty  # nothing sampled (prompt filled the context): no loss, no stats
        bar = self.cfg.filters.mask_unsolved_below
        if bar is not None:  # C2 agentless SWE RL: a prompt no rollout solved trains nothing
            unsolved = raw.max(dim=1).values <= bar
            valid = valid & ~unsolved[:, None]
            for g, u in zip(groups, unsolved.tolist()):
                g.unsolved_masked = u
        for g, r, v in zip(groups, over.rewards.tolist(), valid.tolist()):
            g.rewards, g.valid = r, v
        self.stream.record_rewards([g.record.id for g in groups for _ in g.samples],
                                   [x for g in groups for x in g.raw_rewards])
        self.current.groups.extend(groups)
        return GenerationRound(groups, over.rewards, valid)


def _rebase_batch_min(groups: list[Group], marks: list[list[tuple[bool, float | None]]]) -> None:
    """RLHF's "lowest score in the batch - 10" over every rank's rollouts of the round (each scorer
    applied it over its own shard only)."""
    flat = whole_batch_min_minus_ten([r for g in groups for r in g.raw_rewards], [m for ms in marks for m in ms])
    start = 0
    for g in groups:
        g.raw_rewards, start = flat[start:start + len(g.raw_rewards)], start + len(g.raw_rewards)


def _errors(results: Sequence[RewardResult]) -> int:
    return sum("error" in r.info for r in results)


def _gather(obj: Any, gen_tp: int) -> tuple[list[Any], list[RoundTiming]]:
    """Every rank's (groups, timing); with generation TP only the first rank of each group counts."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [obj[0]], [obj[1]]
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, obj)
    leaders = parts[::gen_tp]
    return [p[0] for p in leaders], [p[1] for p in parts]


def _slowest(timings: Sequence[RoundTiming]) -> RoundTiming:
    """A step waits for its slowest rank: per-field maxima."""
    return RoundTiming(max(t.generation_s for t in timings), max(t.reward_exposed_s for t in timings),
                       max(t.reward_busy_s for t in timings), max(t.chunks for t in timings))
