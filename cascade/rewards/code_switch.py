"""Code-switching penalty shared by every domain (C1 §4.3, §4.5, §4.6).

For an English prompt, non-English text earns: RLHF the batch's lowest reward minus 10 when the
response (thinking and summary, C1 §4.3) has any; math -1 (§4.5) and code 0 (§4.6) when the
reasoning chain has any (§4.5: "code-switching in the reasoning chain"; code RL keeps math's rule
with another penalty): the text before `</think>`, or the whole response if it never closes.
"Non-English" here means letters of scripts other than Latin and Greek (Greek is everyday math
notation) — CJK, Cyrillic, Arabic, etc.; digits, symbols, punctuation and math alphanumerics never
count. RLHF's batch is the whole step's batch: a scorer sees one rank's shard, so the RL rollout
re-applies the minimum over every rank's rows after gathering them (``whole_batch_min_minus_ten``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cascade.config.schema.rl import CodeSwitchPenalty
from cascade.rewards.result import DomainScorer, RewardResult, Row

ALLOWED_SCRIPTS = ("LATIN", "GREEK", "MATHEMATICAL", "MODIFIER", "DOUBLE-STRUCK", "SCRIPT")


@lru_cache(maxsize=65536)
def _is_foreign_letter(ch: str, allowed: tuple[str, ...]) -> bool:
    if ch.isascii() or not unicodedata.category(ch).startswith("L"):
        return False
    name = unicodedata.name(ch, "")
    return not any(name.startswith(s) for s in allowed)


@dataclass(frozen=True)
class CodeSwitchDetector:
    """Flags text with at least `min_foreign_letters` letters outside `allowed_scripts`."""

    allowed_scripts: tuple[str, ...] = ALLOWED_SCRIPTS
    min_foreign_letters: int = 1

    def foreign_letters(self, text: str) -> int:
        return sum(_is_foreign_letter(c, self.allowed_scripts) for c in text if not c.isascii())

    def is_english(self, text: str) -> bool:
        return self.foreign_letters(text) < self.min_foreign_letters

    def switched(self, prompt: str, response: str) -> bool:
        """True if the prompt is English and the response is not."""
        return self.is_english(prompt) and not self.is_english(response)


def reasoning_chain(response: str) -> str:
    """The thinking part: before `</think>` (without a leading `<think>`), else the whole text."""
    head, sep, _ = response.partition("</think>")
    return head.removeprefix("<think>") if sep else response


# what each penalty looks at (module docstring): the reasoning chain or the whole response
_SCOPE = {CodeSwitchPenalty.MINUS_ONE: reasoning_chain, CodeSwitchPenalty.ZERO: reasoning_chain,
          CodeSwitchPenalty.BATCH_MIN_MINUS_TEN: lambda response: response}


def prompt_text(prompt: Any) -> str:
    """A row's prompt as text: a string, or the contents of a chat message list."""
    if prompt is None:
        return ""  # no prompt given: treated as English (every Cascade RL prompt set is)
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        return "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in prompt)
    return str(prompt)


def apply_penalty(
    rows: Sequence[Row],
    results: list[RewardResult],
    mode: CodeSwitchPenalty,
    detector: CodeSwitchDetector | None = None,
) -> list[RewardResult]:
    """Rewrite the rewards of code-switched rows in place according to `mode`; returns `results`."""
    mode = CodeSwitchPenalty(mode)
    if mode is CodeSwitchPenalty.OFF:
        return results
    det = detector or CodeSwitchDetector()
    flagged = []
    for i, (row, res) in enumerate(zip(rows, results)):
        if not isinstance(row, dict) or not isinstance(row.get("response"), str):
            continue
        hit = det.switched(prompt_text(row.get("prompt")), _SCOPE[mode](row["response"]))
        res.info["code_switch"] = hit
        if hit:
            flagged.append(i)
    if not flagged:
        return results
    scored = [r.reward for r in results if "error" not in r.info] or [0.0]
    batch_min = min(scored)  # over rows that were actually scored
    for i in flagged:
        before = results[i].reward
        if mode is CodeSwitchPenalty.MINUS_ONE:
            results[i].reward = -1.0
        elif mode is CodeSwitchPenalty.ZERO:
            results[i].reward = 0.0
        else:  # BATCH_MIN_MINUS_TEN
            results[i].reward = batch_min - 10.0
        results[i].info["reward_before_code_switch"] = before
    return results


def whole_batch_marks(results: Sequence[RewardResult]) -> list[tuple[bool, float | None]]:
    """Per row, what the whole-batch minimum needs: (code-switched, reward before the penalty;
    None for a row that could not be scored, which takes no part in the minimum)."""
    return [(bool(r.info.get("code_switch")),
             None if "error" in r.info else float(r.info.get("reward_before_code_switch", r.reward)))
            for r in results]


def whole_batch_min_minus_ten(rewards: Sequence[float], marks: Sequence[tuple[bool, float | None]]) -> list[float]:
    """C1 §4.3 over the whole batch (every rank's rows): a code-switched row gets the lowest
    pre-penalty reward of the batch's scored rows minus 10; other rows keep theirs."""
    if len(rewards) != len(marks):
        raise ValueError(f"{len(rewards)} rewards for {len(marks)} marks")
    if not any(flag for flag, _ in marks):
        return list(rewards)
    low = min((base for _, base in marks if base is not None), default=0.0)
    return [low - 10.0 if flag else r for r, (flag, _) in zip(rewards, marks)]


class CodeSwitchScorer:
    """Wraps a domain scorer and applies the stage's code-switching penalty to its batch.
    `submit(rows)` scores in a background thread (C1 §4.6: rewards computed asynchronously
    while the next batch generates); the scorers themselves do their work in subprocesses."""

    def __init__(self, inner: DomainScorer, mode: CodeSwitchPenalty) -> None:
        self.inner, self.mode = inner, CodeSwitchPenalty(mode)
        self._bg: ThreadPoolExecutor | None = None

    def score(self, rows: Sequence[Row]) -> list[RewardResult]:
        return apply_penalty(rows, self.inner.score(rows), self.mode)

    def submit(self, rows: Sequence[Row]) -> Future:
        """A Future of `score(rows)`; batches submitted together are scored one after another."""
        if self._bg is None:
            self._bg = ThreadPoolExecutor(1, thread_name_prefix="reward")
        return self._bg.submit(self.score, list(rows))

    def close(self) -> None:
        if self._bg is not None:
            self._bg.shutdown(wait=True)
        self.inner.close()

    def __enter__(self) -> CodeSwitchScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
