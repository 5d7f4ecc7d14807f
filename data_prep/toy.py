"""Build every toy data product from the offline packages, through the real product scripts.

    python -m data_prep.toy runs/toy/data        # (the toy cascade reads $CASCADE_TOY_DATA, default runs/toy/data)

Writes OUT_DIR/{sft/{train,val}.parquet, rm/{train,val}.parquet, rl/{rlhf,if,math,code,swe}/train.parquet},
each with its manifest.json, plus OUT_DIR/raw/ (the inputs in the released datasets' schemas),
OUT_DIR/eval/ (the held-out GSM8K and MBPP splits, see `toy_sources`) and OUT_DIR/manifest.json.
Every product is decontaminated against the toy's eval sets: AIME 2024/2025-I, MATH-500, MMLU
test, HumanEval, IFBench and the held-out GSM8K / MBPP splits.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cascade.offline as off
from data_prep import if_constraints, rl_prompts, rm_pairs, sft_blend, swe_prompts
from data_prep import toy_sources as ts

TOY_EVAL_SETS = ("aime24", "aime25", "math500", "mmlu", "humaneval", "ifbench")
log = logging.getLogger("data_prep")


@dataclass(frozen=True)
class ToyConfig:
    sft_gsm8k: int = 150  # prompts, each with a thinking and an instruct answer
    sft_math: int = 120
    sft_mmlu: int = 100
    rm_offtopic: int = 60
    rm_wrong: int = 40
    rm_mmlu: int = 100
    math: int = 100  # MATH levels 1-2
    arithmetic: int = 60  # synthetic, what the 135M model sometimes gets right (toy_sources.arithmetic_rows)
    if_gsm8k: int = 60
    if_mmlu: int = 60
    code: int = 120
    swe: int = 40
    swe_max_prompt_tokens: int = 768  # tiny/swe_rl.yaml rollout.max_prompt_length
    swe_min_prompt_tokens: int = 96  # the paper's 8K floor, scaled to the toy
    workers: int = 2
    verify_code: bool = True  # run tests in the code sandbox (gold passes, injected bugs fail)


class CodeChecker:
    """Runs programs against tests in the rewards' code sandbox (never in this process)."""

    def __init__(self, workers: int) -> None:
        from cascade.config.schema.rl import RewardConfig, RewardDomain
        from cascade.rewards import build_scorer

        self.scorer = build_scorer(RewardConfig(domain=RewardDomain.CODE, num_workers=workers, timeout_s=10))

    def passes(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        rows = [{"response": f"```python\n{code}\n```", "tests": tests} for code, tests in items]
        return [r.reward == 1.0 for r in self.scorer.score(rows)]

    def close(self) -> None:
        self.scorer.close()


def _checker(cfg: ToyConfig) -> CodeChecker | None:
    if not cfg.verify_code:
        return None
    try:
        return CodeChecker(cfg.workers)
    except Exception as e:  # no sandbox on this machine: build unverified, and say so
        log.warning("code sandbox unavailable (%s): toy code/SWE items are not execution-checked", e)
        return None


def code_items(cfg: ToyConfig, checker: CodeChecker | None) -> list[dict[str, Any]]:
    items = ts.pick(ts.mbpp_toy(), cfg.code, "rl-code")
    if checker is None:
        return items
    ok = checker.passes([(r["code"], ts.mbpp_tests(r)) for r in items])
    return [r for r, good in zip(items, ok) if good]  # C1 §4.6: drop problems whose tests are weak/wrong


def swe_instances(cfg: ToyConfig, checker: CodeChecker | None) -> list[dict[str, Any]]:
    """MBPP functions with one injected bug that a test exposes; the fix is the golden patch."""
    pool = ts.pick(ts.mbpp_toy(), 4 * cfg.swe, "rl-swe", key=lambda r: len(r["code"]))
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(pool):
        if len(rows) >= cfg.swe:
            break
        try:
            fixed = ast.unparse(ast.parse(r["code"])) + "\n"
            candidates = [m for m in ts.mutations(fixed) if m != fixed][:4]
        except SyntaxError:
            continue
        if not candidates:
            continue
        test_code = "\n".join(r["test_list"])
        if checker is not None:
            tests = {"test_code": test_code}
            verdict = checker.passes([(fixed, tests)] + [(m, tests) for m in candidates])
            if not verdict[0]:
                continue
            buggy = next((m for m, good in zip(candidates, verdict[1:]) if not good), None)
        else:
            buggy = candidates[0]
        if buggy is None:
            continue
        failing = r["test_list"][0]
        distractors = [pool[(i + k) % len(pool)] for k in (1, 2, 3)]
        rows.append(ts.swe_row(r, buggy, fixed, failing, distractors))
    return rows


def _decontam_args(eval_dir: Path, workers: int) -> list[str]:
    return ["--eval-sets", ",".join(TOY_EVAL_SETS), "--eval-file", f"gsm8k_heldout={eval_dir / 'gsm8k_heldout.jsonl'}",
            "--eval-file", f"mbpp_heldout={eval_dir / 'mbpp_heldout.jsonl'}", "--workers", str(workers)]


def build_toy(out_dir: str | Path, cfg: ToyConfig = ToyConfig()) -> dict[str, Any]:
    out = Path(out_dir)
    raw, eval_dir = out / "raw", out / "eval"
    start = time.time()
    ts.write_jsonl(eval_dir / "gsm8k_heldout.jsonl", ts.gsm8k_heldout())
    ts.write_jsonl(eval_dir / "mbpp_heldout.jsonl", ts.mbpp_heldout())
    dargs = _decontam_args(eval_dir, cfg.workers)

    for name, rows in ts.sft_rows(cfg.sft_gsm8k, cfg.sft_math, cfg.sft_mmlu).items():
        ts.write_jsonl(raw / "sft" / name, rows)
    sft_blend.main(["--stage", "1", "--input", str(raw / "sft"), "--out-dir", str(out / "sft"),
                    "--val-fraction", "0.05", "--shards", "4", *dargs])

    rm = ts.rm_rows(cfg.rm_offtopic, cfg.rm_wrong, cfg.rm_mmlu)
    ts.write_jsonl(raw / "rm" / "pairs.jsonl", rm)
    rm_pairs.main(["--input", str(raw / "rm"), "--out-dir", str(out / "rm"), "--val-fraction", "0.1"])

    ts.write_jsonl(raw / "rlhf" / "prompts.jsonl", ts.rlhf_rows(rm))
    rl_prompts.main(["rlhf", "--input", str(raw / "rlhf"), "--out-dir", str(out / "rl" / "rlhf"), *dargs])

    ts.write_jsonl(raw / "if" / "prompts.jsonl", ts.if_base_rows(cfg.if_gsm8k, cfg.if_mmlu))
    if_constraints.main(["--input", str(raw / "if"), "--out-dir", str(out / "rl" / "if"), "--taxonomy", "ifeval",
                         "--max-constraints", "2", "--source", "toy", *dargs])

    ts.write_jsonl(raw / "math" / "problems.jsonl", ts.math_rows(cfg.math) + ts.arithmetic_rows(cfg.arithmetic))
    rl_prompts.main(["math", "--input", str(raw / "math"), "--out-dir", str(out / "rl" / "math"), *dargs])

    checker = _checker(cfg)
    try:
        ts.write_jsonl(raw / "code" / "problems.jsonl", ts.code_rows(code_items(cfg, checker)))
        swe_rows = swe_instances(cfg, checker)
    finally:
        if checker is not None:
            checker.close()
    rl_prompts.main(["code", "--input", str(raw / "code"), "--out-dir", str(out / "rl" / "code"), *dargs])
    ts.write_jsonl(raw / "swe" / "instances.jsonl", swe_rows)
    swe_prompts.main(["--input", str(raw / "swe"), "--out-dir", str(out / "rl" / "swe"),
                      "--tokenizer", str(off.smollm2_hf_dir()), "--max-prompt-tokens", str(cfg.swe_max_prompt_tokens),
                      "--min-prompt-tokens", str(cfg.swe_min_prompt_tokens), *dargs])

    products = {}
    for sub in ("sft", "rm", "rl/rlhf", "rl/if", "rl/math", "rl/code", "rl/swe"):
        m = json.loads((out / sub / "manifest.json").read_text())
        products[sub] = {Path(o["path"]).name: o["rows"] for o in m["outputs"]}
    summary = {"product": "toy", "config": asdict(cfg), "products": products,
               "splits": {"gsm8k_toy_ids": f"0-{ts.GSM8K_TOY_MAX_ID}", "mbpp_toy_task_ids": f"11-{ts.MBPP_TOY_MAX_ID}",
                          "held_out": ["eval/gsm8k_heldout.jsonl", "eval/mbpp_heldout.jsonl"],
                          "math_pool": "MATH test minus MATH-500", "mmlu": "validation + dev"},
               "seconds": round(time.time() - start, 1), "code_verified": checker is not None}
    (out / "manifest.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", nargs="?", default="runs/toy/data")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-verify-code", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = build_toy(a.out_dir, ToyConfig(workers=a.workers, verify_code=not a.no_verify_code))
    for name, files in summary["products"].items():
        print(f"{name:10s} " + ", ".join(f"{k}: {v}" for k, v in files.items()))
    print(f"toy data in {a.out_dir} ({summary['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
