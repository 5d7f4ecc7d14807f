"""Patches for the SWE reward: SEARCH/REPLACE edits -> new file contents -> unified diffs, and
the lexical similarity of SWE-RL (Wei et al. 2025), which C1 §4.7 follows.

Lexical similarity: both the predicted and the golden change are re-expressed as a normalised
unified diff per file (3 lines of context, computed from old and new contents, so formatting of
the original diffs does not matter); the score is the mean over the union of changed files of
`difflib.SequenceMatcher(...).ratio()`, a file changed by only one side scoring 0. 1.0 means the
two patches make the same change.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from cascade.rewards.text import split_thinking


class PatchFormatError(ValueError):
    """The response's edits cannot be parsed or applied (reward -1)."""


# One Agentless / SWE-RL edit: "### path" then SEARCH/REPLACE markers; code fences are optional.
_EDIT_RE = re.compile(
    r"^###[ \t]*(\S[^\n]*?)[ \t]*\n(?:```[^\n]*\n)?<<<<<<< SEARCH\n(.*?)\n?=======\n(.*?)\n?>>>>>>> REPLACE",
    re.DOTALL | re.MULTILINE,
)


def as_code_context(original: Any) -> dict[str, str]:
    """The `original` field as {path: content}: a dict, a list of {path, content}, or JSON of either."""
    if isinstance(original, str):
        original = json.loads(original)
    if isinstance(original, list):
        original = {str(f["path"]): str(f["content"]) for f in original}
    if not isinstance(original, dict):
        raise ValueError(f"original must map file paths to contents, got {type(original).__name__}")
    return {str(k): str(v) for k, v in original.items()}


def solution_text(response: str) -> str:
    """The part of a response that holds the edits: after `</think>`, inside `<solution>` if present."""
    answer = split_thinking(response).answer
    if answer is None:
        raise PatchFormatError("unfinished thinking: no solution")
    if "<solution>" in answer:
        answer = answer.split("<solution>", 1)[1].split("</solution>", 1)[0]
    return answer


def parse_search_replace(text: str) -> dict[str, list[tuple[str, str]]]:
    """{path: [(search, replace), ...]} in order of appearance."""
    edits: dict[str, list[tuple[str, str]]] = {}
    for path, search, replace in _EDIT_RE.findall(text):
        edits.setdefault(path.strip(), []).append((search, replace))
    return edits


def apply_search_replace(context: dict[str, str], edits: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    """New contents of the edited files (SWE-RL semantics: a search block must occur, at a line
    start, and every occurrence is replaced)."""
    new: dict[str, str] = {}
    for path, pairs in edits.items():
        content = "\n" + context.get(path, "")
        for search, replace in pairs:
            s, r = "\n" + search, "\n" + replace
            if s not in content:
                raise PatchFormatError(f"SEARCH block not found in {path}: {search[:120]!r}")
            content = content.replace(s, r)
        new[path] = content[1:]
    return new


def _strip_prefix(path: str) -> str:
    return path[2:] if path[:2] in ("a/", "b/") else path


def apply_unified_diff(context: dict[str, str], patch: str) -> dict[str, str]:
    """New contents of the files a unified diff (e.g. the golden patch) changes."""
    try:
        patch_set = PatchSet(patch)
    except UnidiffParseError as e:
        raise ValueError(f"unparsable unified diff: {e}") from e
    if not len(patch_set):
        raise ValueError("the patch changes no file")
    new: dict[str, str] = {}
    for pf in patch_set:
        path = _strip_prefix(pf.target_file if not pf.is_removed_file else pf.source_file)
        src_path = _strip_prefix(pf.source_file) if not pf.is_added_file else path
        lines = [] if pf.is_added_file else context.get(src_path, "").splitlines(keepends=True)
        out, pos = [], 0
        for hunk in pf:
            want = [ln.value for ln in hunk if ln.is_context or ln.is_removed]
            start = _find_block(lines, want, max(hunk.source_start - 1, 0), pos)
            out.extend(lines[pos:start])
            out.extend(ln.value for ln in hunk if ln.is_context or ln.is_added)
            pos = start + len(want)
        out.extend(lines[pos:])
        new[path] = "" if pf.is_removed_file else "".join(out)
    return new


def _find_block(lines: list[str], block: list[str], hint: int, lo: int) -> int:
    """Index where `block` occurs in `lines` at or after `lo`, nearest to `hint` (line ending-
    insensitive, as `patch` is about trailing newlines)."""
    norm = [x.rstrip("\r\n") for x in block]
    candidates = range(lo, len(lines) - len(block) + 1)
    for start in sorted(candidates, key=lambda i: abs(i - hint)):
        if [x.rstrip("\r\n") for x in lines[start : start + len(block)]] == norm:
            return start
    if not block:
        return min(max(hint, lo), len(lines))
    raise ValueError(f"hunk does not apply near line {hint + 1}")


def normalized_patch(old: str, new: str, n_context: int = 3) -> str:
    """SWE-RL's per-file normalised diff: unified diff body without the two header lines."""
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=n_context))
    return "\n".join(diff[2:])


def changed_files(context: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    """{path: normalised patch} for files whose contents actually change."""
    out = {}
    for path, content in new.items():
        patch = normalized_patch(context.get(path, ""), content)
        if patch:
            out[path] = patch
    return out


def lexical_similarity(pred: dict[str, str], oracle: dict[str, str]) -> float:
    """Mean SequenceMatcher ratio over the union of changed files (see module docstring)."""
    paths = set(pred) | set(oracle)
    if not paths:
        return 0.0
    total = 0.0
    for p in paths:
        a, b = pred.get(p, ""), oracle.get(p, "")
        if a and b:
            total += difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    return total / len(paths)


def unified_diff(context: dict[str, str], new: dict[str, str]) -> str:
    """A git-style unified diff of `new` against `context` (what the judge is shown)."""
    parts = []
    for path in sorted(new):
        old = context.get(path, "")
        if old == new[path]:
            continue
        parts.extend(difflib.unified_diff(old.splitlines(keepends=True), new[path].splitlines(keepends=True),
                                          fromfile=f"a/{path}", tofile=f"b/{path}"))
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)
