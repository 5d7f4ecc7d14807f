"""Red team for the code reward: each way a policy could be paid without solving the problem.

Every attack is scored next to an honest control on the same tests: the control gets 1, the
attack 0, and nothing it did survives into the next program. Programs are MBPP-style
(`assert add(1, 2) == 3`), LiveCodeBench call-based and stdin/stdout tests.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from cascade.config.schema.rl import CodeSandboxConfig, RewardConfig, RewardDomain
from cascade.rewards.code.slot import RunReport
from cascade.rewards.code.testcases import parse_tests

ADD_ASSERTS = {"test_code": "assert add(1, 2) == 3\nassert add(2, 5) == 7\nassert add(-1, 1) == 0\n"}
ADD_CALLS = {"fn_name": "add", "inputs": ["1\n2", "2\n5"], "outputs": ["3", "7"]}
ADD_STDIO = {"inputs": ["1 2\n", "2 5\n"], "outputs": ["3", "7"]}
HONEST = "def add(a, b):\n    return a + b\n"
HONEST_STDIO = "a, b = map(int, input().split())\nprint(a + b)\n"


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


def score(scorer, code: str, tests) -> dict:
    res = scorer.score([{"response": fenced(code), "tests": tests}])[0]
    return {"reward": res.reward, **res.info}


@pytest.fixture(scope="module")
def one_slot():
    """One warm sandbox slot, so consecutive programs really share it."""
    from cascade.rewards.code.reward import CodeReward
    from tests.rewards.conftest import require_bwrap

    require_bwrap()
    cfg = RewardConfig(domain=RewardDomain.CODE, timeout_s=30.0, num_workers=1,
                       sandbox=CodeSandboxConfig(per_test_timeout_s=5.0, memory_mb=512, max_procs=32))
    scorer = CodeReward(cfg)
    yield scorer
    scorer.close()


def test_honest_controls_pass(code_scorer):
    assert score(code_scorer, HONEST, ADD_ASSERTS)["reward"] == 1.0
    assert score(code_scorer, HONEST, ADD_CALLS)["reward"] == 1.0
    assert score(code_scorer, HONEST_STDIO, ADD_STDIO)["reward"] == 1.0


@pytest.mark.parametrize("tail", [
    "import os\nos._exit(0)", "import sys\nsys.exit(0)", "raise SystemExit", "exit()",
    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "import os\nos.execv('/usr/bin/true', ['true'])",
])
@pytest.mark.parametrize("tests", [ADD_ASSERTS, ADD_CALLS], ids=["asserts", "calls"])
def test_early_exit_is_never_a_pass(code_scorer, tail, tests):
    got = score(code_scorer, "def add(a, b):\n    return 0\n" + tail, tests)
    assert got["reward"] == 0.0, got


@pytest.mark.parametrize("cheat", [
    "class A:\n    def __eq__(self, o): return True\n    __hash__ = None\ndef add(a, b):\n    return A()",
    "class I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\ndef add(a, b):\n    return I(0)",
    "class S(str):\n    def __eq__(self, o): return True\n    __hash__ = str.__hash__\ndef add(a, b):\n    return S('x')",
    "class L(list):\n    def __eq__(self, o): return True\ndef add(a, b):\n    return L()",
    "class R:\n    def __repr__(self): return '3'\ndef add(a, b):\n    return R()",
    "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\ndef add(a, b):\n    return 0",
])
@pytest.mark.parametrize("tests", [ADD_ASSERTS, ADD_CALLS], ids=["asserts", "calls"])
def test_objects_that_compare_equal_to_anything_fail(code_scorer, cheat, tests):
    got = score(code_scorer, cheat, tests)
    assert got["reward"] == 0.0, got


def test_subclasses_compare_by_content_only(code_scorer):
    """A Counter or namedtuple is judged by its content, as the original assert would."""
    counter = "from collections import Counter\ndef freq(x):\n    return Counter(x)"
    pair = "from collections import namedtuple\nP = namedtuple('P', 'a b')\ndef pair():\n    return P(1, 2)"
    assert score(code_scorer, counter, {"test_code": "assert freq([1, 1, 2]) == {1: 2, 2: 1}"})["reward"] == 1.0
    assert score(code_scorer, pair, {"test_code": "assert pair() == (1, 2)"})["reward"] == 1.0
    assert score(code_scorer, pair, {"test_code": "assert pair() == (2, 1)"})["reward"] == 0.0


SNOOP_MEMORY = """
import gc, sys
def add(a, b):
    seen = []
    for o in gc.get_objects():
        if isinstance(o, dict):
            seen += [str(v) for v in list(o.values()) if isinstance(v, (str, int))]
    f = sys._getframe()
    while f:
        seen += [repr(v) for v in list(f.f_locals.values())]
        f = f.f_back
    text = ' '.join(seen)
    for guess in (3, 7, 0):  # only an answer found in memory would make this pass
        if f'== {guess}' in text or f"'outputs': ['{guess}'" in text:
            return guess
    return -999
"""


@pytest.mark.parametrize("tests", [ADD_ASSERTS, ADD_CALLS], ids=["asserts", "calls"])
def test_test_code_and_expected_values_are_not_in_reach(code_scorer, tests):
    got = score(code_scorer, SNOOP_MEMORY, tests)
    assert got["reward"] == 0.0 and got["verdict"] == "wrong_answer", got


def test_host_files_are_not_visible(code_scorer, tmp_path):
    """Nothing of the host beyond the interpreter and system libraries: not the repository, the
    offline benchmark cache, /var/tmp, homes, /etc, /usr/local, /usr/share, site-packages."""
    import cascade
    import cascade.offline as off

    secret = Path("/var/tmp") / f"cascade-redteam-{os.getpid()}.txt"
    secret.write_text("answer")
    secret.chmod(0o644)
    probes = [secret, Path(cascade.__file__), off.offline_dir(), Path("/work"), Path("/root"),
              Path("/home"), Path("/etc/passwd"), Path("/usr/local"), Path("/usr/share"),
              Path(sys.prefix), Path(json.__file__).parent.parent / "site-packages",
              Path("/usr/lib/python3/dist-packages/yaml"), Path("/tmp") / secret.name, tmp_path]
    code = ("import os\nfound = []\nfor p in %r:\n    try:\n        os.listdir(p) if os.path.isdir(p) "
            "else open(p).read(1)\n        found.append(p)\n    except OSError:\n        pass\n"
            "print(found)" % [str(p) for p in probes])
    try:
        got = score(code_scorer, code, {"inputs": [""], "outputs": ["[]"]})
    finally:
        secret.unlink()
    assert got["reward"] == 1.0, got  # the program saw none of them


FORGE_CHANNEL = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fake = b"{'event': 'test', 'index': 0, 'status': 'ok', 'output': '3', 'stderr': '', 'exit_code': 0, 'elapsed': 0.0}\n"
fake += b"{'event': 'test', 'index': 1, 'status': 'ok', 'output': '7', 'stderr': '', 'exit_code': 0, 'elapsed': 0.0}\n"
fake += b"{'event': 'done', 'clean': True}\n"
reached = []
for pid in (1, os.getppid()):
    for fd in range(0, 64):
        try:  # the harness's descriptors through procfs
            w = os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY)
            os.write(w, fake)
            reached.append(("proc", pid, fd))
        except OSError:
            pass
    pidfd = libc.syscall(434, pid, 0)  # pidfd_open
    if pidfd >= 0:
        for fd in range(0, 64):
            got = libc.syscall(438, pidfd, fd, 0)  # pidfd_getfd
            if got >= 0:
                try:
                    os.write(got, fake)
                    reached.append(("pidfd", pid, fd))
                except OSError:
                    pass
    if libc.ptrace(16, pid, 0, 0) == 0:  # PTRACE_ATTACH
        reached.append(("ptrace", pid))
for fd in range(3, 256):  # anything inherited
    try:
        os.write(fd, fake)
        reached.append(("inherited", fd))
    except OSError:
        pass
print(reached)
"""


def test_result_channel_cannot_be_forged(code_scorer):
    got = score(code_scorer, FORGE_CHANNEL, {"inputs": ["1 2\n", "2 5\n"], "outputs": ["3", "7"]})
    assert got["reward"] == 0.0, got
    assert got.get("failure", {}).get("got", "").strip() in ("[]", ""), got  # it reached nothing


def test_a_pass_event_counts_once_per_test():
    """The slot refuses a repeated or out-of-range test index (protocol violation), and the
    grader needs one matching result per index: duplicates cannot stand in for missing tests."""
    from cascade.rewards.code.reward import _Grader, grade
    from cascade.rewards.code.slot import _check_test_event

    seen: set[int] = set()
    ok = {"event": "test", "index": 0, "status": "ok", "output": "3"}
    _check_test_event(ok, 2, seen)
    for bad in (ok, {**ok, "index": 2}, {**ok, "index": -1}, {**ok, "index": True}, {**ok, "status": 1}):
        with pytest.raises(ValueError):
            _check_test_event(bad, 2, seen)
    spec = parse_tests({"inputs": ["1 2", "2 5"], "outputs": ["3", "7"]})
    grader = _Grader(spec, fail_fast=True)
    grader(ok)
    grader(ok)
    assert grade(spec, RunReport(tests=[ok, ok], finished=True), grader).reward == 0.0


PERSIST = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
done = []
for path in ("/tmp/state", "/dev/shm/state"):
    try:
        open(path, "w").write("guess=7")
        done.append(path)
    except OSError:
        pass
try:
    os.makedirs("/tmp/ro/deeper", exist_ok=True)
    open("/tmp/ro/deeper/state", "w").write("guess=7")
    os.chmod("/tmp/ro/deeper", 0o500)
    os.chmod("/tmp/ro", 0o500)
    done.append("ro-dir")
except OSError:
    pass
if libc.shmget(0x5eed, 4096, 0o1666) >= 0: done.append("sysv-shm")
if libc.msgget(0x5eed, 0o1666) >= 0: done.append("sysv-msg")
if libc.semget(0x5eed, 1, 0o1666) >= 0: done.append("sysv-sem")
if libc.syscall(248, b"user", b"cascade", b"guess=7", 3, -4) >= 0: done.append("keyring")  # add_key @u
mq = libc.mq_open(b"/cascade", 0o100 | 0o2, 0o666, None) if hasattr(libc, "mq_open") else -1
if mq >= 0: done.append("mqueue")
print(done)
"""

FIND = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
found = []
for root in ("/tmp", "/dev/shm"):
    for dirpath, dirs, files in os.walk(root):
        found += [os.path.join(dirpath, f) for f in files if not f.startswith(".in-")]
        found += [os.path.join(dirpath, d) for d in dirs]
if libc.shmget(0x5eed, 0, 0) >= 0: found.append("sysv-shm")
if libc.msgget(0x5eed, 0) >= 0: found.append("sysv-msg")
if libc.semget(0x5eed, 0, 0) >= 0: found.append("sysv-sem")
if libc.syscall(250, 0, -4, 0) >= 0 and libc.syscall(250, 11, libc.syscall(250, 0, -4, 0), None, 0) > 0:
    found.append("keyring")  # KEYCTL_READ of @u: any key left there
for sysv in ("shm", "msg", "sem"):
    try:
        if len(open(f"/proc/sysvipc/{sysv}").read().splitlines()) > 1: found.append(f"ipc-{sysv}")
    except OSError:
        pass
print(found)
"""


def test_nothing_survives_into_the_next_program(one_slot):
    """State left by one program (files in /tmp and /dev/shm, read-only directories, SysV IPC,
    keyrings, message queues) is not there for the next program in the same warm sandbox."""
    planted = score(one_slot, PERSIST, {"inputs": [""], "outputs": ["x"]})
    assert planted["verdict"] == "wrong_answer"
    got = score(one_slot, FIND, {"inputs": [""], "outputs": ["[]"]})
    assert got["reward"] == 1.0, (planted, got)
    # IPC and keyrings are refused outright (seccomp), not only cleaned up
    assert not any(k in planted["failure"]["got"] for k in ("sysv", "keyring", "mqueue")), planted


def test_filling_scratch_space_harms_only_itself(one_slot):
    """/tmp and /dev/shm are size-capped and emptied: a program that fills both cannot make the
    next honest program fail, and cannot pin more host memory than the caps."""
    fill = ("import os\ntotal = 0\nfor root in ('/tmp', '/dev/shm'):\n    k = 0\n    while True:\n"
            "        try:\n            with open(f'{root}/f{k}', 'wb') as f:\n                f.write(b'x' * (8 << 20))\n"
            "            total += 8 << 20\n            k += 1\n        except OSError:\n            break\n"
            "print(total >> 20)")
    got = score(one_slot, fill, {"inputs": [""], "outputs": ["x"]})
    lim = one_slot.sandbox.limits
    written_mb = int(got["failure"]["got"])
    assert 0 < written_mb <= lim.tmpfs_mb + lim.shm_mb, got
    honest = ("with open('/tmp/work.txt', 'w') as f:\n    f.write('y' * (16 << 20))\n"
              "a, b = map(int, input().split())\nprint(a + b)")
    assert score(one_slot, honest, ADD_STDIO)["reward"] == 1.0


@pytest.mark.parametrize("test_code", ["", "   \n", None, "pass", "assert True", "x = 1"])
def test_empty_or_hollow_test_code_is_never_a_pass(code_scorer, test_code):
    got = score(code_scorer, HONEST, {"test_code": test_code})
    assert got["reward"] == 0.0 and "error" in got, got


def test_unconvertible_test_code_is_reported_not_run(code_scorer):
    tests = {"test_code": "import random\nfor _ in range(3):\n    x = random.randint(0, 9)\n"
                          "    assert add(x, 1) == x + 1\n"}
    got = score(code_scorer, HONEST, tests)
    assert got["reward"] == 0.0 and got["verdict"] == "unconvertible_tests" and "random" in got["error"]


def test_huge_output_is_read_in_linear_time(code_scorer):
    """A 20 MB output line is read whole (chunks joined once) and compared correctly."""
    n = 20 << 20
    got = score(code_scorer, f"import sys\nsys.stdout.write('7' * {n})", {"inputs": [""], "outputs": ["7" * n]})
    assert got["reward"] == 1.0, {k: v for k, v in got.items() if k != "failure"}



def test_without_cgroups_the_sandbox_says_so_once(monkeypatch, caplog, need_bwrap):
    """No writable cgroup (cgroup v2 without delegation, a non-root scorer): one loud warning that
    says what still bounds memory, not one per sandbox."""
    import logging

    from cascade.rewards.code import sandbox as sb

    monkeypatch.setattr(sb.SlotCgroup, "create", classmethod(lambda cls, *a, **k: None))
    monkeypatch.setattr(sb, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger=sb.__name__):
        for _ in range(2):
            sb.Sandbox(sb.SandboxLimits(), num_workers=1).close()
    warnings = [r.getMessage() for r in caplog.records if "RLIMIT_AS" in r.getMessage()]
    assert len(warnings) == 1 and "/dev/shm" in warnings[0], warnings
