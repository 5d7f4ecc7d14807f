"""In-sandbox harness: runs programs against their test inputs and streams raw results.

This file runs *inside* the bubblewrap sandbox (`python -I -S -c <this source>`) as the
sandbox's PID 1, stdlib only, and stays warm: it serves one job (a program and its test inputs)
after another, so neither bwrap nor the interpreter starts per program. For each test it forks a
child that executes the program: a stdin/stdout test feeds the input and captures stdout; a call
test calls one function with plain arguments and returns its result as tagged JSON (`_plain`):
the content of None, bool, int, float, complex, str, list, tuple, dict, set, frozenset (or a
subclass of one), anything else refused.
It writes one `repr()` line per test on a private copy of fd 1 (the scorer parses it with
`ast.literal_eval`) and a `done` line per job.

What the program can reach: its own test input (the other tests' inputs are dropped in the
child) and nothing the scorer compares against. Expected outputs and test code never enter the
sandbox: the scorer outside compares plain values. The result channel is unreachable: the
harness is non-dumpable (no /proc/1/fd, ptrace or pidfd_getfd access for the same uid), it is
PID 1 (no bwrap init holds the pipe), children close every inherited descriptor, and seccomp
refuses pidfd_getfd/ptrace anyway. After every test it SIGKILLs every other process in the PID
namespace; after every job it empties /tmp and /dev/shm (making read-only directories writable
first) and checks they are empty, else it reports the sandbox dirty and exits so the scorer
starts a fresh one. Killing the harness only ends the sandbox: the scorer reports the job as
crashed.

Protocol on fd 0 (from the scorer): b"J" + 4-byte big-endian length + marshal(job) starts a job;
a b"S" byte stops the running job (fail-fast after a failed test). Imports are kept to cheap
builtin modules: interpreter start-up is most of a cold sandbox's cost.
"""

import builtins
import marshal
import os
import resource
import select
import sys
import time

PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4
SIGKILL, SIGXCPU = 9, 24  # numeric: `import signal` costs an enum import
_CHUNK = 1 << 16


def _set_limit(kind, value):
    if value is None:
        return
    soft, hard = resource.getrlimit(kind)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (value, value))


def _plain(x, depth=0):
    """A JSON-able, tagged copy of a result's *content*; TypeError for anything that is not built
    on a plain type. Subclasses (a Counter, a namedtuple, a str with its own __eq__) are copied
    by the base type's own methods, so only content crosses: the scorer compares that outside,
    where no method of the program's runs. Tags: big int {"i": hex}, complex {"c": [re, im]},
    tuple {"t": [...]}, set {"s": [...]}, frozenset {"f": [...]}, dict {"d": [[k, v], ...]}."""
    if x is None or x is True or x is False:
        return x
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, int):
        x = int.__pos__(x)
        return x if -(1 << 62) < x < (1 << 62) else {"i": format(x, "x")}
    if isinstance(x, float):
        return float.__pos__(x)
    if isinstance(x, complex):
        return {"c": [complex.__pos__(x).real, complex.__pos__(x).imag]}
    if depth > 200:
        raise ValueError("result nested too deeply")
    if isinstance(x, list):
        return [_plain(v, depth + 1) for v in list.__iter__(x)]
    if isinstance(x, dict):
        return {"d": [[_plain(k, depth + 1), _plain(v, depth + 1)] for k, v in dict.items(x)]}
    for base, tag in ((tuple, "t"), (frozenset, "f"), (set, "s")):
        if isinstance(x, base):
            return {tag: [_plain(v, depth + 1) for v in base.__iter__(x)]}
    raise TypeError(f"the result is a {type(x).__name__}, not plain data")


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _run_child(job, test_input, out_fd, err_fd, in_fd):
    """Child side: set limits, wire stdio, execute the program. Never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        job["inputs"].clear()  # this copy's other tests: only the own input stays reachable
        mem = job.get("memory_bytes")
        _set_limit(resource.RLIMIT_AS, mem)
        _set_limit(resource.RLIMIT_DATA, mem)
        _set_limit(resource.RLIMIT_CPU, int(job["per_test_timeout"]) + 1)
        os.dup2(in_fd, 0)
        os.dup2(err_fd, 2)
        mode = job["mode"]
        os.dup2(out_fd if mode == "stdio" else os.open(os.devnull, os.O_WRONLY), 1)
        for fd in {in_fd, err_fd, out_fd} - {0, 1, 2} - ({out_fd} if mode == "call" else set()):
            os.close(fd)  # only fds 0-2 (and a call's own result pipe) stay open
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        ns = {"__name__": "__main__", "__builtins__": builtins}
        if job.get("prelude"):
            exec(job["prelude"], ns)
        exec(compile(job["code"], "<solution>", "exec"), ns)
        if mode == "call":
            import json

            fn, args, kwargs = test_input
            target = ns.get(fn)
            if "Solution" in ns and isinstance(ns["Solution"], type):
                target = getattr(ns["Solution"](), fn, None) or target
            if target is None:
                raise NameError(f"function {fn!r} not defined")
            result = target(*args, **kwargs)
            sys.stdout.flush()
            _write_all(out_fd, json.dumps(_plain(result)).encode())
        code = 0
    except SystemExit as e:
        code = 0 if e.code in (None, 0) else (e.code if isinstance(e.code, int) else 1)
    except BaseException:
        try:
            import traceback

            traceback.print_exc(limit=5)
        except BaseException:
            pass
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        code = code or 1
    os._exit(code)


def _kill_group(pid):
    for target in (-pid, pid):
        try:
            os.kill(target, SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _fork(tries=50):
    for _ in range(tries):
        try:
            return os.fork()
        except BlockingIOError:  # processes killed by the last clean-up are still exiting
            time.sleep(0.02)
    return None


class Control:
    """fd 0: job frames and stop bytes from the scorer."""

    def __init__(self):
        self.stop = False

    def poll(self, timeout=0.0):
        """Consume pending stop bytes; exit if the scorer went away."""
        while select.select([0], [], [], timeout)[0]:
            b = os.read(0, 1)
            if not b:
                os._exit(0)
            if b == b"S":
                self.stop = True
            elif b == b"J":  # cannot happen mid-job (the scorer waits for `done`)
                os._exit(3)
            timeout = 0.0
        return self.stop

    def next_job(self):
        self.stop = False
        while True:  # skip stop bytes that arrived after the last job finished
            b = os.read(0, 1)
            if not b:
                return None
            if b == b"J":
                break
        size = int.from_bytes(self._read(4), "big")
        return marshal.loads(self._read(size))

    @staticmethod
    def _read(n):
        buf = b""
        while len(buf) < n:
            chunk = os.read(0, n - len(buf))
            if not chunk:
                os._exit(0)
            buf += chunk
        return buf


def _input_fd(tmpdir, test_input, mode):
    """A fresh, unlinked file holding the test's stdin (nothing a program can pre-plant)."""
    path = os.path.join(tmpdir, ".in-" + os.urandom(8).hex())
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.unlink(path)
    _write_all(fd, test_input.encode("utf-8", "surrogatepass") if mode == "stdio" else b"")
    os.lseek(fd, 0, 0)
    return fd


def _run_test(job, index, test_input, tmpdir, control):
    in_fd = _input_fd(tmpdir, test_input, job["mode"])
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    start = time.monotonic()
    pid = _fork()
    if pid is None:
        for fd in (in_fd, out_r, out_w, err_r, err_w):
            os.close(fd)
        return {"event": "test", "index": index, "status": "runtime_error", "output": "",
                "stderr": "fork failed: process limit", "exit_code": -1, "elapsed": 0.0}
    if pid == 0:
        keep = sorted((in_fd, out_w, err_w))
        os.closerange(3, keep[0])
        os.closerange(keep[0] + 1, keep[1])
        os.closerange(keep[1] + 1, keep[2])
        os.closerange(keep[2] + 1, 1 << 16)
        _run_child(job, test_input, out_w, err_w, in_fd)
    for fd in (in_fd, out_w, err_w):
        os.close(fd)
    limit, cap = job["per_test_timeout"], job["max_output_bytes"]
    out, err, status, open_fds, size = [], b"", "ok", {out_r, err_r}, 0
    while open_fds:
        left = limit - (time.monotonic() - start)
        if left <= 0:
            status = "timeout"
            break
        ready = select.select(list(open_fds) + [0], [], [], left)[0]
        if 0 in ready and control.poll():
            status = "stopped"
            break
        for fd in ready:
            if fd == 0:
                continue
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                open_fds.discard(fd)
            elif fd == out_r:
                out.append(chunk)
                size += len(chunk)
            else:
                err = (err + chunk)[-2000:]
        if size > cap:
            status = "output_limit"
            break
    if status != "ok":
        _kill_group(pid)
    _, wstatus = os.waitpid(pid, 0)
    elapsed = time.monotonic() - start
    _kill_group(pid)  # anything the program left in its process group
    for fd in (out_r, err_r):
        os.close(fd)
    exit_code = os.waitstatus_to_exitcode(wstatus)
    if status == "ok" and exit_code != 0:
        status = "timeout" if exit_code == -SIGXCPU else "runtime_error"
    return {
        "event": "test", "index": index, "status": status,
        "output": b"".join(out).decode("utf-8", "replace") if status == "ok" else "",
        "stderr": err.decode("utf-8", "replace")[-1000:], "exit_code": exit_code,
        "elapsed": round(elapsed, 4),
    }


def _reap_strays(in_pid_namespace):
    """SIGKILL every other process a program left and reap them all. Inside the PID namespace
    the harness is PID 1: kill(-1) reaches the sandbox's processes and nothing else, and every
    orphan is our child, so 'no children left' means nothing of the program survives."""
    for _ in range(5000):
        if in_pid_namespace and os.getpid() == 1:
            try:
                os.kill(-1, SIGKILL)
            except ProcessLookupError:
                pass
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                if not in_pid_namespace:
                    return
                time.sleep(0.001)
        except ChildProcessError:
            return
    os._exit(5)  # something will not die: let the scorer discard this sandbox


def _empty_dir(path):
    """Remove everything under `path` (iteratively; read-only directories made writable first).
    True if it is empty afterwards."""
    stack = [path]
    while stack:
        top = stack[-1]
        try:
            os.chmod(top, 0o700) if top != path else None
            names = os.listdir(top)
        except OSError:
            stack.pop()
            continue
        pushed = False
        for name in names:
            p = os.path.join(top, name)
            try:
                if os.path.isdir(p) and not os.path.islink(p):
                    os.chmod(p, 0o700)
                    try:
                        os.rmdir(p)
                    except OSError:
                        stack.append(p)
                        pushed = True
                else:
                    os.unlink(p)
            except OSError:
                pass
        if not pushed:
            stack.pop()
            if top != path:
                try:
                    os.rmdir(top)
                except OSError:
                    pass
        if len(stack) > 10000:
            return False
    try:
        return not os.listdir(path)
    except OSError:
        return False


def _serve_job(job, chan, control, tmpdir):
    try:
        compile(job["code"], "<solution>", "exec")
    except (SyntaxError, ValueError) as e:
        chan.write(repr({"event": "compile_error", "error": f"{type(e).__name__}: {e}"}) + "\n")
        return
    if job.get("prelude"):  # load the prelude's modules once; each test's child inherits them
        try:
            exec(job["prelude"], {})
        except Exception:
            pass
    if job["mode"] == "call":
        import json  # noqa: F401  (preloaded for the children)
    for i, test_input in enumerate(job["inputs"]):  # a child clears this list in its copy
        if control.poll():
            break
        chan.write(repr(_run_test(job, i, test_input, tmpdir, control)) + "\n")
        _reap_strays(job.get("in_pid_namespace"))


def _private():
    """Non-dumpable: processes of the same uid cannot open /proc/<pid>/fd, ptrace or pidfd_getfd
    this one (children inherit it). Without it the result channel could be forged: refuse."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 or libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError("prctl(PR_SET_DUMPABLE, 0) failed")


def main():
    try:
        _private()
    except Exception as e:
        os.write(2, f"harness: cannot protect the result channel: {e}\n".encode())
        os._exit(4)
    chan = os.fdopen(os.dup(1), "w", buffering=1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (1, 2):
        os.dup2(null, fd)
    control, limits_set = Control(), False
    while True:
        job = control.next_job()
        if job is None:
            return
        if job.get("in_pid_namespace") and os.getpid() != 1:
            os.write(2, b"harness: not PID 1 of the sandbox (bwrap --as-pid-1 missing)\n")
            os._exit(4)
        if not limits_set:  # process-wide limits, fixed for the sandbox's lifetime
            _set_limit(resource.RLIMIT_CORE, 0)
            _set_limit(resource.RLIMIT_FSIZE, job.get("file_size_bytes"))
            _set_limit(resource.RLIMIT_NPROC, job.get("max_procs"))
            _set_limit(resource.RLIMIT_MSGQUEUE, 0)  # no POSIX message queue outlives a program
            limits_set = True
        scratch = job.get("scratch_dirs") or ["/tmp"]
        _serve_job(job, chan, control, scratch[0])
        _reap_strays(job.get("in_pid_namespace"))
        clean = all([_empty_dir(d) for d in scratch])
        chan.write(repr({"event": "done", "clean": clean}) + "\n")
        if not clean:  # something survived the clean-up: this sandbox must not serve again
            os._exit(0)


if __name__ == "__main__":
    main()
