"""A seccomp filter for the code sandbox: system calls a test program has no use for, refused.

Each of these is a way to keep state past the end of a program or to reach another process of
the same uid, which is how a policy would learn answers across rollouts or forge the harness's
results: SysV shared memory, semaphores and message queues and POSIX message queues (they live
in the warm sandbox's IPC namespace, not in its files), kernel keyrings, and ptrace-like access
(ptrace, process_vm_readv/writev, pidfd_getfd, kcmp). They fail with EPERM. The filter is
classic BPF in the layout bwrap's `--seccomp FD` loads (an array of `struct sock_filter`).
Other architectures and the x32 ABI are refused wholesale; an unknown host architecture gets no
filter (`build()` returns None) and the sandbox says so.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_X32_BIT = 0x40000000

# name: (x86_64, aarch64) system call numbers
DENIED: dict[str, tuple[int, int]] = {
    "shmget": (29, 194), "shmat": (30, 196), "shmctl": (31, 195),
    "semget": (64, 190), "semop": (65, 193), "semctl": (66, 191), "semtimedop": (220, 192),
    "msgget": (68, 186), "msgsnd": (69, 189), "msgrcv": (70, 188), "msgctl": (71, 187),
    "mq_open": (240, 180), "mq_unlink": (241, 181), "mq_timedsend": (242, 182),
    "mq_timedreceive": (243, 183), "mq_notify": (244, 184), "mq_getsetattr": (245, 185),
    "add_key": (248, 217), "request_key": (249, 218), "keyctl": (250, 219),
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "kcmp": (312, 272), "pidfd_getfd": (438, 438), "pidfd_open": (434, 434),
    "userfaultfd": (323, 282), "perf_event_open": (298, 241), "bpf": (321, 280),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
}
_ARCHES = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7), "arm64": (1, 0xC00000B7)}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build(machine: str | None = None) -> bytes | None:
    """The filter for this (or the named) architecture, or None where we have no syscall table."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    col, audit_arch = arch
    numbers = sorted({nrs[col] for nrs in DENIED.values()})
    # [load arch, check arch, load nr, (x86_64: refuse x32), one jeq per number, allow, deny].
    # BPF jumps count from the next instruction; every refusal jumps to the final `deny`.
    n_checks = 2 + (col == 0) + len(numbers)  # instructions after the first load, before allow
    deny_at = 1 + n_checks + 1
    prog = [_insn(_LD_W_ABS, 0, 0, 4), _insn(_JEQ_K, 0, deny_at - 2, audit_arch), _insn(_LD_W_ABS, 0, 0, 0)]
    if col == 0:
        prog.append(_insn(_JGE_K, deny_at - 4, 0, _X32_BIT))
    for nr in numbers:
        prog.append(_insn(_JEQ_K, deny_at - len(prog) - 1, 0, nr))
    prog.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    prog.append(_insn(_RET_K, 0, 0, _RET_ERRNO | errno.EPERM))
    assert len(prog) == deny_at + 1
    return b"".join(prog)


def filter_fd(program: bytes) -> int:
    """A readable descriptor holding `program` at offset 0, for `bwrap --seccomp FD`."""
    fd = os.memfd_create("cascade-seccomp", 0)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
