"""BFCL V3 (Berkeley Function-Calling Leaderboard), the four non-live AST categories: simple,
multiple, parallel, parallel_multiple, read from BFCL's released JSON files (a local download).

The checker is OURS, NOT BFCL's: `bfcl-eval` ships one, but its pinned dependencies (numpy 1.26,
networkx, filelock, a dozen provider SDKs) conflict with this environment, and code from elsewhere
is a dependency here, never a copy. So it is written from BFCL's documented AST semantics: the
right number of calls (any order for parallel), each call's function name, its required
parameters present, no parameter the function does not declare, each value of the declared type
(an integer is accepted for a float) and among the allowed answers ("" in the list = may be
omitted); strings compare case-insensitively without spaces and `,./-_*^`; lists element by
element; dicts key by key. Calls are read with the RL tool-calling parser
(`cascade.rewards.tool_calling.parse`): Qwen3 JSON calls or Cascade-2 XML calls, whose text values
are typed by the function's declaration. The metric is item-weighted over the four categories
(BFCL's summary averages categories), so it is not the paper's BFCL V3 overall score.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from cascade.data.chat_template import DEFAULT_SYSTEM, TemplateVariant
from cascade.data.tool_syntax import c1_declarations
from cascade.rewards.tool_calling.parse import CallSyntaxError, ParsedCall, parse_calls
from evals.benchmarks import register_benchmark
from evals.data_files import EvalDataError, require_files
from evals.scoring import ScoreResult, ScoringContext, register_scorer
from evals.spec import BUDGET_32K, BenchmarkSpec, EvalItem, SamplingSpec

CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple")
MAX_CALLS = 32
_JSON_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": "string"}
_STRIP = re.compile(r"[\s,./\-_*^]")


class _Mismatch(Exception):
    """One call does not match one expected call; the message says where."""


def _jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvalDataError(f"{path}: line {n}: not JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise EvalDataError(f"{path}: line {n}: expected an object with a string 'id'")
        out.append((f"{path}: line {n}", row))
    return out


def _messages(question: Any, where: str) -> list[dict[str, str]]:
    """BFCL's `question` (one turn: a list of messages, or a list holding that list) as chat turns."""
    if isinstance(question, list) and len(question) == 1 and isinstance(question[0], list):
        question = question[0]
    if isinstance(question, str):
        question = [{"role": "user", "content": question}]
    if (not isinstance(question, list) or not question or not all(
            isinstance(m, dict) and m.get("role") in ("system", "user") and isinstance(m.get("content"), str)
            for m in question)):
        raise EvalDataError(f"{where}: question must be one turn of {{role: system|user, content: str}} messages")
    return [{"role": m["role"], "content": m["content"]} for m in question]


def _functions(function: Any, where: str) -> list[dict[str, Any]]:
    fns = [function] if isinstance(function, dict) else function
    if not isinstance(fns, list) or not fns or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("parameters"), dict)
            for f in fns):
        raise EvalDataError(f"{where}: function must be a list of {{name, description, parameters}} objects")
    return fns


def _ground_truth(row: dict[str, Any], where: str, names: set[str]) -> list[dict[str, Any]]:
    gt = row.get("ground_truth")
    if not isinstance(gt, list) or not gt or not all(isinstance(c, dict) and len(c) == 1 for c in gt):
        raise EvalDataError(f"{where}: ground_truth must be a non-empty list of {{function: {{param: [answers]}}}}")
    for call in gt:
        (name, params), = call.items()
        if name not in names:
            raise EvalDataError(f"{where}: ground_truth calls {name!r}, which the question does not declare")
        if not isinstance(params, dict) or not all(isinstance(v, list) for v in params.values()):
            raise EvalDataError(f"{where}: ground_truth[{name!r}] must map each parameter to a list of answers")
    return gt


def _json_schema(value: Any) -> Any:
    """A declaration in JSON-schema types for the prompt (BFCL writes Python ones: dict, float, tuple)."""
    if isinstance(value, dict):
        out = {k: _json_schema(v) for k, v in value.items()}
        if isinstance(out.get("type"), str):
            out["type"] = _JSON_TYPES.get(out["type"], out["type"])
        return out
    return [_json_schema(v) for v in value] if isinstance(value, list) else value


def bfcl_item(question: dict[str, Any], answer: dict[str, Any], category: str, where: str,
              answer_where: str) -> EvalItem:
    """One question row and its possible-answer row; EvalDataError names the file and line."""
    msgs = _messages(question.get("question"), where)
    fns = _functions(question.get("function"), where)
    gt = _ground_truth(answer, answer_where, {f["name"] for f in fns})
    tools = [{"type": "function", "function": _json_schema(copy.deepcopy(f))} for f in fns]
    # The runner renders `messages` only, so the declarations go in the system turn exactly as the
    # Cascade-1 (Qwen3) template writes them for `tools=`.
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else DEFAULT_SYSTEM[TemplateVariant.CASCADE1]
    rest = msgs[1:] if msgs[0]["role"] == "system" else msgs
    prompt = [{"role": "system", "content": f"{system}\n\n{c1_declarations(tools)}"}, *rest]
    return EvalItem(question["id"], prompt, {"category": category, "functions": fns, "ground_truth": gt})


@lru_cache(maxsize=1)
def _items() -> tuple[EvalItem, ...]:
    items: list[EvalItem] = []
    for cat in CATEGORIES:
        name = f"BFCL_v3_{cat}.json"
        found = require_files("bfcl", f"**/{name}")
        questions = [p for p in found if p.parent.name != "possible_answer"]
        answers = [p for p in found if p.parent.name == "possible_answer"]
        if len(questions) != 1 or len(answers) != 1:
            raise EvalDataError(f"bfcl download: expected one {name} and one possible_answer/{name}, found "
                                f"{[str(p) for p in found]}")
        by_id = {row["id"]: (where, row) for where, row in _jsonl(answers[0])}
        for where, row in _jsonl(questions[0]):
            if row["id"] not in by_id:
                raise EvalDataError(f"{where}: id {row['id']!r} has no row in {answers[0]}")
            answer_where, answer = by_id[row["id"]]
            items.append(bfcl_item(row, answer, cat, where, answer_where))
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise EvalDataError(f"bfcl download: an id appears twice ({sorted({i for i in ids if ids.count(i) > 1})[:3]})")
    return tuple(items)


# --- our AST checker ---------------------------------------------------------------------------
def _norm(s: str) -> str:
    return _STRIP.sub("", s).lower()


def _typed(value: str, spec: dict[str, Any]) -> Any:
    """An XML call's text value read as the declared type (left as text when it does not parse)."""
    t = spec.get("type")
    try:
        if t == "integer" and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        if t in ("float", "number"):
            return float(value)
        if t == "boolean" and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if t in ("array", "tuple", "dict", "object"):
            return json.loads(value)
    except ValueError:
        pass
    return value


def _type_ok(value: Any, spec: dict[str, Any]) -> bool:
    t = spec.get("type")
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t in ("float", "number"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "string":
        return isinstance(value, str)
    if t == "boolean":
        return isinstance(value, bool)
    if t in ("array", "tuple"):
        items = spec.get("items")
        return isinstance(value, list) and (not isinstance(items, dict) or all(_type_ok(v, items) for v in value))
    if t in ("dict", "object"):
        return isinstance(value, dict)
    return True  # "any" or undeclared


def _same(value: Any, allowed: Any) -> bool:
    if isinstance(allowed, str):
        return isinstance(value, str) and _norm(value) == _norm(allowed)
    if isinstance(allowed, bool) or isinstance(value, bool):
        return value is allowed
    if isinstance(allowed, (int, float)):
        return isinstance(value, (int, float)) and float(value) == float(allowed)
    if isinstance(allowed, list):
        return isinstance(value, list) and len(value) == len(allowed) and all(map(_same, value, allowed))
    if isinstance(allowed, dict):  # a nested dict answer: each key maps to its own allowed values
        return isinstance(value, dict) and _dict_ok(value, allowed)
    return value == allowed


def _dict_ok(value: dict[str, Any], allowed: dict[str, Any]) -> bool:
    for key, options in allowed.items():
        options = options if isinstance(options, list) else [options]
        if key not in value:
            if "" not in options:
                return False
        elif not any(_same(value[key], o) for o in options if o != ""):
            return False
    return set(value) <= set(allowed)


def check_call(call: ParsedCall, expected: dict[str, Any], functions: list[dict[str, Any]]) -> None:
    """Raise _Mismatch unless `call` is the expected {name: {param: [allowed]}} call."""
    (name, params), = expected.items()
    if call.name != name:
        raise _Mismatch(f"called {call.name[:60]!r}, expected {name!r}")
    decl = next(f for f in functions if f["name"] == name)["parameters"]
    props = decl.get("properties") or {}
    args = {k: _typed(v, props.get(k, {})) if call.raw and isinstance(v, str) else v
            for k, v in call.arguments.items()}
    for key in decl.get("required") or []:
        if key not in args:
            raise _Mismatch(f"{name}: required parameter {key!r} missing")
    for key, value in args.items():
        if key not in props or key not in params:
            raise _Mismatch(f"{name}: unexpected parameter {key[:40]!r}")
        if not _type_ok(value, props[key]):
            raise _Mismatch(f"{name}: {key} is not of type {props[key].get('type')}")
        if not any(_same(value, a) for a in params[key] if a != ""):
            raise _Mismatch(f"{name}: {key}={json.dumps(value)[:80]} is not an allowed answer")
    for key, allowed in params.items():
        if key not in args and "" not in allowed:
            raise _Mismatch(f"{name}: parameter {key!r} missing")


def _match(calls: list[ParsedCall], expected: list[dict[str, Any]], functions: list[dict[str, Any]]) -> bool:
    """Whether each expected call pairs with a distinct call (any order)."""
    if not expected:
        return True
    for j, call in enumerate(calls):
        try:
            check_call(call, expected[0], functions)
        except _Mismatch:
            continue
        if _match(calls[:j] + calls[j + 1:], expected[1:], functions):
            return True
    return False


def score_response(item: EvalItem, response: str) -> ScoreResult:
    """1 if the response's calls are exactly the expected ones, else 0 with the reason."""
    ref = item.reference
    try:
        calls = parse_calls(response, MAX_CALLS)
    except CallSyntaxError as e:
        return ScoreResult(0.0, {"reason": "unparsable_calls", "detail": str(e)[:300]})
    info: dict[str, Any] = {"category": ref["category"], "calls": [c.name[:60] for c in calls]}
    expected = ref["ground_truth"]
    if len(calls) != len(expected):
        return ScoreResult(0.0, {**info, "reason": "wrong_count", "expected": len(expected)})
    if len(expected) == 1:
        try:
            check_call(calls[0], expected[0], ref["functions"])
        except _Mismatch as e:
            return ScoreResult(0.0, {**info, "reason": "mismatch", "detail": str(e)})
    elif not _match(calls, expected, ref["functions"]):
        return ScoreResult(0.0, {**info, "reason": "mismatch", "detail": "no pairing of calls to expected calls"})
    return ScoreResult(1.0, {**info, "reason": "match"})


@register_scorer("bfcl_ast")
class AstScorer:
    """Our AST checker (see the module docstring); in-process, no workers."""

    def __init__(self, ctx: ScoringContext) -> None:
        del ctx

    def score(self, items: Sequence[EvalItem], responses: Sequence[str]) -> list[ScoreResult]:
        return [score_response(it, r) for it, r in zip(items, responses)]

    def close(self) -> None:
        pass


# k 1, 32K budget: our choices (the paper gives no BFCL protocol); T 0.6 / top-p 0.95: the paper's default.
register_benchmark(BenchmarkSpec(
    "bfcl_v3", "BFCL V3 non-live AST (our checker)", lambda: list(_items()), "bfcl_ast", k=1,
    sampling=SamplingSpec(max_new_tokens=BUDGET_32K),
    notes="our AST checker, not BFCL's; simple/multiple/parallel/parallel_multiple, item-weighted"))
