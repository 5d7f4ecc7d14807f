"""Raw toy inputs in the released datasets' schemas, built from the offline benchmark packages.

Why raw files: the toy cascade's data must go through the same product scripts as the real data,
so the toy first writes rows shaped like the released datasets (messages / problem+answer /
prompt+instruction ids / instance_id+golden_patch...) and `data_prep.toy` runs the scripts on them.

Splits (so the toy evals can stay clean): GSM8K test ids 0-999 and MBPP test task ids 11-310
feed the toy; GSM8K ids 1000-1318 (319) and MBPP ids 311-510 (200) are held out and written to
`eval/` for decontamination and evaluation. MATH: the 4500-problem pool (MATH test minus
MATH-500); MMLU: validation + dev (test stays for eval). HumanEval, AIME, IFBench: never used.
"""

from __future__ import annotations

import ast
import difflib
import json
import random
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import cascade.offline as off
from data_prep.rl_prompts import MATH_SUFFIX

GSM8K_TOY_MAX_ID = 999
MBPP_TOY_MAX_ID = 310
LETTERS = "ABCD"


@lru_cache(maxsize=None)
def _gsm8k() -> tuple[dict[str, Any], ...]:
    return tuple(off.gsm8k_test())


@lru_cache(maxsize=None)
def _mbpp() -> tuple[dict[str, Any], ...]:
    return tuple(off.mbpp())


@lru_cache(maxsize=None)
def math_pool() -> tuple[dict[str, Any], ...]:
    return tuple(off.math_train_pool())


def gsm8k_toy() -> list[dict[str, Any]]:
    return [r for r in _gsm8k() if int(r["id"]) <= GSM8K_TOY_MAX_ID]


def gsm8k_heldout() -> list[dict[str, Any]]:
    return [r for r in _gsm8k() if int(r["id"]) > GSM8K_TOY_MAX_ID]


def mbpp_toy() -> list[dict[str, Any]]:
    return [r for r in _mbpp() if r["task_id"] <= MBPP_TOY_MAX_ID]


def mbpp_heldout() -> list[dict[str, Any]]:
    return [r for r in _mbpp() if r["task_id"] > MBPP_TOY_MAX_ID]


def mmlu_toy() -> list[dict[str, Any]]:
    return off.mmlu("validation") + off.mmlu("dev")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


Row = dict[str, Any]


def pick(rows: list[Row], n: int, seed: str, key: Callable[[Row], Any] | None = None) -> list[Row]:
    """A reproducible sample of n rows (optionally the n smallest by `key` among a shuffled pool)."""
    pool = list(rows)
    random.Random(seed).shuffle(pool)
    if key is not None:
        pool.sort(key=key)
    return pool[:n]


def mmlu_prompt(r: dict[str, Any]) -> str:
    opts = "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(r["choices"]))
    return f"{r['question']}\n\n{opts}"


def mmlu_answer(r: dict[str, Any], index: int | None = None) -> str:
    i = r["answer"] if index is None else index
    return f"The answer is ({LETTERS[i]}) {r['choices'][i]}."


# --- SFT (Nemotron-Cascade-SFT-Stage-1 layout: general.jsonl, math/math_1.jsonl) -----------------
def sft_rows(n_gsm8k: int, n_math: int, n_mmlu: int) -> dict[str, list[dict[str, Any]]]:
    general = []
    for r in pick(gsm8k_toy(), n_gsm8k, "sft-gsm8k", key=lambda r: len(r["solution"])):
        q, a = r["question"], r["short_answer"]
        # parallel thinking / instruct answers to one prompt, as in the C1 general-domain data
        thinking = f"<think>\n{r['solution']}\n</think>\n\nThe answer is $\\boxed{{{a}}}$."
        for answer in (thinking, f"The answer is {a}."):
            general.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": answer}],
                            "source": "gsm8k", "generator": "reference"})
    for r in pick(mmlu_toy(), n_mmlu, "sft-mmlu"):
        general.append({"messages": [{"role": "user", "content": mmlu_prompt(r)},
                                     {"role": "assistant", "content": mmlu_answer(r)}],
                        "source": f"mmlu/{r['subject']}", "generator": "reference"})
    final = "<think>\n{solution}\n</think>\n\nThe final answer is $\\boxed{{{answer}}}$."
    math = [{"messages": [{"role": "user", "content": f"{r['problem']}\n\n{MATH_SUFFIX}"},
                          {"role": "assistant", "content": final.format(solution=r["solution"], answer=r["answer"])}],
             "source": f"MATH/{r['subject']}", "generator": "reference"}
            for r in pick(list(math_pool()), n_math, "sft-math", key=lambda r: len(r["solution"]))]
    return {"general.jsonl": general, "math/math_1.jsonl": math}


# --- reward model pairs: honest chosen vs rejected ----------------------------------------------
def rm_rows(n_offtopic: int, n_wrong: int, n_mmlu: int) -> list[dict[str, Any]]:
    """"strong-bad vs weak-good" in miniature (C1 §4.2): a fluent answer to a *different* question
    (off-topic) or a solution with a wrong final answer loses to the correct answer."""
    rows = []
    gsm = pick(gsm8k_toy(), n_offtopic + n_wrong + 1, "rm-gsm8k", key=lambda r: len(r["solution"]))
    def solved(r: dict[str, Any], answer: str) -> str:
        return f"{r['solution']}\nThe answer is {answer}."
    for i, r in enumerate(gsm[:n_offtopic]):
        other = gsm[(i + 1) % len(gsm)]
        rows.append({"prompt": r["question"], "chosen": solved(r, r["short_answer"]),
                     "rejected": solved(other, other["short_answer"]), "source": "gsm8k-offtopic",
                     "id": f"gsm8k-off-{r['id']}"})
    for r in gsm[n_offtopic : n_offtopic + n_wrong]:
        wrong = str(int(float(r["short_answer"])) + random.Random(r["id"]).choice([-3, -2, -1, 1, 2, 5, 10]))
        rows.append({"prompt": r["question"], "chosen": solved(r, r["short_answer"]), "rejected": solved(r, wrong),
                     "source": "gsm8k-wrong-answer", "id": f"gsm8k-wrong-{r['id']}"})
    for r in pick(mmlu_toy(), n_mmlu, "rm-mmlu"):
        wrong = random.Random(r["question"]).choice([i for i in range(len(r["choices"])) if i != r["answer"]])
        rows.append({"prompt": mmlu_prompt(r), "chosen": mmlu_answer(r), "rejected": mmlu_answer(r, wrong),
                     "source": f"mmlu-{r['subject']}", "category": "knowledge"})
    return rows


def rlhf_rows(rm: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RLHF prompts: the RM prompts minus math (C1 §4.3.1), i.e. the MMLU ones here."""
    return [{"prompt": r["prompt"], "category": "knowledge" if r["source"].startswith("mmlu") else "math",
             "source": r["source"]} for r in rm]


# --- RL: math, IF base prompts, code -------------------------------------------------------------
def math_rows(n: int) -> list[dict[str, Any]]:
    easy = [r for r in math_pool() if (r["level"] or 5) <= 2]
    return [{"problem": r["problem"], "answer": r["answer"], "source": f"MATH/{r['subject']}", "id": r["id"]}
            for r in pick(easy, n, "rl-math")]


def arithmetic_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Synthetic one-operation arithmetic (e.g. `What is 47 + 38?`): the toy Math RL's easy half.
    Why: SmolLM2-135M solves almost no MATH problem (every group's reward 0, no gradient); these
    it answers correctly part of the time, so GRPO has groups with both outcomes to learn from."""
    rng = random.Random(f"toy-arithmetic-{seed}")
    rows = []
    for i in range(n):
        op = ("+", "-", "*")[i % 3]
        a, b = (rng.randint(10, 99), rng.randint(10, 99)) if op != "*" else (rng.randint(2, 19), rng.randint(2, 9))
        a, b = (a, b) if op != "-" or a >= b else (b, a)
        answer = a + b if op == "+" else a - b if op == "-" else a * b
        rows.append({"problem": f"What is {a} {op} {b}?", "answer": str(answer), "source": "toy/arithmetic",
                     "id": f"arith-{i}"})
    return rows


def if_base_rows(n_gsm8k: int, n_mmlu: int) -> list[dict[str, Any]]:
    rows = [{"prompt": r["question"], "id": f"gsm8k-{r['id']}", "source": "gsm8k"}
            for r in pick(gsm8k_toy(), n_gsm8k, "if-gsm8k")]
    rows += [{"prompt": r["question"], "id": f"mmlu-{r['subject']}-{i}", "source": "mmlu"}
             for i, r in enumerate(pick(mmlu_toy(), n_mmlu, "if-mmlu")) if len(r["question"].split()) >= 6]
    return rows


def _call_test(assertion: str) -> tuple[str, list[Any], Any] | None:
    """`assert f(a, b) == expected` with literal arguments -> (f, [a, b], expected), else None."""
    try:
        node = ast.parse(assertion.strip()).body[0]
    except SyntaxError:
        return None
    if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq) and isinstance(node.test.left, ast.Call)
            and isinstance(node.test.left.func, ast.Name) and not node.test.left.keywords):
        return None
    try:
        args = [ast.literal_eval(a) for a in node.test.left.args]
        expected = ast.literal_eval(node.test.comparators[0])
        json.dumps([args, expected])
    except (ValueError, TypeError, SyntaxError):
        return None
    return node.test.left.func.id, args, expected


def mbpp_tests(r: dict[str, Any]) -> dict[str, Any]:
    """MBPP asserts as call-based tests (LiveCodeBench format), or the assert form if any test is
    not a plain literal call (e.g. math.isclose, set(...))."""
    parsed = [_call_test(t) for t in r["test_list"]]
    if all(parsed) and len({p[0] for p in parsed}) == 1:  # type: ignore[index]
        return {"fn_name": parsed[0][0], "inputs": ["\n".join(json.dumps(a) for a in p[1]) for p in parsed],  # type: ignore[index]
                "outputs": [json.dumps(p[2]) for p in parsed]}  # type: ignore[index]
    return {"test_code": "\n".join(([r["test_setup_code"]] if r["test_setup_code"] else []) + r["test_list"])}


def code_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"question": f"{r['text']}\nYour code should pass this test:\n{r['test_list'][0]}",
             "tests": mbpp_tests(r), "id": f"mbpp-{r['task_id']}", "source": "mbpp"} for r in items]


# --- SWE: real small functions with an injected bug and the golden patch that fixes it ----------
_SWAPS: dict[type, type] = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                            ast.NotEq: ast.Eq, ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add,
                            ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv}


def mutations(code: str) -> list[str]:
    """Single-site bugs (a swapped operator, an off-by-one constant), each as full new source."""
    tree = ast.parse(code)
    sites = [n for n in ast.walk(tree) if isinstance(n, (ast.Compare, ast.BinOp))
             or (isinstance(n, ast.Constant) and type(n.value) is int)]
    out = []
    for k in range(len(sites)):
        t = ast.parse(code)
        node = [n for n in ast.walk(t) if isinstance(n, (ast.Compare, ast.BinOp))
                or (isinstance(n, ast.Constant) and type(n.value) is int)][k]
        if isinstance(node, ast.Compare) and type(node.ops[0]) in _SWAPS:
            node.ops[0] = _SWAPS[type(node.ops[0])]()
        elif isinstance(node, ast.BinOp) and type(node.op) in _SWAPS:
            node.op = _SWAPS[type(node.op)]()
        elif isinstance(node, ast.Constant):
            node.value = node.value + 1
        else:
            continue
        out.append(ast.unparse(t) + "\n")
    return out


def unified(path: str, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a/{path}", tofile=f"b/{path}"))


def swe_row(r: Row, buggy: str, fixed: str, failing: str, distractors: list[Row]) -> Row:
    path = f"mbpp_tasks/task_{r['task_id']}.py"
    issue = (f"Bug in `{path}`: {r['text']}\n\nThis check fails with the current code:\n\n```python\n{failing}\n```\n"
             "Please fix the implementation so that it passes.")
    files = [{"file_path": path, "content": buggy}]
    files += [{"file_path": f"mbpp_tasks/task_{d['task_id']}.py", "content": ast.unparse(ast.parse(d["code"])) + "\n"}
              for d in distractors]
    return {"instance_id": f"toy__mbpp-{r['task_id']}", "prompt": issue, "golden_patch": unified(path, buggy, fixed),
            "relevant_file_contents": files, "source": "toy-mbpp-mutation"}
