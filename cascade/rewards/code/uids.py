"""Leases on the code sandbox's unprivileged uids: one uid per slot, never shared by two scorers
on the same machine.

Why: RLIMIT_NPROC counts every process of a uid, so two scorers whose slots both ran as uid 61000
shared one process budget, and a fork bomb scored by one failed the other's programs (seen when
a benchmark and the test suite scored code at the same time). A lease is an exclusive `flock` on
`<tmp>/cascade-sandbox-uids/<uid>.lock`; the kernel drops it when the holder exits, so a scorer
that crashed never keeps its uids.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

LOCK_DIR = Path(tempfile.gettempdir()) / "cascade-sandbox-uids"
SPAN = 1024  # uids tried above the base


class UidsExhausted(RuntimeError):
    """Every uid in [base, base + span) is leased by another scorer."""


class UidLease:
    """`n` uids held until `release()` (or the process exits)."""

    def __init__(self, uids: list[int], fds: list[int]) -> None:
        self.uids, self._fds = uids, fds

    @classmethod
    def acquire(cls, n: int, base: int, span: int = SPAN, lock_dir: Path = LOCK_DIR) -> UidLease:
        lock_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        uids: list[int] = []
        fds: list[int] = []
        for uid in range(base, base + span):
            if len(uids) == n:
                break
            fd = os.open(lock_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            uids.append(uid)
            fds.append(fd)
        lease = cls(uids, fds)
        if len(uids) < n:
            lease.release()
            raise UidsExhausted(f"code sandbox: only {len(uids)} of {n} uids in [{base}, {base + span}) are free "
                                f"(leases in {lock_dir}); stop other scorers or pass another uid_base")
        return lease

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing the only descriptor drops the flock
        self._fds = []
