"""stem_mcqa reward: the final letter after </think> must be exactly the gold letter; hedges earn 0."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

import cascade.offline as off
from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.rewards.mcqa import extract_choice, final_choices, score_row
from cascade.rewards.registry import build_scorer

REPO = Path(__file__).resolve().parents[2]
LETTERS = "ABCD"


def prompt_of(item: dict) -> str:
    options = "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(item["choices"]))
    return f"{item['question']}\n{options}\nAnswer with the letter."


@pytest.fixture(scope="module")
def mmlu_items():
    try:
        items = off.mmlu("test")
    except off.OfflineAssetMissing as e:
        pytest.skip(str(e))
    return random.Random(0).sample(items, 40)


def reward(response: str, gold: str, **extra) -> float:
    return score_row({"response": response, "ground_truth": gold, **extra}).reward


def test_real_mmlu_items_gold_wins_and_every_other_letter_loses(mmlu_items):
    scorer = build_scorer(RewardConfig(domain=RewardDomain.STEM_MCQA))
    try:
        rows, want = [], []
        forms = ["<think>Let me check each option.</think>\nAnswer: {x}", "The answer is ({x}).", "$\\boxed{{{x}}}$",
                 "<think>B? no.</think>After checking, the best option is:\n**{x}**"]
        for n, item in enumerate(mmlu_items):
            gold = LETTERS[item["answer"]]
            for x in LETTERS:
                rows.append({"prompt": prompt_of(item), "response": forms[n % 4].format(x=x), "ground_truth": gold})
                want.append(float(x == gold))
        results = scorer.score(rows)
        assert [r.reward for r in results] == want
        assert not any("error" in r.info for r in results)
    finally:
        scorer.close()


def test_thinking_letters_do_not_count_and_unfinished_thinking_scores_zero():
    assert reward("<think>Answer: A</think>Answer: C", "C") == 1.0
    assert reward("<think>Answer: C</think>I am not sure.", "C") == 0.0
    r = score_row({"response": "<think>Answer: C ...", "ground_truth": "C"})
    assert r.reward == 0.0 and r.info["reason"] == "unfinished_thinking" and "error" not in r.info


@pytest.mark.parametrize("response", [
    "Answer: A or B", "Answer: A, B", "Answer: (A)/(B)", "Answer: A and B",
    "\\boxed{A}\\boxed{B}", "\\boxed{A, B}", "\\boxed{A \\text{ or } B}",
    "The answer is (A). Answer: B", "Answer: A\nAnswer: B",
])
def test_hedged_answers_earn_zero_even_if_they_contain_the_gold(response):
    for gold in "AB":
        r = score_row({"response": response, "ground_truth": gold})
        assert r.reward == 0.0 and r.info["reason"] == "hedged", (response, r.info)


def test_a_response_that_lists_all_options_earns_zero():
    listing = "A) 4\nB) 2\nC) 0\nD) 6"
    assert reward(listing, "B") == 0.0
    assert score_row({"response": listing, "ground_truth": "B"}).info["reason"] == "no_answer"
    for everything in ("Answer: A, B, C, D", "\\boxed{A}\\boxed{B}\\boxed{C}\\boxed{D}",
                       "The answer is (A) or (B) or (C) or (D)."):
        assert reward(everything, "C") == 0.0, everything
    # listing the options and then committing to one is a normal answer
    assert reward(listing + "\n\nAnswer: B", "B") == 1.0


def test_restating_the_same_letter_is_not_a_hedge():
    assert reward("The answer is (B). So, Answer: B. \\boxed{B}", "B") == 1.0
    assert reward("Answer: B, because A is too small.", "B") == 1.0
    assert reward("Answer: B and I am confident.", "B") == 1.0  # the pronoun I is not option I
    assert reward("Answer: B or I", "B") == 0.0


def test_case_rules():
    assert reward("Answer: C", "c") == 1.0  # gold letters are case-insensitive
    assert reward("Answer: C", "(C)") == 1.0
    assert reward("the answer is a", "A") == 0.0  # lower-case "a" is the article, never a choice
    assert reward("answer: C", "C") == 1.0  # the keyword itself may be any case


def test_lone_letter_on_the_last_line_and_mmlu_pro_letters():
    assert reward("Comparing the options, the best fit is\n(D)", "D") == 1.0
    assert reward("Answer: J", "J") == 1.0  # MMLU-Pro has ten options
    assert reward("Answer: E", "E", num_choices=4) == 0.0  # not an option of a four-choice item


@pytest.mark.parametrize("row,needle", [
    ({"response": "Answer: A"}, "missing field(s): ground_truth"),
    ({"ground_truth": "A"}, "missing field(s): response"),
    ({"response": "Answer: A", "ground_truth": None}, "ground_truth"),
    ({"response": "Answer: A", "ground_truth": "AB"}, "not a letter"),
    ({"response": "Answer: A", "ground_truth": "K"}, "not a letter"),
    ({"response": "Answer: A", "ground_truth": "A", "num_choices": "four"}, "num_choices"),
    ({"response": 7, "ground_truth": "A"}, "not a string"),
])
def test_bad_rows_are_errors_not_crashes(row, needle):
    r = score_row(row)
    assert r.reward == 0.0 and needle in r.info["error"]


def test_evals_extraction_is_the_same_function():
    from evals.scoring import mcq

    assert mcq.extract_choice is extract_choice
    assert extract_choice("Answer: A\nAnswer: B", 4) == "B"  # evals keep last-occurrence-wins
    assert final_choices("Answer: A\nAnswer: B", 4) == (["A", "B"], "pattern")


def test_cli_scores_stem_mcqa(tmp_path):
    rows = [{"response": "Answer: B", "ground_truth": "B"}, {"response": "Answer: A or B", "ground_truth": "B"},
            {"response": "Answer: B"}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = subprocess.run([sys.executable, "-m", "cascade.rewards", "score", "--domain", "stem_mcqa", str(src), str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [g["reward"] for g in got] == [1.0, 0.0, 0.0]
    assert got[1]["info"]["reason"] == "hedged" and "error" in got[2]["info"]
