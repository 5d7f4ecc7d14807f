"""The Agentless-style SWE-bench pipeline (C1 §3.3.1, §7.1) end to end on a small local git
repository with a failing test, without Docker: localization -> SEARCH/REPLACE repair -> regression
and reproduction tests (real pytest runs on patched copies) -> vote; the chosen patch then resolves
the hidden failing test. The policy's answers are scripted per prompt kind (what a trained policy
would write); everything after them runs for real."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from evals.benchmarks.swe_agentless import (
    AgentlessConfig,
    Candidate,
    Instance,
    bm25_rank,
    reciprocal_rank_fusion,
    run_agentless,
    run_pytest,
    select,
    to_candidate,
)

OPS = '''"""Arithmetic helpers."""


def add(a, b):
    return a - b


def mul(a, b):
    return a * b
'''
UTIL = '''"""Formatting helpers."""


def show(x):
    return f"<{x}>"
'''
TESTS = '''from calc.ops import mul
from calc.util import show


def test_mul():
    assert mul(3, 4) == 12


def test_show():
    assert show(1) == "<1>"
'''
HIDDEN = '''from calc.ops import add


def test_add():
    assert add(2, 3) == 5
'''
ISSUE = "calc.ops.add returns the difference: add(2, 3) gives -1 instead of 5."


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "calc_repo"
    for rel, text in {"calc/__init__.py": "", "calc/ops.py": OPS, "calc/util.py": UTIL,
                      "tests/__init__.py": "", "tests/test_ops.py": TESTS}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    _git(root.parent, "init", "-q", str(root))
    _git(root, "add", ".")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "base")
    return root


def _edit(path: str, search: str, replace: str) -> str:
    return f"```python\n### {path}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```"


def _answer(*edits: str) -> str:
    return "<think>The bug is in add.</think>\n<solution>\n" + "\n".join(edits) + "\n</solution>"


FIX = _answer(_edit("calc/ops.py", "    return a - b", "    return a + b"))
FIX_REORDERED = _answer(_edit("calc/ops.py", "    return a - b", "    return b + a"))
BREAKS_MUL = _answer(_edit("calc/ops.py", "    return a - b", "    return a + b"),
                     _edit("calc/ops.py", "    return a * b", "    return a ** b"))
NO_FIX = _answer(_edit("calc/ops.py", "def add(a, b):", "def add(a, b):  # noqa"))
UNPARSABLE = "<think>hmm</think>\n<solution>\nreturn a + b\n</solution>"
REPRO_GOOD = "<think>x</think>\n```python\nfrom calc.ops import add\n\n\ndef test_repro():\n    assert add(2, 3) == 5\n```"
REPRO_NO_BUG = "<think>x</think>\n```python\nfrom calc.ops import mul\n\n\ndef test_repro():\n    assert mul(2, 3) == 6\n```"
REPRO_BROKEN = "<think>x</think>\n```python\ndef test_repro(:\n```"


class ScriptedPolicy:
    """Answers per prompt kind, cycled to the requested count; records what it was asked."""

    def __init__(self) -> None:
        self.prompts: list[tuple[str, int]] = []

    def __call__(self, prompts: Sequence[str], n: int) -> list[list[str]]:
        out = []
        for p in prompts:
            self.prompts.append((p, n))
            if "Repository Structure" in p:
                pool = ["```\ncalc/ops.py\n```"] * 3 + ["```\ncalc/util.py\ncalc/ops.py\n```", "no idea"]
            elif "*SEARCH/REPLACE*" in p:
                pool = [FIX, BREAKS_MUL, FIX_REORDERED, NO_FIX, UNPARSABLE, FIX, BREAKS_MUL, NO_FIX]
            else:
                pool = [REPRO_GOOD, REPRO_NO_BUG, REPRO_BROKEN]
            out.append([pool[i % len(pool)] for i in range(n)])
        return out


def test_pipeline_end_to_end_resolves_the_failing_test(repo: Path) -> None:
    inst = Instance("calc__1", repo, ISSUE, ("tests/test_ops.py::test_mul", "tests/test_ops.py::test_show"))
    assert run_pytest(repo, list(inst.regression_tests), 120) == {t: True for t in inst.regression_tests}
    policy = ScriptedPolicy()
    cfg = AgentlessConfig(top_files=1)
    result = run_agentless(inst, policy, cfg)

    # the counts of the paper's protocol reached the policy
    asked = {("Repository Structure" in p, "*SEARCH/REPLACE*" in p): n for p, n in policy.prompts}
    assert asked == {(True, False): 16, (False, True): 8, (False, False): 10}
    assert result.localized == ["calc/ops.py"]  # frequency and retrieval agree
    repair_prompt = next(p for p, _ in policy.prompts if "*SEARCH/REPLACE*" in p)
    assert "### calc/ops.py" in repair_prompt and "calc/util.py" not in repair_prompt

    # reproduction tests: only the one that fails on the original code is kept
    assert len(result.reproduction_tests) == 4  # REPRO_GOOD at samples 0, 3, 6, 9
    assert all("add(2, 3) == 5" in t for t in result.reproduction_tests)

    by_response = {c.response: c for c in result.candidates}
    assert by_response[UNPARSABLE].patch == "" and by_response[UNPARSABLE].error
    assert by_response[BREAKS_MUL].regression_passed == 1  # test_mul now fails
    assert by_response[NO_FIX].reproduction_passed == 0 and by_response[NO_FIX].regression_passed == 2
    assert (by_response[FIX].regression_passed, by_response[FIX].reproduction_passed) == (2, 4)
    assert "-    return a - b\n+    return a + b" in result.patch  # FIX: two votes beat FIX_REORDERED's one

    # the chosen patch, applied with git, resolves the hidden failing test and keeps the others
    (repo / "tests" / "test_hidden.py").write_text(HIDDEN)
    assert run_pytest(repo, ["tests/test_hidden.py"], 120) == {"tests/test_hidden.py::test_add": False}
    subprocess.run(["git", "-C", str(repo), "apply", "-"], input=result.patch, text=True, check=True)
    after = run_pytest(repo, ["tests"], 120)
    assert after and all(after.values()) and "tests/test_hidden.py::test_add" in after


def test_selection_ranks_tests_then_votes_then_prefers_the_shorter_patch() -> None:
    def cand(key: str, patch: str, reg: int, rep: int) -> Candidate:
        return Candidate("r", patch=patch, regression_passed=reg, reproduction_passed=rep, key=key)

    a, a2, b, c = cand("A", "p" * 30, 5, 1), cand("A", "p" * 30, 5, 1), cand("B", "p" * 10, 5, 1), cand("C", "p", 4, 9)
    assert select([c, b, a, a2]) is a  # regression first; then the majority beats the shorter B
    assert select([b, cand("D", "p" * 5, 5, 1)]).key == "D"  # a tie in votes goes to the shorter patch
    assert select([Candidate("r", error="x")]) is None


def test_rrf_with_k0_and_bm25_retrieval() -> None:
    assert reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=0) == ["b", "a", "c"]  # 1.5, 1, 0.5
    files = {"calc/ops.py": OPS, "calc/util.py": UTIL}
    assert bm25_rank(ISSUE, files)[0] == "calc/ops.py"


def test_the_repair_answer_swe_rl_trains_becomes_a_unified_diff_git_applies(repo: Path) -> None:
    cand = to_candidate(FIX, {"calc/ops.py": OPS})
    assert cand.patch.startswith("--- a/calc/ops.py\n+++ b/calc/ops.py\n")
    check = subprocess.run(["git", "-C", str(repo), "apply", "--check", "-"], input=cand.patch, text=True)
    assert check.returncode == 0
    assert sys.executable  # the pipeline's pytest runs use this interpreter


def test_a_real_engine_drives_the_pipeline(repo: Path, tiny_model_dir: Path) -> None:
    """The same pipeline on the transformers generator (a tiny random model): its answers parse as
    nothing, so localization falls back on retrieval and no candidate is chosen, without error."""
    from cascade.generation import GeneratorConfig, build_generator
    from evals.benchmarks.swe_agentless import generator_policy

    gen = build_generator(GeneratorConfig(model_path=str(tiny_model_dir), backend="transformers", max_batch_size=4))
    try:
        policy = generator_policy(gen, max_new_tokens=8)
        cfg = AgentlessConfig(localization_samples=2, repair_samples=2, reproduction_samples=2, top_files=1)
        inst = Instance("calc__1", repo, ISSUE, ("tests/test_ops.py::test_mul",))
        result = run_agentless(inst, policy, cfg)
    finally:
        gen.close()
    assert result.localized == ["calc/ops.py"] and len(result.candidates) == 2
    assert result.patch == "" and all(c.error for c in result.candidates) and result.reproduction_tests == []


def test_the_swe_scorer_accepts_what_swe_rl_trains() -> None:
    """SEARCH/REPLACE answers (```python blocks as in the RL prompt, or ```diff blocks as Agentless
    writes them) become the unified diff the harness applies, given the files the prompt showed."""
    from evals.scoring.swe import extract_patch

    files = {"calc/ops.py": OPS}
    want = to_candidate(FIX, files).patch
    assert want and extract_patch(FIX, files) == want
    assert extract_patch(FIX.replace("```python", "```diff"), files) == want
    assert extract_patch(UNPARSABLE, files) == "" and extract_patch("<think>unfinished", files) == ""
    plain = "<think>x</think>\n```diff\n" + want + "```"
    assert extract_patch(plain, files) == want and extract_patch(plain) == want  # unified diffs as before
