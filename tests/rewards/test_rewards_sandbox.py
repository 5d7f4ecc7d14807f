"""Hostile programs get reward 0 within the time limit and leave the host and trainer unharmed.

The module's scorer (conftest `code_scorer`) allows 2 s per test, 512 MB and 32 processes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from cascade.rewards.code.sandbox import Job, Sandbox, SandboxLimits, SandboxUnavailable

PER_TEST_S = 2.0
SLACK_S = 8.0  # sandbox start-up and kill on a loaded 2-core machine
ONE_TEST = {"inputs": ["\n"], "outputs": ["ok"]}


def hostile(scorer, code: str, tests=ONE_TEST):
    start = time.monotonic()
    res = scorer.score([{"response": f"```python\n{code}\n```", "tests": tests}])[0]
    return res, time.monotonic() - start


def sandbox_processes(scorer) -> dict[int, int]:
    """Processes per sandbox uid right now (a warm slot is bwrap and the harness, its PID 1)."""
    uids = set(scorer.sandbox.uids)
    counts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                uid = os.stat(f"/proc/{entry}").st_uid
            except OSError:
                continue
            if uid in uids:
                counts[uid] = counts.get(uid, 0) + 1
    return counts


def assert_host_unharmed(scorer) -> None:
    """The trainer still spawns processes, and nothing the program started is left running."""
    assert subprocess.run(["true"], timeout=30).returncode == 0
    deadline = time.monotonic() + 10
    while any(n > 3 for n in sandbox_processes(scorer).values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(n <= 3 for n in sandbox_processes(scorer).values()), sandbox_processes(scorer)
    ok, _ = hostile(scorer, "print('ok')")  # the scorer still works afterwards
    assert ok.reward == 1.0, ok.info


def test_infinite_loop_times_out(code_scorer):
    res, took = hostile(code_scorer, "while True:\n    pass")
    assert res.reward == 0.0 and res.info["verdict"] == "timeout"
    assert took < PER_TEST_S + SLACK_S
    assert_host_unharmed(code_scorer)


def test_fork_bomb_is_contained(code_scorer):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    before = len([p for p in os.listdir("/proc") if p.isdigit()])
    res, took = hostile(code_scorer, bomb)
    assert res.reward == 0.0 and res.info["verdict"] in ("timeout", "runtime_error")
    assert took < PER_TEST_S + SLACK_S
    assert_host_unharmed(code_scorer)
    after = len([p for p in os.listdir("/proc") if p.isdigit()])
    assert after < before + 50


def test_memory_bomb_is_contained(code_scorer):
    bomb = "chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n    chunks[-1][::4096] = b'x' * (16384)"
    res, took = hostile(code_scorer, bomb)
    assert res.reward == 0.0 and res.info["verdict"] in ("runtime_error", "timeout")
    assert took < PER_TEST_S + SLACK_S
    assert_host_unharmed(code_scorer)


def test_writes_outside_its_directory_fail(code_scorer, tmp_path):
    targets = [Path(__file__).resolve().parents[2] / f"PWNED-{uuid.uuid4().hex}",
               tmp_path / "pwned", Path("/tmp") / f"pwned-{uuid.uuid4().hex}"]
    code = "paths = %r\nfor p in paths:\n    open(p, 'w').write('pwned')\nprint('ok')" % [str(t) for t in targets]
    res, took = hostile(code_scorer, code)
    assert res.reward == 0.0 and res.info["verdict"] == "runtime_error"
    assert not any(t.exists() for t in targets)
    assert_host_unharmed(code_scorer)


def test_network_connections_fail(code_scorer):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    port = server.getsockname()[1]
    code = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "print('ok')")
    res, _ = hostile(code_scorer, code)
    outside, _ = hostile(code_scorer, "import socket\nsocket.create_connection(('8.8.8.8', 53), timeout=1)\nprint('ok')")
    try:
        with pytest.raises(socket.timeout):
            server.accept()
    finally:
        server.close()
    assert res.reward == 0.0 and "Connection refused" in res.info["failure"]["stderr"]
    assert outside.reward == 0.0 and outside.info["verdict"] == "runtime_error"
    assert_host_unharmed(code_scorer)


def test_trainer_environment_is_not_readable(code_scorer, monkeypatch):
    secret = uuid.uuid4().hex
    monkeypatch.setenv("CASCADE_TRAINER_SECRET", secret)
    code = ("import os, glob\nfound = os.environ.get('CASCADE_TRAINER_SECRET') or ''\n"
            "for p in glob.glob('/proc/*/environ'):\n"
            "    try:\n        data = open(p, 'rb').read().decode(errors='ignore')\n"
            "    except OSError:\n        continue\n"
            "    if 'CASCADE_TRAINER_SECRET' in data:\n        found = data\n"
            "print(found.split('CASCADE_TRAINER_SECRET=')[-1].split(chr(0))[0] if found else 'none')")
    res, _ = hostile(code_scorer, code, {"inputs": ["\n"], "outputs": [secret]})
    assert res.reward == 0.0 and res.info["verdict"] == "wrong_answer"
    assert secret not in res.info["failure"]["got"]
    assert_host_unharmed(code_scorer)


def test_killing_its_parent_harms_nobody_else(code_scorer):
    me = os.getpid()
    code = (f"import os, signal\nfor pid in (os.getppid(), {me}, 1, -1):\n"
            "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\nprint('ok')")
    res, took = hostile(code_scorer, code)
    # The harness is the sandbox's PID 1, which ignores signals from inside its namespace, and
    # nothing outside is visible: every kill fails and the program finishes its own test.
    assert res.reward == 1.0 and res.info["verdict"] == "passed", res.info
    assert took < PER_TEST_S + SLACK_S
    assert os.getpid() == me  # this process (the trainer) is alive to assert it
    assert_host_unharmed(code_scorer)


def test_refuses_to_run_unsandboxed_unless_asked(monkeypatch, caplog):
    import cascade.rewards.code.sandbox as cs

    monkeypatch.setattr(cs, "_bwrap_path", lambda: None)
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        Sandbox(num_workers=1)
    with caplog.at_level("WARNING"):
        sb = Sandbox(SandboxLimits(per_test_timeout_s=5), num_workers=1, allow_unsandboxed=True)
    try:
        assert not sb.sandboxed and "UNSANDBOXED" in caplog.text
        rep = sb.run(Job("print(input())", ["hi\n"]))
        assert rep.tests[0]["output"] == "hi\n"
    finally:
        sb.close()


def test_program_cannot_forge_results_on_the_harness_channel(code_scorer):
    """The harness is non-dumpable: its fds and memory are closed to the program it runs."""
    forge = ("import os\nfake = repr({'event': 'test', 'index': 0, 'status': 'ok', 'output': '42'}) + '\\n'\n"
             "denied = 0\nfor fd in range(8):\n    try:\n"
             "        with open(f'/proc/{os.getppid()}/fd/{fd}', 'w') as f:\n            f.write(fake)\n"
             "    except OSError:\n        denied += 1\n"
             "try:\n    open(f'/proc/{os.getppid()}/mem', 'rb').read(1)\nexcept OSError:\n    denied += 1\n"
             "print(denied)")
    res, _ = hostile(code_scorer, forge, {"inputs": ["\n"], "outputs": ["42"]})
    assert res.reward == 0.0 and res.info["verdict"] == "wrong_answer"
    assert res.info["failure"]["got"].strip() == "9"  # every attempt was refused
