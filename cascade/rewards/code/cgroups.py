"""Per-slot cgroup limits for the code sandbox: memory and processes, cgroup v1 or v2.

RLIMIT_AS bounds one process; a program that forks up to its process limit could still use
max_procs x memory in total, and tmpfs pages are not charged to any process at all, so each
sandbox slot also gets a memory limit (programs plus its /tmp and /dev/shm) and a process
limit (which caps a fork bomb even for root). The sandbox's first process joins its slot's
cgroup before exec'ing bwrap (`join_argv`), so nothing it starts can escape it.
  * v1 (separate `pids` and `memory` hierarchies): the slot's uid may join by itself (we chown
    `cgroup.procs`).
  * v2 (unified): joining needs write access up to the common ancestor, so a root scorer joins
    as root and drops to the slot's uid with `setpriv` before bwrap. The slot cgroup is made
    under our own cgroup or its parent, wherever `memory` and `pids` are delegated.
    (Written for v2 hosts; the CI machines are v1, so this path is not exercised there.)
When neither is writable, `cgroup_problem()` says why and the sandbox warns once.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
V1_ROOT = Path("/sys/fs/cgroup")
V2_ROOT = Path("/sys/fs/cgroup")
PREFIX = "cascade-sandbox-"


def _prune_stale(parent: Path) -> None:
    """Remove slot cgroups left by scorers that died without `close()` (their pid is gone)."""
    try:
        for d in parent.glob(PREFIX + "*"):
            pid = d.name[len(PREFIX):].split("-")[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                try:
                    d.rmdir()
                except OSError:
                    pass  # still has processes (dying): next time
    except OSError:
        pass


def _own_path(controller: str) -> str:
    """This process's cgroup path in a v1 hierarchy (e.g. '/' or '/process_api/abc')."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            if controller in ctrls.split(","):
                return path
    except OSError:
        pass
    return "/"


def _v2_own_path() -> str | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        pass
    return None


def _slot_bytes(limits: Any) -> int:
    return (limits.memory_mb + limits.tmpfs_mb + getattr(limits, "shm_mb", 0) + 256) << 20


def cgroup_problem() -> str:
    """Why no slot cgroup can be made here (for the one warning)."""
    if (V1_ROOT / "pids" / "cgroup.procs").exists() and (V1_ROOT / "memory" / "cgroup.procs").exists():
        return "cgroup v1 pids/memory hierarchies are not writable by this process"
    if (V2_ROOT / "cgroup.controllers").exists():
        return ("cgroup v2 has no writable subtree with the memory and pids controllers delegated "
                "(or the scorer is not root)")
    return "no cgroup file system is mounted"


@dataclass
class SlotCgroup:
    pids_dir: Path
    memory_dir: Path  # the same directory as pids_dir on cgroup v2
    uid: int | None = None
    v2: bool = False

    @property
    def pids_procs(self) -> str:
        return str(self.pids_dir / "cgroup.procs")

    @property
    def memory_procs(self) -> str:
        return str(self.memory_dir / "cgroup.procs")

    def join_argv(self) -> list[str]:
        """A prefix that moves the sandbox's first process into this cgroup, then execs the rest
        (exit 97 if it cannot join: the sandbox never runs outside its limits)."""
        if not self.v2:
            join = 'for f in "$1" "$2"; do echo $$ > "$f" || exit 97; done; shift 2; exec "$@"'
            return ["/bin/sh", "-c", join, "sh", self.pids_procs, self.memory_procs]
        join = 'echo $$ > "$1" || exit 97; shift; exec "$@"'
        drop = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--"] \
            if self.uid is not None else []
        return ["/bin/sh", "-c", join, "sh", self.pids_procs, *drop]

    @classmethod
    def create(cls, slot: int, limits: Any, uid: int | None) -> SlotCgroup | None:
        """Make (or reuse) this slot's cgroup; None when no cgroup is writable."""
        if not (V1_ROOT / "pids" / "cgroup.procs").exists() and (V2_ROOT / "cgroup.controllers").exists():
            return cls._create_v2(slot, limits, uid)
        name = f"{PREFIX}{os.getpid()}-{slot}"
        dirs = []
        try:
            for ctrl in ("pids", "memory"):
                base = V1_ROOT / ctrl
                if not (base / "cgroup.procs").exists():
                    return None
                parent = base / _own_path(ctrl).lstrip("/")
                _prune_stale(parent)
                d = parent / name
                d.mkdir(exist_ok=True)
                dirs.append(d)
            pids_dir, mem_dir = dirs
            (pids_dir / "pids.max").write_text(str(limits.max_procs + 8))  # + harness, sh, bwrap
            mem = _slot_bytes(limits)
            (mem_dir / "memory.limit_in_bytes").write_text(str(mem))
            swap = mem_dir / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(mem))
            if uid is not None:  # the slot's unprivileged uid joins by itself
                for d in dirs:
                    os.chown(d / "cgroup.procs", uid, uid)
            return cls(pids_dir, mem_dir, uid)
        except OSError as e:
            log.debug("cgroup setup failed: %s", e)
            for d in dirs:
                try:
                    d.rmdir()
                except OSError:
                    pass
            return None

    @classmethod
    def _create_v2(cls, slot: int, limits: Any, uid: int | None) -> SlotCgroup | None:
        own = _v2_own_path()
        if own is None or (uid is not None and os.geteuid() != 0):
            return None
        name = f"{PREFIX}{os.getpid()}-{slot}"
        own_dir = V2_ROOT / own.lstrip("/")
        for parent in (own_dir, own_dir.parent):
            d = parent / name
            try:
                ctrl = (parent / "cgroup.subtree_control").read_text().split()
                if not {"memory", "pids"} <= set(ctrl):
                    (parent / "cgroup.subtree_control").write_text("+memory +pids")
                _prune_stale(parent)
                d.mkdir(exist_ok=True)
                (d / "pids.max").write_text(str(limits.max_procs + 8))
                (d / "memory.max").write_text(str(_slot_bytes(limits)))
                if (d / "memory.swap.max").exists():
                    (d / "memory.swap.max").write_text("0")
                return cls(d, d, uid, v2=True)
            except OSError as e:
                log.debug("cgroup v2 setup under %s failed: %s", parent, e)
                try:
                    d.rmdir()
                except OSError:
                    pass
        return None

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.pids_dir / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill_all(self, wait_s: float = 5.0) -> None:
        """SIGKILL whatever is still in the slot (normally nothing: the PID namespace is gone)."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
        log.warning("sandbox cgroup %s still has processes after %.0fs", self.pids_dir, wait_s)

    def remove(self) -> None:
        self.kill_all()
        for d in dict.fromkeys((self.pids_dir, self.memory_dir)):
            try:
                d.rmdir()
            except OSError:
                pass
