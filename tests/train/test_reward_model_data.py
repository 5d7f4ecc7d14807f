"""Preference data for the RM trainer: rendering equal to the scorer's, row layout, resumable
order, data-parallel shards, held-out chunks, bad rows (no Megatron in this process)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cascade.config import load_stage_config
from cascade.data.records import PREFERENCE_SCHEMA, PreferenceRecord
from cascade.reward_model.data import (
    PairEncoder,
    PairOrder,
    conversations,
    fingerprint,
    heldout_chunks,
    read_pairs,
    shard,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer():
    try:
        from cascade.offline import smollm2_hf_dir

        path = smollm2_hf_dir()
    except Exception as e:  # OfflineAssetMissing
        pytest.skip(f"offline SmolLM2 missing: {e}")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def _pair(i: int, chosen: str = "Four.", rejected: str = "Five.") -> PreferenceRecord:
    return PreferenceRecord(id=f"p{i}", prompt=[{"role": "user", "content": f"What is {i} + {i}?"}],
                            chosen=f"{chosen} ({i})", rejected=f"{rejected} ({i})", source="test")


def _scorer_ids(tokenizer, conv, max_length: int) -> list[int]:
    """Exactly what cascade.rewards.reward_model.LocalRewardModel feeds the model."""
    tokenizer.truncation_side = "left"
    text = tokenizer.apply_chat_template(conv, tokenize=False)
    return tokenizer([text], truncation=True, max_length=max_length, add_special_tokens=False)["input_ids"][0]


def test_rows_match_the_scorer_tokens(tokenizer) -> None:
    pairs = [_pair(1, rejected="A much longer and wordier wrong answer"), _pair(2)]
    enc = PairEncoder(tokenizer, seq_length=512)
    rows = enc.rows(pairs, [1, 0])
    assert rows.tokens.shape[0] == 4 and rows.tokens.shape[1] % 8 == 0
    convs = [c for i in (1, 0) for c in conversations(pairs[i])]
    for r, conv in enumerate(convs):
        ids = _scorer_ids(tokenizer, conv, 512)
        n = int(rows.last[r]) + 1
        assert rows.tokens[r, :n].tolist() == ids
        assert (rows.tokens[r, n:] == enc.pad_id).all()
    assert "wordier" in tokenizer.decode(rows.tokens[3, : int(rows.last[3]) + 1])  # row 3: pair 0 rejected
    assert rows.pair_index.tolist() == [1, 1, 0, 0]
    assert rows.weight.tolist() == [1.0] * 4
    assert rows.truncated == 0 and rows.num_pairs == 2


def test_long_conversations_keep_their_end(tokenizer) -> None:
    pair = _pair(3, chosen="word " * 200)
    enc = PairEncoder(tokenizer, seq_length=32)
    rows = enc.rows([pair], [0])
    chosen = conversations(pair)[0]
    assert rows.tokens[0, :32].tolist() == _scorer_ids(tokenizer, chosen, 32)
    assert int(rows.last[0]) == 31 and rows.truncated >= 1
    assert tokenizer.decode(rows.tokens[0, :32]).endswith("<|im_end|>\n")  # the answer's end survives


def test_padding_pairs_have_weight_zero(tokenizer) -> None:
    enc = PairEncoder(tokenizer, seq_length=256)
    rows = enc.rows([_pair(0), _pair(1)], [1, 0], [1.0, 0.0])
    assert rows.weight.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert rows.pair_index.tolist() == [1, 1, -1, -1]
    assert rows.real_tokens == int(rows.last[0] + rows.last[1] + 2)


def test_order_is_a_pure_function_of_the_step() -> None:
    a, b = PairOrder(10, 4, seed=3), PairOrder(10, 4, seed=3)
    assert [a.indices(s) for s in (1, 2, 3, 4, 5)] == [b.indices(s) for s in (5, 4, 3, 2, 1)][::-1]
    stream = [i for s in (1, 2, 3, 4, 5) for i in a.indices(s)]  # 20 positions = 2 epochs
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
    assert stream[:10] != stream[10:]  # each epoch its own permutation
    assert PairOrder(10, 4, seed=4).indices(1) != a.indices(1)
    assert a.steps_for(1.0) == 2 and a.steps_for(2.0) == 5 and PairOrder(3, 4, 0).steps_for(1.0) == 1
    assert a.epochs_done(5) == pytest.approx(2.0)


def test_shards_and_heldout_chunks() -> None:
    assert shard([5, 6, 7, 8], 2, 0) == [5, 6] and shard([5, 6, 7, 8], 2, 1) == [7, 8]
    with pytest.raises(ValueError, match="evenly"):
        shard([1, 2, 3], 2, 0)
    chunks = heldout_chunks(5, 4)
    assert chunks == [([0, 1, 2, 3], [1.0] * 4), ([4, 0, 0, 0], [1.0, 0.0, 0.0, 0.0])]


def test_bad_rows_are_skipped_and_reported(tmp_path: Path) -> None:
    good = [_pair(i).to_row() for i in range(3)]
    bad = dict(_pair(9).to_row(), rejected=_pair(9).chosen)  # identical answers
    pq.write_table(pa.Table.from_pylist(good[:2] + [bad] + good[2:], schema=PREFERENCE_SCHEMA), tmp_path / "p.parquet")
    pairs, skipped = read_pairs([tmp_path / "p.parquet"])
    assert [p.id for p in pairs] == ["p0", "p1", "p2"]
    assert len(skipped) == 1 and "row 3" in skipped[0] and "identical" in skipped[0]
    assert [p.id for p in read_pairs([tmp_path / "p.parquet"], max_pairs=2)[0]] == ["p0", "p1"]
    assert fingerprint(pairs) == fingerprint(list(pairs)) != fingerprint(pairs[:2])


def test_shipped_configs_carry_the_paper_settings() -> None:
    big = load_stage_config(REPO / "nemo_configs/qwen3_8b/reward_model.yaml", [])
    assert (big.model.hf_name, big.model.num_layers, big.model.hidden_size) == ("Qwen/Qwen2.5-72B-Instruct", 80, 8192)
    assert big.model.add_qkv_bias and not big.model.tie_word_embeddings
    assert (big.train.global_batch_size, big.optim.lr, big.optim.name, big.train.epochs) == (256, 2e-6, "adamw", 1.0)
    assert big.train.steps == 0 and big.parallel.context == 1  # one epoch of the data; no CP for the RM
    tiny = load_stage_config(REPO / "nemo_configs/tiny/reward_model.yaml", [])
    assert tiny.model.hf_name == "HuggingFaceTB/SmolLM2-135M-Instruct" and tiny.precision.params_dtype == "fp32"
    assert tiny.train.global_batch_size % tiny.train.micro_batch_size == 0
