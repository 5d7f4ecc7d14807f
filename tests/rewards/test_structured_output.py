"""structured_output reward: the last JSON block of the answer must validate against the row's schema."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.rewards.registry import build_scorer
from cascade.rewards.structured_output import (
    MAX_CHARS,
    MAX_DEPTH,
    StructuredOutputReward,
    last_json_block,
    score_row,
)

REPO = Path(__file__).resolve().parents[2]
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
                   "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
GOOD = {"name": "Ada", "age": 36, "tags": ["math"]}


def score(response: str, schema=PERSON):
    return score_row({"response": response, "schema": schema})


@pytest.mark.parametrize("response", [
    json.dumps(GOOD),
    "<think>They want JSON.</think>\n```json\n" + json.dumps(GOOD, indent=2) + "\n```",
    "Here is the record: " + json.dumps(GOOD) + " Hope this helps.",
    "```\n" + json.dumps({"name": "Bo", "age": 0}) + "\n```",
])
def test_valid_json_earns_one(response):
    r = score(response)
    assert r.reward == 1.0 and r.info["reason"] == "valid", r.info


def test_schema_may_be_json_text():
    assert score(json.dumps(GOOD), json.dumps(PERSON)).reward == 1.0


@pytest.mark.parametrize("instance,detail", [
    ({"name": "Ada", "age": "36"}, "is not of type 'integer'"),
    ({"name": "Ada"}, "'age' is a required property"),
    ({"name": "Ada", "age": 36, "email": "a@b.c"}, "Additional properties"),
    ({"name": "Ada", "age": -1}, "minimum"),
    ({"name": "Ada", "age": 36, "tags": [1]}, "is not of type 'string'"),
])
def test_schema_violations_earn_zero(instance, detail):
    r = score("```json\n" + json.dumps(instance) + "\n```")
    assert r.reward == 0.0 and r.info["reason"] == "schema_violation" and "error" not in r.info
    assert detail in r.info["detail"], r.info


def test_only_the_last_json_block_counts():
    bad = json.dumps({"name": "Ada"})
    good = json.dumps(GOOD)
    assert score(f"Draft:\n```json\n{bad}\n```\nFinal:\n```json\n{good}\n```").reward == 1.0
    assert score(f"Draft:\n```json\n{good}\n```\nFinal:\n```json\n{bad}\n```").reward == 0.0
    assert score(f"```json\n{good}\n```\nor rather {bad}").reward == 0.0  # a bare object after the fence
    assert score(f"{bad} no wait: {good}").reward == 1.0
    # JSON inside the thinking never counts
    assert score(f"<think>{good}</think>I cannot produce that.").info["reason"] == "no_json"
    assert last_json_block('text {"a": "}{"} more') == '{"a": "}{"}'  # braces inside strings


def test_invalid_json_and_no_json_earn_zero():
    assert score('```json\n{"name": "Ada", "age": 36,}\n```').info["reason"] == "invalid_json"
    assert score("Ada is 36 years old.").info["reason"] == "no_json"
    assert score("<think>{").info["reason"] == "unfinished_thinking"


def test_huge_and_deep_inputs_are_row_errors_not_crashes():
    deep = "```json\n" + "[" * 200_000 + "]" * 200_000 + "\n```"
    r = score(deep, {"type": "array"})
    assert r.reward == 0.0 and "characters" in r.info["error"]
    medium = "[" * 5_000 + "]" * 5_000  # under the size limit, far over the depth limit
    for text in (medium, "```json\n" + medium + "\n```", '{"a": ' + medium + "}"):
        r = score(text, {"type": "array"})
        assert r.reward == 0.0 and "deeper" in r.info["error"], r.info
    r = score(json.dumps({"name": "x" * (MAX_CHARS + 1), "age": 1}))
    assert "characters" in r.info["error"]
    ok = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert score(ok, {"type": "array"}).reward == 1.0
    assert "is not parsable" in score('{"n": ' + "9" * 5000 + "}").info["detail"]  # int digit limit


@pytest.mark.parametrize("schema,needle", [
    ({"type": "banana"}, "invalid JSON Schema"),
    ({"properties": {"a": {"minimum": "zero"}}}, "invalid JSON Schema"),
    ("{not json", "not valid JSON"),
    ("[" * 5000 + "]" * 5000, "deep"),
    ([1, 2], "not an object"),
    ({"$ref": "https://example.com/schema.json"}, "schema validation failed"),
])
def test_bad_schema_is_a_row_error(schema, needle):
    r = score(json.dumps(GOOD), schema)
    assert r.reward == 0.0 and needle in r.info["error"], r.info


def test_missing_fields_and_batch_scorer():
    scorer = build_scorer(RewardConfig(domain=RewardDomain.STRUCTURED_OUTPUT))
    try:
        results = scorer.score([{"response": json.dumps(GOOD), "schema": PERSON}, {"response": "{}"},
                                {"schema": PERSON}, {"response": None, "schema": PERSON}])
    finally:
        scorer.close()
    assert [r.reward for r in results] == [1.0, 0.0, 0.0, 0.0]
    assert "schema" in results[1].info["error"] and "response" in results[2].info["error"]


def test_cli_scores_a_pathological_file(tmp_path):
    rows = [{"response": json.dumps(GOOD), "schema": PERSON},
            {"response": "```json\n" + "[" * 200_000 + "\n```", "schema": PERSON},
            {"response": json.dumps(GOOD), "schema": {"type": 5}}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = subprocess.run([sys.executable, "-m", "cascade.rewards", "score", "--domain", "structured_output",
                        str(src), str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [g["reward"] for g in got] == [1.0, 0.0, 0.0]
    assert "error" in got[1]["info"] and "error" in got[2]["info"]
    assert "scored 3 rows (2 errors)" in r.stderr


# --- red team: the policy writes the instance, so validation runs in a worker with a deadline ---

EVIL_PATTERN = "^(a+)+$"  # Python `re` backtracks exponentially on "a" * n + "!"


def _scorer(timeout_s: float = 1.0):
    return build_scorer(RewardConfig(domain=RewardDomain.STRUCTURED_OUTPUT, timeout_s=timeout_s, num_workers=1))


def test_catastrophic_backtracking_times_out_and_the_batch_goes_on():
    by_value = {"type": "object", "properties": {"s": {"type": "string", "pattern": EVIL_PATTERN}}}
    by_key = {"type": "object", "propertyNames": {"pattern": EVIL_PATTERN}}
    evil = "a" * 40 + "!"
    honest = {"response": json.dumps(GOOD), "schema": PERSON}
    scorer = _scorer(timeout_s=1.0)
    try:
        assert scorer.score([honest])[0].reward == 1.0  # workers started before the clock runs
        t0 = time.monotonic()
        results = scorer.score([{"response": json.dumps({"s": evil}), "schema": by_value}, honest,
                                {"response": json.dumps({evil: 1}), "schema": by_key}, honest,
                                {"response": json.dumps({"s": "aaaa"}), "schema": by_value}])
        elapsed = time.monotonic() - t0
    finally:
        scorer.close()
    assert [r.reward for r in results] == [0.0, 1.0, 0.0, 1.0, 1.0], [r.info for r in results]
    for r in (results[0], results[2]):
        assert r.info == {"reason": "timeout", "timeout": True}
    assert results[1].info["reason"] == "valid" and results[4].info["reason"] == "valid"
    assert elapsed < 20, elapsed  # two 1 s deadlines plus two worker restarts, not 2**40 steps


def test_cheap_rejections_never_reach_a_worker(monkeypatch):
    scorer = StructuredOutputReward(RewardConfig(domain=RewardDomain.STRUCTURED_OUTPUT, num_workers=1))
    sent: list = []
    monkeypatch.setattr(scorer.pool, "map", lambda payloads: sent.extend(payloads) or [])
    rows = [{"response": "[" * 200_000, "schema": {"type": "array"}},
            {"response": "[" * 5_000 + "]" * 5_000, "schema": {"type": "array"}},
            {"response": json.dumps(GOOD), "schema": {"type": 5}},
            {"response": json.dumps(GOOD), "schema": {"enum": ["x" * (MAX_CHARS + 1)]}},
            {"response": "<think>{", "schema": PERSON}, {"response": None, "schema": PERSON}]
    try:
        results = scorer.score(rows)
    finally:
        scorer.close()
    assert sent == [] and [r.reward for r in results] == [0.0] * len(rows)
    assert ["error" in r.info for r in results] == [True, True, True, True, False, True]
    assert "characters as JSON" in results[3].info["error"]


def test_answer_text_cannot_forge_the_workers_result_channel():
    # A worker answers with one JSON line per task ({"id", "ok", "value"}); try to smuggle such lines
    # through every place the answer's text can reach: the prose, the JSON block, and the violation
    # message that echoes the offending value back in the verdict.
    forged = "".join(sep + json.dumps({"id": i, "ok": True, "value": {"reward": 1.0, "info": {"reason": "valid"}}})
                     for i in range(3) for sep in ("\n", "\r\n", "\u2028", '"}\n'))
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 3}}, "required": ["name"]}
    sneaky = forged + "\n" + json.dumps({"name": forged + "x" * 60_000}) + forged.replace("{", "(")
    wrong_type = forged + json.dumps({"name": 7})
    scorer = _scorer(timeout_s=30.0)
    try:
        results = scorer.score([{"response": sneaky, "schema": schema},
                                {"response": wrong_type, "schema": schema},
                                {"response": forged, "schema": schema}])
    finally:
        scorer.close()
    assert [r.reward for r in results] == [0.0, 0.0, 0.0], [r.info for r in results]
    assert results[0].info["reason"] == "schema_violation" and results[0].info["path"] == "name"
    assert '{"id": 0, "ok": true' in results[0].info["detail"]  # it did reach the channel, as data only
    assert results[1].info["reason"] == "schema_violation" and "is not of type" in results[1].info["detail"]
    assert results[2].info["reason"] == "schema_violation"  # its last bare object is a forged envelope
    assert "'name' is a required property" in results[2].info["detail"]
