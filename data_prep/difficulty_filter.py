"""Difficulty filtering with a model: sample k answers per prompt, score them with the domain's
reward, drop prompts whose pass rate is too high (too easy) or too low (unsolvable).

The paper's filters, as passes (each pass runs on what the previous one kept):
  * math (C1 §4.5): AceReason-Nemotron-7B, 16 samples, drop pass rate >= 75%
      --pass model=$ACEREASON_7B,k=16,drop_at_or_above=0.75
  * code (C1 §4.6): drop 8/8 by AceReason-Nemotron-7B, then 0/8 by DeepSeek-R1-0528
      --pass model=$ACEREASON_7B,k=8,drop_at_or_above=1.0 --pass model=$R1_0528,k=8,drop_at_or_below=0.0

    python -m data_prep.difficulty_filter --input data/rl/math/train.parquet --out-dir data/rl/math_filtered \\
        --pass model=/models/AceReason-Nemotron-7B,k=16,drop_at_or_above=0.75 --backend vllm --max-new-tokens 32768

Generation goes through the `cascade.generation` Generator protocol (vLLM on GPU, transformers
on CPU); prompts are rendered with the Cascade chat template in the pass's mode. Each kept
record carries its pass rates in `metadata.pass_rates`.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade.config.schema.common import ChatMode
from cascade.config.schema.rl import RewardConfig, RewardDomain, ServedModelConfig
from cascade.data.records import RLRecord, read_rl_records
from data_prep.manifest import Manifest
from data_prep.outputs import write_product


@dataclass(frozen=True)
class FilterPass:
    model: str  # local HF directory of the model that judges difficulty
    k: int = 16  # samples per prompt
    drop_at_or_above: float | None = None  # too easy: pass rate >= this
    drop_at_or_below: float | None = None  # too hard: pass rate <= this
    name: str = ""  # label in metadata/manifest (default: the model directory's name)

    @property
    def label(self) -> str:
        return self.name or Path(self.model).name


@dataclass(frozen=True)
class DifficultyConfig:
    passes: tuple[FilterPass, ...]
    backend: str = "transformers"
    mode: ChatMode = ChatMode.THINKING
    temperature: float = 0.6  # the paper's evaluation sampling (C1 App. B)
    top_p: float = 0.95
    max_new_tokens: int = 4096
    batch_prompts: int = 32
    success_threshold: float = 1.0  # a sample passes with reward >= this (binary rewards: 1)
    seed: int = 0
    reward_timeout_s: float = 10.0
    reward_workers: int = 0
    judge: ServedModelConfig | None = None  # swe
    reward_model: ServedModelConfig | None = None  # reward_model / instruction_rm
    generator_kwargs: dict[str, Any] = field(default_factory=dict)


class RewardScorers:
    """One scorer per reward domain, built on first use (the reward registry's batch scorers)."""

    def __init__(self, cfg: DifficultyConfig) -> None:
        self.cfg, self._scorers = cfg, {}

    def score(self, domain: RewardDomain, rows: list[dict[str, Any]]) -> list[float]:
        from cascade.rewards import build_scorer

        if domain not in self._scorers:
            self._scorers[domain] = build_scorer(RewardConfig(
                domain=domain, timeout_s=self.cfg.reward_timeout_s, num_workers=self.cfg.reward_workers,
                judge=self.cfg.judge, reward_model=self.cfg.reward_model))
        return [r.reward for r in self._scorers[domain].score(rows)]

    def close(self) -> None:
        for s in self._scorers.values():
            s.close()
        self._scorers.clear()


def pass_rates(records: Sequence[RLRecord], generator: Any, scorers: RewardScorers, p: FilterPass,
               cfg: DifficultyConfig) -> list[float]:
    """Fraction of `p.k` samples per record whose reward reaches the success threshold."""
    from cascade.data.chat_template import render_generation_prompt
    from cascade.generation import SamplingParams

    params = SamplingParams(n=p.k, temperature=cfg.temperature, top_p=cfg.top_p,
                            max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    rates: list[float] = []
    for start in range(0, len(records), cfg.batch_prompts):
        batch = list(records[start : start + cfg.batch_prompts])
        prompts = [render_generation_prompt(r.prompt, mode=cfg.mode) for r in batch]
        outputs = generator.generate(prompts, params)
        by_domain: dict[RewardDomain, list[tuple[int, dict[str, Any]]]] = {}
        for i, (r, out) in enumerate(zip(batch, outputs)):
            for s in out.samples:
                by_domain.setdefault(r.domain, []).append((i, {**r.reward_fields(), "response": s.text}))
        passed = [0] * len(batch)
        for domain, items in by_domain.items():
            for (i, _), reward in zip(items, scorers.score(domain, [row for _, row in items])):
                passed[i] += reward >= cfg.success_threshold
        rates.extend(n / p.k for n in passed)
    return rates


def verdict(rate: float, p: FilterPass) -> str | None:
    if p.drop_at_or_above is not None and rate >= p.drop_at_or_above:
        return "too_easy"
    if p.drop_at_or_below is not None and rate <= p.drop_at_or_below:
        return "too_hard"
    return None


def run(records: Sequence[RLRecord], cfg: DifficultyConfig, manifest: Manifest,
        generator_factory: Any = None) -> list[RLRecord]:
    """Apply every pass in order; returns the kept records with `metadata.pass_rates`."""
    from dataclasses import replace

    from cascade.generation import GeneratorConfig, build_generator

    make = generator_factory or (lambda p: build_generator(GeneratorConfig(
        model_path=p.model, backend=cfg.backend, **cfg.generator_kwargs)))  # type: ignore[arg-type]
    kept = list(records)
    scorers = RewardScorers(cfg)
    try:
        for p in cfg.passes:
            gen = make(p)
            try:
                rates = pass_rates(kept, gen, scorers, p, cfg)
            finally:
                gen.close()
            survivors, dropped, histogram = [], Counter(), Counter()
            for r, rate in zip(kept, rates):
                histogram[f"{rate:.3f}"] += 1
                why = verdict(rate, p)
                if why:
                    dropped[why] += 1
                    continue
                rates_meta = {**r.metadata.get("pass_rates", {}), p.label: rate}
                survivors.append(replace(r, metadata={**r.metadata, "pass_rates": rates_meta}))
            manifest.step(f"difficulty:{p.label}", len(kept), len(survivors), k=p.k,
                          drop_at_or_above=p.drop_at_or_above, drop_at_or_below=p.drop_at_or_below,
                          dropped=dict(dropped), pass_rate_histogram=dict(sorted(histogram.items())))
            kept = survivors
    finally:
        scorers.close()
    return kept


def build(input_path: str, out_dir: str, cfg: DifficultyConfig) -> list[RLRecord]:
    manifest = Manifest("rl/difficulty_filtered", config=cfg)
    manifest.add_source(input_path)
    errors: list[Any] = []
    records = read_rl_records(input_path, errors)
    for e in errors:
        manifest.bad_row(e.where, e.reason)
    manifest.sources[-1]["rows"] = len(records) + len(errors)
    manifest.step("read", len(records) + len(errors), len(records), bad_rows=len(errors))
    kept = run(records, cfg, manifest)
    write_product(out_dir, {"train.parquet": (kept, RLRecord)}, manifest)
    return kept


def parse_pass(spec: str) -> FilterPass:
    """`model=PATH,k=16,drop_at_or_above=0.75[,drop_at_or_below=0.0][,name=X]`."""
    fields: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"--pass expects key=value pairs, got {part!r}")
        fields[key.strip()] = value.strip()
    if "model" not in fields:
        raise ValueError("--pass needs model=PATH")
    conv = {"k": int, "drop_at_or_above": float, "drop_at_or_below": float}
    return FilterPass(**{k: conv.get(k, str)(v) for k, v in fields.items()})


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_prep.difficulty_filter", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="an RL prompt parquet (cascade.data.records schema)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--pass", dest="passes", action="append", required=True, type=parse_pass)
    ap.add_argument("--backend", default="transformers", choices=["transformers", "vllm"])
    ap.add_argument("--mode", default="thinking", choices=["thinking", "instruct"])
    ap.add_argument("--temperature", type=float, default=0.6)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--max-new-tokens", type=int, default=4096)
    ap.add_argument("--batch-prompts", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reward-workers", type=int, default=0, help="reward worker processes (0: one per core)")
    ap.add_argument("--judge-endpoint", help="SWE: OpenAI-compatible judge endpoint")
    ap.add_argument("--reward-model-endpoint", help="RLHF/IF-RM: reward model endpoint")
    a = ap.parse_args(argv)
    cfg = DifficultyConfig(
        tuple(a.passes), a.backend, ChatMode(a.mode), a.temperature, a.top_p, a.max_new_tokens, a.batch_prompts,
        seed=a.seed, reward_workers=a.reward_workers,
        judge=ServedModelConfig(endpoint=a.judge_endpoint) if a.judge_endpoint else None,
        reward_model=ServedModelConfig(endpoint=a.reward_model_endpoint) if a.reward_model_endpoint else None)
    kept = build(a.input, a.out_dir, cfg)
    print(f"kept {len(kept)} prompts in {a.out_dir}/train.parquet")
    return 0


if __name__ == "__main__":
    from cascade.config.cli import run_cli  # a UserError is one line, exit 2

    raise SystemExit(run_cli(main, prog="python -m data_prep.difficulty_filter"))
