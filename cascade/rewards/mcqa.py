"""STEM multiple-choice reward (C2 multi-domain RL): 1 if the response's final letter is the gold
letter, else 0. Also the letter extraction the MMLU / MMLU-Pro / GPQA evals use (evals.scoring.mcq).

The answer is read after `</think>` (an unfinished thought has no answer). Patterns, strongest
first: `Answer: X` (the format the prompt asks for), `\\boxed{X}`, `the answer is (X)`, then a lone
letter on the last non-empty line. Letters must be capitals: a lower-case "a" is the English article.

`extract_choice` (evals) lets the last occurrence win, since models restate. The reward is
stricter, so that hedging cannot pay: every final-answer statement in the answer part must name
the same letter, and none may name two ("Answer: A or B", `\\boxed{A, B}`, `\\boxed{A}\\boxed{B}`);
otherwise the row gets 0 with `reason: "hedged"`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.rewards.registry import RewardResult, Row, error_result, register_reward, require_fields
from cascade.rewards.text import split_thinking

FIELDS = ("response", "ground_truth")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_CHOICES = 10  # MMLU-Pro: A-J

_PATTERNS = (
    r"(?i)\banswer\s*[:：]\s*\**\s*\(?\s*([A-Z])\s*\)?(?![A-Za-z])",
    r"\\boxed\s*\{\s*(?:\\text\{\s*)?\(?([A-Z])\)?",
    r"(?i)\banswer\s+is\s*[:：]?\s*\**\s*\(?([A-Z])\)?(?![A-Za-z])",
)
_LAST_LINE = r"^\W*\(?([A-Z])\)?\W*$"
# What right after a stated letter makes it a hedge: "A or B", "A, B", "A/B", "A and (B)", "A \lor B".
_ALTERNATIVE = re.compile(
    r"\s*\}?\s*(?:,|/|;|&|\bor\b|\band\b|\\lor|\\text\{\s*(?:or|and)\s*\})\s*\**\s*(?:\\text\{\s*)?\(?\s*([A-Z])\)?"
    r"(?![A-Za-z])"
)
_PRONOUN = re.compile(r"['’]|\s+[a-z]")
_GOLD = re.compile(r"^\(?\s*([A-Za-z])\s*\)?\.?$")


def extract_choice(response: str, num_choices: int) -> str | None:
    """The chosen letter, or None if no letter among the first `num_choices` is given (last wins)."""
    answer = split_thinking(response).answer
    if answer is None:
        return None
    valid = set(LETTERS[:num_choices])
    for pattern in _PATTERNS:
        found = [m for m in re.findall(pattern, answer) if m in valid]
        if found:
            return found[-1]
    return _last_line_letter(answer, valid)


def _last_line_letter(answer: str, valid: set[str]) -> str | None:
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    if lines:
        m = re.match(_LAST_LINE, lines[-1])
        if m and m.group(1) in valid:
            return m.group(1)
    return None


def final_choices(response: str, num_choices: int) -> tuple[list[str], str]:
    """Every letter the answer part states as final, in order, and how they were found
    (`pattern`, `last_line`, `unfinished_thinking` or `no_answer`). A letter directly followed by
    an alternative ("A or B") contributes both letters."""
    answer = split_thinking(response).answer
    if answer is None:
        return [], "unfinished_thinking"
    valid = set(LETTERS[:num_choices])
    stated: list[str] = []
    for pattern in _PATTERNS:
        for m in re.finditer(pattern, answer):
            if m.group(1) not in valid:
                continue
            stated.append(m.group(1))
            end = m.end()
            while alt := _ALTERNATIVE.match(answer, end):
                if alt.group(1) == "I" and _PRONOUN.match(answer, alt.end()):
                    break  # "Answer: A and I checked it": the pronoun, not option I
                if alt.group(1) in valid:
                    stated.append(alt.group(1))
                end = alt.end()
    if stated:
        return stated, "pattern"
    last = _last_line_letter(answer, valid)
    return ([last], "last_line") if last else ([], "no_answer")


def gold_letter(ground_truth: Any, num_choices: int = MAX_CHOICES) -> str:
    """The gold letter, upper-cased ("b", "(B)", "B." -> "B"); ValueError if it is not one letter."""
    m = _GOLD.match(str(ground_truth).strip())
    if not m or m.group(1).upper() not in LETTERS[:num_choices]:
        raise ValueError(f"ground_truth {str(ground_truth)[:40]!r} is not a letter A-{LETTERS[num_choices - 1]}")
    return m.group(1).upper()


def score_row(row: Row) -> RewardResult:
    """One `{"response", "ground_truth", "num_choices"?}` row."""
    err = require_fields(row, FIELDS)
    if err:
        return error_result(err)
    n = row.get("num_choices", MAX_CHOICES)
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= len(LETTERS):
        return error_result(f"num_choices must be an integer in 2..{len(LETTERS)}, got {n!r}")
    try:
        gold = gold_letter(row["ground_truth"], n)
    except ValueError as e:
        return error_result(str(e))
    if not isinstance(row["response"], str):
        return error_result(f"response is {type(row['response']).__name__}, not a string")
    stated, how = final_choices(row["response"], n)
    info: dict[str, Any] = {"gold": gold, "extracted": stated[-1] if stated else None}
    if not stated:
        return RewardResult(0.0, {**info, "reason": how})
    if len(set(stated)) > 1:
        return RewardResult(0.0, {**info, "reason": "hedged", "stated": sorted(set(stated))})
    ok = stated[0] == gold
    return RewardResult(float(ok), {**info, "reason": "match" if ok else "wrong_letter"})


@register_reward(RewardDomain.STEM_MCQA)
class MCQAReward:
    """Batch scorer for `{"response", "ground_truth": letter, "num_choices"?: int (default 10)}` rows."""

    def __init__(self, cfg: RewardConfig) -> None:
        del cfg  # letter matching needs no settings

    def score(self, rows: Sequence[Row]) -> list[RewardResult]:
        return [score_row(row) for row in rows]

    def close(self) -> None:
        pass
