"""IF-RL reward (C1 §4.4): rule-based instruction checkers, 1 only if every instruction holds.

Checkers are the reference implementations from the pinned `if-verifiable` package (loaded
offline by `checkers.py`): Google's IFEval (25 types) and AllenAI's IFBench (58 types,
without spaCy). Strict and loose follow the references' evaluation code exactly (lm-eval
`ifeval/utils.py`, IFBench `evaluation_lib.py`): strict checks the response as is; loose also
accepts it with the first/last line or markdown asterisks removed. The reward is prompt-level
strict; loose goes in `info`. An unknown instruction id makes the row an error (reward 0) rather
than being skipped (as if-verifiable's own evaluation does), so an unverifiable constraint can
never be rewarded.

Checkers run regexes, langdetect and NLTK on untrusted text, so they run in a `ProcessPool`
with per-row deadlines; workers point NLTK at the offline data (`cascade.offline`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.rewards.instruction.checkers import load_registries, loose_variants, setup_nltk
from cascade.rewards.pool import ProcessPool
from cascade.rewards.registry import RewardResult, Row, error_result, register_reward, require_fields
from cascade.rewards.text import split_thinking

FIELDS = ("response", "instruction_id_list", "kwargs")
__all__ = ["InstructionReward", "evaluate", "loose_variants", "registries", "setup_nltk"]


@lru_cache(maxsize=1)
def registries() -> tuple[dict[str, Any], dict[str, Any]]:
    """(IFEval registry, IFBench registry): instruction id -> checker class; ids do not overlap."""
    return load_registries()


def _build_checker(instruction_id: str, kwargs: dict[str, Any] | None, prompt: str) -> Any:
    ifeval, ifbench = registries()
    kwargs = kwargs or {}
    if instruction_id in ifeval:
        cls, kw = ifeval[instruction_id], {k: v for k, v in kwargs.items() if v}  # lm-eval's rule
    elif instruction_id in ifbench:
        cls, kw = ifbench[instruction_id], {k: v for k, v in kwargs.items() if v is not None}
    else:
        raise KeyError(f"unknown instruction id {instruction_id!r}")
    checker = cls(instruction_id)
    checker.build_description(**kw)
    args = checker.get_instruction_args()
    if args and "prompt" in args:
        checker.build_description(prompt=prompt)
    return checker


def evaluate(response: str, instruction_ids: list[str], kwargs_list: list[Any], prompt: str = "") -> dict[str, Any]:
    """Strict and loose verdicts for each instruction (the references' semantics)."""
    if len(kwargs_list) != len(instruction_ids):
        raise ValueError(f"{len(instruction_ids)} instruction ids but {len(kwargs_list)} kwargs")
    variants = loose_variants(response)
    strict, loose = [], []
    for iid, kw in zip(instruction_ids, kwargs_list):
        checker = _build_checker(iid, kw, prompt)
        try:
            strict.append(bool(response.strip() and checker.check_following(response)))
            loose.append(any(v.strip() and checker.check_following(v) for v in variants))
        except LookupError as e:  # NLTK data this checker needs is not installed
            found = re.search(r"Resource '?([\w./-]+)'? not found", str(e))
            name = found.group(1) if found else str(e).strip()[:200]
            raise LookupError(f"{iid} needs NLTK resource {name!r}, which is not in NLTK_DATA") from None
    return {"strict": strict, "loose": loose, "strict_all": all(strict), "loose_all": all(loose)}


def check_row(payload: dict[str, Any]) -> dict[str, Any]:
    """Worker-side scoring of one row (thinking stripped first)."""
    split = split_thinking(payload["response"])
    ids = list(payload["instruction_id_list"])
    if split.answer is None:
        n = len(ids)
        return {"strict": [False] * n, "loose": [False] * n, "strict_all": False,
                "loose_all": False, "reason": "unfinished_thinking"}
    return evaluate(split.answer.strip(), ids, list(payload["kwargs"]), payload.get("prompt") or "")


def warm_up() -> None:
    """Worker initialiser: load the registries (NLTK, langdetect) before the first task."""
    registries()


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list):  # chat messages: the last user turn carries the instructions
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return "" if prompt is None else str(prompt)


def _from_json(value: Any) -> Any:
    """A JSON text decoded (a list or object stored as a string), anything else as it is."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@register_reward(RewardDomain.INSTRUCTION)
class InstructionReward:
    """Batch scorer for `{"response", "prompt", "instruction_id_list", "kwargs"}` rows."""

    def __init__(self, cfg: RewardConfig) -> None:
        self.pool = ProcessPool(
            "cascade.rewards.instruction.reward:check_row",
            num_workers=cfg.num_workers,
            timeout_s=cfg.timeout_s,
            init="cascade.rewards.instruction.reward:warm_up",
        )

    def score(self, rows: Sequence[Row]) -> list[RewardResult]:
        results: list[RewardResult | None] = [None] * len(rows)
        todo, payloads = [], []
        for i, row in enumerate(rows):
            err = require_fields(row, FIELDS)
            if not err:  # parquet stores them as JSON text (as the code scorer's `tests`): accept both
                row = {**row, "instruction_id_list": _from_json(row["instruction_id_list"]),
                       "kwargs": _from_json(row["kwargs"])}
                if isinstance(row["kwargs"], list):
                    row["kwargs"] = [_from_json(kw) for kw in row["kwargs"]]
            if not err and not isinstance(row["instruction_id_list"], list):
                err = "instruction_id_list must be a list"
            if not err and not isinstance(row["kwargs"], list):
                err = "kwargs must be a list (one object per instruction)"
            if err:
                results[i] = error_result(err)
                continue
            todo.append(i)
            payloads.append({"response": str(row["response"]), "prompt": _prompt_text(row.get("prompt")),
                             "instruction_id_list": row["instruction_id_list"], "kwargs": row["kwargs"]})
        for i, out in zip(todo, self.pool.map(payloads)):
            if out.timed_out:
                results[i] = RewardResult(0.0, {"reason": "timeout", "timeout": True})
            elif not out.ok:
                results[i] = error_result((out.error or "checker failed")[:500])
            else:
                v = out.value
                v["instruction_id_list"] = rows[i]["instruction_id_list"]
                results[i] = RewardResult(float(v["strict_all"]), v)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.pool.close()
