"""Test-case formats for the code reward and how results are compared (trusted side).

Formats (the `tests` field of a code row; a JSON string of it is accepted too):
  * stdin/stdout, LiveCodeBench/TACO: `{"inputs": [str], "outputs": [str]}`;
  * call-based: the same plus `"fn_name"`; an input is LiveCodeBench's newline-separated JSON
    arguments (a string) or TACO's argument list; an output is a JSON string or a value;
  * assert-based (HumanEval/MBPP style, an extension): `{"test_code": str, "entry_point": str?}`,
    converted to program calls and checks on their results (`assert_tests.py`); test code that
    does not convert is reported, never run.
Every test becomes one sandbox test: a stdin text, or a call `(fn, args, kwargs)` of plain
values. Comparison happens here: stdout line by line after stripping, where a line that differs
textually still matches if its tokens are equal decimals (LiveCodeBench's `testing_util` rule);
call results as decoded plain values (`plain.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cascade.rewards.code.assert_tests import Check, Unconvertible, convert, evaluate
from cascade.rewards.code.plain import NotPlain, decode, is_plain

# LiveCodeBench's import prelude for generated code (its testing_util imports these names).
LCB_PRELUDE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\n"
    "from functools import *\nfrom operator import *\nfrom io import *\nfrom sys import *\n"
    "from json import *\nfrom builtins import *\nfrom typing import *\nimport string\nimport re\n"
    "import datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\nimport math\n"
    "import random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)


@dataclass
class TestSpec:
    mode: str  # stdio | call (LCB/TACO functional) | checks (converted asserts)
    inputs: list[Any]  # stdio: stdin text; call/checks: (fn, args, kwargs)
    outputs: list[Any] = field(default_factory=list)  # stdio: text; call: expected value
    checks: list[Check] = field(default_factory=list)

    @property
    def sandbox_mode(self) -> str:
        return "stdio" if self.mode == "stdio" else "call"


def _call_args(raw: Any) -> list[Any]:
    if isinstance(raw, str):  # LiveCodeBench: one JSON value per line
        return [json.loads(line) for line in raw.split("\n") if line.strip()]
    return list(raw) if isinstance(raw, list) else [raw]


def parse_tests(tests: Any, program_names: frozenset[str] = frozenset()) -> TestSpec:
    """Normalise a row's `tests` field; ValueError (or Unconvertible) with a reason otherwise."""
    if isinstance(tests, str):
        tests = json.loads(tests)
    if isinstance(tests, dict) and "input_output" in tests:  # TACO/LCB sample rows
        inner = tests["input_output"]
        tests = json.loads(inner) if isinstance(inner, str) else inner
    if not isinstance(tests, dict):
        raise ValueError(f"tests must be an object, got {type(tests).__name__}")
    if "test_code" in tests:
        entry = tests.get("entry_point")
        calls, checks = convert(tests["test_code"], entry if isinstance(entry, str) else None, program_names)
        inputs = [(c.fn, list(c.args), dict(c.kwargs)) for c in calls]
        if not all(is_plain(c.args) and is_plain(dict(c.kwargs)) for c in calls):
            raise Unconvertible("a call argument is not plain data")
        return TestSpec("checks", inputs, checks=checks)
    inputs = tests.get("inputs", tests.get("input"))
    outputs = tests.get("outputs", tests.get("output"))
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise ValueError("tests need list fields `inputs` and `outputs`")
    if len(inputs) != len(outputs) or not inputs:
        raise ValueError(f"{len(inputs)} inputs vs {len(outputs)} outputs")
    fn_name = tests.get("fn_name")
    if fn_name:
        args = [_call_args(i) for i in inputs]
        if not all(is_plain(a) for a in args):
            raise ValueError("call arguments are not plain data")
        expected = [_expected_value(o) for o in outputs]
        return TestSpec("call", [(str(fn_name), a, {}) for a in args], expected)
    join = lambda x: "\n".join(map(str, x)) if isinstance(x, list) else str(x)  # noqa: E731
    return TestSpec("stdio", [join(i) for i in inputs], [join(o) for o in outputs])


def _expected_value(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(tok) for tok in line.split()]
    except (InvalidOperation, ValueError):
        return None


def stdout_matches(got: str, expected: str) -> bool:
    """LiveCodeBench's stdio rule (see module docstring)."""
    got_lines, exp_lines = _stripped_lines(got), _stripped_lines(expected)
    if len(got_lines) != len(exp_lines):
        return False
    for g, e in zip(got_lines, exp_lines):
        if g == e:
            continue
        gd, ed = _decimals(g), _decimals(e)
        if gd is None or ed is None or gd != ed:
            return False
    return True


def call_matches(got: Any, expected: Any) -> bool:
    """Call-based rule on plain values: LCB's equality (a returned tuple counts as a list), plus
    TACO's `[value]` wrapping of the expected output."""
    if isinstance(got, tuple):
        got = list(got)
    try:
        return got == expected or (isinstance(expected, list) and len(expected) == 1 and got == expected[0])
    except RecursionError:
        return False


def call_result(event: dict[str, Any]) -> tuple[bool, Any]:
    """(True, value) for a call test that returned plain data, else (False, reason)."""
    if event.get("status") != "ok":
        return False, event.get("status")
    try:
        return True, decode(event.get("output", ""))
    except NotPlain as e:
        return False, f"not plain data: {e}"


def output_matches(spec: TestSpec, index: int, event: dict[str, Any]) -> bool:
    """Did test `index` pass on its own (stdio, call)? Checks are judged over several calls."""
    if event.get("status") != "ok":
        return False
    if spec.mode == "stdio":
        return stdout_matches(event.get("output", ""), spec.outputs[index])
    ok, value = call_result(event)
    if spec.mode == "call":
        return ok and call_matches(value, spec.outputs[index])
    return ok


__all__ = ["LCB_PRELUDE", "TestSpec", "Unconvertible", "call_matches", "call_result", "evaluate",
           "output_matches", "parse_tests", "stdout_matches"]
