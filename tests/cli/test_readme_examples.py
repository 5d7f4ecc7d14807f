"""The README's marked examples run exactly as written, so the README cannot drift from the CLIs.

A code block right after `<!-- test: run -->` is run line by line (each must exit 0); after
`<!-- test: transcript -->`, each `$ command` runs and the lines below it up to the next `$` are
what it prints (an `error:` line means exit code 2). Only fast CPU examples are marked.
"""

from __future__ import annotations

import re

import pytest
from cli_helpers import REPO, Shell

_BLOCK = re.compile(r"<!-- test: (run|transcript) -->\n```[a-z]*\n(.*?)```", re.S)


def _examples() -> list[tuple[str, str, list[str]]]:
    """(mode, command, expected output lines) for every marked command of the README."""
    out: list[tuple[str, str, list[str]]] = []
    for mode, body in _BLOCK.findall((REPO / "README.md").read_text()):
        lines = [line for line in body.splitlines() if line.strip()]
        if mode == "run":
            out += [(mode, line, []) for line in lines if not line.lstrip().startswith("#")]
            continue
        for line in lines:
            if line.startswith("$ "):
                out.append((mode, line[2:], []))
            else:
                out[-1][2].append(line)
    return out


EXAMPLES = _examples()


def test_the_readme_marks_examples() -> None:
    modes = {mode for mode, _, _ in EXAMPLES}
    assert modes == {"run", "transcript"} and len(EXAMPLES) >= 6


@pytest.mark.parametrize("mode, command, expected", EXAMPLES, ids=[c[:80] for _, c, _ in EXAMPLES])
def test_readme_example(sh: Shell, mode: str, command: str, expected: list[str]) -> None:
    proc = sh(command)
    code = 2 if any("error:" in line for line in expected) else 0
    assert proc.returncode == code, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    for line in expected:
        assert line in (proc.stdout + proc.stderr).splitlines(), line
