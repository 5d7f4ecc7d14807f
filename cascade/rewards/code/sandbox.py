"""The code sandbox: runs untrusted programs in bubblewrap, never in the trainer's process.

What it guarantees (each point is a test in tests/rewards/test_code_redteam.py):
  * the program sees only the interpreter, the system libraries and its own test input
    (`filesystem.py`): not the repository, datasets, caches, homes, /var/tmp or the scorer's
    environment; no network (a fresh network namespace), no other process of the host;
  * it cannot reach the result channel: the harness is the sandbox's PID 1 and non-dumpable,
    and seccomp refuses ptrace-like calls (`seccomp.py`); results are parsed and compared by
    the scorer outside, on plain values;
  * nothing survives from one program to the next in a warm sandbox: every process is killed
    after each test, /tmp and /dev/shm are size-capped tmpfs emptied after each program (a
    sandbox that cannot be emptied is discarded), SysV IPC, POSIX message queues and keyrings
    are refused by seccomp;
  * bounded resources: RLIMIT_AS/DATA/CPU/FSIZE/NPROC per process (harness), a wall clock per
    test and per program (on expiry the sandbox is SIGKILLed), a per-slot cgroup (v1 or v2)
    for memory and processes where one is writable (`cgroups.py`); each slot runs as its own
    unprivileged uid when we are root (`uids.py`), so RLIMIT_NPROC really bounds a fork bomb.
What it does not: it shares the host kernel (a kernel exploit escapes any namespace sandbox);
CPU time is bounded per test, not isolated (a busy program slows its neighbours); without a
writable cgroup, total memory is bounded by max_procs x memory_mb plus the tmpfs sizes.

Each slot keeps one sandbox warm and serves programs one after another (`slot.Slot`); any
timeout, crash, protocol error or unclean clean-up discards it for a fresh one.
Without a working bwrap, construction raises `SandboxUnavailable` unless `allow_unsandboxed`
was set explicitly, in which case a WARNING is logged and only rlimits and timeouts apply.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cascade.rewards.code import seccomp
from cascade.rewards.code.cgroups import SlotCgroup, cgroup_problem
from cascade.rewards.code.filesystem import bwrap_mounts
from cascade.rewards.code.slot import RunReport, Slot
from cascade.rewards.code.uids import UidLease
from cascade.rewards.pool import default_workers

log = logging.getLogger(__name__)

HARNESS_SOURCE = (Path(__file__).parent / "harness.py").read_text()
FALLBACK_PYTHON = "/usr/bin/python3"


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or not permitted and the unsandboxed mode was not requested."""


@dataclass(frozen=True)
class SandboxLimits:
    per_test_timeout_s: float = 6.0  # LiveCodeBench's default
    total_timeout_s: float = 60.0  # one program, all its tests
    memory_mb: int = 2048  # address space per process and the slot's cgroup limit
    max_procs: int = 64  # processes per slot (RLIMIT_NPROC and pids.max)
    max_output_bytes: int = 32 << 20  # per test; more is an error (and stops the reader)
    file_size_mb: int = 64  # RLIMIT_FSIZE
    tmpfs_mb: int = 256  # the private /tmp
    shm_mb: int = 64  # the private /dev/shm


@dataclass
class Job:
    """One program and the inputs of its tests; expected outputs stay with the caller.
    stdio: each input is the test's stdin text. call: each input is `(fn, args, kwargs)` of
    plain values, and the test's output is the call's result as tagged JSON (`plain.py`)."""

    code: str
    inputs: list[Any]
    mode: str = "stdio"  # stdio | call
    prelude: str = ""


@lru_cache(maxsize=None)
def _bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _world_accessible(path: str) -> bool:
    """True if a different unprivileged uid can execute `path` (every directory traversable)."""
    p = Path(os.path.realpath(path))
    try:
        if not p.stat().st_mode & stat.S_IXOTH:
            return False
        return all(d.stat().st_mode & stat.S_IXOTH for d in p.parents)
    except OSError:
        return False


class Sandbox:
    """Runs `Job`s concurrently on `num_workers` isolated slots (threads waiting on bwrap)."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        num_workers: int = 0,
        allow_unsandboxed: bool = False,
        python: str | None = None,
        uid_base: int = 61000,
        use_cgroups: bool = True,
        python_flags: tuple[str, ...] = ("-I", "-S"),
        max_jobs_per_sandbox: int = 1000,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.num_workers = default_workers(num_workers)
        self.is_root = os.geteuid() == 0
        self.bwrap = _bwrap_path()
        self.sandboxed = True
        problem = self._probe() if self.bwrap else "bubblewrap (bwrap) is not installed"
        if problem:
            if not allow_unsandboxed:
                raise SandboxUnavailable(
                    f"{problem}. Install it with scripts/install_system_deps.sh, or set "
                    "allow_unsandboxed=True to run untrusted code WITHOUT isolation."
                )
            log.warning("code sandbox: %s; running UNSANDBOXED (rlimits and timeouts only)", problem)
            self.sandboxed = False
        self.python = python or self._pick_python()
        self.mounts: list[str] = []
        if self.sandboxed:
            self.python, self.mounts = bwrap_mounts(self.python)
        self.seccomp = seccomp.build() if self.sandboxed else None
        if self.sandboxed and self.seccomp is None:
            _warn_once(f"code sandbox: no seccomp table for {os.uname().machine}; SysV IPC, keyrings "
                       "and ptrace-like calls are NOT refused")
        self.python_flags = python_flags  # -S: no site-packages, start-up 10 ms instead of 60
        self._uid_lease = (UidLease.acquire(self.num_workers, uid_base) if self.is_root and self.sandboxed
                           else None)
        self.uids = self._uid_lease.uids if self._uid_lease else []
        self._check_uids()
        self.cgroups = [SlotCgroup.create(k, self.limits, self.uids[k] if self.uids else None)
                        for k in range(self.num_workers)] if use_cgroups and self.sandboxed else []
        if self.cgroups and not all(self.cgroups):
            for cg in self.cgroups:
                cg and cg.remove()
            self.cgroups = []
        if use_cgroups and self.sandboxed and not self.cgroups:
            _warn_once(f"code sandbox: {cgroup_problem()}; memory is capped per process "
                       f"(RLIMIT_AS {self.limits.memory_mb} MiB x {self.limits.max_procs} processes) and "
                       f"writable space by tmpfs sizes (/tmp {self.limits.tmpfs_mb} MiB, /dev/shm "
                       f"{self.limits.shm_mb} MiB), not per slot")
        self.max_jobs_per_sandbox = max_jobs_per_sandbox
        self._tmpdirs = [] if self.sandboxed else [tempfile.mkdtemp(prefix="cascade-sbx-")
                                                   for _ in range(self.num_workers)]
        self._slots = [self._make_slot(k) for k in range(self.num_workers)]
        self._free: queue.Queue[int] = queue.Queue()
        for k in range(self.num_workers):
            self._free.put(k)
        self._executor = ThreadPoolExecutor(self.num_workers, thread_name_prefix="sandbox")

    # -- setup ---------------------------------------------------------------------------------
    def _probe(self) -> str | None:
        argv = [self.bwrap or "bwrap", "--ro-bind", "/", "/", *self._isolation_args(), "/bin/true"]
        kw = {"user": 65534, "group": 65534, "extra_groups": []} if self.is_root else {}
        try:
            r = subprocess.run(argv, capture_output=True, timeout=30, **kw)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"bubblewrap failed to start: {e}"
        if r.returncode != 0:
            return f"bubblewrap is not permitted here: {r.stderr.decode(errors='replace').strip()}"
        return None

    def _pick_python(self) -> str:
        if not (self.is_root and self.sandboxed) or _world_accessible(sys.executable):
            return sys.executable
        # The slot uids cannot reach an interpreter under a private home (e.g. /root/.pyenv).
        if not _world_accessible(FALLBACK_PYTHON):
            raise SandboxUnavailable(
                f"{sys.executable} is not reachable by the sandbox's unprivileged uids and "
                f"{FALLBACK_PYTHON} does not exist: pass python=<a world-readable interpreter>")
        log.info("code sandbox: %s is not reachable by unprivileged uids; using %s",
                 sys.executable, FALLBACK_PYTHON)
        return FALLBACK_PYTHON

    def _check_uids(self) -> None:
        import pwd

        taken = []
        for uid in self.uids:
            try:
                taken.append(f"{uid} ({pwd.getpwuid(uid).pw_name})")
            except KeyError:
                pass
        if taken:  # their processes would count against the sandbox's process limit
            log.warning("code sandbox: slot uids %s belong to existing users; pass another uid_base",
                        ", ".join(taken))

    def _isolation_args(self) -> list[str]:
        lim = self.limits
        return [
            "--dev", "/dev", "--size", str(lim.shm_mb << 20), "--tmpfs", "/dev/shm",
            "--proc", "/proc", "--size", str(lim.tmpfs_mb << 20), "--tmpfs", "/tmp",
            "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--as-pid-1", "--clearenv",
            "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp",
            "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            "--chdir", "/tmp",
        ]

    def _bwrap_argv(self, seccomp_fd: int | None) -> list[str]:
        extra = ["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []
        return [self.bwrap or "bwrap", *self.mounts, *self._isolation_args(), *extra, "--"]

    # -- running -------------------------------------------------------------------------------
    def _job_spec(self, job: Job, tmpdir: str) -> dict[str, Any]:
        lim = self.limits
        max_procs = lim.max_procs
        if not self.uids:  # RLIMIT_NPROC counts every process of our uid: leave room for them
            max_procs += _count_own_processes()
        return {
            "code": job.code, "inputs": job.inputs, "mode": job.mode, "prelude": job.prelude,
            "scratch_dirs": [tmpdir] if not self.sandboxed else ["/tmp", "/dev/shm"],
            "per_test_timeout": lim.per_test_timeout_s, "memory_bytes": lim.memory_mb << 20,
            "max_procs": max_procs, "max_output_bytes": lim.max_output_bytes,
            "file_size_bytes": lim.file_size_mb << 20,
            "in_pid_namespace": self.sandboxed,
        }

    def _launch(self, slot: int) -> tuple[list[str], tuple[int, ...]]:
        """The command line of a fresh sandbox for `slot`, and the descriptors it inherits."""
        fds: tuple[int, ...] = ()
        if self.seccomp is not None:
            fds = (seccomp.filter_fd(self.seccomp),)
        inner = [self.python, *self.python_flags, "-c", HARNESS_SOURCE]
        argv = self._bwrap_argv(fds[0] if fds else None) + inner if self.sandboxed else inner
        if self.cgroups:
            argv = self.cgroups[slot].join_argv() + argv
        return argv, fds

    def _make_slot(self, k: int) -> Slot:
        kw: dict[str, Any] = {}
        if self.uids and not (self.cgroups and self.cgroups[k].v2):  # v2: setpriv drops the uid
            kw = {"user": self.uids[k], "group": self.uids[k], "extra_groups": []}
        on_stop = self.cgroups[k].kill_all if self.cgroups else (lambda: None)
        return Slot(lambda: self._launch(k), kw, on_stop, self.max_jobs_per_sandbox, self.sandboxed)

    def run(self, job: Job, on_test: Callable[[dict[str, Any]], bool] | None = None) -> RunReport:
        """Run `job`; `on_test(event)` sees each test's raw output and returns False to stop."""
        k = self._free.get()
        tmpdir = self._tmpdirs[k] if self._tmpdirs else "/tmp"
        try:
            lim = self.limits
            return self._slots[k].run(self._job_spec(job, tmpdir), lim.per_test_timeout_s,
                                      lim.total_timeout_s, on_test)
        finally:
            self._free.put(k)

    def run_many(
        self,
        jobs: Sequence[Job],
        on_tests: Sequence[Callable[[dict[str, Any]], bool] | None] | None = None,
    ) -> list[RunReport]:
        """Run jobs concurrently (one per slot); reports in input order."""
        cbs = list(on_tests) if on_tests is not None else [None] * len(jobs)
        return list(self._executor.map(self.run, jobs, cbs))

    def close(self) -> None:
        """Stop the warm sandboxes and remove the slot cgroups (idempotent)."""
        self._executor.shutdown(wait=True)
        for slot in self._slots:
            slot.stop()
        for cg in self.cgroups:
            cg.remove()
        self.cgroups = []
        for d in self._tmpdirs:
            shutil.rmtree(d, ignore_errors=True)
        self._tmpdirs = []
        if self._uid_lease is not None:
            self._uid_lease.release()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """Said once per process, loudly: a weaker sandbox than the documented one."""
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning(message)


def _count_own_processes() -> int:
    uid, n = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                n += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return n
