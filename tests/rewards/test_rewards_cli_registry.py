"""The CLI contract (`python -m cascade.rewards score`), the registry and the code-switch rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.config.schema.rl import CodeSwitchPenalty, RewardDomain
from cascade.rewards.code_switch import CodeSwitchDetector, apply_penalty
from cascade.rewards.registry import RewardResult, register_reward, registered_domains

REPO = Path(__file__).resolve().parents[2]
STATS = "def mean(xs):\n    return sum(xs) / len(xs)\n"
GOLDEN = ("--- a/stats.py\n+++ b/stats.py\n@@ -1,2 +1,4 @@\n def mean(xs):\n"
          "+    if not xs:\n+        return 0.0\n     return sum(xs) / len(xs)\n")
FIX = ("### stats.py\n<<<<<<< SEARCH\ndef mean(xs):\n=======\ndef mean(xs):\n    if not xs:\n"
       "        return 0.0\n>>>>>>> REPLACE\n")

MIXED = {
    "math": [{"response": "<think>hm</think>$\\boxed{\\frac{1}{2}}$", "ground_truth": "0.5"},
             {"response": "\\boxed{3}", "ground_truth": "4"}],
    "code": [{"response": "```python\nprint(int(input()) * 2)\n```", "tests": {"inputs": ["2\n"], "outputs": ["4\n"]}},
             {"response": "```python\nprint(0)\n```", "tests": {"inputs": ["2\n"], "outputs": ["4\n"]}}],
    "instruction": [{"response": "No commas here.", "prompt": "p", "instruction_id_list": ["punctuation:no_comma"],
                     "kwargs": [{}]},
                    {"response": "Yes, commas.", "prompt": "p", "instruction_id_list": ["punctuation:no_comma"],
                     "kwargs": [{}]}],
    "swe": [{"response": FIX, "golden_patch": GOLDEN, "original": {"stats.py": STATS}},
            {"response": "no edits", "golden_patch": GOLDEN, "original": {"stats.py": STATS}}],
}


@pytest.mark.parametrize("domain", sorted(MIXED))
def test_cli_scores_a_mixed_file_with_malformed_rows(domain, tmp_path):
    good, bad = MIXED[domain]
    lines = [json.dumps(good), "{this is not json", json.dumps({"unrelated": 1}), "", json.dumps([1, 2]),
             json.dumps(bad)]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(lines) + "\n")
    # swe needs a judge; these rows never reach it (a lexical match and an edit-free response)
    judge = ["--judge-endpoint", "http://127.0.0.1:9/v1"] if domain == "swe" else []
    r = subprocess.run([sys.executable, "-m", "cascade.rewards", "score", "--domain", domain, str(src), str(out),
                        "--workers", "1", "--timeout", "20", *judge], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 5  # the blank line is skipped, every other line gives one row
    assert all(isinstance(x["reward"], float) and isinstance(x["info"], dict) for x in rows)
    assert rows[0]["reward"] == 1.0 and {k: rows[0][k] for k in good} == good
    assert [("error" in x["info"]) for x in rows] == [False, True, True, True, False]
    assert rows[1]["line"] == 2 and "invalid JSON" in rows[1]["info"]["error"]
    assert rows[4]["reward"] == (-1.0 if domain == "swe" else 0.0)
    assert "scored 5 rows (3 errors)" in r.stderr


def test_every_domain_is_registered_by_enum():
    assert set(registered_domains()) == set(RewardDomain)


def test_a_domain_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="twice"):
        register_reward(RewardDomain.MATH)(lambda cfg: None)


@pytest.mark.parametrize("prompt,response,switched", [
    ("Solve x + 1 = 2.", "Since x + 1 = 2, x = 1. \\boxed{1}", False),
    ("Solve x + 1 = 2.", "因为 x + 1 = 2，所以 x = 1", True),
    ("Solve x + 1 = 2.", "Итак, x = 1", True),
    ("Find the angle θ.", "Let θ = π/4 and α ≤ β; then ∑ aᵢ = 𝔼[X] ≥ 0 — done ✓", False),
    ("计算 1+1", "答案是 2", False),  # a non-English prompt is not penalised
    ("Say hi. Café?", "Café au lait, naïve résumé.", False),  # Latin accents are English script
])
def test_code_switch_detector(prompt, response, switched):
    assert CodeSwitchDetector().switched(prompt, response) is switched


@pytest.mark.parametrize("mode,expected", [
    (CodeSwitchPenalty.OFF, [1.0, 0.5, 1.0]),
    (CodeSwitchPenalty.MINUS_ONE, [1.0, 0.5, -1.0]),
    (CodeSwitchPenalty.ZERO, [1.0, 0.5, 0.0]),
    (CodeSwitchPenalty.BATCH_MIN_MINUS_TEN, [1.0, 0.5, -9.5]),
])
def test_code_switch_penalty_modes(mode, expected):
    rows = [{"prompt": "Q?", "response": "A."}, {"prompt": [{"role": "user", "content": "Q?"}], "response": "B."},
            {"prompt": "Q?", "response": "<think>думаю</think> A."}]
    results = [RewardResult(1.0), RewardResult(0.5), RewardResult(1.0)]
    assert [r.reward for r in apply_penalty(rows, results, mode)] == expected


def test_build_scorer_scores_asynchronously():
    from cascade.config.schema.rl import RewardConfig
    from cascade.rewards.registry import build_scorer

    scorer = build_scorer(RewardConfig(domain=RewardDomain.MATH, code_switch=CodeSwitchPenalty.MINUS_ONE,
                                       num_workers=1))
    try:
        future = scorer.submit([{"response": "\\boxed{2}", "ground_truth": "2", "prompt": "1+1?"},
                                {"response": "答案 \\boxed{2}", "ground_truth": "2", "prompt": "1+1?"}])
        assert [r.reward for r in future.result(timeout=120)] == [1.0, -1.0]
    finally:
        scorer.close()
