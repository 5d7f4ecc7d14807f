"""Code benchmarks scored in the code sandbox (cascade.rewards code domain): HumanEval and MBPP
(offline, assert-style tests) and LiveCodeBench v5/v6 (local files, stdin or call-based tests).

The code reward never runs test code: it turns asserts into plain calls and checks it evaluates
itself. The few problems whose checks cannot be put that way (HumanEval/32, 38, 50, 53 draw
random inputs or call prompt helpers; MBPP/367 builds a tree from test-only classes) are left
out of the benchmark, so HumanEval has 160 items and MBPP 499; the report shows each n.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from cascade import offline
from cascade.rewards.code.assert_tests import Unconvertible, convert, defined_names
from evals.benchmarks import register_benchmark
from evals.data_files import require_files
from evals.spec import BenchmarkSpec, EvalItem, user

HUMANEVAL_PROMPT = (
    "Complete the following Python function. Return the complete function, including its signature "
    "and any imports it needs, in a single ```python code block.\n\n```python\n{prompt}```"
)
MBPP_PROMPT = (
    "You are an expert Python programmer, and here is your task: {text} Your code should pass these "
    "tests:\n\n{tests}\n\nWrite the solution in a single ```python code block."
)
# LiveCodeBench's code-generation prompt (lcb_runner/prompts/code_generation.py, generic format).
LCB_PROMPT = (
    "You will be given a question (problem specification) and will generate a correct Python program "
    "that matches the specification and passes all tests.\n\nQuestion: {question}\n\n"
)
LCB_STARTER = (
    "You will use the following starter code to write the solution to the problem and enclose your "
    "code within delimiters.\n```python\n{starter}\n```\n\n"
)
LCB_STDIN = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test "
    "on the sample inputs). Enclose your code within delimiters as follows. Ensure that when the python "
    "program runs, it reads the inputs, runs the algorithm and writes output to STDOUT.\n"
    "```python\n# YOUR CODE HERE\n```\n\n"
)
LCB_ANSWER = "### Answer: (use the provided format with backticks)\n\n"
# Release windows by contest date (paper §3.10: v5 = 08/24-02/25, v6 = 08/24-05/25).
LCB_WINDOWS = {"v5": ("2024-08-01", "2025-02-01"), "v6": ("2024-08-01", "2025-05-01")}


def fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


def _scorable(tests: dict, gold: str) -> bool:
    """Whether the code reward can judge these assert tests (see the module docstring); the gold
    program's names count as its functions (MBPP/126 defines `sum`)."""
    try:
        convert(tests["test_code"], tests.get("entry_point"), defined_names(gold))
    except Unconvertible:
        return False
    return True


def humaneval() -> list[EvalItem]:
    items = []
    for p in offline.humaneval():
        tests = {"test_code": f"{p['test']}\n\ncheck({p['entry_point']})\n", "entry_point": p["entry_point"]}
        if not _scorable(tests, p["prompt"] + p["canonical_solution"]):
            continue
        gold = fenced(p["prompt"] + p["canonical_solution"])
        items.append(EvalItem(p["task_id"], user(HUMANEVAL_PROMPT.format(prompt=p["prompt"])),
                              {"tests": tests, "gold": gold}))
    return items


def mbpp() -> list[EvalItem]:
    items = []
    for p in offline.mbpp():
        test_code = "\n".join([p["test_setup_code"], *p["test_list"]]).strip() + "\n"
        if not _scorable({"test_code": test_code}, p["code"]):
            continue
        prompt = MBPP_PROMPT.format(text=p["text"], tests="\n".join(p["test_list"]))
        items.append(EvalItem(str(p["task_id"]), user(prompt),
                              {"tests": {"test_code": test_code}, "gold": fenced(p["code"])}))
    return items


class _NoGlobals(pickle.Unpickler):
    """LCB compresses private tests as base64(zlib(pickle(json string))): unpickle plain data only."""

    def find_class(self, module: str, name: str):  # noqa: ANN201
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from LiveCodeBench data")


def decode_lcb_tests(field: str) -> list[dict]:
    """Public/private test cases: JSON, or LCB's compressed form."""
    try:
        return json.loads(field)
    except json.JSONDecodeError:
        raw = _NoGlobals(io.BytesIO(zlib.decompress(base64.b64decode(field.encode())))).load()
        return json.loads(raw)


def lcb_item(row: dict) -> EvalItem:
    cases = decode_lcb_tests(row["public_test_cases"]) + decode_lcb_tests(row.get("private_test_cases") or "[]")
    meta = json.loads(row.get("metadata") or "{}")
    tests: dict = {"inputs": [c["input"] for c in cases], "outputs": [c["output"] for c in cases]}
    if cases and cases[0].get("testtype") == "functional":
        tests["fn_name"] = meta["func_name"]
    starter = row.get("starter_code") or ""
    prompt = LCB_PROMPT.format(question=row["question_content"])
    prompt += LCB_STARTER.format(starter=starter) if starter else LCB_STDIN
    return EvalItem(str(row["question_id"]), user(prompt + LCB_ANSWER),
                    {"tests": tests, "difficulty": row.get("difficulty"), "contest_date": row["contest_date"]})


@lru_cache(maxsize=1)
def _lcb_rows() -> tuple[dict, ...]:
    rows: dict[str, dict] = {}
    for path in require_files("livecodebench", "**/test*.jsonl"):
        for line in Path(path).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows.setdefault(str(r["question_id"]), r)
    return tuple(rows.values())


def livecodebench(version: str) -> list[EvalItem]:
    start, end = (datetime.fromisoformat(d) for d in LCB_WINDOWS[version])
    keep = [r for r in _lcb_rows() if start <= datetime.fromisoformat(r["contest_date"][:19]) < end]
    return [lcb_item(r) for r in sorted(keep, key=lambda r: (r["contest_date"], str(r["question_id"])))]


register_benchmark(BenchmarkSpec("humaneval", "HumanEval", humaneval, "code", k=1, offline=True))
register_benchmark(BenchmarkSpec("mbpp", "MBPP", mbpp, "code", k=1, offline=True))
register_benchmark(BenchmarkSpec("lcb_v5", "LCB v5", lambda: livecodebench("v5"), "code", k=8, paper_row="lcb_v5"))
register_benchmark(BenchmarkSpec("lcb_v6", "LCB v6", lambda: livecodebench("v6"), "code", k=8, paper_row="lcb_v6"))
