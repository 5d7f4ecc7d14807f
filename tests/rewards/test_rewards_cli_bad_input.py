"""`python -m cascade.rewards score` on hostile and mistaken input: every row gets an output row,
bad rows get reward 0 with `info.error`, wrong paths are one-line errors with exit code 2, and
the output never replaces its own input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GOOD = {"response": "```python\ndef add(a, b):\n    return a + b\n```", "tests": {"test_code": "assert add(1, 2) == 3"}}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cascade.rewards", "score", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_hostile_rows_cost_only_themselves(tmp_path, need_bwrap):
    lines = [
        json.dumps(GOOD).encode(),
        b'{"response": "\\ud800", "tests": {"test_code": "assert add(1, 2) == 3"}}',  # lone surrogate
        b"[" * 200_000,  # nesting beyond any parser's recursion
        b'{"response": "\xff\xfe not utf-8", "tests": {}}',
        b'{"response": null, "tests": {"test_code": "assert add(1, 2) == 3"}}',
        b'{"tests": null}',
        json.dumps({"response": "x" * (30 << 20), "tests": {"inputs": [""], "outputs": ["1"]}}).encode(),
        b'{"response": "```python\\ndef add(a, b): return a + b\\n```", "tests": "' + b"[" * 100_000 + b'"}',
        b"12",
        json.dumps(GOOD).encode(),
    ]
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    r = run_cli("--domain", "code", str(inp), str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(lines)
    assert [row["reward"] for row in rows] == [1.0] + [0.0] * (len(lines) - 2) + [1.0]
    # unparsable or incomplete rows carry an error; parsable programs get a verdict
    assert [i for i, row in enumerate(rows) if "error" in row["info"]] == [2, 3, 4, 5, 7, 8], rows
    assert rows[1]["info"]["verdict"] == "compile_error"  # a lone surrogate is no program
    assert "UTF-8" in rows[3]["info"]["error"] and "line 4" in rows[3]["info"]["error"]
    assert sorted(tmp_path.iterdir()) == sorted([inp, out])  # no temporary file left behind


@pytest.mark.parametrize("case", ["same_file", "missing_input", "input_is_dir", "missing_out_dir", "rm_without_flags"])
def test_path_mistakes_are_one_line_errors(tmp_path, case):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(GOOD) + "\n")
    before = inp.read_bytes()
    domain, src, dst = "math", str(inp), str(tmp_path / "out.jsonl")
    if case == "same_file":
        dst = str(tmp_path / "." / "in.jsonl")
    elif case == "missing_input":
        src = str(tmp_path / "nope.jsonl")
    elif case == "input_is_dir":
        src = str(tmp_path)
    elif case == "missing_out_dir":
        dst = str(tmp_path / "no" / "such" / "dir" / "out.jsonl")
    else:
        domain = "reward_model"
    r = run_cli("--domain", domain, src, dst)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert inp.read_bytes() == before  # the input is never touched
    if case == "rm_without_flags":
        assert "--rm-endpoint" in r.stderr or "--rm-checkpoint" in r.stderr, r.stderr
