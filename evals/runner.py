"""Evaluate one checkpoint on a suite: generate (resumably), score, aggregate, write the stage's
results file. The CLI (`evals.run`) and the launcher hook (`evals.stage_eval`) both call
`evaluate_stage`.

Layout under a stage's output dir (see evals/README.md):
    <stage_dir>/hf/                         the HF export evaluated by default
    <stage_dir>/evals/<stage>.json          results (schema below, RESULTS_SCHEMA)
    <stage_dir>/evals/cache/<bench>.<fp>.jsonl   every generation and score (resume state)
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cascade.data.chat_template import render_generation_prompt
from cascade.generation import GeneratorConfig, SamplingParams, build_generator, derive_seed
from cascade.offline import OfflineAssetMissing
from evals.cache import EvalCache, model_fingerprint, sha
from evals.data_files import EvalDataMissing
from evals.metrics import summarize
from evals.scoring import EvalScorer, ScorerUnavailable, ScoringContext, build_scorer
from evals.suite import ResolvedBenchmark, SuiteConfig, resolve

RESULTS_SCHEMA = "cascade.evals/1"
_STAGE_DIR = re.compile(r"^(\d+)_(.+)$")


class EvalInterrupted(RuntimeError):
    """A stop was requested (preemption); everything generated so far is in the cache."""


def stage_identity(stage_dir: Path) -> tuple[str, int | None]:
    """(stage name, chain index) from the run layout `NN_name` (side stages: `side_name`)."""
    m = _STAGE_DIR.match(stage_dir.name)
    if m:
        return m.group(2), int(m.group(1))
    if stage_dir.name.startswith("side_"):
        return stage_dir.name[len("side_"):], 0
    return stage_dir.name, None


def results_path(stage_dir: Path, stage_name: str | None = None) -> Path:
    """Where a stage's eval results live: `<stage_dir>/evals/<stage>.json`."""
    return stage_dir / "evals" / f"{stage_name or stage_identity(stage_dir)[0]}.json"


class GeneratorPool:
    """Builds the generator on first need (a fully cached rerun never loads the model) and keeps
    one alive at a time: a benchmark with other RoPE settings replaces it (GPU memory)."""

    def __init__(self, model_path: Path, suite: SuiteConfig) -> None:
        self.model_path, self.suite = model_path, suite
        self.current: tuple[GeneratorConfig, Any] | None = None
        self.builds = 0

    def config_for(self, rb: ResolvedBenchmark) -> GeneratorConfig:
        g = self.suite.generator
        max_len = g.max_model_len
        if rb.rope_scaling is not None and rb.rope_scaling != g.rope_scaling:
            max_len = int(rb.rope_scaling.factor * rb.rope_scaling.original_max_position_embeddings)
        return GeneratorConfig(
            model_path=str(self.model_path), backend=g.backend, dtype=g.dtype, max_batch_size=g.max_batch_size,
            max_model_len=max_len, rope_scaling=rb.rope_scaling, tensor_parallel=g.tensor_parallel,
            gpu_memory_utilization=g.gpu_memory_utilization, kv_cache_gib=g.kv_cache_gib, seed=self.suite.seed, num_threads=g.num_threads,
        )

    def get(self, rb: ResolvedBenchmark) -> Any:
        cfg = self.config_for(rb)
        if self.current is None or self.current[0] != cfg:
            self.close()
            self.current = (cfg, build_generator(cfg))
            self.builds += 1
        return self.current[1]

    def close(self) -> None:
        if self.current is not None:
            self.current[1].close()
            self.current = None


def select_items(rb: ResolvedBenchmark, seed: int) -> tuple[list, int]:
    """The benchmark's items (a seeded subset when `limit` is set) and the full count."""
    items = rb.spec.loader()
    total = len(items)
    if rb.limit is not None and rb.limit < total:
        keep = sorted(random.Random(derive_seed(seed, rb.name, "subset")).sample(range(total), rb.limit))
        items = [items[i] for i in keep]
    return items, total


def _fingerprint(rb: ResolvedBenchmark, suite: SuiteConfig, model_fp: str) -> str:
    proto = {"model": model_fp, "sampling": asdict(rb.sampling), "mode": rb.mode.value, "seed": suite.seed,
             "rope": asdict(rb.rope_scaling) if rb.rope_scaling else None, "template": suite.template}
    return sha(json.dumps(proto, sort_keys=True))[:12]


@dataclass
class _Prepared:
    """One benchmark between planning and summary: its items, prompts, cache and what is missing."""

    rb: ResolvedBenchmark
    items: list
    total_items: int
    prompts: list[str]
    cache: EvalCache
    missing: list[tuple[int, int]]  # (item index, sample index) not in the cache
    gen_seconds: float = 0.0


def _prepare(rb: ResolvedBenchmark, suite: SuiteConfig, eval_dir: Path, model_fp: str,
             scorers: dict[str, EvalScorer]) -> _Prepared | dict:
    """Items, prompts and cache of one benchmark; `{"skipped": why}` when it cannot run here.
    Benchmarks that share a scorer share one instance (one verifier pool per eval)."""
    try:
        items, total_items = select_items(rb, suite.seed)
        if rb.spec.scorer not in scorers:
            scorers[rb.spec.scorer] = build_scorer(rb.spec.scorer, ScoringContext(suite.scoring, eval_dir / "work"))
    except (EvalDataMissing, OfflineAssetMissing, ScorerUnavailable) as e:
        return {"title": rb.spec.title, "skipped": str(e)}
    prompts = [render_generation_prompt(it.messages, variant=suite.template, mode=rb.mode) for it in items]
    cache = EvalCache(eval_dir / "cache" / f"{rb.name}.{_fingerprint(rb, suite, model_fp)}.jsonl")
    missing = [(i, j) for i, it in enumerate(items) for j in range(rb.k)
               if cache.generation((it.id, j), sha(prompts[i])) is None]
    return _Prepared(rb, items, total_items, prompts, cache, missing)


def _generate_missing(preps: list[_Prepared], suite: SuiteConfig, pool: GeneratorPool, progress: bool,
                      stop_check: Callable[[], bool]) -> None:
    """Generate every benchmark's missing samples, benchmarks that share an engine configuration
    batched together (a handful of prompts per benchmark would leave the engine's batch nearly
    empty), `cache_every` rows per engine call, each chunk appended to its benchmarks' caches."""
    groups: list[tuple[GeneratorConfig, list[tuple[_Prepared, int, int]]]] = []
    for p in preps:
        cfg = pool.config_for(p.rb)
        rows = next((r for c, r in groups if c == cfg), None)
        if rows is None:
            groups.append((cfg, rows := []))
        rows.extend((p, i, j) for i, j in p.missing)
    total = sum(len(p.items) * p.rb.k for p in preps)
    todo = sum(len(rows) for _, rows in groups)
    bar = tqdm(total=total, initial=total - todo, desc="generate", unit="sample", disable=not progress,
               dynamic_ncols=True)
    try:
        for _, rows in groups:
            for start in range(0, len(rows), suite.cache_every):
                chunk = rows[start : start + suite.cache_every]
                if stop_check():
                    raise EvalInterrupted(f"stop requested during {chunk[0][0].rb.name}; new samples so far are cached")
                params = []
                for p, i, j in chunk:
                    s = p.rb.sampling
                    params.append(SamplingParams(n=1, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                                                 max_new_tokens=s.max_new_tokens,
                                                 seed=derive_seed(suite.seed, p.rb.name, p.items[i].id, j)))
                t0 = time.time()
                outs = pool.get(chunk[0][0].rb).generate([p.prompts[i] for p, i, _ in chunk], params)
                share = (time.time() - t0) / len(chunk)
                for p in {id(p): p for p, _, _ in chunk}.values():
                    mine = [(i, j, o) for (q, i, j), o in zip(chunk, outs) if q is p]
                    p.gen_seconds += share * len(mine)
                    p.cache.append(
                        {"kind": "gen", "item": p.items[i].id, "sample": j, "prompt_sha": sha(p.prompts[i]),
                         "text": o.samples[0].text, "finish_reason": o.samples[0].finish_reason,
                         "num_tokens": len(o.samples[0].token_ids)}
                        for i, j, o in mine)
                bar.update(len(chunk))
    finally:
        bar.close()


def _score_missing(p: _Prepared, scorer: EvalScorer, chunk_size: int, progress: bool) -> int:
    rb, items, cache = p.rb, p.items, p.cache
    todo = []
    for it in items:
        for j in range(rb.k):
            text = cache.generations[(it.id, j)]["text"]
            if cache.score((it.id, j), sha(text), rb.spec.scorer) is None:
                todo.append((it, j, text))
    total = len(items) * rb.k
    bar = tqdm(total=total, initial=total - len(todo), desc=f"{rb.name}: score", unit="sample",
               disable=not progress, dynamic_ncols=True)
    try:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            results = scorer.score([it for it, _, _ in chunk], [t for _, _, t in chunk])
            cache.append({"kind": "score", "item": it.id, "sample": j, "response_sha": sha(t),
                          "scorer": rb.spec.scorer, "score": r.score, "info": r.info}
                         for (it, j, t), r in zip(chunk, results))
            bar.update(len(chunk))
    finally:
        bar.close()
    return len(todo)


def _summarize(p: _Prepared, suite: SuiteConfig, eval_dir: Path, scorer: EvalScorer, progress: bool) -> dict:
    """Score what the cache lacks, then the benchmark's results entry."""
    rb, items, cache = p.rb, p.items, p.cache
    t1 = time.time()
    scored = _score_missing(p, scorer, max(16, suite.cache_every), progress)
    n = len(items) * rb.k
    scores = {it.id: [cache.scores[(it.id, j)]["score"] for j in range(rb.k)] for it in items}
    gens = [cache.generations[(it.id, j)] for it in items for j in range(rb.k)]
    errors = sum(1 for it in items for j in range(rb.k) if "error" in (cache.scores[(it.id, j)].get("info") or {}))
    metrics = summarize(scores, rb.k)
    headline = f"pass@{rb.k}" if rb.spec.metric == "pass@k" and f"pass@{rb.k}" in metrics else f"avg@{rb.k}"
    return {
        "title": rb.spec.title, "scorer": rb.spec.scorer, "metric": headline, "k": rb.k, "mode": rb.mode.value,
        "score": metrics[headline], "stderr": metrics.get(f"{headline}_stderr"), "metrics": metrics,
        "n_items": len(items), "n_items_total": p.total_items, "limit": rb.limit,
        "sampling": asdict(rb.sampling), "rope_scaling": asdict(rb.rope_scaling) if rb.rope_scaling else None,
        "truncated_frac": sum(g["finish_reason"] == "length" for g in gens) / len(gens),
        "mean_response_tokens": sum(g["num_tokens"] for g in gens) / len(gens),
        "score_errors": errors,
        # seconds: this benchmark's share of the engine calls it was batched into
        "generation": {"generated": len(p.missing), "cached": n - len(p.missing), "seconds": round(p.gen_seconds, 1)},
        "scoring": {"scored": scored, "cached": n - scored, "seconds": round(time.time() - t1, 1)},
        "cache": str(cache.path.relative_to(eval_dir)), "paper_row": rb.spec.paper_row, "notes": rb.spec.notes,
    }


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


def evaluate_stage(stage_dir: str | Path, suite: SuiteConfig, *, model_path: str | Path | None = None,
                   stage_name: str | None = None, only: list[str] | None = None, progress: bool = True,
                   stop_check: Callable[[], bool] = lambda: False, log: Callable[[str], None] = print) -> dict:
    """Run `suite` on the stage's HF export and write `<stage_dir>/evals/<stage>.json`.

    Results of benchmarks not run this time are kept when the model is the same (so a subset rerun
    adds to the file). Raises EvalInterrupted (after saving what finished) if `stop_check` fires.
    """
    stage_dir = Path(stage_dir).resolve()
    name, index = stage_identity(stage_dir)
    name = stage_name or name
    model = Path(model_path) if model_path else stage_dir / "hf"
    if not (model / "config.json").is_file():
        raise FileNotFoundError(f"no HF model at {model} (the stage's export is <stage_dir>/hf; or pass --model)")
    eval_dir = stage_dir / "evals"
    out_path = results_path(stage_dir, name)
    model_fp = model_fingerprint(model)
    results: dict[str, Any] = {}
    if out_path.is_file():
        old = json.loads(out_path.read_text())
        if old.get("model_fingerprint") == model_fp:
            results = old.get("benchmarks", {})
    doc = {"schema": RESULTS_SCHEMA, "stage": name, "stage_index": index, "stage_dir": str(stage_dir),
           "model": str(model), "model_fingerprint": model_fp, "suite": suite.name,
           "backend": suite.generator.backend, "template": suite.template, "benchmarks": results}
    pool = GeneratorPool(model, suite)
    scorers: dict[str, EvalScorer] = {}
    try:
        preps = []
        for rb in resolve(suite, only):
            log(f"[evals] {name}: {rb.name} (k={rb.k}, {rb.mode.value}, max_new_tokens={rb.sampling.max_new_tokens})")
            prep = _prepare(rb, suite, eval_dir, model_fp, scorers)
            if isinstance(prep, dict):
                results[rb.name] = prep
                log(f"[evals] {name}: {rb.name} SKIPPED: {prep['skipped']}")
            else:
                preps.append(prep)
        _generate_missing(preps, suite, pool, progress, stop_check)
        pool.close()  # the engine's memory back before the verifiers run
        for p in preps:
            res = results[p.rb.name] = _summarize(p, suite, eval_dir, scorers[p.rb.spec.scorer], progress)
            se = f" ± {res['stderr']:.1f}" if res["stderr"] is not None else ""
            log(f"[evals] {name}: {p.rb.name} {res['metric']} = {res['score']:.1f}{se} "
                f"({res['generation']['generated']} generated, {res['generation']['cached']} cached)")
            doc["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            _write_json(out_path, doc)
    finally:
        pool.close()
        for scorer in scorers.values():
            scorer.close()
    doc["generator_builds"] = pool.builds
    _write_json(out_path, doc)
    return doc
