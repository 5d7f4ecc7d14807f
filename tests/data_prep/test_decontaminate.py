"""Decontamination and dedup on real items: planted eval items (exact and lightly edited) are
removed, unrelated real items are kept; URL matching; parallel == serial."""

from __future__ import annotations

import re

import numpy as np
import pytest

from data_prep.decontaminate import DecontamConfig, EvalIndex, build_index, decontaminate
from data_prep.dedup import DedupConfig, find_duplicates
from data_prep.eval_sets import EvalItem, canonical_url, load_eval_file
from dp_helpers import write_jsonl

SETS = ("aime24", "aime25", "math500", "humaneval", "ifbench")


def light_edit(text: str, k: int) -> str:
    """What copies of benchmark items in training data look like: case, spacing and punctuation
    changes plus a couple of substituted words."""
    words = text.split()
    for i in (len(words) // 3, 2 * len(words) // 3)[: k]:
        words[i] = "banana"
    return re.sub(r"[,.;]", " ", " ".join(words)).upper()


@pytest.fixture(scope="module")
def index(offline):
    return build_index(DecontamConfig(eval_sets=SETS, workers=1))


@pytest.fixture(scope="module")
def corpus(offline):
    planted = [offline.aime(2024)[4]["problem"], offline.math500()[17]["problem"],
               offline.humaneval()[9]["prompt"], offline.ifbench()[7]["prompt"], offline.aime(2025)[2]["problem"]]
    edited = [light_edit(t, 2) for t in planted]
    # unrelated real text: GSM8K word problems and MBPP task statements are not in these eval sets
    unrelated = [r["question"] for r in offline.gsm8k_test()[:150]] + [r["text"] for r in offline.mbpp()[:100]]
    return planted, edited, unrelated


def test_planted_items_removed_unrelated_kept(index, corpus):
    planted, edited, unrelated = corpus
    texts = unrelated[:100] + planted + unrelated[100:200] + edited + unrelated[200:]
    res = decontaminate(texts, index, DecontamConfig(workers=1))
    flagged = {texts[i] for i in np.flatnonzero(res.flagged)}
    assert set(planted) <= flagged, "an exact eval item survived"
    assert set(edited) <= flagged, "a lightly edited eval item survived"
    assert not flagged & set(unrelated), f"unrelated items removed: {flagged & set(unrelated)}"
    summary = res.summary(index)
    assert summary["removed"] == 10 and set(summary["by_reason"]["ngram"]) == {"aime24", "aime25", "math500",
                                                                              "humaneval", "ifbench"}


def test_embedded_copy_is_found_and_matched_to_its_source(index, offline):
    item = offline.math500()[3]
    text = "Here is a nice exercise for you.\n" + item["problem"] + "\nShow all your work, please."
    res = decontaminate([text], index, DecontamConfig(workers=1))
    assert res.flagged[0] and index.items[res.match[0]].id == item["id"]


def test_parallel_scan_equals_serial(index, corpus):
    planted, edited, unrelated = corpus
    texts = (unrelated + planted + edited) * 3
    a = decontaminate(texts, index, DecontamConfig(workers=1, chunk_rows=64))
    b = decontaminate(texts, index, DecontamConfig(workers=2, chunk_rows=64))
    assert np.array_equal(a.flagged, b.flagged) and np.array_equal(a.match, b.match)


def test_thresholds_and_short_items():
    items = [EvalItem("e", "long", " ".join(f"w{i}" for i in range(60))), EvalItem("e", "short", "Find x. Now!")]
    idx = EvalIndex(items, n=9)
    one_shared = " ".join(f"w{i}" for i in range(9)) + " unrelated tail words here and there"
    res = decontaminate([one_shared, "find X now", "find x now please"], idx, DecontamConfig(workers=1))
    assert res.flagged.tolist() == [False, True, False]  # 1 of 52 n-grams is not contamination
    strict = decontaminate([one_shared], idx, DecontamConfig(workers=1, min_coverage=0, min_overlap=1))
    assert strict.flagged.tolist() == [True]


def test_url_matching_with_a_user_eval_file(tmp_path):
    path = write_jsonl(tmp_path / "lcb.jsonl", [
        {"question_title": "A", "question_content": "Given an array of integers, print its sum.",
         "platform": "codeforces", "question_id": "1873A", "contest_id": "1873"},
        {"question_title": "Two Sum II", "question_content": "Return indices of two numbers adding to target.",
         "platform": "leetcode", "question_id": "99"},
        {"question_content": "Count the stones.", "platform": "atcoder", "question_id": "abc300_a", "contest_id": "abc300"},
    ])
    items = load_eval_file("livecodebench", path)
    assert canonical_url("https://codeforces.com/contest/1873/problem/A") == canonical_url(
        "http://www.codeforces.com/problemset/problem/1873/a/")
    idx = EvalIndex(items)
    texts = ["Solve this: alpha beta gamma delta epsilon zeta eta theta iota kappa."] * 4
    urls = [["https://codeforces.com/problemset/problem/1873/A"], ["https://leetcode.com/problems/two-sum-ii/"],
            ["https://atcoder.jp/contests/abc300/tasks/abc300_a?lang=en"], ["https://codeforces.com/problemset/problem/1873/B"]]
    res = decontaminate(texts, idx, DecontamConfig(workers=1), urls)
    assert res.flagged.tolist() == [True, True, True, False]
    assert res.summary(idx)["by_reason"] == {"url": {"livecodebench": 3}}


def test_dedup_removes_exact_and_near_duplicates(offline):
    qs = [r["question"] for r in offline.gsm8k_test()[:200]]
    near = qs[5].replace("How many", "how many in total") + " Explain."
    texts = qs + [qs[3], "  " + qs[4].upper() + " ", near]
    res = find_duplicates(texts, DedupConfig(workers=1))
    removed = {i: int(res.duplicate_of[i]) for i in np.flatnonzero(~res.keep)}
    assert removed == {200: 3, 201: 4, 202: 5}
    assert res.exact == 2 and res.near == 1
