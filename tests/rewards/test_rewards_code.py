"""Code reward: canonical solutions pass, wrong ones fail, verdicts, test formats."""

from __future__ import annotations

import json

import cascade.offline as off
from cascade.config.schema.rl import CodeSandboxConfig, RewardConfig, RewardDomain
from cascade.rewards.code.reward import CodeReward
from cascade.rewards.code.testcases import call_matches, parse_tests, stdout_matches

ADD = {"inputs": ["1 2\n", "10 -3\n"], "outputs": ["3\n", "7\n"]}


def fenced(code: str) -> str:
    return f"<think>Let me write it.</think>\nHere is the solution:\n```python\n{code}\n```\n"


def test_humaneval_and_mbpp_canonical_solutions_pass(need_bwrap):
    """All 164 HumanEval + 500 MBPP gold programs in one batched call (one is known bad).
    A generous per-test limit: a few gold programs take seconds on a loaded 2-core box."""
    he, mb = off.humaneval(), off.mbpp()
    rows = [{"response": p["prompt"] + p["canonical_solution"],
             "tests": {"test_code": p["test"], "entry_point": p["entry_point"]}} for p in he]
    rows += [{"response": fenced(m["code"]),
              "tests": {"test_code": m["test_setup_code"] + "\n" + "\n".join(m["test_list"])}} for m in mb]
    cfg = RewardConfig(domain=RewardDomain.CODE, timeout_s=60.0,
                       sandbox=CodeSandboxConfig(per_test_timeout_s=20.0))
    with CodeReward(cfg) as scorer:
        res = scorer.score(rows)
    ids = [p["task_id"] for p in he] + [f"MBPP/{m['task_id']}" for m in mb]
    failed = {i: r.info for i, r in zip(ids, res) if r.reward != 1.0}
    assert len(rows) == 664
    # Four HumanEval checks draw random inputs (or call helpers of the prompt) and one MBPP
    # test builds a tree from test-only classes: not plain calls, so reported, never run.
    unconvertible = {i for i, r in zip(ids, res) if r.info.get("verdict") == "unconvertible_tests"}
    assert unconvertible == {"HumanEval/32", "HumanEval/38", "HumanEval/50", "HumanEval/53", "MBPP/367"}
    assert all("error" in failed[i] for i in unconvertible)
    wrong = set(failed) - unconvertible
    assert len(wrong) <= 1 and not [i for i in wrong if i.startswith("HumanEval")], failed  # one bad MBPP gold
    assert all(r.info["verdict"] == "passed" for i, r in zip(ids, res) if i not in failed)


def test_wrong_solution_fails(code_scorer):
    p = off.humaneval()[0]
    wrong = p["prompt"] + "    return False\n"
    res = code_scorer.score([{"response": wrong, "tests": {"test_code": p["test"], "entry_point": p["entry_point"]}}])
    assert res[0].reward == 0.0 and res[0].info["verdict"] == "wrong_answer"  # a failed assert


def test_stdio_verdicts(code_scorer):
    rows = [
        {"response": fenced("a, b = map(int, input().split())\nprint(a + b)"), "tests": ADD},
        {"response": fenced("a, b = map(int, input().split())\nprint(a - b)"), "tests": ADD},
        {"response": fenced("while True:\n    pass"), "tests": ADD},
        {"response": fenced("raise ValueError('boom')"), "tests": ADD},
        {"response": fenced("def broken(:\n    pass"), "tests": ADD},
        {"response": "<think>I never finish", "tests": ADD},
        {"response": fenced("import sys\na,b=map(int,sys.stdin.read().split())\nprint(f'{a+b}.000')"),
         "tests": ADD},  # decimals compare as numbers (LiveCodeBench rule)
    ]
    res = code_scorer.score(rows)
    assert [r.info["verdict"] for r in res] == [
        "passed", "wrong_answer", "timeout", "runtime_error", "compile_error", "no_code", "passed"]
    assert [r.reward for r in res] == [1.0, 0, 0, 0, 0, 0, 1.0]
    assert res[1].info["failure"]["expected"] == "3\n" and res[1].info["tests_passed"] == 0


def test_call_based_lcb_and_taco_formats(code_scorer):
    lcb = {"inputs": ["[2,7,11,15]\n9", "[3,2,4]\n6"], "outputs": ["[0, 1]", "[1, 2]"], "fn_name": "twoSum"}
    taco = {"inputs": [[[2, 7, 11, 15], 9], [[3, 2, 4], 6]], "outputs": [[[0, 1]], [[1, 2]]], "fn_name": "twoSum"}
    sol = ("class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
           "        seen = {}\n        for i, x in enumerate(nums):\n"
           "            if target - x in seen:\n                return [seen[target - x], i]\n"
           "            seen[x] = i\n")
    func = "def twoSum(nums, target):\n    return (0, 1)\n"  # top-level function, returns a tuple
    res = code_scorer.score([
        {"response": fenced(sol), "tests": lcb},
        {"response": fenced(sol), "tests": json.dumps(taco)},  # TACO stores tests as a JSON string
        {"response": fenced(func), "tests": lcb},
        {"response": fenced("class Solution:\n    pass"), "tests": lcb},
    ])
    assert [r.info["verdict"] for r in res] == ["passed", "passed", "wrong_answer", "runtime_error"]


def test_expected_outputs_never_enter_the_sandbox(code_scorer):
    """A program that prints whatever it finds in its own memory cannot learn the answer."""
    secret = "424242424242"
    snoop = ("import gc\nfound = [o for o in gc.get_objects() if isinstance(o, str) and '4242' in o]\n"
             "print(found[0] if found else 'nothing')")
    res = code_scorer.score([{"response": fenced(snoop), "tests": {"inputs": ["1\n"], "outputs": [secret]}}])
    assert res[0].reward == 0.0 and res[0].info["verdict"] == "wrong_answer"
    assert secret not in res[0].info["failure"]["got"]


def test_bad_rows_get_errors(code_scorer):
    res = code_scorer.score([
        {"response": fenced("print(1)")},
        {"response": fenced("print(1)"), "tests": {"inputs": ["1"], "outputs": []}},
        {"response": fenced("print(1)"), "tests": "{not json"},
        {"response": fenced("print(1)"), "tests": {"inputs": [""], "outputs": ["1"]}},
    ])
    assert [("error" in r.info) for r in res] == [True, True, True, False]
    assert res[3].reward == 1.0


def test_comparison_rules():
    assert stdout_matches("1 2\n3\n", "1 2\n3")
    assert stdout_matches(" 0.50 \n", "0.5")
    assert not stdout_matches("1\n2", "1\n3")
    assert not stdout_matches("1", "1\n1")
    assert call_matches([1, 2], [1, 2]) and call_matches((1, 2), [1, 2]) and call_matches(5, [5])
    assert not call_matches(5, 6) and not call_matches("5", 5)
    assert parse_tests({"input_output": json.dumps(ADD)}).mode == "stdio"
