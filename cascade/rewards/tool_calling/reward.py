"""The `tool_calling` domain: replay the response's calls on the row's `initial_state` and pay 1
only if the result equals `expected_state` (see the package docstring).

A row whose states are missing, not JSON objects or not workplace databases is a row error
(`info.error`). The model's mistakes are reward 0 with `info.reason`: `unparsable_calls` (bad
syntax, or more than `MAX_CALLS` calls), `tool_error` (an unknown tool, bad arguments, an unknown
id; `info.call` says which call), or `wrong_state` (`info.diff` names the tables that differ).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.rewards.registry import RewardResult, Row, error_result, register_reward, require_text_response
from cascade.rewards.structured_output import Unparsable, load_bounded
from cascade.rewards.tool_calling.parse import CallSyntaxError, parse_calls
from cascade.rewards.tool_calling.workplace import TABLES, StateError, ToolError, apply_call, normalize_state

FIELDS = ("response", "initial_state", "expected_state")
MAX_CALLS = 32


def _state(row: Row, name: str) -> Any:
    value = row[name]
    return normalize_state(load_bounded(value, name) if isinstance(value, str) else value, name)


def score_row(row: Row, max_calls: int = MAX_CALLS) -> RewardResult:
    """One `{"response", "initial_state", "expected_state"}` row."""
    err = require_text_response(row, FIELDS)
    if err:
        return error_result(err)
    try:
        state, expected = _state(row, "initial_state"), _state(row, "expected_state")
    except (Unparsable, StateError) as e:
        return error_result(str(e)[:300])
    try:
        calls = parse_calls(row["response"], max_calls)
    except CallSyntaxError as e:
        return RewardResult(0.0, {"reason": "unparsable_calls", "detail": str(e)[:300]})
    info: dict[str, Any] = {"calls": [c.name[:60] for c in calls]}
    for k, call in enumerate(calls, 1):
        try:
            state = apply_call(state, call.name, call.arguments, raw=call.raw)
        except (ToolError, KeyError, TypeError) as e:  # Key/TypeError: a stored row lacks a field
            return RewardResult(0.0, {**info, "reason": "tool_error", "call": k,
                                      "detail": f"{type(e).__name__}: {str(e)[:300]}"})
    if state != expected:
        return RewardResult(0.0, {**info, "reason": "wrong_state",
                                  "diff": [t for t in TABLES if state[t] != expected[t]]})
    return RewardResult(1.0, {**info, "reason": "expected_state"})


@register_reward(RewardDomain.TOOL_CALLING)
class ToolCallingReward:
    """Batch scorer for `{"response", "initial_state", "expected_state"}` rows (states: objects or JSON text)."""

    def __init__(self, cfg: RewardConfig) -> None:
        del cfg  # pure in-process replay; no workers needed

    def score(self, rows: Sequence[Row]) -> list[RewardResult]:
        return [score_row(row) for row in rows]

    def close(self) -> None:
        pass
