"""LiveCodeBench Pro (25Q1 / 25Q2, Easy and Medium): C++ solutions to recent Codeforces-style
problems, judged here on a local copy that has the tests.

The organisers judge on hidden tests with their own judge; the public release has statements but
may not have tests, so the loader reads one file layout of ours (`DATA_LAYOUT`, evals/README.md)
that a user builds once from a copy with tests. Scoring compiles the answer's last ```cpp block
with g++ and runs it on every test inside the code sandbox (`cascade.rewards.code.cpp`): 1 only
if every test's output matches token by token within the time limit. Differences from the
organisers' judge: no special checkers (problems with several valid outputs are under-scored),
our machine's speed (`time_scale`), and RLIMIT_AS standing in for their memory measure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from cascade.rewards.code.cpp import CompilerMissing, CppGrader, CppLimits, CppSandbox, cpp_job
from cascade.rewards.code.sandbox import SandboxLimits, SandboxUnavailable
from cascade.rewards.text import last_code_block, split_thinking
from evals.benchmarks import register_benchmark
from evals.data_files import EvalDataError, EvalDataMissing, require_files
from evals.scoring import ScoreResult, ScorerUnavailable, ScoringContext, register_scorer
from evals.spec import BenchmarkSpec, EvalItem, user

DATA_LAYOUT = (
    "one row per problem (*.jsonl or *.parquet under $CASCADE_EVAL_DATA/lcb_pro): id, quarter "
    "('25q1'|'25q2'), difficulty ('easy'|'medium'|'hard'), problem_statement, time_limit_s, "
    "memory_limit_mb, tests: [{input, output}, ...] (stdin / expected stdout)"
)
QUARTERS, DIFFICULTIES = ("25q1", "25q2"), ("easy", "medium", "hard")
CPP_LANGS = ("cpp", "c++", "cc", "cxx")
# Our prompt (the organisers' exact wording is not used): statement, then the answer format.
PROMPT = (
    "Solve the following competitive programming problem. Your solution must read from standard "
    "input and write to standard output; time limit {tl:g} second(s) per test, memory limit "
    "{ml} megabytes.\n\n{statement}\n\nWrite your final solution in C++17 in a single ```cpp code block."
)
TIME_SCALE = 1.0  # our choice: the problem's own time limit (raise on a slow scoring machine)
COMPILE_TIMEOUT_S = 60.0  # our choice


def _check_row(row: Any, where: str) -> dict[str, Any]:
    """The row, or EvalDataError naming the file, row and field."""
    if not isinstance(row, dict):
        raise EvalDataError(f"{where}: not a JSON object")
    for key in ("id", "quarter", "difficulty", "problem_statement", "time_limit_s", "memory_limit_mb", "tests"):
        if key not in row or row[key] is None:
            raise EvalDataError(f"{where}: missing field {key!r} (layout: {DATA_LAYOUT})")
    if str(row["quarter"]).lower() not in QUARTERS:
        raise EvalDataError(f"{where}: quarter {row['quarter']!r} is not one of {QUARTERS}")
    if str(row["difficulty"]).lower() not in DIFFICULTIES:
        raise EvalDataError(f"{where}: difficulty {row['difficulty']!r} is not one of {DIFFICULTIES}")
    for key in ("time_limit_s", "memory_limit_mb"):
        v = row[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise EvalDataError(f"{where}: {key} must be a positive number, got {v!r}")
    tests = row["tests"]
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except json.JSONDecodeError as e:
            raise EvalDataError(f"{where}: tests is a string that is not JSON ({e.msg})") from None
    if not isinstance(tests, list) or not tests:
        raise EvalDataError(f"{where}: tests must be a non-empty list of {{input, output}}")
    for j, t in enumerate(tests):
        if not (isinstance(t, dict) and isinstance(t.get("input"), str) and isinstance(t.get("output"), str)):
            raise EvalDataError(f"{where}: tests[{j}] must be {{'input': str, 'output': str}}")
    return {**row, "tests": tests}


def _read(path: Path) -> list[tuple[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [(f"{path}: row {n}", r) for n, r in enumerate(pq.read_table(path).to_pylist(), 1)]
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append((f"{path}: line {n}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise EvalDataError(f"{path}: line {n}: not JSON ({e.msg})") from None
    return out


@lru_cache(maxsize=1)
def _rows() -> tuple[dict[str, Any], ...]:
    files: list[Path] = []
    for pattern in ("**/*.jsonl", "**/*.parquet"):
        try:
            files += require_files("lcb_pro", pattern)
        except EvalDataMissing as e:
            missing = e
    if not files:
        raise missing
    rows: dict[str, dict[str, Any]] = {}
    for path in files:
        for where, raw in _read(path):
            row = _check_row(raw, where)
            if str(row["id"]) in rows:
                raise EvalDataError(f"{where}: problem id {row['id']!r} appears twice")
            rows[str(row["id"])] = row
    return tuple(rows.values())


def lcb_pro_item(row: dict[str, Any]) -> EvalItem:
    tl, ml = float(row["time_limit_s"]), int(row["memory_limit_mb"])
    prompt = PROMPT.format(tl=tl, ml=ml, statement=str(row["problem_statement"]).strip())
    return EvalItem(str(row["id"]), user(prompt), {
        "tests": {"inputs": [t["input"] for t in row["tests"]], "outputs": [t["output"] for t in row["tests"]]},
        "time_limit_s": tl, "memory_limit_mb": ml, "difficulty": str(row["difficulty"]).lower(),
    })


def lcb_pro(quarter: str, difficulty: str) -> list[EvalItem]:
    """The quarter's problems of one difficulty, by id."""
    keep = [r for r in _rows() if str(r["quarter"]).lower() == quarter and str(r["difficulty"]).lower() == difficulty]
    return [lcb_pro_item(r) for r in sorted(keep, key=lambda r: str(r["id"]))]


def extract_cpp(response: str) -> str | None:
    """The last ```cpp (or untagged) block of the answer after `</think>`; None without one."""
    answer = split_thinking(response).answer
    code = last_code_block(answer, CPP_LANGS) if answer is not None else None
    return code if code and code.strip() else None


class CppScorer:
    """Compiles and judges C++ answers in the sandbox; skipped (one line) without g++ or bwrap."""

    def __init__(self, ctx: ScoringContext, time_scale: float = TIME_SCALE,
                 compile_timeout_s: float = COMPILE_TIMEOUT_S, allow_unsandboxed: bool = False) -> None:
        self.workers, self.time_scale, self.compile_s = ctx.config.num_workers, time_scale, compile_timeout_s
        self.allow_unsandboxed = allow_unsandboxed
        self.sandbox: CppSandbox | None = None
        self._make(SandboxLimits(per_test_timeout_s=compile_timeout_s + 5, total_timeout_s=compile_timeout_s + 60))

    def _make(self, limits: SandboxLimits) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
        try:
            self.sandbox = CppSandbox(limits, self.workers, allow_unsandboxed=self.allow_unsandboxed)
        except (CompilerMissing, SandboxUnavailable) as e:
            raise ScorerUnavailable(f"LCB Pro: {str(e).splitlines()[0]}") from None

    def _fit(self, items: Sequence[EvalItem]) -> None:
        """Size the sandbox's wall-clock limits for the batch's largest problem."""
        assert self.sandbox is not None
        total = self.compile_s + max((len(it.reference["tests"]["inputs"]) * (it.reference["time_limit_s"]
                                      * self.time_scale + 3) for it in items), default=0)
        memory = max([2048] + [int(it.reference["memory_limit_mb"]) + 256 for it in items])
        lim = self.sandbox.limits
        if total > lim.total_timeout_s or memory > lim.memory_mb:
            self._make(SandboxLimits(per_test_timeout_s=lim.per_test_timeout_s, memory_mb=max(memory, lim.memory_mb),
                                     total_timeout_s=max(total, lim.total_timeout_s)))

    def score(self, items: Sequence[EvalItem], responses: Sequence[str]) -> list[ScoreResult]:
        self._fit(items)
        assert self.sandbox is not None
        results: list[ScoreResult | None] = [None] * len(items)
        jobs, graders, where = [], [], []
        for i, (item, response) in enumerate(zip(items, responses)):
            code = extract_cpp(response)
            if code is None:
                results[i] = ScoreResult(0.0, {"verdict": "no_code"})
                continue
            ref = item.reference
            limits = CppLimits(ref["time_limit_s"], ref["memory_limit_mb"], self.time_scale, self.compile_s)
            job, marker = cpp_job(code, ref["tests"]["inputs"], limits)
            jobs.append(job)
            graders.append(CppGrader(marker, ref["tests"]["outputs"], limits))
            where.append(i)
        for i, grader, report in zip(where, graders, self.sandbox.run_many(jobs, graders)):
            results[i] = ScoreResult(*grader.verdict(report))
        return results  # type: ignore[return-value]

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None


register_scorer("lcb_pro")(CppScorer)
for _q in QUARTERS:
    for _d, _short in (("easy", "easy"), ("medium", "med")):
        _name = f"lcb_pro_{_q}_{_short}"
        # Paper: avg@8, thinking (C1 Tables 1/9); T 0.6 / top-p 0.95 / 64K is the paper's protocol
        # for every reasoning benchmark (as LCB v6 in suites/paper.yaml).
        register_benchmark(BenchmarkSpec(
            _name, f"LCB Pro {_q.upper()} {_short.capitalize()}", lambda q=_q, d=_d: lcb_pro(q, d), "lcb_pro", k=8,
            paper_row=_name if _q == "25q2" else None,
            notes="our C++ judge on a local copy with tests: token-wise comparison, no special checkers"))
