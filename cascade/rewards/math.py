"""Math RL reward (C1 §4.5): the last `\\boxed{}` after `</think>`, checked by symbolic
equivalence with math-verify; 1 if equivalent, else 0.

math-verify enforces its own time limits with `signal.alarm`, which works only in a process's
main thread; so every check runs in a `ProcessPool` worker's main thread, and the pool kills a
worker that still overruns (sympy can spin in code the alarm never interrupts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.rewards.pool import ProcessPool
from cascade.rewards.registry import RewardResult, Row, error_result, register_reward, require_fields
from cascade.rewards.text import last_boxed, split_thinking

FIELDS = ("response", "ground_truth")


def _gold_text(ground_truth: str) -> str:
    gt = ground_truth.strip()
    if "\\boxed" in gt or "\\fbox" in gt:
        return gt
    if gt.startswith("$") and gt.endswith("$"):
        gt = gt.strip("$")
    return "\\boxed{" + gt + "}"


def check_answer(payload: dict[str, Any]) -> dict[str, Any]:
    """Worker-side check of one row: `{"response", "ground_truth", "timeout_s"}` -> verdict dict."""
    from math_verify import parse, verify  # imported in the worker only (sympy is heavy)

    split = split_thinking(str(payload["response"]))
    if split.answer is None:
        return {"correct": False, "reason": "unfinished_thinking", "extracted": None}
    pred = last_boxed(split.answer)
    if pred is None:
        return {"correct": False, "reason": "no_boxed_answer", "extracted": None}
    budget = max(1, int(payload.get("timeout_s", 5)))
    gold = parse(_gold_text(str(payload["ground_truth"])), parsing_timeout=budget)
    if not gold:
        raise ValueError(f"ground truth {payload['ground_truth']!r} does not parse")
    target = parse("\\boxed{" + pred + "}", parsing_timeout=budget)
    if not target:
        return {"correct": False, "reason": "unparsable_answer", "extracted": pred}
    ok = bool(verify(gold, target, timeout_seconds=budget))
    return {"correct": ok, "reason": "equivalent" if ok else "not_equivalent", "extracted": pred}


def warm_up() -> None:
    """Worker initialiser: import and exercise math-verify once so the first task is fast."""
    check_answer({"response": "\\boxed{1}", "ground_truth": "1"})


@register_reward(RewardDomain.MATH)
class MathReward:
    """Batch scorer for `{"response", "ground_truth"}` rows."""

    def __init__(self, cfg: RewardConfig) -> None:
        # math-verify gets most of the budget; the pool's hard deadline adds a margin on top.
        self.inner_timeout_s = max(1.0, cfg.timeout_s - 1.0)
        self.pool = ProcessPool(
            "cascade.rewards.math:check_answer",
            num_workers=cfg.num_workers,
            timeout_s=cfg.timeout_s + 2.0,
            init="cascade.rewards.math:warm_up",
        )

    def score(self, rows: Sequence[Row]) -> list[RewardResult]:
        results: list[RewardResult | None] = [None] * len(rows)
        todo, payloads = [], []
        for i, row in enumerate(rows):
            err = require_fields(row, FIELDS)
            if err:
                results[i] = error_result(err)
                continue
            todo.append(i)
            payloads.append(
                {
                    "response": str(row["response"]),
                    "ground_truth": str(row["ground_truth"]),
                    "timeout_s": self.inner_timeout_s,
                }
            )
        for i, out in zip(todo, self.pool.map(payloads)):
            if out.timed_out:
                results[i] = RewardResult(0.0, {"reason": "timeout", "timeout": True})
            elif not out.ok:
                results[i] = error_result(out.error or "verifier failed")
            else:
                v = out.value
                results[i] = RewardResult(float(v["correct"]), v)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.pool.close()
