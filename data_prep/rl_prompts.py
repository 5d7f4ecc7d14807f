"""RL prompt sets per domain, in the one RL record schema (`cascade.data.records.RLRecord`).

One-time downloads (row counts from third-party copies of the cards, paper.md §3.3-3.7):

  hf download nvidia/Nemotron-Cascade-RL-Math --repo-type dataset --local-dir data/raw/rl-math                 # 14,476
  hf download nvidia/Nemotron-Cascade-RL-RLHF --repo-type dataset --local-dir data/raw/rl-rlhf                 # 45,882
  hf download nvidia/Nemotron-Cascade-RL-Instruction-Following --repo-type dataset --local-dir data/raw/rl-if  # 108,938
  # code RL: the C1 set (9.8K after filtering) is not released; use local TACO/APPS/CodeContests/
  # DeepCoder-style rows (question + input_output tests [+ url, starter_code]), e.g.
  hf download BAAI/TACO --repo-type dataset --local-dir data/raw/taco

then, e.g.

  python -m data_prep.rl_prompts math --input data/raw/rl-math --out-dir data/rl/math
  python -m data_prep.rl_prompts rlhf --input data/raw/rl-rlhf --out-dir data/rl/rlhf
  python -m data_prep.rl_prompts if --taxonomy ifeval  --input data/raw/rl-if --out-dir data/rl/if_stage1
  python -m data_prep.rl_prompts if --taxonomy ifbench --input data/raw/rl-if --out-dir data/rl/if_stage2
  python -m data_prep.rl_prompts code --input data/raw/taco --out-dir data/rl/code --eval-file lcb_v6=...

Each run reads rows (bad rows logged and skipped), converts them, removes near duplicates,
decontaminates (9-gram; URL matching for code) and writes train.parquet + manifest.json.
The difficulty filter (`data_prep.difficulty_filter`) runs afterwards, with a model.
"""

from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cascade.config.schema.rl import RewardDomain
from cascade.data.records import RLRecord, as_messages, check_messages
from cascade.rewards.code.assert_tests import Unconvertible
from cascade.rewards.code.assert_tests import convert as convert_asserts
from data_prep import if_constraints, rl_common
from data_prep.manifest import Manifest
from data_prep.sources import Column, Drop, InputSchema, Row, convert, maybe_json, read_rows

MATH_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
CODE_SUFFIX = ("Write a Python program that solves the problem. Present the final solution in one "
               "```python code block at the end of your answer.")
CODE_CALL_SUFFIX = ("Write a Python solution that implements the function `{fn}`. Present the final solution "
                    "in one ```python code block at the end of your answer.")
RLHF_EXCLUDED = ("math", "code", "coding", "competitive_programming")  # C1 §4.3.1


def stable_id(prefix: str, row: Row, text: str) -> str:
    given = row.data.get("id")
    if given is not None and str(given) != "":
        return f"{prefix}-{given}"
    return f"{prefix}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:16]}"


def prompt_messages(value: Any) -> list[dict[str, str]]:
    """A prompt given as text, a message list, or JSON of a message list -> messages ending in a
    user turn (a trailing assistant answer, e.g. from a preference row, is not part of a prompt)."""
    msgs = check_messages(as_messages(maybe_json(value)))
    while msgs and msgs[-1]["role"] == "assistant":
        msgs.pop()
    if not msgs or msgs[-1]["role"] != "user" or not msgs[-1]["content"].strip():
        raise Drop("no_user_turn")
    return msgs


def _english(text: str) -> bool:
    from cascade.rewards.code_switch import CodeSwitchDetector  # the rewards' own notion of "English"

    return CodeSwitchDetector().is_english(text)


# --- math: nvidia/Nemotron-Cascade-RL-Math (problem, answer, source) --------------------------
MATH = InputSchema("nvidia/Nemotron-Cascade-RL-Math", (
    Column("problem", "str", ("question", "prompt")),
    Column("answer", "str | number", ("ground_truth", "final_answer", "expected_answer")),
    Column("source", "str", ("data_source",), required=False),
    Column("id", "str | int", ("index", "uid", "problem_id"), required=False),
))


def adapt_math(row: Row, args: argparse.Namespace) -> RLRecord:
    problem = str(row.data["problem"]).strip()
    answer = row.data["answer"]
    if isinstance(answer, list):
        answer = answer[0] if len(answer) == 1 else None
    if answer is None or str(answer).strip() == "" or not problem:
        raise ValueError("empty problem or answer")
    if not _english(problem):
        raise Drop("non_english")  # C1 §4.5: non-English items removed
    text = f"{problem}\n\n{args.prompt_suffix}" if args.prompt_suffix else problem
    return RLRecord(id=stable_id("math", row, problem), domain=RewardDomain.MATH,
                    prompt=[{"role": "user", "content": text}], source=str(row.data.get("source") or "math"),
                    ground_truth=str(answer).strip(), metadata={"origin": row.where}).validate(row.where)


# --- RLHF: nvidia/Nemotron-Cascade-RL-RLHF (prompts for the reward model) ----------------------
RLHF = InputSchema("nvidia/Nemotron-Cascade-RL-RLHF", (
    Column("prompt", "str | list[{role, content}]", ("messages", "context", "conversation", "question")),
    Column("category", "str", ("domain", "task_category"), required=False),
    Column("source", "str", ("data_source",), required=False),
    Column("id", "str | int", ("index", "uid", "prompt_id"), required=False),
))


def adapt_rlhf(row: Row, args: argparse.Namespace) -> RLRecord:
    msgs = prompt_messages(row.data["prompt"])
    category = str(row.data.get("category") or "").lower()
    if category in args.exclude_categories:
        raise Drop(f"category_{category}")
    text = "\n".join(m["content"] for m in msgs)
    return RLRecord(id=stable_id("rlhf", row, text), domain=RewardDomain.REWARD_MODEL, prompt=msgs,
                    source=str(row.data.get("source") or "rlhf"),
                    metadata={"origin": row.where, **({"category": category} if category else {})}).validate(row.where)


# --- IF: nvidia/Nemotron-Cascade-RL-Instruction-Following --------------------------------------
IF = InputSchema("nvidia/Nemotron-Cascade-RL-Instruction-Following", (
    Column("prompt", "str | list[{role, content}]", ("messages",)),
    Column("instruction_id_list", "list[str]"),
    Column("kwargs", "list[dict] (or JSON)"),
    Column("source", "str", ("data_source",), required=False),
    Column("id", "str | int", ("index", "key"), required=False),
))


def adapt_if(row: Row, args: argparse.Namespace) -> RLRecord:
    msgs = prompt_messages(row.data["prompt"])
    ids = [str(i) for i in maybe_json(row.data["instruction_id_list"])]
    kwargs = maybe_json(row.data["kwargs"])
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise ValueError("kwargs must be a list with one entry per instruction id")
    kwargs = [{k: v for k, v in (maybe_json(kw) or {}).items() if v is not None} for kw in kwargs]
    taxonomy = if_constraints.taxonomy_of(ids)
    if taxonomy is None:
        raise Drop("unknown_instruction_id")  # no checker in the reward registry: never rewardable
    if taxonomy != args.taxonomy:
        raise Drop(f"taxonomy_{taxonomy}")
    text = msgs[-1]["content"]
    return RLRecord(id=stable_id("if", row, text), domain=RewardDomain(args.if_domain), prompt=msgs,
                    source=str(row.data.get("source") or "if"), instruction_id_list=ids, kwargs=kwargs,
                    metadata={"origin": row.where, "taxonomy": taxonomy}).validate(row.where)


def if_text(r: RLRecord) -> str:
    """IF prompts are decontaminated without their constraint sentences (shared templates)."""
    return if_constraints.strip_descriptions(r.prompt_text, r.instruction_id_list or [], r.kwargs or [])


# --- code: TACO / APPS / CodeContests / DeepCoder-style rows ------------------------------------
CODE = InputSchema("code problems with tests (TACO/APPS/LiveCodeBench style)", (
    Column("question", "str", ("problem", "question_content", "description", "prompt")),
    Column("tests", "{inputs, outputs, fn_name?} (or JSON)", ("input_output", "test_cases", "tests_json")),
    Column("url", "str", ("problem_url", "source_url", "link"), required=False),
    Column("starter_code", "str", (), required=False),
    Column("source", "str", ("data_source",), required=False),
    Column("id", "str | int", ("task_id", "problem_id", "question_id", "index"), required=False),
))


def code_tests(value: Any) -> dict[str, Any]:
    """Tests as {"inputs", "outputs", "fn_name"?} (the rewards CLI contract), or HumanEval/MBPP
    assert code `{"test_code", "entry_point"?}` when the reward can turn it into plain calls and
    checks; other assert code is dropped and counted (`unconvertible_tests`): the code reward
    never runs test code, so such a problem could only ever score 0."""
    t = maybe_json(value)
    if isinstance(t, dict) and "input_output" in t:
        t = maybe_json(t["input_output"])
    if not isinstance(t, dict):
        raise Drop("no_tests")
    if "test_code" in t:
        entry = t.get("entry_point")
        try:
            convert_asserts(t["test_code"], entry if isinstance(entry, str) else None)
        except Unconvertible:
            raise Drop("unconvertible_tests") from None
        return {"test_code": t["test_code"], **({"entry_point": entry} if isinstance(entry, str) else {})}
    ins, outs = t.get("inputs", t.get("input")), t.get("outputs", t.get("output"))
    if not isinstance(ins, list) or not isinstance(outs, list) or not ins or len(ins) != len(outs):
        raise Drop("no_tests")  # interactive / special-judge problems ship no I/O pairs (C1 §4.6)
    out: dict[str, Any] = {"inputs": ins, "outputs": outs}
    if t.get("fn_name"):
        out["fn_name"] = str(t["fn_name"])
    return out


def adapt_code(row: Row, args: argparse.Namespace) -> RLRecord:
    question = str(row.data["question"]).strip()
    if not question:
        raise ValueError("empty question")
    tests = code_tests(row.data["tests"])
    starter = str(row.data.get("starter_code") or "").strip()
    fn = tests.get("fn_name") or tests.get("entry_point")
    suffix = CODE_CALL_SUFFIX.format(fn=fn) if fn else CODE_SUFFIX
    text = question + (f"\n\nStarter code:\n```python\n{starter}\n```" if starter else "") + f"\n\n{suffix}"
    meta = {"origin": row.where, **({"url": str(row.data["url"])} if row.data.get("url") else {})}
    return RLRecord(id=stable_id("code", row, question), domain=RewardDomain.CODE,
                    prompt=[{"role": "user", "content": text}], source=str(row.data.get("source") or "code"),
                    tests=tests, metadata=meta).validate(row.where)


@dataclass(frozen=True)
class RLSource:
    schema: InputSchema
    adapt: Callable[[Row, argparse.Namespace], RLRecord]
    text: Callable[[RLRecord], str] = rl_common.record_text
    ignore_templates: bool = False  # drop IF constraint templates from the decontamination index


SOURCES: dict[str, RLSource] = {
    "math": RLSource(MATH, adapt_math),
    "rlhf": RLSource(RLHF, adapt_rlhf),
    "if": RLSource(IF, adapt_if, if_text, ignore_templates=True),
    "code": RLSource(CODE, adapt_code),
}


def build(name: str, args: argparse.Namespace, cfg: rl_common.RLBuildConfig) -> list[RLRecord]:
    src = SOURCES[name]
    manifest = Manifest(f"rl/{name}", config={"source": src.schema.name, "args": _args(args), "build": cfg})
    dropped: Counter = Counter()
    rows = read_rows(args.input, src.schema, manifest)
    records = list(convert(rows, lambda r: src.adapt(r, args), manifest, dropped))
    rl_common.read_step(manifest, len(records) + sum(dropped.values()))
    manifest.step("filter", len(records) + sum(dropped.values()), len(records), dropped=dict(dropped))
    ignore = if_constraints.template_texts() if src.ignore_templates and cfg.decontam else ()
    return rl_common.finish(records, cfg, manifest, args.out_dir, text=src.text, ignore_texts=ignore)


def _args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("func",)}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.rl_prompts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="domain", required=True)
    for name in SOURCES:
        sp = sub.add_parser(name, help=SOURCES[name].schema.describe())
        rl_common.add_args(sp)
        sp.add_argument("--prompt-suffix", default=MATH_SUFFIX if name == "math" else "")
        sp.add_argument("--taxonomy", choices=if_constraints.TAXONOMIES, default="ifeval",
                        help="IF: stage 1 = ifeval, stage 2 = ifbench")
        sp.add_argument("--if-domain", choices=["instruction", "instruction_rm"], default="instruction",
                        help="IF reward: rule-based only (unified model) or + reward model (thinking models)")
        sp.add_argument("--exclude-categories", type=lambda s: tuple(x for x in s.split(",") if x),
                        default=RLHF_EXCLUDED, help="RLHF: categories to drop")
    a = p.parse_args(argv)
    out = build(a.domain, a, rl_common.config_from_args(a))
    print(f"wrote {len(out)} {a.domain} prompts to {a.out_dir}/train.parquet")
    return 0


if __name__ == "__main__":
    from cascade.config.cli import run_cli  # a UserError is one line, exit 2

    raise SystemExit(run_cli(main, prog="python -m data_prep.rl_prompts"))
