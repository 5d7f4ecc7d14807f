"""Reward throughput on this machine, each number next to a baseline measured in the same run.

  * math: checks/s of the math reward (worker pool) on MATH-500 + GSM8K gold answers, against
    math-verify called in-process on one thread;
  * code sandbox: programs/s on HumanEval's 164 canonical solutions (with their tests) through
    the bwrap sandbox, warm (the default) and cold (one bwrap + interpreter per program), against
    a bare `python3 -c <program>` subprocess per program on the same number of workers;
  * a 128 x 8 batch of code rollouts (C1 §4.6's batch): 128 MBPP problems, 8 rollouts each
    (5 correct, 2 wrong, 1 crashing), verified in one call; the wall time is reported.

Run: `.venv/bin/python -m bench.rewards_throughput [--name NAME] [--workers N]`; writes
bench/results/<name>.json and .md naming the machine (CPU model, cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cascade.offline as off
from cascade.config.schema.rl import CodeSandboxConfig, RewardConfig, RewardDomain
from cascade.rewards.code.reward import CodeReward
from cascade.rewards.code.sandbox import Job, Sandbox, SandboxLimits
from cascade.rewards.math_reward import MathReward, check_answer
from cascade.rewards.pool import default_workers

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": cpu, "cores": default_workers(0), "python": platform.python_version(),
            "kernel": platform.release(), "host": platform.node(),
            "load_avg_1m_at_start": round(os.getloadavg()[0], 2)}


def bench_math(workers: int) -> dict:
    rows = [{"response": d["solution"], "ground_truth": d["answer"]} for d in off.math500()]
    rows += [{"response": f"{d['solution']}\nThe answer is $\\boxed{{{d['short_answer']}}}$.",
              "ground_truth": d["short_answer"]} for d in off.gsm8k_test()]
    scorer = MathReward(RewardConfig(domain=RewardDomain.MATH, num_workers=workers))
    scorer.score(rows[:8])  # start the workers
    t = time.perf_counter()
    res = scorer.score(rows)
    pool_s = time.perf_counter() - t
    scorer.close()
    t = time.perf_counter()
    base = [check_answer({"response": r["response"], "ground_truth": r["ground_truth"], "timeout_s": 5})
            for r in rows]
    base_s = time.perf_counter() - t
    return {"checks": len(rows), "correct": int(sum(r.reward for r in res)),
            "reward_checks_per_s": len(rows) / pool_s, "workers": scorer.pool.num_workers,
            "baseline_in_process_checks_per_s": len(rows) / base_s,
            "baseline_correct": sum(b["correct"] for b in base)}


def _humaneval_programs() -> list[tuple[str, str]]:
    return [(p["prompt"] + p["canonical_solution"], f"{p['test']}\ncheck({p['entry_point']})\n")
            for p in off.humaneval()]


def bench_sandbox(workers: int) -> dict:
    progs = _humaneval_programs()
    out: dict = {"programs": len(progs)}
    for mode, max_jobs in (("warm", 1000), ("cold", 1)):
        sb = Sandbox(SandboxLimits(per_test_timeout_s=20), num_workers=workers, max_jobs_per_sandbox=max_jobs)
        jobs = [Job(code + "\n\n" + test, [""], "assert") for code, test in progs]
        sb.run_many(jobs[: sb.num_workers])  # start the slots (cold: measured anyway, per program)
        t = time.perf_counter()
        reps = sb.run_many(jobs)
        dt = time.perf_counter() - t
        sb.close()
        ok = sum(bool(r.tests) and r.tests[0]["status"] == "ok" for r in reps)
        out[f"sandbox_{mode}_programs_per_s"] = len(progs) / dt
        out[f"sandbox_{mode}_passed"] = ok
        out["sandbox_python"] = sb.python

    def bare(item: tuple[str, str]) -> bool:
        code, test = item
        r = subprocess.run([out["sandbox_python"], "-c", code + "\n\n" + test], capture_output=True, timeout=60)
        return r.returncode == 0

    with ThreadPoolExecutor(workers) as ex:
        t = time.perf_counter()
        oks = list(ex.map(bare, progs))
        dt = time.perf_counter() - t
    out["baseline_bare_python_c_programs_per_s"] = len(progs) / dt
    out["baseline_passed"] = sum(oks)
    out["workers"] = workers
    return out


def bench_rl_batch(workers: int, groups: int = 128, per_group: int = 8) -> dict:
    problems = off.mbpp()[:groups]
    rows = []
    for m in problems:
        tests = {"test_code": m["test_setup_code"] + "\n" + "\n".join(m["test_list"])}
        gold = m["code"]
        wrong = gold + "\n\n" + "\n".join(  # same functions, each returning None
            f"def {name}(*a, **k):\n    return None" for name in _function_names(gold))
        crash = "raise RuntimeError('rollout crashed')\n" + gold
        for k in range(per_group):
            code = gold if k < 5 else wrong if k < 7 else crash
            rows.append({"response": f"<think>...</think>\n```python\n{code}\n```", "tests": tests})
    cfg = RewardConfig(domain=RewardDomain.CODE, num_workers=workers, timeout_s=60,
                       sandbox=CodeSandboxConfig(per_test_timeout_s=6.0))
    with CodeReward(cfg) as scorer:
        scorer.score(rows[: scorer.sandbox.num_workers])
        t = time.perf_counter()
        res = scorer.score(rows)
        dt = time.perf_counter() - t
    verdicts: dict[str, int] = {}
    for r in res:
        verdicts[r.info["verdict"]] = verdicts.get(r.info["verdict"], 0) + 1
    return {"rollouts": len(rows), "batch": f"{groups}x{per_group}", "seconds": dt,
            "rollouts_per_s": len(rows) / dt, "verdicts": verdicts, "per_test_timeout_s": 6.0,
            "workers": workers}


def _function_names(code: str) -> list[str]:
    import ast

    return [n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)]


def to_markdown(res: dict) -> str:
    m, s, b, mc = res["math"], res["sandbox"], res["rl_batch"], res["machine"]
    return "\n".join([
        f"# Reward throughput: {res['name']}",
        "",
        f"Machine: {mc['cpu_model']}, {mc['cores']} cores, Python {mc['python']}, kernel {mc['kernel']}.",
        f"Measured {res['date']} with `python -m bench.rewards_throughput`; 1-minute load average "
        f"{mc['load_avg_1m_at_start']} at start, {res['load_avg_1m_at_end']} at end (a shared machine: other "
        "jobs compete for the cores, so compare a result only with the baseline of the same run).",
        "",
        "| what | result | baseline (same run) |",
        "|---|---|---|",
        f"| math checks/s ({m['checks']} MATH-500 + GSM8K golds, {m['workers']} workers) | "
        f"{m['reward_checks_per_s']:.0f} | {m['baseline_in_process_checks_per_s']:.0f} (math-verify in process, 1 thread) |",
        f"| sandbox programs/s, warm (HumanEval 164 canonical + tests, {s['workers']} workers) | "
        f"{s['sandbox_warm_programs_per_s']:.1f} | {s['baseline_bare_python_c_programs_per_s']:.1f} (bare `python3 -c`, unsandboxed) |",
        f"| sandbox programs/s, cold (one bwrap + interpreter per program) | "
        f"{s['sandbox_cold_programs_per_s']:.1f} | same |",
        f"| code RL batch {b['batch']} (MBPP; 5 correct, 2 wrong, 1 crashing per group) | "
        f"{b['seconds']:.1f} s ({b['rollouts_per_s']:.0f} rollouts/s) | — |",
        "",
        f"Passed: math {m['correct']}/{m['checks']}; sandbox warm {s['sandbox_warm_passed']}/{s['programs']}, "
        f"cold {s['sandbox_cold_passed']}/{s['programs']}, bare {s['baseline_passed']}/{s['programs']}; "
        f"batch verdicts {b['verdicts']}.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="rewards_throughput")
    ap.add_argument("--workers", type=int, default=0, help="0: one per core")
    args = ap.parse_args(argv)
    workers = default_workers(args.workers)
    res = {"name": args.name, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine()}
    for key, fn in (("math", bench_math), ("sandbox", bench_sandbox), ("rl_batch", bench_rl_batch)):
        t = time.perf_counter()
        res[key] = fn(workers)
        print(f"{key}: {json.dumps(res[key])} ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    res["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
