"""SWE RL reward, execution-free (C1 §4.7, Eq. 2):

    r = -1            if the response's SEARCH/REPLACE edits cannot be parsed or applied
    r =  0            if the edits leave the original code unchanged
    r =  1            if the patch matches the golden patch lexically (s_lex == 1)
    r = P("YES")      otherwise, from the LLM judge (semantic similarity; no shaping)

Row fields: `response`, `golden_patch` (unified diff), `original` (the code context: {path:
content}), and for the judge the repair prompt as `prompt` (else `problem_statement`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.rewards.registry import RewardResult, Row, error_result, register_reward, require_fields
from cascade.rewards.swe.judge import Judge, JudgeRequest, make_judge
from cascade.rewards.swe.patch import (
    PatchFormatError,
    apply_search_replace,
    apply_unified_diff,
    as_code_context,
    changed_files,
    lexical_similarity,
    parse_search_replace,
    solution_text,
    unified_diff,
)

FIELDS = ("response", "golden_patch", "original")


def lexical_stage(row: Row) -> tuple[RewardResult | None, JudgeRequest | None]:
    """Everything before the judge: a final result, or the request the judge must answer."""
    context = as_code_context(row["original"])
    oracle = changed_files(context, apply_unified_diff(context, str(row["golden_patch"])))
    if not oracle:
        raise ValueError("the golden patch changes nothing in `original`")
    try:
        edits = parse_search_replace(solution_text(str(row["response"])))
        if not edits:
            raise PatchFormatError("no SEARCH/REPLACE edits found")
        new = apply_search_replace(context, edits)
    except PatchFormatError as e:
        return RewardResult(-1.0, {"branch": "unparsable", "reason": str(e)[:300]}), None
    pred = changed_files(context, new)
    if not pred:
        return RewardResult(0.0, {"branch": "no_change"}), None
    s_lex = lexical_similarity(pred, oracle)
    info: dict[str, Any] = {"s_lex": round(s_lex, 6), "files": sorted(pred)}
    if s_lex == 1.0:
        return RewardResult(1.0, {"branch": "lexical_match", **info}), None
    request = str(row.get("prompt") or row.get("problem_statement") or "")
    golden = unified_diff(context, apply_unified_diff(context, str(row["golden_patch"])))
    return RewardResult(0.0, {"branch": "judge", **info}), JudgeRequest(request, golden, unified_diff(context, new))


@register_reward(RewardDomain.SWE)
class SWEReward:
    """Batch scorer; only rows that reach the judge branch are sent to the judge, in one batch."""

    def __init__(self, cfg: RewardConfig, judge: Judge | None = None) -> None:
        self._judge = judge
        self._judge_cfg = cfg.judge
        self.timeout_s = cfg.timeout_s

    @property
    def judge(self) -> Judge:
        if self._judge is None:  # built lazily: lexical-only batches need no judge
            if self._judge_cfg is None:
                raise ValueError("reward domain swe needs `judge` (endpoint or checkpoint)")
            self._judge = make_judge(self._judge_cfg, timeout_s=max(self.timeout_s, 120.0))
        return self._judge

    def score(self, rows: Sequence[Row]) -> list[RewardResult]:
        results: list[RewardResult | None] = [None] * len(rows)
        pending: list[tuple[int, JudgeRequest]] = []
        for i, row in enumerate(rows):
            err = require_fields(row, FIELDS)
            if err:
                results[i] = error_result(err)
                continue
            try:
                results[i], req = lexical_stage(row)
            except (ValueError, TypeError, KeyError) as e:
                results[i] = error_result(f"bad row: {e}"[:500])
                continue
            if req is not None:
                pending.append((i, req))
        if pending:
            try:
                probs = self.judge.p_yes([req for _, req in pending])
                for (i, _), p in zip(pending, probs):
                    results[i].reward = float(p)  # type: ignore[union-attr]
                    results[i].info["p_yes"] = float(p)  # type: ignore[union-attr]
            except Exception as e:  # judge down: those rows cannot be scored (the trainer sees it)
                for i, _ in pending:
                    results[i] = error_result(f"judge failed: {e}"[:500], **results[i].info)  # type: ignore[union-attr]
        return results  # type: ignore[return-value]

    def close(self) -> None:
        if self._judge is not None:
            self._judge.close()
