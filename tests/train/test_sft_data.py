"""SFT rows and global batches: packing vs one conversation per row, a deterministic order
that resumes from the step alone, epochs, and padding of held-out sets. (Engine batches are built
in the subprocess tests: the engine must not load into the pytest process.)"""

from __future__ import annotations

import pytest
import torch

from cascade.data.tokenizer import TokenizedSample
from cascade.sft.data import GlobalBatches, build_rows, padded_to_multiple


def _samples(lengths: list[int]) -> list[TokenizedSample]:
    return [TokenizedSample(list(range(1, n + 1)), [0] * (n // 2) + [1] * (n - n // 2)) for n in lengths]


def test_packed_rows_hold_several_conversations_unpacked_one_each() -> None:
    samples = _samples([10, 20, 30, 12, 40, 8, 300])
    packed = build_rows(samples, 64, 0, packing=True)
    unpacked = build_rows(samples, 64, 0, packing=False)
    assert int(packed.sequences.sum()) == int(unpacked.sequences.sum()) == 6  # the 300-token one is dropped
    assert len(unpacked) == 6 and len(packed) < 6
    assert packed.stats.dropped_too_long == unpacked.stats.dropped_too_long == 1
    assert packed.stats.efficiency > unpacked.stats.efficiency
    assert int(packed.loss_mask.sum()) == int(unpacked.loss_mask.sum())  # same trained tokens
    assert packed.real_tokens.sum() == unpacked.real_tokens.sum() == sum(n - 1 for n in [10, 20, 30, 12, 40, 8])


def test_nothing_fits_is_an_error() -> None:
    with pytest.raises(ValueError, match="no SFT sample fits"):
        build_rows(_samples([100]), 16, 0, packing=True)


def test_batches_are_deterministic_and_cover_each_row_once_per_epoch() -> None:
    rows = build_rows(_samples([8] * 10), 8, 0, packing=False)
    a, b = GlobalBatches(rows, 4, seed=1), GlobalBatches(rows, 4, seed=1)
    first = torch.cat([a.indices(s) for s in range(1, 6)])  # 20 rows = 2 epochs of 10
    assert torch.equal(first, torch.cat([b.indices(s) for s in range(1, 6)]))
    assert sorted(first[:10].tolist()) == list(range(10)) and sorted(first[10:].tolist()) == list(range(10))
    assert not torch.equal(first[:10], first[10:])  # a new permutation per epoch
    assert torch.equal(GlobalBatches(rows, 4, seed=1).indices(4), a.indices(4))  # a resume needs only the step
    assert not torch.equal(GlobalBatches(rows, 4, seed=2).indices(1), a.indices(1))
    assert a.steps_per_epochs(1.0) == 2 and a.steps_per_epochs(2.0) == 5


def test_batch_info_counts_tokens_and_epoch() -> None:
    rows = build_rows(_samples([5, 9, 17]), 16, 0, packing=True)
    info = GlobalBatches(rows, len(rows), seed=0).info(1)
    assert info.rows == len(rows) and info.real_tokens == 4 + 8 + 16 and info.sequences == 3 and info.epoch == 1.0
    assert info.packing_efficiency == pytest.approx(28 / (16 * len(rows)))
    assert info.loss_tokens == int(rows.loss_mask.sum())


def test_heldout_rows_are_padded_with_empty_rows() -> None:
    rows = build_rows(_samples([5, 9, 7]), 16, 0, packing=False)
    padded = padded_to_multiple(rows, 4, pad_id=0)
    assert len(padded) == 4 and padded.loss_mask[3].sum() == 0 and padded.real_tokens[3] == 0
    assert padded_to_multiple(rows, 3, pad_id=0) is rows
    assert rows.fingerprint() == build_rows(_samples([5, 9, 7]), 16, 0, packing=False).fingerprint()
    assert rows.fingerprint() != build_rows(_samples([5, 9, 8]), 16, 0, packing=False).fingerprint()
