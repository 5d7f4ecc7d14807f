"""Letter extraction rules, and SWE-bench's clear skip where Docker or the harness is missing."""

from __future__ import annotations

import pytest

from evals.scoring import ScorerUnavailable, ScoringConfig, ScoringContext, build_scorer
from evals.scoring.mcq import extract_choice
from evals.scoring.swe import extract_patch


@pytest.mark.parametrize("response,expected", [
    ("Let me think.\nAnswer: C", "C"),
    ("answer: (b)", None),  # lowercase letters are not choices
    ("**Answer:** D", "D"),
    ("Answer: A\n...wait, re-checking.\nAnswer: B", "B"),
    ("The final answer is $\\boxed{B}$.", "B"),
    ("The answer is (D).", "D"),
    ("so I pick\nC", "C"),
    ("Answer: E", None),  # out of range for 4 choices
    ("<think>Answer: A</think>Answer: B", "B"),
    ("<think>Answer: A is tempting", None),  # unfinished thinking has no answer
    ("A is a vowel and I am not sure", None),
])
def test_extract_choice(response, expected):
    assert extract_choice(response, 4) == expected


def test_extract_choice_ten_options():
    assert extract_choice("Answer: J", 10) == "J"


def test_extract_patch():
    assert extract_patch("<think>x</think>Here:\n```diff\ndiff --git a/f b/f\n+x\n```\nDone") == "diff --git a/f b/f\n+x\n"
    assert extract_patch("diff --git a/f b/f\n-x\n+y") == "diff --git a/f b/f\n-x\n+y\n"
    assert extract_patch("no patch here") == ""


def test_swe_without_docker_is_skipped_with_a_reason(tmp_path, monkeypatch):
    import evals.scoring.swe as swe

    monkeypatch.setattr(swe.shutil, "which", lambda name: None)
    monkeypatch.setattr(swe.importlib.util, "find_spec", lambda name: object())
    with pytest.raises(ScorerUnavailable, match="needs Docker and the official harness: docker is not installed"):
        build_scorer("swe", ScoringContext(ScoringConfig(), tmp_path))
