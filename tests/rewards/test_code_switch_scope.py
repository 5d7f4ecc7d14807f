"""Code-switching penalty (C1 §4.3, §4.5, §4.6): what each stage looks at, and RLHF's "lowest score
in the batch - 10" over the whole batch, not over the shard one data-parallel rank scored."""

from __future__ import annotations

import pytest

from cascade.config.schema.common import ChatMode
from cascade.config.schema.rl import CodeSwitchPenalty
from cascade.generation import Sample
from cascade.rewards.code_switch import (
    apply_penalty,
    reasoning_chain,
    whole_batch_marks,
    whole_batch_min_minus_ten,
)
from cascade.rewards.result import RewardResult
from cascade.rl.rollout import Group, _rebase_batch_min

SUMMARY_ONLY = "<think>Two plus two is four.</think> 答案是 4"  # switches in the summary only
THINKING = "<think>二加二等于四</think> The answer is 4."


def _penalised(mode: CodeSwitchPenalty, response: str) -> float:
    return apply_penalty([{"prompt": "What is 2 + 2?", "response": response}], [RewardResult(1.0)], mode)[0].reward


def test_reasoning_chain_is_the_text_before_think_close_or_the_whole_unfinished_text() -> None:
    assert reasoning_chain(THINKING) == "二加二等于四"
    assert reasoning_chain("<think>still thinking, 还没有") == "<think>still thinking, 还没有"


@pytest.mark.parametrize("mode,penalty", [(CodeSwitchPenalty.MINUS_ONE, -1.0), (CodeSwitchPenalty.ZERO, 0.0)])
def test_math_and_code_look_at_the_reasoning_chain(mode: CodeSwitchPenalty, penalty: float) -> None:
    # §4.5: "code-switching in the reasoning chain"; Code RL keeps the rule with penalty 0 (§4.6)
    assert _penalised(mode, THINKING) == penalty
    assert _penalised(mode, "<think>不完整的推理") == penalty  # never closed: all of it is reasoning
    assert _penalised(mode, SUMMARY_ONLY) == 1.0


def test_rlhf_looks_at_thinking_and_summary() -> None:
    # §4.3: "the response (thinking and summary) contains non-English tokens"
    assert _penalised(CodeSwitchPenalty.BATCH_MIN_MINUS_TEN, SUMMARY_ONLY) == pytest.approx(-9.0)
    assert _penalised(CodeSwitchPenalty.BATCH_MIN_MINUS_TEN, THINKING) == pytest.approx(-9.0)


def _shard(rows: list[tuple[str, float]]) -> tuple[list[float], list]:
    """One rank's shard scored by the real penalty (as the scorer on that rank does)."""
    results = apply_penalty([{"prompt": "Hi?", "response": text} for text, _ in rows],
                            [RewardResult(r) for _, r in rows], CodeSwitchPenalty.BATCH_MIN_MINUS_TEN)
    return [r.reward for r in results], whole_batch_marks(results)


def test_batch_minimum_spans_every_ranks_shard() -> None:
    rank0 = _shard([("Hello!", 0.5), ("你好", 2.0)])  # this shard alone: min 0.5 -> -9.5
    rank1 = _shard([("Hey.", -3.0), ("Hi there.", 1.0)])
    assert rank0[0] == [0.5, -9.5]
    rewards = whole_batch_min_minus_ten(rank0[0] + rank1[0], rank0[1] + rank1[1])
    assert rewards == [0.5, -13.0, -3.0, 1.0]  # the whole batch's minimum is -3.0


def test_unscorable_rows_take_no_part_in_the_minimum() -> None:
    bad = RewardResult(0.0, {"error": "judge down", "code_switch": False})
    marks = whole_batch_marks([RewardResult(2.0, {"code_switch": False}), bad,
                               RewardResult(-8.0, {"code_switch": True, "reward_before_code_switch": 3.0})])
    assert marks == [(False, 2.0), (False, None), (True, 3.0)]
    assert whole_batch_min_minus_ten([2.0, 0.0, -8.0], marks) == [2.0, 0.0, -8.0]


def test_rollout_rebases_the_gathered_groups() -> None:
    def group(key: str, rewards: list[float]) -> Group:
        samples = tuple(Sample("x", (1,), (0.0,), "stop") for _ in rewards)
        return Group(key, None, ChatMode.THINKING, (9,), samples, raw_rewards=list(rewards))  # type: ignore[arg-type]

    r0, r1 = _shard([("Hello!", 0.5), ("你好", 2.0)]), _shard([("Hey.", -3.0), ("Hi there.", 1.0)])
    groups = [group("1.0.0", r0[0]), group("1.0.1", r1[0])]  # one group per rank's slot
    _rebase_batch_min(groups, [r0[1], r1[1]])
    assert [g.raw_rewards for g in groups] == [[0.5, -13.0], [-3.0, 1.0]]
