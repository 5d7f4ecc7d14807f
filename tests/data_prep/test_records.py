"""The typed record schemas (cascade.data.records): round trips, per-domain validation, errors that
name the file and row, and the domain values shared with the reward registry."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cascade.config.schema.common import ChatMode
from cascade.config.schema.rl import RewardDomain
from cascade.data.records import (
    DOMAIN_CHECKS,
    PreferenceRecord,
    RecordError,
    RLRecord,
    SFTRecord,
    read_records,
    read_rl_records,
    write_records,
)

USER = [{"role": "user", "content": "What is 2+2?"}]


def rl(domain: RewardDomain, **fields) -> RLRecord:
    return RLRecord(id=f"x-{domain.value}", domain=domain, prompt=USER, source="test", **fields)


GOOD = [
    rl(RewardDomain.MATH, ground_truth="4"),
    rl(RewardDomain.CODE, tests={"inputs": ["1\n"], "outputs": ["2\n"]}),
    rl(RewardDomain.CODE, tests={"inputs": ["[1, 2]"], "outputs": ["3"], "fn_name": "add"}),
    rl(RewardDomain.INSTRUCTION, instruction_id_list=["punctuation:no_comma"], kwargs=[{}]),
    rl(RewardDomain.INSTRUCTION_RM, instruction_id_list=["keywords:existence"], kwargs=[{"keywords": ["a"]}]),
    rl(RewardDomain.REWARD_MODEL),
    rl(RewardDomain.SWE, golden_patch="--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n", original={"f.py": "a\n"}),
]


def test_every_reward_domain_has_a_rule():
    assert set(DOMAIN_CHECKS) == set(RewardDomain)


def test_rl_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "rl.parquet"
    records = [r.validate() for r in GOOD]
    write_records(path, records)
    back = read_rl_records(path)
    assert [r.to_row() for r in back] == [r.to_row() for r in records]
    assert back[1].tests == {"inputs": ["1\n"], "outputs": ["2\n"]}
    assert back[-1].original == {"f.py": "a\n"}
    fields = back[3].reward_fields()
    assert fields["prompt"] == "What is 2+2?" and fields["kwargs"] == [{}] and "ground_truth" not in fields


@pytest.mark.parametrize("record, message", [
    (rl(RewardDomain.MATH), "ground_truth"),
    (rl(RewardDomain.CODE, tests={"inputs": ["1"], "outputs": []}), "equal length"),
    (rl(RewardDomain.INSTRUCTION, instruction_id_list=["a", "b"], kwargs=[{}]), "one per instruction"),
    (rl(RewardDomain.SWE, golden_patch="x"), "original"),
    (RLRecord(id="y", domain=RewardDomain.MATH, prompt=[{"role": "assistant", "content": "hi"}], source="s",
              ground_truth="1"), "last message"),
])
def test_rl_validation_names_the_problem(record, message):
    with pytest.raises(RecordError, match=message):
        record.validate("f.parquet row 3")


def test_bad_rows_are_named_by_file_and_row_and_can_be_skipped(tmp_path):
    path = tmp_path / "rl.parquet"
    rows = [GOOD[0].to_row(), {**GOOD[0].to_row(), "id": "bad", "ground_truth": None},
            {**GOOD[0].to_row(), "id": "bad2", "domain": "chess"}]
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(_write_one(tmp_path))), path)
    with pytest.raises(RecordError, match=rf"{path} row 2: math records need"):
        read_rl_records(path)
    errors: list[RecordError] = []
    assert [r.id for r in read_rl_records(path, errors)] == [GOOD[0].id]
    assert [e.where for e in errors] == [f"{path} row 2", f"{path} row 3"]
    assert "unknown domain 'chess'" in str(errors[1])


def _write_one(tmp_path):
    p = tmp_path / "one.parquet"
    write_records(p, [GOOD[0]])
    return p


def test_missing_column_fails_at_once_with_the_schema(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["a"], "prompt": ["x"]}), path)
    with pytest.raises(RecordError, match=r"missing column\(s\) \['domain'.*expected schema: id: string, domain"):
        read_rl_records(path)


def test_sft_and_preference_records(tmp_path):
    think = SFTRecord(id="t", messages=[{"role": "user", "content": "1+1?"},
                                        {"role": "assistant", "content": "<think>\nadd\n</think>\n\n2"}],
                      mode=ChatMode.THINKING, domain="math", source="s")
    calls = SFTRecord(id="c", messages=[{"role": "user", "content": "weather?"},
                                        {"role": "assistant", "content": "", "tool_calls": [{"name": "w", "arguments": {}}]},
                                        {"role": "tool", "content": "sunny"},
                                        {"role": "assistant", "content": "Sunny."}],
                      mode=ChatMode.INSTRUCT, domain="tool_calling", source="s",
                      tools=[{"type": "function", "function": {"name": "w", "parameters": {}}}])
    write_records(tmp_path / "sft.parquet", [think.validate(), calls.validate()])
    back = read_records(tmp_path / "sft.parquet", SFTRecord)
    assert back[1].messages[1]["tool_calls"] == [{"name": "w", "arguments": {}}] and back[1].tools
    with pytest.raises(RecordError, match="reasoning"):
        SFTRecord(id="i", messages=think.messages, mode=ChatMode.INSTRUCT, domain="g", source="s").validate("r")
    pair = PreferenceRecord(id="p", prompt=USER, chosen="4", rejected="5", source="s").validate()
    write_records(tmp_path / "rm.parquet", [pair])
    assert read_records(tmp_path / "rm.parquet", PreferenceRecord) == [pair]
    with pytest.raises(RecordError, match="identical"):
        PreferenceRecord(id="p", prompt=USER, chosen="4", rejected="4", source="s").validate()
