"""Structured-output reward (C2 multi-domain RL): 1 only if the response's JSON validates against
the row's JSON Schema, else 0.

Which JSON counts: the answer part (after `</think>`; an unfinished thought has no answer). If the
whole answer is one JSON value, that value; otherwise the last JSON block in it, where a block is
a fenced ```json (or untagged) code block or a bare top-level `{...}` object in the prose.

Untrusted text is bounded before any parser sees it: an answer or schema over `MAX_CHARS`, or
bracket nesting deeper than `MAX_DEPTH`, is a row error (reward 0, `info.error`), never a
RecursionError. A schema that is not valid JSON Schema (draft picked by its `$schema`, default
2020-12) is a row error as well; remote `$ref`s are never fetched. `format` keywords are checked
where jsonschema has a checker for them.

The policy writes the instance, so validating it is attacker-controlled work: a schema `pattern`
(Python `re`) such as `^(a+)+$` against `"a" * 40 + "!"` backtracks for hours. So the scorer does
only the cheap, bounded checks (fields, schema, size, depth) in the trainer's process and sends each
surviving row to a `ProcessPool` worker with a hard deadline (`RewardConfig.timeout_s`); an
overrunning row is killed and earns 0 with `info` `{"reason": "timeout", "timeout": True}`. The
worker returns only a JSON-encoded verdict on the pool's framed channel, so text in the answer can
never stand in for a result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.rewards.pool import ProcessPool
from cascade.rewards.registry import RewardResult, Row, error_result, register_reward, require_text_response
from cascade.rewards.text import split_thinking

FIELDS = ("response", "schema")
MAX_CHARS = 100_000  # answer part and schema text
MAX_DEPTH = 100  # [ / { nesting, counted before parsing
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)```", re.DOTALL)
_JSON_LANGS = ("", "json", "jsonc", "json5")


class Unparsable(ValueError):
    """Text that is refused before or while parsing (size, depth, syntax)."""


def bracket_depth(text: str) -> int:
    """The deepest `[`/`{` nesting in `text`, counted without parsing (brackets in strings count too)."""
    depth = deepest = 0
    for c in text:
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}" and depth:
            depth -= 1
    return deepest


def load_bounded(text: str, what: str) -> Any:
    """`json.loads` after the size and depth checks; Unparsable on any failure."""
    if len(text) > MAX_CHARS:
        raise Unparsable(f"{what} is {len(text)} characters (limit {MAX_CHARS})")
    depth = bracket_depth(text)
    if depth > MAX_DEPTH:
        raise Unparsable(f"{what} nests {depth} brackets deep (limit {MAX_DEPTH})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise Unparsable(f"{what} is not valid JSON: {e.msg} (line {e.lineno} column {e.colno})") from None
    except (RecursionError, ValueError) as e:  # ValueError: integers with too many digits
        raise Unparsable(f"{what} is not parsable JSON: {type(e).__name__}") from None


def _bare_objects(text: str) -> list[tuple[int, str]]:
    """(start, text) of every top-level `{...}` in prose, string-aware once inside an object.
    An object left open at the end runs to the end of the text (and will not parse)."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text[i] != "{":
            i += 1
            continue
        start, depth, j, in_str = i, 0, i, False
        while j < n:
            c = text[j]
            if in_str:
                if c == "\\":
                    j += 1
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        out.append((start, text[start : j + 1]))
        i = j + 1
    return out


def last_json_block(answer: str) -> str | None:
    """The JSON text that counts in `answer` (see module docstring), else None."""
    stripped = answer.strip()
    if stripped[:1] in "[{":
        try:
            json.loads(stripped)
            return stripped
        except (json.JSONDecodeError, RecursionError, ValueError):
            pass
    blocks: list[tuple[int, str]] = []
    masked = list(answer)
    for m in _FENCE_RE.finditer(answer):
        masked[m.start() : m.end()] = " " * (m.end() - m.start())
        if m.group(1).lower() in _JSON_LANGS:
            blocks.append((m.start(), m.group(2)))
    blocks += _bare_objects("".join(masked))
    return max(blocks)[1] if blocks else None


def checked_schema(schema_field: Any) -> dict | bool:
    """The row's schema as a checked JSON Schema value; ValueError naming what is wrong with it.
    Bounded like an answer: its JSON text may not exceed `MAX_CHARS` or nest deeper than `MAX_DEPTH`."""
    from jsonschema import validators
    from jsonschema.exceptions import SchemaError

    schema = load_bounded(schema_field, "schema") if isinstance(schema_field, str) else schema_field
    if not isinstance(schema, (dict, bool)):
        raise ValueError(f"schema is a JSON {type(schema).__name__}, not an object")
    if isinstance(schema, dict):
        text = json.dumps(schema)
        if bracket_depth(text) > MAX_DEPTH:
            raise ValueError(f"schema nests deeper than {MAX_DEPTH}")
        if len(text) > MAX_CHARS:
            raise ValueError(f"schema is {len(text)} characters as JSON (limit {MAX_CHARS})")
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as e:
        raise ValueError(f"invalid JSON Schema: {e.message[:300]}") from None
    return schema


def prepare(row: Row) -> RewardResult | dict[str, Any]:
    """The in-process, bounded part of scoring one row: a final result (missing field, bad schema,
    unfinished thinking, oversized or over-deep answer), else the worker payload `{"answer", "schema"}`."""
    err = require_text_response(row, FIELDS)
    if err:
        return error_result(err)
    try:
        schema = checked_schema(row["schema"])
    except (ValueError, RecursionError, TypeError) as e:
        return error_result(f"bad schema: {str(e)[:300] or type(e).__name__}")
    answer = split_thinking(row["response"]).answer
    if answer is None:
        return RewardResult(0.0, {"reason": "unfinished_thinking"})
    if len(answer) > MAX_CHARS:
        return error_result(f"answer is {len(answer)} characters (limit {MAX_CHARS})")
    if bracket_depth(answer) > MAX_DEPTH:
        return error_result(f"answer nests brackets deeper than {MAX_DEPTH}")
    return {"answer": answer, "schema": schema}


def check_json(payload: dict[str, Any]) -> dict[str, Any]:
    """Worker-side validation of one prepared row: `{"answer", "schema"}` -> `{"reward", "info"}`.
    The schema was checked by `prepare`; everything the answer can make slow happens here."""
    from jsonschema import validators
    from jsonschema.exceptions import best_match

    block = last_json_block(str(payload["answer"]))
    if block is None:
        return {"reward": 0.0, "info": {"reason": "no_json"}}
    try:
        instance = load_bounded(block, "answer JSON")
    except Unparsable as e:
        return {"reward": 0.0, "info": {"reason": "invalid_json", "detail": str(e)[:300]}}
    schema = payload["schema"]
    try:
        cls = validators.validator_for(schema, default=validators.Draft202012Validator)
        violation = best_match(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(instance))
    except RecursionError:
        return {"reward": 0.0, "info": {"error": "schema validation recursed too deep (a self-referencing schema?)"}}
    except Exception as e:  # noqa: BLE001  (an unresolvable $ref, a broken regex pattern, ...)
        return {"reward": 0.0, "info": {"error": f"schema validation failed: {type(e).__name__}: {str(e)[:300]}"}}
    if violation is not None:
        path = "/".join(str(p) for p in violation.absolute_path)
        info = {"reason": "schema_violation", "detail": violation.message[:300], "path": path}
        return {"reward": 0.0, "info": info}
    return {"reward": 1.0, "info": {"reason": "valid"}}


def warm_up() -> None:
    """Worker initialiser: import jsonschema and validate once so the first task is fast."""
    check_json({"answer": '{"a": 1}', "schema": {"type": "object", "properties": {"a": {"pattern": "^1$"}}}})


def score_row(row: Row) -> RewardResult:
    """One `{"response", "schema"}` row, entirely in this process and with NO time limit: for trusted
    rows and tests only. Policy output goes through `StructuredOutputReward`, which has a deadline."""
    prepared = prepare(row)
    if isinstance(prepared, RewardResult):
        return prepared
    v = check_json(prepared)
    return RewardResult(float(v["reward"]), v["info"])


@register_reward(RewardDomain.STRUCTURED_OUTPUT)
class StructuredOutputReward:
    """Batch scorer for `{"response", "schema": JSON Schema object or its JSON text}` rows."""

    def __init__(self, cfg: RewardConfig) -> None:
        # no inner time limit to leave room for: the pool's deadline is the whole per-row budget
        self.pool = ProcessPool(
            "cascade.rewards.structured_output:check_json",
            num_workers=cfg.num_workers,
            timeout_s=cfg.timeout_s,
            init="cascade.rewards.structured_output:warm_up",
        )

    def score(self, rows: Sequence[Row]) -> list[RewardResult]:
        results: list[RewardResult | None] = [None] * len(rows)
        todo, payloads = [], []
        for i, row in enumerate(rows):
            prepared = prepare(row)
            if isinstance(prepared, RewardResult):
                results[i] = prepared
            else:
                todo.append(i)
                payloads.append(prepared)
        for i, out in zip(todo, self.pool.map(payloads)):
            if out.timed_out:
                results[i] = RewardResult(0.0, {"reason": "timeout", "timeout": True})
            elif not out.ok:
                results[i] = error_result(out.error or "validator failed")
            else:
                results[i] = RewardResult(float(out.value["reward"]), dict(out.value["info"]))
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.pool.close()
