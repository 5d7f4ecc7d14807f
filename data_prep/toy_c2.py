"""Add the toy Cascade-2's extra RL prompt sets to a toy data dir, through `data_prep.c2_prompts`.

    python -m data_prep.toy runs/toy/data       # first: the Cascade-1 toy data (evals, products)
    python -m data_prep.toy_c2 runs/toy/data    # then: OUT_DIR/rl_c2/{mcqa,structured,tools,long_context}

Writes the raw rows to OUT_DIR/raw_c2/ and the products to OUT_DIR/rl_c2/<set>/train.parquet (each
with its manifest.json), then OUT_DIR/rl_c2/manifest.json LAST: its presence means the sets are
complete. Re-running rebuilds the same rows (seeded). Every set is decontaminated against the toy's
eval sets (`data_prep.toy.TOY_EVAL_SETS` + the held-out GSM8K / MBPP files the C1 build wrote).
Sources: `data_prep.toy_c2_sources`. Multi-domain RL mixes ~55% MCQA, 30% tools, 15% structured
(C2 §4.3); the toy sizes are smaller and rounder.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cascade.offline as off
from data_prep import c2_prompts
from data_prep import toy_c2_sources as src
from data_prep.toy import TOY_EVAL_SETS
from data_prep.toy_sources import write_jsonl

SETS = ("mcqa", "structured", "tools", "long_context")
log = logging.getLogger("data_prep")


@dataclass(frozen=True)
class ToyC2Config:
    mcqa: int = 60
    structured: int = 40
    tools: int = 40
    long_context: int = 30
    surplus: float = 1.25  # raw rows per kept row: decontamination may drop a few; --max-rows caps the rest
    call_syntax: str = "json"  # the toy policy is SmolLM2 on the Cascade-1 (Qwen3 JSON) template
    lc_min_prompt_tokens: int = 300  # SmolLM2 tokens of the rendered prompt
    lc_max_prompt_tokens: int = 700
    workers: int = 1


def raw_rows(cfg: ToyC2Config) -> dict[str, list[dict[str, Any]]]:
    """The raw rows of every set (with their `gold` responses), deterministic for a config."""
    from data_prep.tokens import TokenCounter

    counter = TokenCounter(off.smollm2_hf_dir())
    def count(text: str) -> int:
        return counter.prompt_tokens([{"role": "user", "content": text}])

    def more(n: int) -> int:
        return int(n * cfg.surplus + 0.999)

    return {"mcqa": src.mcqa_rows(more(cfg.mcqa)),
            "structured": src.structured_rows(more(cfg.structured)),
            "tools": src.tool_rows(more(cfg.tools), syntax=cfg.call_syntax),
            "long_context": src.long_context_rows(more(cfg.long_context), count, cfg.lc_min_prompt_tokens + 150,
                                                  cfg.lc_max_prompt_tokens - 40)}


def build_toy_c2(out_dir: str | Path, cfg: ToyC2Config = ToyC2Config()) -> dict[str, Any]:
    out = Path(out_dir)
    if not (out / "manifest.json").is_file():
        raise FileNotFoundError(f"{out}/manifest.json not found: build the Cascade-1 toy data first "
                                f"(python -m data_prep.toy {out})")
    start = time.time()
    final = out / "rl_c2" / "manifest.json"
    final.unlink(missing_ok=True)  # a rebuild in progress is not a complete one
    eval_dir = out / "eval"
    dargs = ["--eval-sets", ",".join(TOY_EVAL_SETS), "--eval-file", f"gsm8k_heldout={eval_dir / 'gsm8k_heldout.jsonl'}",
             "--eval-file", f"mbpp_heldout={eval_dir / 'mbpp_heldout.jsonl'}", "--workers", str(cfg.workers)]
    extra = {
        # generated sets: distinct by construction, and their shared templates would read as near duplicates
        # the toy's instructions name every key and value; shown the schema, SmolLM2 copies the schema
        "structured": ["--no-dedup", "--no-schema-in-prompt"],
        # the toy lists only the tools its tasks need and no database (every argument is in the request):
        # the full system turn is ~750 SmolLM2 tokens, this one ~250
        "tools": ["--no-dedup", "--call-syntax", cfg.call_syntax, "--no-state", "--tools", ",".join(src.TOY_TOOLS)],
        "long_context": ["--tokenizer", str(off.smollm2_hf_dir()), "--min-prompt-tokens", str(cfg.lc_min_prompt_tokens),
                         "--max-prompt-tokens", str(cfg.lc_max_prompt_tokens)],
    }
    products: dict[str, Any] = {}
    for name, rows in raw_rows(cfg).items():
        raw = write_jsonl(out / "raw_c2" / name / "rows.jsonl", rows)
        c2_prompts.main([name, "--input", str(raw.parent), "--out-dir", str(out / "rl_c2" / name),
                         "--max-rows", str(getattr(cfg, name)), *extra.get(name, []), *dargs])
        m = json.loads((out / "rl_c2" / name / "manifest.json").read_text())
        products[name] = {"train.parquet": m["outputs"][0]["rows"], "bad_rows": m["bad_rows"]["count"]}
    summary = {"product": "toy_c2", "config": asdict(cfg), "products": products,
               "sources": {"mcqa": "MMLU validation + dev", "structured": "toy_c2_sources.structured_rows (seeded)",
                           "tools": "toy_c2_sources.tool_rows (seeded)",
                           "long_context": f"GSM8K toy split (ids 0-999), "
                                           f"{cfg.lc_min_prompt_tokens}-{cfg.lc_max_prompt_tokens} SmolLM2 tokens"},
               "seconds": round(time.time() - start, 1)}
    tmp = final.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(final)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", nargs="?", default="runs/toy/data")
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args(argv)
    if not (Path(a.out_dir) / "manifest.json").is_file():
        print(f"error: {a.out_dir}/manifest.json not found: build the Cascade-1 toy data first "
              f"(python -m data_prep.toy {a.out_dir})", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = build_toy_c2(a.out_dir, ToyC2Config(workers=a.workers))
    for name, info in summary["products"].items():
        print(f"rl_c2/{name:13s} train.parquet: {info['train.parquet']}")
    print(f"toy Cascade-2 prompt sets in {a.out_dir}/rl_c2 ({summary['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
