"""Multi-domain stages (`reward.domains`): each row is scored by its own record's domain."""

from __future__ import annotations

import json

import pytest

from cascade.config.schema.rl import CodeSwitchPenalty, RewardConfig, RewardDomain
from cascade.rewards.registry import build_scorer
from cascade.rewards.routing import RoutedScorer

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
          "additionalProperties": False}


def mixed_rows() -> list[dict]:
    """Interleaved rows of three domains, each right or wrong in its own domain's terms."""
    return [
        {"domain": "stem_mcqa", "prompt": "Q?", "response": "The answer is (B).", "ground_truth": "B"},
        {"domain": "math", "prompt": "1+1?", "response": "\\boxed{2}", "ground_truth": "2"},
        {"domain": "structured_output", "prompt": "json", "response": json.dumps({"n": 3}), "schema": SCHEMA},
        {"domain": "stem_mcqa", "prompt": "Q?", "response": "The answer is (C).", "ground_truth": "B"},
        {"domain": "structured_output", "prompt": "json", "response": json.dumps({"n": "3"}), "schema": SCHEMA},
        {"domain": "math", "prompt": "1+1?", "response": "\\boxed{3}", "ground_truth": "2"},
    ]


@pytest.fixture()
def routed():
    scorer = build_scorer(RewardConfig(domains=[RewardDomain.STEM_MCQA, RewardDomain.MATH,
                                                RewardDomain.STRUCTURED_OUTPUT], num_workers=1))
    yield scorer
    scorer.close()


def test_each_row_is_scored_by_its_own_domain_in_row_order(routed) -> None:
    results = routed.score(mixed_rows())
    assert [r.reward for r in results] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert all("error" not in r.info for r in results)


def test_single_domain_scorers_agree_with_the_routed_one(routed) -> None:
    rows = mixed_rows()
    for domain in ("stem_mcqa", "math", "structured_output"):
        mine = [r for r in rows if r["domain"] == domain]
        alone = build_scorer(RewardConfig(domain=RewardDomain(domain), num_workers=1))
        try:
            expected = [r.reward for r in alone.score(mine)]
        finally:
            alone.close()
        got = [res.reward for row, res in zip(rows, routed.score(rows)) if row["domain"] == domain]
        assert got == expected


def test_a_row_of_an_unlisted_domain_earns_zero_with_an_error(routed) -> None:
    """A stem_mcqa answer labelled `code` must not be paid by the MCQA scorer (or any other)."""
    rows = [{**mixed_rows()[0], "domain": "code"}, {**mixed_rows()[0], "domain": "no_such_domain"}, {**mixed_rows()[0]}]
    results = routed.score(rows)
    assert [r.reward for r in results] == [0.0, 0.0, 1.0]
    assert "'code' is not scored by this stage" in results[0].info["error"]
    assert "no_such_domain" in results[1].info["error"]


def test_code_switch_penalty_spans_every_domain_of_the_batch() -> None:
    scorer = build_scorer(RewardConfig(domains=[RewardDomain.STEM_MCQA, RewardDomain.MATH], num_workers=1,
                                       code_switch=CodeSwitchPenalty.MINUS_ONE))
    try:
        rows = mixed_rows()[:2]
        rows[1] = {**rows[1], "response": "答案是 \\boxed{2}"}
        assert [r.reward for r in scorer.score(rows)] == [1.0, -1.0]
    finally:
        scorer.close()


def test_config_needs_exactly_one_of_domain_and_domains() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        RewardConfig()
    with pytest.raises(ValueError, match="exactly one of"):
        RewardConfig(domain=RewardDomain.MATH, domains=[RewardDomain.MATH])
    with pytest.raises(ValueError, match="twice"):
        RewardConfig(domains=[RewardDomain.MATH, RewardDomain.MATH])
    cfg = RewardConfig(domains=[RewardDomain.STEM_MCQA, RewardDomain.TOOL_CALLING])
    assert cfg.label == "stem_mcqa+tool_calling" and RewardConfig(domain=RewardDomain.MATH).label == "math"


def test_a_scorer_that_miscounts_is_a_bug_not_a_zero() -> None:
    class Short:
        def score(self, rows):
            return []

        def close(self):
            pass

    with pytest.raises(RuntimeError, match="returned 0 results for 1 rows"):
        RoutedScorer({RewardDomain.MATH: Short()}).score([{"domain": "math", "response": "x"}])


# ---- red team: the policy controls only `response`; routing must not let it pick an easier scorer
def test_an_answer_in_another_domains_form_earns_nothing(routed) -> None:
    """A valid JSON object on an MCQA row, a boxed or lettered answer on a structured-output row:
    each row is judged by its own domain only, never by whichever scorer would pay."""
    rows = [
        {"domain": "stem_mcqa", "prompt": "Q?", "response": json.dumps({"n": 3}), "ground_truth": "B",
         "schema": SCHEMA},
        {"domain": "structured_output", "prompt": "json", "response": "The answer is (B). \\boxed{2}",
         "schema": SCHEMA, "ground_truth": "B"},
        {"domain": "math", "prompt": "1+1?", "response": "The answer is (B).", "ground_truth": "2"},
    ]
    assert [r.reward for r in routed.score(rows)] == [0.0, 0.0, 0.0]


def test_a_record_cannot_choose_its_domain_through_reward_context() -> None:
    from cascade.data.records import RLRecord

    rec = RLRecord(id="x", domain=RewardDomain.STEM_MCQA, source="t", prompt=[{"role": "user", "content": "Q?"}],
                   ground_truth="B", reward_context={"domain": "structured_output"})
    with pytest.raises(ValueError, match="reward_context"):
        rec.validate("row 1")
