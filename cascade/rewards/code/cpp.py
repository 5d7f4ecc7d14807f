"""C++ programs in the code sandbox: compiled by g++ and run inside the same bubblewrap isolation
as the Python programs (`sandbox.py`), so untrusted source never meets the host, at compile time
(`#include "/path/to/tests"`) or at run time.

The harness runs Python, so each test runs a small Python wrapper of ours. Test 0 is the compile
step: the wrapper writes the source to the sandbox's private /tmp and runs g++ there (the binary
survives until the job ends, then /tmp is emptied). Every later test lowers the CPU, memory and
stack limits to the problem's, arms a wall-clock alarm (kept across exec) and execs the binary
on the test's stdin. Expected outputs never enter the sandbox; `CppGrader` compares tokens
outside and needs positive evidence: the compile marker, then every test ok, in time and
matching. The only difference from the Python sandbox is the read-only `/usr/include` (headers).
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
from dataclasses import dataclass
from typing import Any

from cascade.rewards.code.sandbox import Job, RunReport, Sandbox, SandboxLimits

HEADER_DIRS = ("/usr/include",)
GXX_FLAGS = ("-std=gnu++17", "-O2", "-pipe")  # our choice: Codeforces' "GNU G++17" dialect
_SANDBOX_BIN_DIRS = ("/usr/bin", "/bin")  # what the sandbox mounts (filesystem.py)
_SIGALRM, _SIGXCPU = 14, 24


class CompilerMissing(RuntimeError):
    """No g++ that the sandbox can run (it sees /usr/bin only)."""


def gxx_problem() -> str | None:
    """Why C++ cannot be compiled here, in one line, or None."""
    path = shutil.which("g++")
    if path is None:
        return "g++ is not installed (apt-get install g++): C++ programs cannot be judged"
    real = os.path.realpath(path)
    if not any(real.startswith(d + "/") for d in _SANDBOX_BIN_DIRS):
        return f"g++ resolves to {real}, outside /usr/bin, which the code sandbox does not mount"
    return None


_WRAPPER = """\
import os, resource, signal, sys
D = {dir!r}
B = D + "/sol"
if os.pread(0, {n}, 0) == {marker!r}:
    import subprocess
    os.makedirs(D, exist_ok=True)
    with open(D + "/sol.cpp", "w", encoding="utf-8") as f:
        f.write({source!r})
    r = subprocess.run(["g++", *{flags!r}, "-o", B, D + "/sol.cpp"], stdin=subprocess.DEVNULL,
                       stdout=2, stderr=2, timeout={compile_s})
    if r.returncode != 0:
        sys.exit(3)
    sys.stdout.write({marker_text!r})
    sys.exit(0)
for kind, value in ((resource.RLIMIT_CPU, {cpu_s}), (resource.RLIMIT_AS, {mem}), (resource.RLIMIT_STACK, {mem})):
    soft, hard = resource.getrlimit(kind)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (value, value))
signal.alarm({wall_s})
os.execv(B, [B])
"""


@dataclass(frozen=True)
class CppLimits:
    time_limit_s: float  # the problem's, per test
    memory_limit_mb: int  # the problem's (address space and stack)
    time_scale: float = 1.0  # our choice: multiply the problem's limit (slower machines)
    compile_timeout_s: float = 60.0

    @property
    def test_limit_s(self) -> float:
        return self.time_limit_s * self.time_scale


def cpp_job(source: str, inputs: list[str], limits: CppLimits) -> tuple[Job, str]:
    """A sandbox job (compile step + one run per input) and the compile step's expected output."""
    nonce = secrets.token_hex(8)
    marker = f"compiled {nonce}\n"
    wrapper = _WRAPPER.format(
        dir=f"/tmp/.cascade-cpp-{nonce}", n=len(marker) + 1, marker=marker.encode(), marker_text=marker,
        source=source, flags=list(GXX_FLAGS), compile_s=limits.compile_timeout_s,
        cpu_s=math.ceil(limits.test_limit_s) + 1, mem=(limits.memory_limit_mb + 64) << 20,
        wall_s=math.ceil(limits.test_limit_s) + 2)
    return Job(wrapper, [marker, *inputs], "stdio"), marker


class CppSandbox(Sandbox):
    """The code sandbox plus read-only system headers; refuses to start without a usable g++."""

    def __init__(self, limits: SandboxLimits | None = None, num_workers: int = 0,
                 allow_unsandboxed: bool = False, **kw: Any) -> None:
        problem = gxx_problem()
        if problem:
            raise CompilerMissing(problem)
        super().__init__(limits, num_workers, allow_unsandboxed=allow_unsandboxed, **kw)
        if self.sandboxed:  # slots launch lazily, so every sandbox gets these mounts
            for d in HEADER_DIRS:
                if os.path.isdir(d):
                    self.mounts += ["--ro-bind", d, d]

    def run(self, job: Job, on_test: Any = None) -> RunReport:
        try:
            return super().run(job, on_test)
        finally:
            if not self.sandboxed:  # the host's /tmp: remove the build directory ourselves
                for line in job.code.splitlines():
                    if line.startswith("D = "):
                        shutil.rmtree(line[4:].strip("'\""), ignore_errors=True)


def tokens_match(got: str, expected: str) -> bool:
    """Whitespace-insensitive token equality (the usual default checker)."""
    return got.split() == expected.split()


class CppGrader:
    """Judges streamed test events; stops the program at the first failure."""

    def __init__(self, marker: str, outputs: list[str], limits: CppLimits) -> None:
        self.marker, self.outputs, self.limits = marker, outputs, limits
        self.passed: set[int] = set()
        self.failure: dict[str, Any] | None = None

    def __call__(self, event: dict[str, Any]) -> bool:
        i, status = event["index"], event.get("status")
        if i == 0:
            if status == "ok" and event.get("output") == self.marker:
                return True
            self.failure = {"verdict": "compile_error", "stderr": str(event.get("stderr", ""))[-1000:]}
            return False
        late = float(event.get("elapsed", math.inf)) > self.limits.test_limit_s
        if status == "ok" and not late and tokens_match(event.get("output", ""), self.outputs[i - 1]):
            self.passed.add(i - 1)
            return True
        signalled = event.get("exit_code") in (-_SIGALRM, -_SIGXCPU)
        verdict = ("timeout" if late or status == "timeout" or signalled else
                   "wrong_answer" if status == "ok" else "runtime_error")
        self.failure = {"verdict": verdict, "test": i - 1, "status": status,
                        "elapsed": event.get("elapsed"), "stderr": str(event.get("stderr", ""))[-300:]}
        return False

    def verdict(self, report: RunReport) -> tuple[float, dict[str, Any]]:
        """1 only if every test passed and the harness finished the job; else 0 and why."""
        info: dict[str, Any] = {"tests_passed": len(self.passed), "tests_total": len(self.outputs)}
        if self.failure is not None:
            return 0.0, {**info, **self.failure}
        if report.compile_error is not None or report.killed or not report.finished:
            return 0.0, {**info, "verdict": "runtime_error", "killed": report.killed or "crashed",
                         "stderr": report.sandbox_stderr[-300:]}
        if self.passed != set(range(len(self.outputs))):
            return 0.0, {**info, "verdict": "runtime_error", "killed": "missing results"}
        return 1.0, {**info, "verdict": "passed"}
