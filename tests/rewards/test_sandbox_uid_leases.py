"""Sandbox uid leases: two scorers on one machine never share a slot uid (RLIMIT_NPROC is per
uid), and a lease ends with its holder, even one killed without cleaning up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cascade.rewards.code.uids import UidLease, UidsExhausted


def test_concurrent_leases_get_disjoint_uids_and_release_returns_them(tmp_path: Path) -> None:
    a = UidLease.acquire(2, 62000, lock_dir=tmp_path)
    b = UidLease.acquire(2, 62000, lock_dir=tmp_path)
    assert a.uids == [62000, 62001] and b.uids == [62002, 62003]
    a.release()
    c = UidLease.acquire(3, 62000, lock_dir=tmp_path)
    assert c.uids == [62000, 62001, 62004]
    b.release()
    c.release()


def test_no_free_uid_is_a_clear_error_that_keeps_nothing(tmp_path: Path) -> None:
    held = UidLease.acquire(3, 62000, span=4, lock_dir=tmp_path)
    with pytest.raises(UidsExhausted, match=r"only 1 of 2 uids in \[62000, 62004\) are free"):
        UidLease.acquire(2, 62000, span=4, lock_dir=tmp_path)
    assert UidLease.acquire(1, 62000, span=4, lock_dir=tmp_path).uids == [62003]  # the failed call kept none
    held.release()


def test_a_killed_holder_leaves_no_lease_behind(tmp_path: Path) -> None:
    code = ("import sys, time; from pathlib import Path; from cascade.rewards.code.uids import UidLease; "
            f"UidLease.acquire(2, 62000, lock_dir=Path({str(tmp_path)!r})); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert UidLease.acquire(1, 62000, lock_dir=tmp_path).uids == [62002]
        proc.kill()
        proc.wait(timeout=30)
        assert UidLease.acquire(2, 62000, lock_dir=tmp_path).uids == [62000, 62001]
    finally:
        proc.kill()


@pytest.mark.skipif(sys.platform != "linux", reason="flock semantics as on the cluster")
def test_two_sandboxes_in_one_process_run_as_different_uids() -> None:
    import os

    from cascade.rewards.code.sandbox import Sandbox, SandboxUnavailable

    if os.geteuid() != 0:
        pytest.skip("slot uids are used only when the scorer runs as root")
    try:
        first = Sandbox(num_workers=2)
    except SandboxUnavailable as e:
        pytest.skip(str(e))
    with first, Sandbox(num_workers=2) as second:
        assert len(set(first.uids) | set(second.uids)) == 4
