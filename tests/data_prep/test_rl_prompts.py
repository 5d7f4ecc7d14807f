"""RL prompt products on small real files in the released schemas: counts, schema, manifest,
bad rows (file + row) and missing columns."""

from __future__ import annotations

import json

import pytest

from cascade.config.schema.rl import RewardDomain
from cascade.data.records import read_rl_records
from data_prep import rl_prompts
from data_prep.manifest import sha256_file
from data_prep.sources import SchemaError
from data_prep.toy_sources import mbpp_tests
from dp_helpers import FAST_DECONTAM, load_json, step, write_jsonl


def run(domain: str, inp, out, *extra: str) -> list:
    assert rl_prompts.main([domain, "--input", str(inp), "--out-dir", str(out), *FAST_DECONTAM, *extra]) == 0
    return read_rl_records(out / "train.parquet")


def test_math(tmp_path, offline):
    pool = offline.math_train_pool()[:30]
    rows = [{"problem": r["problem"], "answer": r["answer"], "source": "MATH", "id": r["id"]} for r in pool]
    rows.append({"problem": offline.math500()[10]["problem"], "answer": "1", "source": "planted"})  # contaminated
    rows.append({"problem": offline.aime(2024, lang="zh")[0]["problem"], "answer": "204", "source": "mmath-zh"})
    rows.append({"problem": pool[0]["problem"], "answer": pool[0]["answer"], "source": "dup"})  # exact duplicate
    rows.append({"problem": "What is 1+1?", "answer": None, "source": "bad"})  # no answer: malformed
    path = write_jsonl(tmp_path / "in" / "math.jsonl", rows, extra_lines=('{"problem": "unterminated',))
    recs = run("math", tmp_path / "in", tmp_path / "out")
    assert len(recs) == 30 and {r.domain for r in recs} == {RewardDomain.MATH}
    assert recs[0].prompt_text.endswith(rl_prompts.MATH_SUFFIX) and all(r.ground_truth for r in recs)
    m = load_json(tmp_path / "out" / "manifest.json")
    assert m["sources"][0]["sha256"] == sha256_file(path) and m["sources"][0]["rows"] == 35
    assert m["bad_rows"]["count"] == 2
    assert {b["where"] for b in m["bad_rows"]["examples"]} == {f"{path} row 34", f"{path} row 35"}
    assert step(m, "filter")["dropped"] == {"non_english": 1}
    assert (step(m, "dedup")["rows_in"], step(m, "dedup")["rows_out"]) == (32, 31)
    dec = step(m, "decontaminate")
    assert (dec["rows_in"], dec["rows_out"], dec["by_reason"]) == (31, 30, {"ngram": {"math500": 1}})
    assert m["outputs"][0]["rows"] == 30 and m["config"]["args"]["domain"] == "math"


def test_missing_column_fails_with_the_expected_schema(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"problem": "2+2?", "solution": "4"}])
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['answer'\].*nvidia/Nemotron-Cascade-RL-Math: problem"):
        run("math", tmp_path / "in.jsonl", tmp_path / "out")


def test_instruction_following_split_by_taxonomy(tmp_path, offline):
    qs = [r["question"] for r in offline.gsm8k_test()[:12]]
    rows = []
    for i, q in enumerate(qs[:6]):  # IFEval taxonomy
        rows.append({"prompt": [{"role": "user", "content": q + " Do not use any commas."}],
                     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{"unused": None}], "index": i})
    for i, q in enumerate(qs[6:10]):  # IFBench taxonomy (with one IFEval constraint)
        rows.append({"prompt": q + " Use at least 3 different coordinating conjunctions in the response.",
                     "instruction_id_list": ["count:conjunctions", "startend:quotation"],
                     "kwargs": json.dumps([{"small_n": 3}, {}]), "index": 100 + i})
    rows.append({"prompt": qs[10], "instruction_id_list": ["made_up:thing"], "kwargs": [{}], "index": 200})
    rows.append({"prompt": qs[11], "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}], "index": 201})
    write_jsonl(tmp_path / "if.jsonl", rows)
    stage1 = run("if", tmp_path / "if.jsonl", tmp_path / "s1", "--taxonomy", "ifeval")
    stage2 = run("if", tmp_path / "if.jsonl", tmp_path / "s2", "--taxonomy", "ifbench", "--if-domain", "instruction_rm")
    assert len(stage1) == 6 and len(stage2) == 4
    assert stage1[0].kwargs == [{}] and stage2[0].kwargs == [{"small_n": 3}, {}]
    assert {r.domain for r in stage2} == {RewardDomain.INSTRUCTION_RM}
    m = load_json(tmp_path / "s1" / "manifest.json")
    assert step(m, "filter")["dropped"] == {"taxonomy_ifbench": 4, "unknown_instruction_id": 1}
    assert m["bad_rows"]["count"] == 1  # kwargs/ids length mismatch


def test_rlhf_excludes_math_and_strips_answers(tmp_path, offline):
    mmlu = offline.mmlu("validation")[:8]
    rows = [{"messages": [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": "An answer."}],
             "category": "knowledge"} for r in mmlu]
    rows.append({"messages": [{"role": "user", "content": offline.gsm8k_test()[0]["question"]}], "category": "math"})
    write_jsonl(tmp_path / "rlhf.jsonl", rows)
    recs = run("rlhf", tmp_path / "rlhf.jsonl", tmp_path / "out", "--eval-sets", "")
    assert len(recs) == 8 and all(r.prompt[-1]["role"] == "user" and len(r.prompt) == 1 for r in recs)
    assert recs[0].domain is RewardDomain.REWARD_MODEL
    assert step(load_json(tmp_path / "out" / "manifest.json"), "filter")["dropped"] == {"category_math": 1}


def test_code_tests_urls_and_url_decontamination(tmp_path, offline):
    items = offline.mbpp()[:10]
    rows = [{"question": r["text"], "input_output": json.dumps(mbpp_tests(r)), "url": f"https://codeforces.com/problemset/problem/{1000 + i}/A",
             "task_id": r["task_id"]} for i, r in enumerate(items)]
    rows.append({"question": "An interactive problem.", "input_output": json.dumps({"inputs": [], "outputs": []}), "task_id": 1})
    write_jsonl(tmp_path / "code.jsonl", rows)
    lcb = write_jsonl(tmp_path / "lcb.jsonl", [{"question_content": "Completely different statement text here.",
                                                "platform": "codeforces", "question_id": "1003A", "contest_id": "1003"}])
    recs = run("code", tmp_path / "code.jsonl", tmp_path / "out", "--eval-sets", "", "--eval-file", f"lcb={lcb}")
    assert len(recs) == 9  # one dropped for having no tests, one by URL
    assert all(r.tests and ("fn_name" in r.tests or "test_code" in r.tests) for r in recs)
    m = load_json(tmp_path / "out" / "manifest.json")
    assert step(m, "filter")["dropped"] == {"no_tests": 1}
    assert step(m, "decontaminate")["by_reason"] == {"url": {"lcb": 1}}


def test_code_assert_tests_that_cannot_be_plain_calls_are_dropped_and_counted(tmp_path, offline):
    """HumanEval checks that draw random inputs could only ever score 0 (the reward never runs
    test code): they are filtered at build time and counted in the manifest."""
    he = {p["task_id"]: p for p in offline.humaneval()}
    rows = [{"question": he[t]["prompt"], "task_id": t,
             "tests": {"test_code": he[t]["test"], "entry_point": he[t]["entry_point"]}}
            for t in ("HumanEval/0", "HumanEval/2", "HumanEval/53")]
    write_jsonl(tmp_path / "code.jsonl", rows)
    recs = run("code", tmp_path / "code.jsonl", tmp_path / "out", "--eval-sets", "")
    assert sorted(r.tests["entry_point"] for r in recs) == sorted([he["HumanEval/0"]["entry_point"],
                                                                   he["HumanEval/2"]["entry_point"]])
    m = load_json(tmp_path / "out" / "manifest.json")
    assert step(m, "filter")["dropped"] == {"unconvertible_tests": 1}
