"""Code RL reward (C1 §4.6): 1 only if the program passes every test, else 0.

The program is the last ```python block of the answer (after `</think>`; the raw answer when it
has no fence). It runs in the bubblewrap sandbox (`sandbox.py`), never in this process, and
its results are compared here (`testcases.py`), so expected outputs and test code never enter
the sandbox. A pass needs positive evidence: one result per test index, each matching, and the
harness's own `done` for the job; exiting early, being killed or exec'ing something else leaves
a test without a matching result. Each row gets a verdict: passed, wrong_answer, timeout,
runtime_error, compile_error, no_code (nothing to run: unfinished thinking or an empty answer)
or unconvertible_tests (assert code that cannot become plain calls and checks: never trusted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.rewards.code.assert_tests import Unconvertible, defined_names
from cascade.rewards.code.sandbox import Job, RunReport, Sandbox, SandboxLimits
from cascade.rewards.code.testcases import LCB_PRELUDE, TestSpec, call_result, evaluate, output_matches, parse_tests
from cascade.rewards.registry import RewardResult, Row, error_result, register_reward, require_fields
from cascade.rewards.text import last_code_block, split_thinking

FIELDS = ("response", "tests")
VERDICTS = ("passed", "wrong_answer", "timeout", "runtime_error", "compile_error", "no_code",
            "unconvertible_tests")
_SHOW = 300  # characters of outputs kept in info


def extract_program(response: str) -> str | None:
    """The code to run, or None when the response has none."""
    answer = split_thinking(response).answer
    if answer is None:
        return None
    code = last_code_block(answer)
    if code is None:
        code = answer
    return code if code.strip() else None


def _short(x: Any) -> str:
    s = x if isinstance(x, str) else repr(x)
    return s if len(s) <= _SHOW else s[: _SHOW // 2] + " ... " + s[-_SHOW // 2 :]


class _Grader:
    """Judges streamed test events as they arrive; stops the program at the first failure."""

    def __init__(self, spec: TestSpec, fail_fast: bool) -> None:
        self.spec, self.fail_fast = spec, fail_fast
        self.passed: set[int] = set()
        self.results: dict[int, Any] = {}  # checks mode: each call's plain result
        self.checks_held: set[int] = set()
        self.failure: dict[str, Any] | None = None

    def __call__(self, event: dict[str, Any]) -> bool:
        i = event["index"]
        if output_matches(self.spec, i, event):
            self.passed.add(i)
            if self.spec.mode != "checks":
                return True
            self.results[i] = call_result(event)[1]
            return self._judge_checks(event)
        self._fail(i, event, None)
        return not self.fail_fast

    def _judge_checks(self, event: dict[str, Any]) -> bool:
        for k, check in enumerate(self.spec.checks):
            if k in self.checks_held or not all(c in self.results for c in check.calls):
                continue
            if evaluate(check, self.results):
                self.checks_held.add(k)
            else:
                self._fail(check.calls[-1], event, f"assert on line {check.line} does not hold")
                return not self.fail_fast
        return True

    def _fail(self, i: int, event: dict[str, Any], why: str | None) -> None:
        if self.failure is not None:
            return
        status = event.get("status")
        verdict = {"ok": "wrong_answer", "timeout": "timeout"}.get(status, "runtime_error")
        ok, value = call_result(event) if self.spec.mode != "stdio" else (True, None)
        if status == "ok" and not ok:
            verdict, why = "runtime_error", str(value)  # the result was not plain data
        expected = self.spec.outputs[i] if self.spec.mode != "checks" else why
        self.failure = {"index": i, "verdict": verdict, "status": status,
                        "got": _short(event.get("output", "")), "expected": _short(expected),
                        "stderr": event.get("stderr", "")[-500:]}

    def all_passed(self) -> bool:
        n = len(self.spec.inputs)
        return (self.failure is None and self.passed == set(range(n))
                and (self.spec.mode != "checks" or len(self.checks_held) == len(self.spec.checks)))


def grade(spec: TestSpec, report: RunReport, grader: _Grader) -> RewardResult:
    """Fold a sandbox report into a reward and a verdict; 1 only on positive evidence."""
    total = len(spec.inputs)
    info: dict[str, Any] = {"tests_passed": len(grader.passed), "tests_total": total,
                            "elapsed_s": round(report.elapsed_s, 3)}
    if spec.mode == "checks":
        info.update(checks_held=len(grader.checks_held), checks_total=len(spec.checks))
    if report.compile_error is not None:
        return RewardResult(0.0, {**info, "verdict": "compile_error", "error_detail": report.compile_error})
    if grader.failure is not None:
        return RewardResult(0.0, {**info, "verdict": grader.failure["verdict"], "failure": grader.failure})
    if report.killed in ("total_timeout", "test_timeout"):
        return RewardResult(0.0, {**info, "verdict": "timeout", "killed": report.killed})
    if report.killed or not report.finished or not grader.all_passed():
        detail = report.sandbox_stderr[-500:] or "the program killed the test harness"
        return RewardResult(0.0, {**info, "verdict": "runtime_error", "killed": report.killed or "crashed",
                                  "error_detail": detail})
    return RewardResult(1.0, {**info, "verdict": "passed"})


@register_reward(RewardDomain.CODE)
class CodeReward:
    """Batch scorer for `{"response", "tests"}` rows (formats in `code_tests.py`)."""

    def __init__(self, cfg: RewardConfig, prelude: bool = True) -> None:
        sb = cfg.sandbox
        self.fail_fast = sb.fail_fast
        self.prelude = LCB_PRELUDE if prelude else ""
        limits = SandboxLimits(
            per_test_timeout_s=sb.per_test_timeout_s,
            total_timeout_s=cfg.timeout_s,
            memory_mb=sb.memory_mb,
            max_procs=sb.max_procs,
        )
        self.sandbox = Sandbox(limits, cfg.num_workers, allow_unsandboxed=sb.allow_unsandboxed)

    def _job(self, code: str, spec: TestSpec) -> Job:
        prelude = self.prelude if spec.mode != "checks" else ""  # asserts run the program as written
        return Job(code, spec.inputs, spec.sandbox_mode, prelude=prelude)

    def score(self, rows: Sequence[Row]) -> list[RewardResult]:
        results: list[RewardResult | None] = [None] * len(rows)
        todo: list[tuple[int, TestSpec, _Grader]] = []
        jobs: list[Job] = []
        for i, row in enumerate(rows):
            err = require_fields(row, FIELDS)
            if err:
                results[i] = error_result(err)
                continue
            response = row["response"]
            code = extract_program(response) if isinstance(response, str) else None
            try:
                spec = parse_tests(row["tests"], defined_names(code) if code else frozenset())
            except Unconvertible as e:
                results[i] = error_result(f"tests not convertible to plain calls: {e}",
                                          verdict="unconvertible_tests")
                continue
            except (ValueError, TypeError, RecursionError, MemoryError) as e:
                results[i] = error_result(f"bad tests: {type(e).__name__}: {str(e)[:200]}")
                continue
            if not isinstance(response, str):
                results[i] = error_result(f"`response` is {type(response).__name__}, not a string")
                continue
            if code is None:
                results[i] = RewardResult(0.0, {"verdict": "no_code", "tests_total": len(spec.inputs)})
                continue
            grader = _Grader(spec, self.fail_fast)
            todo.append((i, spec, grader))
            jobs.append(self._job(code, spec))
        reports = self.sandbox.run_many(jobs, [g for _, _, g in todo])
        for (i, spec, grader), report in zip(todo, reports):
            results[i] = grade(spec, report, grader)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.sandbox.close()

    def __enter__(self) -> CodeReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
