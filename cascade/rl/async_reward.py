"""Generation and scoring of one rank's share of a rollout round: scored after generation, or
streamed (slow verifiers score finished groups while the rest of the round still generates).

Why streaming and not "score batch k while batch k+1 generates": Cascade RL is strictly
on-policy, so batch k+1 must be sampled with the weights after step k, i.e. after batch k's
rewards were used. The overlap that stays on-policy is inside one batch: groups whose rollouts
are finished go to the verifier (code sandboxes, judges) while later groups are still decoding
(verl's asynchronous reward; C1 §4.6 cut verification per batch from 1172 s to 416 s this way).
The verifiers run in their own processes (sandboxes, process pools), so a scoring thread overlaps
with generation even on CPU.

Two schedules, keyed by ``reward.asynchronous`` (a registry, no if/elif):

* ``after``: generate everything, then score everything (the reference timing);
* ``stream``: generate in chunks of groups, hand each finished chunk to a scoring thread, wait
  for the tail at the end.

``RoundTiming.reward_exposed_s`` is the verification time the step actually waits for (all of
it when scoring after generation; only the tail when streaming); ``reward_busy_s`` is the
verifier's own wall time, which streaming hides behind generation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from cascade.generation import GenerationOutput, Generator, SamplingParams
from cascade.rewards import RewardResult


class BatchScorer(Protocol):
    """What ``cascade.rewards.build_scorer`` returns."""

    def score(self, rows: Sequence[dict[str, Any]]) -> list[RewardResult]: ...


@dataclass(frozen=True)
class PromptJob:
    """One group to generate: prompt ids, sampling parameters, and a row builder that turns a
    sampled response text into the reward scorer's input row."""

    prompt_ids: tuple[int, ...]
    params: SamplingParams
    row: Callable[[str], dict[str, Any]]


@dataclass
class ScoredGroup:
    output: GenerationOutput
    results: list[RewardResult]


@dataclass
class RoundTiming:
    generation_s: float = 0.0
    reward_exposed_s: float = 0.0
    reward_busy_s: float = 0.0
    chunks: int = 0

    def merge(self, other: "RoundTiming") -> "RoundTiming":
        return RoundTiming(self.generation_s + other.generation_s, self.reward_exposed_s + other.reward_exposed_s,
                           self.reward_busy_s + other.reward_busy_s, self.chunks + other.chunks)


@dataclass
class _Timed:
    """A scoring call that records how long the verifier itself took."""

    scorer: BatchScorer
    busy_s: list[float] = field(default_factory=list)

    def __call__(self, rows: list[dict[str, Any]]) -> list[RewardResult]:
        t0 = time.perf_counter()
        try:
            return self.scorer.score(rows)
        finally:
            self.busy_s.append(time.perf_counter() - t0)


def _rows(jobs: Sequence[PromptJob], outputs: Sequence[GenerationOutput]) -> list[dict[str, Any]]:
    return [job.row(s.text) for job, out in zip(jobs, outputs) for s in out.samples]


def _split(results: list[RewardResult], outputs: Sequence[GenerationOutput]) -> list[ScoredGroup]:
    groups, k = [], 0
    for out in outputs:
        n = len(out.samples)
        groups.append(ScoredGroup(out, results[k : k + n]))
        k += n
    return groups


def _generate(generator: Generator, jobs: Sequence[PromptJob]) -> list[GenerationOutput]:
    return generator.generate([list(j.prompt_ids) for j in jobs], [j.params for j in jobs])


def score_after_generation(generator: Generator, scorer: BatchScorer, jobs: Sequence[PromptJob],
                           chunk_groups: int) -> tuple[list[ScoredGroup], RoundTiming]:
    """Generate every job, then score every rollout in one batch."""
    if not jobs:
        return [], RoundTiming()
    t0 = time.perf_counter()
    outputs = _generate(generator, jobs)
    t1 = time.perf_counter()
    timed = _Timed(scorer)
    results = timed(_rows(jobs, outputs))
    t2 = time.perf_counter()
    return _split(results, outputs), RoundTiming(t1 - t0, t2 - t1, sum(timed.busy_s), 1)


def score_while_generating(generator: Generator, scorer: BatchScorer, jobs: Sequence[PromptJob],
                           chunk_groups: int) -> tuple[list[ScoredGroup], RoundTiming]:
    """Generate ``chunk_groups`` groups at a time; each finished chunk is scored in a background
    thread (one, so chunks are scored in order and the scorer is never re-entered) while the
    next chunk decodes."""
    if not jobs:
        return [], RoundTiming()
    timed = _Timed(scorer)
    pending: list[tuple[list[GenerationOutput], Future]] = []
    gen_s = 0.0
    step = max(1, chunk_groups)
    with ThreadPoolExecutor(1, thread_name_prefix="reward") as pool:
        for start in range(0, len(jobs), step):
            chunk = list(jobs[start : start + step])
            t0 = time.perf_counter()
            outputs = _generate(generator, chunk)
            gen_s += time.perf_counter() - t0
            pending.append((outputs, pool.submit(timed, _rows(chunk, outputs))))
        t_wait = time.perf_counter()
        groups: list[ScoredGroup] = []
        for outputs, fut in pending:
            groups.extend(_split(fut.result(), outputs))
        exposed = time.perf_counter() - t_wait
    return groups, RoundTiming(gen_s, exposed, sum(timed.busy_s), len(pending))


ROUND_SCHEDULES: dict[bool, Callable[[Generator, BatchScorer, Sequence[PromptJob], int],
                                     tuple[list[ScoredGroup], RoundTiming]]] = {
    False: score_after_generation,
    True: score_while_generating,
}
