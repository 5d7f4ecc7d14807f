"""Reading tool calls from a response, in the two syntaxes `cascade.data.tool_syntax` renders:

* Cascade-1 (Qwen3): `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`;
* Cascade-2 (Qwen3-Coder XML): `<tool_call>\\n<function=NAME>\\n<parameter=P>\\nvalue\\n</parameter>\\n
  </function>\\n</tool_call>`, whose values are plain text (`raw`: the tool's argument types read them).

Only the answer part counts (after `</think>`). Text is bounded before parsing: more than
`max_calls` calls, an answer over `MAX_CHARS`, or a JSON call nested deeper than `MAX_DEPTH` is
refused. Nothing here evaluates anything: a call is a name and a dict of data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cascade.rewards.text import split_thinking

OPEN, CLOSE = "<tool_call>", "</tool_call>"
MAX_CHARS = 100_000
MAX_DEPTH = 16
_CALL_RE = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.DOTALL)
_FUNCTION_RE = re.compile(r"<function=([^<>\n]+)>\n?(.*?)</function>", re.DOTALL)
_PARAM_RE = re.compile(r"<parameter=([^<>\n]+)>\n?(.*?)\n?</parameter>", re.DOTALL)


class CallSyntaxError(ValueError):
    """Tool calls that cannot be read (or too many of them)."""


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any]
    raw: bool  # True: XML syntax, values are the text between the parameter tags


def _json_call(body: str, k: int) -> ParsedCall:
    depth = cur = 0
    for c in body:
        cur += c in "[{"
        cur -= c in "]}" and cur > 0
        depth = max(depth, cur)
    if depth > MAX_DEPTH:
        raise CallSyntaxError(f"call {k}: JSON nested deeper than {MAX_DEPTH}")
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        raise CallSyntaxError(f"call {k}: not valid JSON ({type(e).__name__})") from None
    if not isinstance(obj, dict) or set(obj) - {"name", "arguments"} or not isinstance(obj.get("name"), str):
        raise CallSyntaxError(f'call {k}: expected {{"name": str, "arguments": object}}')
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some models double-encode the arguments
        try:
            args = json.loads(args)
        except (json.JSONDecodeError, RecursionError, ValueError):
            raise CallSyntaxError(f"call {k}: arguments string is not JSON") from None
    if not isinstance(args, dict):
        raise CallSyntaxError(f"call {k}: arguments must be an object")
    return ParsedCall(obj["name"], args, raw=False)


def _xml_call(body: str, k: int) -> ParsedCall:
    m = _FUNCTION_RE.fullmatch(body)
    if not m:
        raise CallSyntaxError(f"call {k}: expected <function=NAME>...</function>")
    name, inner = m.group(1).strip(), m.group(2)
    args: dict[str, Any] = {}
    end = 0
    for p in _PARAM_RE.finditer(inner):
        if inner[end : p.start()].strip():
            raise CallSyntaxError(f"call {k}: text outside <parameter> tags")
        key = p.group(1).strip()
        if key in args:
            raise CallSyntaxError(f"call {k}: parameter {key[:40]!r} given twice")
        args[key] = p.group(2)
        end = p.end()
    if inner[end:].strip():
        raise CallSyntaxError(f"call {k}: text outside <parameter> tags")
    return ParsedCall(name, args, raw=True)


def parse_calls(response: str, max_calls: int) -> list[ParsedCall]:
    """Every tool call in the answer part, in order; CallSyntaxError if any cannot be read."""
    answer = split_thinking(response).answer
    if answer is None:
        raise CallSyntaxError("unfinished thinking: no answer")
    if len(answer) > MAX_CHARS:
        raise CallSyntaxError(f"answer is {len(answer)} characters (limit {MAX_CHARS})")
    opens, closes = answer.count(OPEN), answer.count(CLOSE)
    if opens > max_calls:
        raise CallSyntaxError(f"{opens} tool calls (limit {max_calls})")
    if opens != closes:
        raise CallSyntaxError(f"{opens} {OPEN} but {closes} {CLOSE}")
    calls = []
    for k, m in enumerate(_CALL_RE.finditer(answer), 1):
        body = m.group(1).strip()
        if OPEN in body:
            raise CallSyntaxError(f"call {k}: nested {OPEN}")
        calls.append(_json_call(body, k) if body.startswith("{") else _xml_call(body, k))
    return calls
