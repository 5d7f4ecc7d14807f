"""Multiple-choice benchmarks (MMLU, MMLU-Pro, GPQA) scored by letter match.

The letter extraction lives with the STEM MCQA reward (`cascade.rewards.mcqa.extract_choice`),
so training and evaluation read answers the same way; evals keep its last-occurrence-wins rule.
"""

from __future__ import annotations

from collections.abc import Sequence

from cascade.rewards.mcqa import extract_choice
from evals.scoring import ScoreResult, ScoringContext, register_scorer
from evals.spec import EvalItem

__all__ = ["ChoiceScorer", "extract_choice"]


@register_scorer("mcq")
class ChoiceScorer:
    def __init__(self, ctx: ScoringContext) -> None:
        del ctx  # letter matching needs no settings

    def score(self, items: Sequence[EvalItem], responses: Sequence[str]) -> list[ScoreResult]:
        out = []
        for item, resp in zip(items, responses):
            picked = extract_choice(resp, int(item.reference["num_choices"]))
            gold = item.reference["answer"]
            out.append(ScoreResult(float(picked == gold), {"extracted": picked, "gold": gold}))
        return out

    def close(self) -> None:
        pass
