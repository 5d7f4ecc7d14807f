"""Plain values across the sandbox boundary: the scorer's side of the harness's tagged JSON.

A call test's result leaves the sandbox as JSON text in which lists are arrays and every other
container is a one-key object: {"t": [...]} tuple, {"s": [...]} set, {"f": [...]} frozenset,
{"d": [[k, v], ...]} dict, {"i": "hex"} an int beyond 62 bits, {"c": [re, im]} a complex. Decoding builds fresh
built-in objects, so whatever the program returned, the scorer compares None, bool, int,
float, str and containers of them: nothing of the program's can define `__eq__`.
"""

from __future__ import annotations

import json
from typing import Any

_TAGS = {"t": tuple, "s": set, "f": frozenset}


class NotPlain(ValueError):
    """The text is not a tagged plain value (forged, truncated, or too deep to parse)."""


def _untag(x: Any) -> Any:
    if isinstance(x, list):
        return [_untag(v) for v in x]
    if not isinstance(x, dict):
        return x
    if len(x) != 1:
        raise NotPlain("untagged object")
    (tag, body), = x.items()
    if tag == "i" and isinstance(body, str):
        return int(body, 16)
    if tag == "c" and isinstance(body, list) and len(body) == 2 and all(type(v) in (int, float) for v in body):
        return complex(*body)
    if tag in _TAGS and isinstance(body, list):
        return _TAGS[tag](_untag(v) for v in body)
    if tag == "d" and isinstance(body, list) and all(isinstance(kv, list) and len(kv) == 2 for kv in body):
        return {_untag(k): _untag(v) for k, v in body}
    raise NotPlain(f"unknown tag {tag!r}")


def decode(text: str) -> Any:
    """The plain value `text` encodes; NotPlain for anything else."""
    try:
        return _untag(json.loads(text))
    except NotPlain:
        raise
    except (ValueError, TypeError, RecursionError, MemoryError) as e:  # unhashable key, depth, digits
        raise NotPlain(f"{type(e).__name__}: {str(e)[:100]}") from None


def is_plain(x: Any, depth: int = 0) -> bool:
    """True for the values a test may pass to a program (what marshal carries into the sandbox)."""
    t = type(x)
    if x is None or t in (bool, int, float, complex, str):
        return True
    if depth > 100:
        return False
    if t in (list, tuple, set, frozenset):
        return all(is_plain(v, depth + 1) for v in x)
    if t is dict:
        return all(is_plain(k, depth + 1) and is_plain(v, depth + 1) for k, v in x.items())
    return False
