"""RLHF reward (C1 §4.3) and the IF-RL combined reward for thinking models (C1 §4.4).

RLHF: the RM scores (question, answer) with its own chat template, where the answer is the text
after `</think>` — or the whole unfinished response when `</think>` is missing, which naturally
scores low. The policy's ` /think` / ` /no_think` flags are removed from the question first: they
steer the policy, not the RM.

IF-RL (thinking): `r = R_IF + sigmoid(z)` if `R_IF == 1` else `0`, where `z` is the RM score
z-normalised within the prompt's group of rollouts (`combine_if_rm`).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.rewards.registry import RewardResult, Row, error_result, register_reward, require_fields
from cascade.rewards.reward_model.scorer import Message, RewardModelScorer, make_rm_scorer
from cascade.rewards.text import THINK_CLOSE, answer_or_whole

_FLAG = re.compile(r"\s*/(?:no_)?think\s*$")
GROUP_KEYS = ("group", "uid", "prompt_id")


def rm_conversation(prompt: Any, response: str) -> list[Message]:
    """The conversation the RM scores: the prompt turns (flags stripped) plus the answer."""
    if isinstance(prompt, str):
        turns = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        turns = [{"role": str(m.get("role", "user")), "content": str(m.get("content", ""))} for m in prompt]
    else:
        raise ValueError(f"prompt must be a string or a list of messages, got {type(prompt).__name__}")
    for m in turns:
        if m["role"] == "user":
            m["content"] = _FLAG.sub("", m["content"])
    return turns + [{"role": "assistant", "content": answer_or_whole(response).strip()}]


@register_reward(RewardDomain.REWARD_MODEL)
class RewardModelReward:
    """Batch scorer for `{"prompt", "response"}` rows: the reward is the raw RM score."""

    def __init__(self, cfg: RewardConfig, scorer: RewardModelScorer | None = None) -> None:
        if scorer is None:
            if cfg.reward_model is None:
                raise ValueError("reward domain reward_model needs `reward_model` (endpoint or checkpoint)")
            scorer = make_rm_scorer(cfg.reward_model, timeout_s=max(cfg.timeout_s, 60.0))
        self.rm = scorer

    def score(self, rows: Sequence[Row]) -> list[RewardResult]:
        results: list[RewardResult | None] = [None] * len(rows)
        todo, convs = [], []
        for i, row in enumerate(rows):
            err = require_fields(row, ("prompt", "response"))
            if err is None:
                try:
                    convs.append(rm_conversation(row["prompt"], str(row["response"])))
                    todo.append(i)
                    continue
                except ValueError as e:
                    err = str(e)
            results[i] = error_result(err)
        if todo:
            try:
                scores = self.rm.score(convs)
            except Exception as e:  # the RM is down: every row says so (the trainer checks info)
                scores = [None] * len(todo)
                message = f"reward model failed: {e}"
            for i, s in zip(todo, scores):
                if s is None:
                    results[i] = error_result(message)
                else:
                    whole = THINK_CLOSE not in str(rows[i]["response"])
                    results[i] = RewardResult(float(s), {"rm_score": float(s), "scored_whole_response": whole})
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.rm.close()


def group_key(row: Row) -> Hashable:
    """The rollout group of a row: an explicit id field, else its prompt."""
    for k in GROUP_KEYS:
        if isinstance(row, dict) and row.get(k) is not None:
            return (k, str(row[k]))
    prompt = row.get("prompt") if isinstance(row, dict) else None
    return ("prompt", prompt if isinstance(prompt, str) else repr(prompt))


def combine_if_rm(r_if: Sequence[float], rm: Sequence[float], groups: Sequence[Hashable],
                  eps: float = 1e-6) -> list[float]:
    """`R_IF + sigmoid(z(RM))` if `R_IF == 1` else 0, z over each group (population std)."""
    by_group: dict[Hashable, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by_group[g].append(i)
    z = [0.0] * len(rm)
    for idx in by_group.values():
        vals = [rm[i] for i in idx]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
        for i in idx:
            z[i] = (rm[i] - mean) / (std + eps) if std > 0 else 0.0
    return [(1.0 + 1.0 / (1.0 + math.exp(-zi))) if ri == 1.0 else 0.0 for ri, zi in zip(r_if, z)]


@register_reward(RewardDomain.INSTRUCTION_RM)
class InstructionRMReward:
    """IF-RL for thinking models: composes the instruction reward and the RM reward."""

    def __init__(self, cfg: RewardConfig, rm: RewardModelScorer | None = None) -> None:
        from cascade.rewards.instruction.reward import InstructionReward

        self.instruction = InstructionReward(cfg)
        self.rm = RewardModelReward(cfg, rm)

    def score(self, rows: Sequence[Row]) -> list[RewardResult]:
        r_if = self.instruction.score(rows)
        r_rm = self.rm.score(rows)
        ok = [i for i in range(len(rows)) if "error" not in r_if[i].info and "error" not in r_rm[i].info]
        combined = combine_if_rm([r_if[i].reward for i in ok], [r_rm[i].reward for i in ok],
                                 [group_key(rows[i]) for i in ok])
        results = [error_result(r_if[i].info.get("error") or r_rm[i].info.get("error", ""))
                   for i in range(len(rows))]
        for i, r in zip(ok, combined):
            results[i] = RewardResult(r, {**r_if[i].info, "r_if": r_if[i].reward, "rm_score": r_rm[i].reward})
        return results

    def close(self) -> None:
        self.instruction.close()
        self.rm.close()
