"""One warm sandbox: a bwrap'd harness process that serves jobs one after another.

The slot owns the process: it starts it on demand, frames jobs onto its stdin, reads the result
lines, enforces the wall-clock limits, and kills it (then lets the next job start a fresh one)
whenever a job times out, crashes the harness, or misbehaves on the protocol.
"""

from __future__ import annotations

import ast
import logging
import marshal
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
STARTUP_GRACE_S = 10.0  # a cold sandbox's interpreter start, under load


@dataclass
class RunReport:
    compile_error: str | None = None
    tests: list[dict[str, Any]] = field(default_factory=list)
    killed: str | None = None  # stopped | total_timeout | test_timeout | crashed
    elapsed_s: float = 0.0
    sandbox_stderr: str = ""
    finished: bool = False  # the harness said `done` for this job
    dirty: bool = False  # its clean-up left something behind: the sandbox is discarded


class Slot:
    """A restartable sandbox process; not thread-safe (the Sandbox hands a slot to one thread)."""

    def __init__(self, launch: Callable[[], tuple[list[str], tuple[int, ...]]], popen_kw: dict[str, Any],
                 on_stop: Callable[[], None], max_jobs: int, namespaced: bool = True) -> None:
        self.launch, self.popen_kw, self.on_stop, self.max_jobs = launch, popen_kw, on_stop, max_jobs
        self.namespaced = namespaced
        self.proc: subprocess.Popen | None = None
        self.jobs = 0
        self.pending: list[bytes] = []  # the current line's chunks (joined once, at its newline)
        self.err = b""

    def _start(self) -> subprocess.Popen:
        argv, fds = self.launch()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True, pass_fds=fds,
                                         env={"LANG": "C.UTF-8"}, **self.popen_kw)
        finally:
            for fd in fds:
                os.close(fd)
        for f in (self.proc.stdout, self.proc.stderr):
            os.set_blocking(f.fileno(), False)
        self.jobs, self.pending, self.err = 0, [], b""
        return self.proc

    def run(self, spec: dict[str, Any], per_test_s: float, total_s: float,
            on_test: Callable[[dict[str, Any]], bool] | None) -> RunReport:
        """Run one job (see harness.py's protocol); never raises for the program's sake."""
        report, start = RunReport(), time.monotonic()
        proc = self.proc if self.proc is not None and self.proc.poll() is None else self._start()
        cold = self.jobs == 0
        payload = marshal.dumps(spec)
        try:
            proc.stdin.write(b"J" + len(payload).to_bytes(4, "big") + payload)
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            report.killed = "crashed"
            self.stop()
            return report
        self.jobs += 1
        ok = self._collect(proc, report, start, per_test_s + (STARTUP_GRACE_S if cold else 2.0),
                           total_s, on_test, spec["inputs"])
        if not ok or report.dirty or self.jobs >= self.max_jobs:
            self.stop()
        report.elapsed_s = time.monotonic() - start
        report.sandbox_stderr = self.err.decode("utf-8", "replace")[-2000:]
        return report

    def _lines(self, chunk: bytes) -> list[bytes]:
        """Complete lines so far; a long line costs linear time however many chunks it spans."""
        if b"\n" not in chunk:
            self.pending.append(chunk)
            return []
        head, *middle, tail = chunk.split(b"\n")
        lines = [b"".join([*self.pending, head]), *middle]
        self.pending = [tail] if tail else []
        return lines

    def _collect(self, proc, report: RunReport, start: float, watchdog_s: float, total_s: float,
                 on_test, spec_inputs) -> bool:
        """Read events until `done`; False if the sandbox must be killed."""
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        last, stopping = time.monotonic(), False
        n_tests, seen = len(spec_inputs), set()
        try:
            while True:
                now = time.monotonic()
                if now - start > total_s:
                    report.killed = "total_timeout"
                    return False
                if now - last > watchdog_s:
                    report.killed = "test_timeout"  # the harness itself is stuck
                    return False
                for key, _ in sel.select(timeout=0.25):
                    chunk = os.read(key.fd, 1 << 20)
                    if key.fileobj is proc.stderr:
                        if chunk:
                            self.err = (self.err + chunk)[-4000:]
                        else:  # the harness closed its stderr (it does, unsandboxed)
                            sel.unregister(proc.stderr)
                        continue
                    if not chunk:
                        report.killed = report.killed or "crashed"  # the program killed the harness
                        return False
                    for line in self._lines(chunk):
                        event = ast.literal_eval(line.decode("utf-8"))
                        last = time.monotonic()
                        kind = event.get("event")
                        if kind == "done":
                            report.finished, report.dirty = True, event.get("clean") is not True
                            return True
                        if kind == "compile_error":
                            report.compile_error = str(event["error"])
                        elif kind == "test":
                            _check_test_event(event, n_tests, seen)
                            report.tests.append(event)
                            if not stopping and on_test is not None and not on_test(event):
                                report.killed, stopping = "stopped", True
                                proc.stdin.write(b"S")  # fail fast; the harness ends the job
                                proc.stdin.flush()
                        else:
                            raise ValueError(f"unknown event {kind!r}")
        except Exception as e:  # protocol broken (unparsable line, dead pipe): discard the sandbox
            log.warning("sandbox protocol error: %s", e)
            report.killed = "crashed"
            return False
        finally:
            sel.close()

    def stop(self) -> None:
        """Kill the sandbox and reap it (the next job starts a fresh one)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            kill_sandbox(proc, self.namespaced)
            self.on_stop()


def _check_test_event(event: dict[str, Any], n_tests: int, seen: set[int]) -> None:
    """One event per test index, in range, with the fields the scorer reads: anything else means
    the channel is not the harness's, and the job fails."""
    i = event.get("index")
    if type(i) is not int or not 0 <= i < n_tests or i in seen:
        raise ValueError(f"bad or repeated test index {i!r}")
    if not isinstance(event.get("status"), str) or not isinstance(event.get("output", ""), str):
        raise ValueError("malformed test event")
    seen.add(i)


def kill_sandbox(proc: subprocess.Popen, namespaced: bool = True) -> None:
    """SIGKILL first bwrap's child — PID 1 of the sandbox's namespace, whose death makes the
    kernel kill every process in it — so bwrap reaps it and exits; then bwrap itself if needed.
    (Killing bwrap first would leave that PID 1 a zombie of the host's init.) Unsandboxed, the
    harness's process group is killed directly."""
    if proc.poll() is None and namespaced:
        for child in _children(proc.pid):
            try:
                os.kill(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    proc.wait()
    for f in (proc.stdin, proc.stdout, proc.stderr):
        try:
            f and f.close()
        except OSError:
            pass


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
