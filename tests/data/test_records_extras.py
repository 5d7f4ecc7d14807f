"""RLRecord.reward_context: the optional JSON column whose keys reach the reward row (structured
output schemas, tool-calling states), and reading parquet files written before it existed."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cascade.config.schema.rl import RewardDomain
from cascade.data.records import RL_SCHEMA, RecordError, RLRecord, read_rl_records, write_records
from cascade.rewards.structured_output import score_row as score_structured
from cascade.rewards.tool_calling.reward import score_row as score_tools
from cascade.rewards.tool_calling.workplace import replay

USER = [{"role": "user", "content": "Do it."}]
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
STATE = {"employees": {"e1": {"name": "Ana", "email": "ana@corp.example"}}, "events": {}, "emails": {},
         "tasks": {}}
CALLS = [("create_task", {"title": "Ship it", "assignee": "ana@corp.example"})]


def rl(domain: RewardDomain, **fields) -> RLRecord:
    return RLRecord(id=f"x-{domain.value}", domain=domain, prompt=USER, source="test", **fields)


def test_context_round_trips_and_reaches_the_reward_row(tmp_path):
    records = [
        rl(RewardDomain.STRUCTURED_OUTPUT, reward_context={"schema": SCHEMA}),
        rl(RewardDomain.TOOL_CALLING, reward_context={"initial_state": STATE,
                                                      "expected_state": replay(STATE, CALLS)}),
        rl(RewardDomain.STEM_MCQA, ground_truth="C"),
        rl(RewardDomain.MATH, ground_truth="4"),
    ]
    path = tmp_path / "rl.parquet"
    write_records(path, [r.validate() for r in records])
    back = read_rl_records(path)
    assert [r.to_row() for r in back] == [r.to_row() for r in records]
    assert back[2].reward_context == {} and back[2].to_row()["reward_context"] is None

    so, tc, mcqa = (r.reward_fields() for r in back[:3])
    assert so["schema"] == SCHEMA and so["domain"] == "structured_output"
    assert score_structured({**so, "response": '```json\n{"ok": true}\n```'}).reward == 1.0
    call = '<tool_call>\n{"name": "create_task", "arguments": {"title": "Ship it", "assignee": "ana@corp.example"}}' \
           "\n</tool_call>"
    assert score_tools({**tc, "response": call}).reward == 1.0
    assert mcqa["ground_truth"] == "C" and "schema" not in mcqa


def test_files_without_the_column_read_as_an_empty_context(tmp_path):
    old_schema = pa.schema([f for f in RL_SCHEMA if f.name != "reward_context"])
    row = rl(RewardDomain.MATH, ground_truth="4").to_row()
    del row["reward_context"]
    path = tmp_path / "old.parquet"
    pq.write_table(pa.Table.from_pylist([row], schema=old_schema), path)
    (back,) = read_rl_records(path)
    assert back.reward_context == {} and back.ground_truth == "4"
    assert set(back.reward_fields()) == {"id", "domain", "prompt", "messages", "ground_truth"}


def test_other_columns_are_still_required(tmp_path):
    schema = pa.schema([f for f in RL_SCHEMA if f.name not in ("reward_context", "metadata")])
    row = {k: v for k, v in rl(RewardDomain.MATH, ground_truth="4").to_row().items() if k in schema.names}
    path = tmp_path / "older.parquet"
    pq.write_table(pa.Table.from_pylist([row], schema=schema), path)
    with pytest.raises(RecordError, match=r"missing column\(s\) \['metadata'\]"):
        read_rl_records(path)


def test_every_domain_has_a_record_rule_and_long_context_questions_travel_in_the_context():
    from cascade.data.records import DOMAIN_CHECKS, DOMAIN_FIELDS

    assert set(DOMAIN_CHECKS) == set(DOMAIN_FIELDS) == set(RewardDomain)
    r = rl(RewardDomain.LONG_CONTEXT_QA, ground_truth="1912", reward_context={"question": "When?"}).validate()
    assert {k: r.reward_fields()[k] for k in ("question", "ground_truth")} == {"question": "When?", "ground_truth": "1912"}
    with pytest.raises(RecordError, match="question"):
        rl(RewardDomain.LONG_CONTEXT_QA, ground_truth="1912").validate()


@pytest.mark.parametrize("record,needle", [
    (rl(RewardDomain.STRUCTURED_OUTPUT), "reward_context` keys ['schema']"),
    (rl(RewardDomain.TOOL_CALLING, reward_context={"initial_state": STATE}), "missing ['expected_state']"),
    (rl(RewardDomain.STEM_MCQA, ground_truth="Paris"), "one letter A-J"),
    (rl(RewardDomain.MATH, ground_truth="4", reward_context={"response": "\\boxed{4}"}), "may not set ['response']"),
    (rl(RewardDomain.MATH, ground_truth="4", reward_context={"ground_truth": "5"}), "may not set ['ground_truth']"),
    (rl(RewardDomain.MATH, ground_truth="4", reward_context=["schema"]), "must be an object"),  # type: ignore[arg-type]
])
def test_bad_contexts_are_refused(record, needle):
    with pytest.raises(RecordError) as e:
        record.validate("f row 1")
    assert needle in str(e.value)


def test_a_context_that_is_not_json_names_the_row():
    row = rl(RewardDomain.STRUCTURED_OUTPUT, reward_context={"schema": SCHEMA}).to_row()
    row["reward_context"] = "{bad"
    with pytest.raises(RecordError, match="f row 3: `reward_context` is not valid JSON"):
        RLRecord.from_row(row, "f row 3")
    row["reward_context"] = json.dumps({"schema": SCHEMA})
    assert RLRecord.from_row(row).reward_context == {"schema": SCHEMA}
