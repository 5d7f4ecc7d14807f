"""The trainer-side preemption helper: a signal sets a flag, the loop saves and exits with the
requeue code; with several ranks every rank stops at the same step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cascade.runtime import preemption
from launch_scaffold import free_port

TOY_LOOP = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path
    from cascade.runtime import preemption

    out = Path(sys.argv[1])
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo", rank=rank, world_size=world)
    preemption.install()
    print("ready", flush=True)
    for step in range(1, 100000):
        time.sleep(0.01)
        (out / f"rank{rank}.progress").write_text(str(step))
        if preemption.should_stop():
            (out / f"rank{rank}.saved").write_text(json.dumps({"step": step}))   # "save"
            if world > 1:  # as the stage skeleton does: an exit with a live gloo group can abort (SIGABRT)
                dist.destroy_process_group()
            sys.exit(preemption.REQUEUE_EXIT_CODE)
    sys.exit(0)
''')


def _start(tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    script = tmp_path / "loop.py"
    script.write_text(TOY_LOOP)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def _wait_file(path: Path, timeout: float = 60) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_signal_makes_the_loop_save_and_exit_with_the_requeue_code(tmp_path: Path, sig: signal.Signals) -> None:
    proc = _start(tmp_path)
    try:
        assert proc.stdout.readline().strip() == "ready"
        _wait_file(tmp_path / "rank0.progress")
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == preemption.REQUEUE_EXIT_CODE == 75
    finally:
        proc.kill()
    saved = json.loads((tmp_path / "rank0.saved").read_text())
    assert saved["step"] >= 1


@pytest.mark.timeout(120)
def test_ranks_agree_on_the_stop_step_when_only_one_rank_is_signalled(tmp_path: Path) -> None:
    env = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    procs = [_start(tmp_path, {**env, "RANK": str(r)}) for r in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        _wait_file(tmp_path / "rank1.progress")
        procs[1].send_signal(signal.SIGUSR1)  # rank 0 never sees a signal
        assert [p.wait(timeout=60) for p in procs] == [preemption.REQUEUE_EXIT_CODE] * 2
    finally:
        for p in procs:
            p.kill()
    steps = [json.loads((tmp_path / f"rank{r}.saved").read_text())["step"] for r in range(2)]
    assert steps[0] == steps[1]


def test_flag_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    preemption.reset()
    assert not preemption.should_stop()
    preemption.request_stop()
    assert preemption.should_stop() and preemption.received_signal() == signal.SIGUSR1
    flag = tmp_path / "sub" / "requeue"
    monkeypatch.setenv(preemption.REQUEUE_FLAG_ENV, str(flag))
    preemption.flag_requeue()
    assert flag.is_file()
    preemption.reset()
    assert not preemption.stop_requested()
