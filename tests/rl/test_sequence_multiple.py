"""One padding rule for every stage: sequence lengths are multiples of lcm(8, 2*context*tensor)
(context parallelism's 2*CP load-balancing chunks, each split TP ways by sequence parallelism)."""

from __future__ import annotations

import pytest

from cascade.config.schema.common import ParallelConfig
from cascade.rl.setup import sequence_multiple


@pytest.mark.parametrize(("layout", "expected"), [
    (dict(), 8),
    (dict(tensor=2, context=2, sequence_parallel=True), 8),     # 2*2*2 = 8
    (dict(tensor=8, context=2, sequence_parallel=True), 32),    # 2*2*8 = 32 (the old lcm(8, 2*cp, tp) gave 8)
    (dict(tensor=3, sequence_parallel=True), 24),               # lcm(8, 3)
    (dict(tensor=4, context=4, sequence_parallel=True), 32),    # 2*4*4
    (dict(tensor=16, sequence_parallel=True), 16),
    (dict(tensor=8, context=2), 8),                             # no SP: TP does not split the sequence
    (dict(tensor=2, context=3), 24),                            # lcm(8, 6)
    (dict(tensor=4, pipeline=2, context=4, sequence_parallel=True), 32),  # PP never splits it
])
def test_sequence_multiple_by_hand(layout: dict, expected: int) -> None:
    p = ParallelConfig(**layout)
    assert p.sequence_multiple == expected
    assert sequence_multiple(p) == expected  # the RL trainer's name for the same rule


def test_every_shard_divides_evenly() -> None:
    for tp in range(1, 9):
        for cp in range(1, 5):
            for sp in ([False, True] if tp > 1 else [False]):
                p = ParallelConfig(tensor=tp, context=cp, sequence_parallel=sp)
                m = p.sequence_multiple
                chunks = 2 * cp if cp > 1 else 1
                split = tp if sp else 1
                assert m % 8 == 0 and (m // chunks) % split == 0, (tp, cp, sp, m)
