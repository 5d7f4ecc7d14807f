"""MOPD teacher selection: which checkpoint teaches each prompt domain, and on what evidence.

C2 §4.4 distils each domain from "the strongest validation checkpoint for each benchmark
category". Per domain (``mopd.teachers``) the teacher is either pinned (``checkpoint``) or the
best of named earlier stages (``best_of``), compared on their eval results
``<stage output_dir>/evals/<stage>.json`` (written by ``evals.runner.evaluate_stage``: a
``benchmarks`` mapping of ``{score, metrics, ...}`` or ``{skipped}`` per benchmark). A stage's
score is the mean of the configured benchmarks' ``metric``; the highest wins, ties go to the
stage listed first.

What the choice rests on (scores, the evaluated model's fingerprint, the checkpoint it resolves
to) is the evidence: it goes to the log and the stage manifest, and its hash joins the data
fingerprint, so a resume after the evidence changed (a stage re-evaluated or retrained) is
refused like a resume on other prompts.

The stages a MOPD stage compares reach it through the cascade's ``uses:`` (role = stage name,
e.g. ``uses: {sft: sft, if_rl: if_rl}``), resolved to output directories by the stage graph;
standalone, ``python -m recipes.mopd ... --stage sft=DIR``. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade.config.schema.mopd import HEADLINE, TeacherConfig
from cascade.config.schema.rl import RewardDomain
from cascade.engine.init_source import InitSource, resolve_init

EVALS_DIR = "evals"


class TeacherSelectionError(RuntimeError):
    """A teacher cannot be chosen (missing eval, unknown stage, unreadable checkpoint); one line."""


def eval_file(stage_dir: Path, stage: str) -> Path:
    """Where a stage's eval results live (``evals.runner.results_path``)."""
    return Path(stage_dir) / EVALS_DIR / f"{stage}.json"


@dataclass(frozen=True)
class StageScore:
    stage: str
    score: float  # mean over the teacher's benchmarks
    per_benchmark: dict[str, float]
    file: str
    model_fingerprint: str | None


@dataclass(frozen=True)
class TeacherChoice:
    """One domain's teacher: what to load and why."""

    domain: RewardDomain
    how: str  # "pinned" | "best_of"
    source: Path  # what was chosen: the winning stage's output dir, or the pinned path
    init: InitSource  # the weights it resolves to (Megatron iter_N/ or an HF dir)
    stage: str | None = None  # the winning stage (best_of)
    scores: tuple[StageScore, ...] = field(default_factory=tuple)  # every candidate, in listed order
    metric: str | None = None
    benchmarks: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Teachers with the same weights share one model (loaded once)."""
        return str(self.init.path.resolve())

    @property
    def label(self) -> str:
        return self.stage or str(self.source)

    def evidence(self) -> dict[str, Any]:
        """JSON-able record of the choice (manifest, fingerprint)."""
        out: dict[str, Any] = {"how": self.how, "chosen": self.label, "weights": self.key, "format": self.init.format}
        if self.how == "best_of":
            out.update(metric=self.metric, benchmarks=list(self.benchmarks),
                       scores={s.stage: s.score for s in self.scores},
                       per_benchmark={s.stage: s.per_benchmark for s in self.scores},
                       evals={s.stage: {"file": s.file, "model_fingerprint": s.model_fingerprint}
                              for s in self.scores})
        return out

    def describe(self) -> str:
        if self.how == "pinned":
            return f"{self.domain.value}: pinned {self.source} ({self.init.format} {self.init.path})"
        scores = ", ".join(f"{s.stage}={s.score:.4g}" for s in self.scores)
        return (f"{self.domain.value}: {self.stage} (best of {scores} on {'+'.join(self.benchmarks)} "
                f"{self.metric}; {self.init.format} {self.init.path})")


def _bench_value(result: Any, metric: str) -> float | None:
    if not isinstance(result, dict) or "skipped" in result:
        return None
    value = result.get("score") if metric == HEADLINE else (result.get("metrics") or {}).get(metric)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def stage_score(stage: str, stage_dir: Path, benchmarks: list[str] | tuple[str, ...], metric: str) -> StageScore:
    """A stage's mean score over ``benchmarks`` from its eval results file."""
    path = eval_file(stage_dir, stage)
    if not path.is_file():
        raise TeacherSelectionError(f"MOPD teacher selection: stage {stage!r} has no eval results {path} "
                                    "(evaluate the stage first)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TeacherSelectionError(f"MOPD teacher selection: stage {stage!r}: cannot read {path}: {e}") from None
    results = doc.get("benchmarks") or {}
    per: dict[str, float] = {}
    for bench in benchmarks:
        value = _bench_value(results.get(bench), metric)
        if value is None:
            why = "skipped" if isinstance(results.get(bench), dict) and "skipped" in results[bench] else "missing"
            raise TeacherSelectionError(f"MOPD teacher selection: stage {stage!r}: benchmark {bench!r} metric "
                                        f"{metric!r} is {why} in {path}")
        per[bench] = value
    return StageScore(stage, sum(per.values()) / len(per), per, str(path), doc.get("model_fingerprint"))


def _resolve(where: Path, what: str) -> InitSource:
    try:
        return resolve_init(where)
    except FileNotFoundError as e:  # InitSourceError
        raise TeacherSelectionError(f"MOPD teacher {what}: {e}") from None


def choose_teacher(domain: RewardDomain, cfg: TeacherConfig, stage_dirs: Mapping[str, Path]) -> TeacherChoice:
    domain = RewardDomain(domain)
    if cfg.checkpoint is not None:
        src = Path(cfg.checkpoint).expanduser()
        return TeacherChoice(domain, "pinned", src, _resolve(src, f"for {domain.value!r} (pinned {src})"))
    missing = [s for s in cfg.best_of if s not in stage_dirs]
    if missing:
        uses = ", ".join(f"{s}: {s}" for s in missing)
        raise TeacherSelectionError(f"MOPD teacher for {domain.value!r} compares stage(s) {missing}, which this "
                                    f"stage does not use: add `uses: {{{uses}}}` to it in the cascade YAML "
                                    f"(standalone: --stage NAME=DIR)")
    scores = [stage_score(s, Path(stage_dirs[s]), cfg.benchmarks, cfg.metric) for s in cfg.best_of]
    best = scores[0]
    for s in scores[1:]:
        if s.score > best.score:  # strictly better: ties keep the stage listed first
            best = s
    src = Path(stage_dirs[best.stage])
    return TeacherChoice(domain, "best_of", src, _resolve(src, f"for {domain.value!r} (stage {best.stage!r})"),
                         stage=best.stage, scores=tuple(scores), metric=cfg.metric, benchmarks=tuple(cfg.benchmarks))


def select_teachers(teachers: Mapping[RewardDomain, TeacherConfig],
                    stage_dirs: Mapping[str, Path]) -> dict[RewardDomain, TeacherChoice]:
    """Every configured domain's teacher (in the config's order)."""
    return {RewardDomain(d): choose_teacher(RewardDomain(d), t, stage_dirs) for d, t in teachers.items()}


def check_domains(choices: Mapping[RewardDomain, TeacherChoice], domains: set[RewardDomain]) -> None:
    """Every prompt domain of the data must have a teacher (a silent fallback would distil from the
    wrong model)."""
    missing = sorted(RewardDomain(d).value for d in domains if RewardDomain(d) not in choices)
    if missing:
        raise TeacherSelectionError(f"MOPD prompts of domain(s) {missing} have no teacher; mopd.teachers covers "
                                    f"{sorted(d.value for d in choices)}")


def teacher_keys(choices: Mapping[RewardDomain, TeacherChoice]) -> list[str]:
    """Distinct teacher weights, in the order domains first name them."""
    return list(dict.fromkeys(c.key for c in choices.values()))


def evidence(choices: Mapping[RewardDomain, TeacherChoice]) -> dict[str, Any]:
    return {d.value: c.evidence() for d, c in choices.items()}


def evidence_fingerprint(choices: Mapping[RewardDomain, TeacherChoice]) -> str:
    """Short hash of the evidence: part of the data fingerprint a resume must match."""
    text = json.dumps(evidence(choices), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
