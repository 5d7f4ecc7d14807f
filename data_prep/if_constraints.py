"""Verifiable instruction constraints: the IFEval / IFBench taxonomies and a generator that attaches
constraints to plain prompts (C1 §4.4: the custom 60K IF-RL set is LMSYS prompts + IFEval-taxonomy
constraints; stage 2 uses the IFBench taxonomy).

Why the checkers' own text: a constraint is only verifiable if the reward can rebuild exactly the
checker that wrote the instruction. So, Tulu-3 RLVR-IF style, each constraint's text is the
checker's `build_description(...)` with sampled kwargs, and the stored kwargs are the checker's
`get_instruction_args()`; every attachment is re-built through the reward's own constructor and
must give the same text. Checkers come from the reward registry (`cascade.rewards.instruction`).

    python -m data_prep.if_constraints --taxonomy ifeval --input prompts.jsonl --out-dir data/rl/if_custom
"""

from __future__ import annotations

import argparse
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cascade.config.schema.rl import RewardDomain
from cascade.data.records import RLRecord, as_messages
from data_prep import rl_common
from data_prep.manifest import Manifest
from data_prep.sources import Column, InputSchema, Row, convert, maybe_json, read_rows

TAXONOMIES = ("ifeval", "ifbench")
NEEDS_PROMPT = {"combination:repeat_prompt", "repeat:repeat_change", "repeat:repeat_span"}
# Not attachable to an arbitrary prompt: IFBench "custom:" items are whole tasks, repeat_simple
# overrides the request, ratio:overlap needs a reference text we do not have.
NOT_GENERATED_PREFIXES = ("custom:",)
NOT_GENERATED = {"repeat:repeat_simple", "ratio:overlap"}


def registries() -> dict[str, dict[str, Any]]:
    from cascade.rewards.instruction.reward import registries as reward_registries  # the reward's checkers

    ifeval, ifbench = reward_registries()
    return {"ifeval": ifeval, "ifbench": ifbench}


def taxonomy_of(ids: Sequence[str]) -> str | None:
    """"ifeval" if every id is an IFEval id, "ifbench" if all are known and one is IFBench's, else None."""
    regs = registries()
    if not ids or any(i not in regs["ifeval"] and i not in regs["ifbench"] for i in ids):
        return None
    return "ifbench" if any(i in regs["ifbench"] for i in ids) else "ifeval"


def _conflicts() -> dict[str, set[str]]:
    from cascade.rewards.instruction.checkers import ifeval_conflicts

    out: dict[str, set[str]] = {k: v | {k} for k, v in ifeval_conflicts().items()}
    for k, vs in list(out.items()):  # make symmetric
        for v in vs:
            out.setdefault(v, {v}).add(k)
    return out


def build_checker(instruction_id: str, kwargs: dict[str, Any], prompt: str) -> Any:
    """The checker exactly as the reward builds it (so generation and scoring agree)."""
    from cascade.rewards.instruction.reward import _build_checker

    return _build_checker(instruction_id, kwargs, prompt)


def description(instruction_id: str, kwargs: dict[str, Any], prompt: str = "") -> str:
    """The instruction text a checker writes for these kwargs."""
    regs = registries()
    cls = regs["ifeval"].get(instruction_id) or regs["ifbench"][instruction_id]
    return cls(instruction_id).build_description(**{k: v for k, v in kwargs.items() if v is not None})


def strip_descriptions(prompt: str, ids: Sequence[str], kwargs: Sequence[dict[str, Any]]) -> str:
    """The prompt without its constraint sentences (where they appear verbatim): the part worth
    decontaminating; constraint templates are shared with IFEval/IFBench by design."""
    for iid, kw in zip(ids, kwargs):
        try:
            prompt = prompt.replace(description(iid, kw or {}, prompt), " ")
        except Exception:  # a kwargs set the checker rejects: leave the text as it is
            continue
    return prompt


def template_texts(samples_per_id: int = 8, seed: int = 0) -> list[str]:
    """Constraint sentences rendered with sampled kwargs: their n-grams are dropped from the
    decontamination index so shared templates do not count as contamination."""
    out = []
    for tax, reg in registries().items():
        for iid, cls in reg.items():
            for k in range(samples_per_id):
                random.seed(f"{seed}:{iid}:{k}")
                try:
                    args = {"prompt_to_repeat": "x"} if iid in NEEDS_PROMPT else {}
                    out.append(cls(iid).build_description(**args))
                except Exception:
                    break
    return out


@lru_cache(maxsize=None)
def uncheckable_reason(instruction_id: str) -> str | None:
    """Why the reward cannot check this instruction here (e.g. an NLTK resource that is not
    installed, as `words:start_verb` needs the POS tagger), or None if it can."""
    from cascade.rewards.instruction.reward import evaluate

    random.seed(0)
    cls = {**registries()["ifeval"], **registries()["ifbench"]}[instruction_id]
    checker = cls(instruction_id)
    checker.build_description(**({"prompt_to_repeat": "Say hi."} if instruction_id in NEEDS_PROMPT else {}))
    kwargs = {k: v for k, v in (checker.get_instruction_args() or {}).items() if v is not None}
    try:
        evaluate("Walk the dog. Then read a short book about birds.", [instruction_id], [kwargs], "Say hi.")
    except LookupError as e:
        return str(e)
    return None


@dataclass(frozen=True)
class ConstraintConfig:
    taxonomy: str = "ifeval"  # stage 1: ifeval; stage 2: ifbench
    min_constraints: int = 1
    max_constraints: int = 3  # Llama-Nemotron IF set: 1-10; IF_multi_constraints_upto5: <= 5
    seed: int = 0
    domain: RewardDomain = RewardDomain.INSTRUCTION  # instruction_rm for the thinking models

    def __post_init__(self) -> None:
        if self.taxonomy not in TAXONOMIES:
            raise ValueError(f"taxonomy must be one of {TAXONOMIES}")
        if not 1 <= self.min_constraints <= self.max_constraints:
            raise ValueError("need 1 <= min_constraints <= max_constraints")


class ConstraintSampler:
    """Attaches 1..k compatible constraints of one taxonomy to a prompt, deterministically per key."""

    def __init__(self, cfg: ConstraintConfig) -> None:
        self.cfg = cfg
        reg = registries()[cfg.taxonomy]
        ids = sorted(i for i in reg if i not in NOT_GENERATED and not i.startswith(NOT_GENERATED_PREFIXES))
        self.uncheckable = {i: why for i in ids if (why := uncheckable_reason(i)) is not None}
        self.ids = [i for i in ids if i not in self.uncheckable]
        self.conflicts = _conflicts() if cfg.taxonomy == "ifeval" else {}

    def _compatible(self, chosen: list[str], candidate: str) -> bool:
        if candidate in chosen:
            return False
        if self.conflicts:
            return not any(candidate in self.conflicts.get(c, {c}) or c in self.conflicts.get(candidate, {candidate})
                           for c in chosen)
        group = candidate.split(":")[0]  # IFBench has no conflict table: one constraint per group
        return all(c.split(":")[0] != group for c in chosen)

    def _instantiate(self, iid: str, base: str, key: str) -> tuple[str, dict[str, Any]] | None:
        """(text, kwargs) for one constraint, or None if no sampled kwargs rebuild the same checker
        through the reward (e.g. a sampled 0 that the reward's kwargs filter would drop)."""
        cls = registries()[self.cfg.taxonomy][iid]
        for attempt in range(5):
            random.seed(f"{self.cfg.seed}:{key}:{iid}:{attempt}")  # the checkers sample from `random`
            checker = cls(iid)
            text = checker.build_description(**({"prompt_to_repeat": base} if iid in NEEDS_PROMPT else {}))
            args = {k: v for k, v in (checker.get_instruction_args() or {}).items() if v is not None}
            state = random.getstate()
            random.seed(0)  # a kwarg the rebuild ignores would be re-sampled: make that visible
            same = build_checker(iid, args, base).build_description(**args) == text
            random.setstate(state)
            if same:
                return text, args
        return None

    def attach(self, base: str, key: str) -> tuple[str, list[str], list[dict[str, Any]]]:
        """(prompt with constraints, instruction ids, kwargs) for a base prompt."""
        rng = random.Random(f"{self.cfg.seed}:{key}")
        want = rng.randint(self.cfg.min_constraints, self.cfg.max_constraints)
        for _ in range(8):  # an early pick that conflicts with everything can leave too few: redraw
            ids: list[str] = []
            texts: list[str] = []
            kwargs: list[dict[str, Any]] = []
            for candidate in rng.sample(self.ids, len(self.ids)):
                if len(ids) == want:
                    break
                if not self._compatible(ids, candidate):
                    continue
                made = self._instantiate(candidate, base, key)
                if made is not None:
                    ids.append(candidate)
                    texts.append(made[0])
                    kwargs.append(made[1])
            if len(ids) >= self.cfg.min_constraints:
                break
        return base.rstrip() + " " + " ".join(texts), ids, kwargs


PLAIN_PROMPTS = InputSchema("plain prompts (e.g. LMSYS-Chat-1M first turns)", (
    Column("prompt", "str | list[{role, content}]", ("question", "instruction", "text", "messages", "conversation")),
    Column("id", "str", ("index", "key", "uid"), required=False),
    Column("source", "str", required=False),
))


def base_record(row: Row, default_source: str) -> RLRecord | None:
    """A plain prompt as a constraint-free record (domain set later; the id keys the sampling)."""
    value = maybe_json(row.data["prompt"])
    msgs = as_messages(value)
    text = msgs[-1].get("content") if msgs else None
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty prompt")
    rid = str(row.data.get("id") or "") or "if-" + hashlib.sha1(text.encode()).hexdigest()[:12]
    # a placeholder domain with no extra fields; `with_constraints` sets the real one
    return RLRecord(id=rid, domain=RewardDomain.REWARD_MODEL, prompt=[{"role": "user", "content": text.strip()}],
                    source=str(row.data.get("source") or default_source)).validate(row.where)


def with_constraints(records: Sequence[RLRecord], cfg: ConstraintConfig, manifest: Manifest) -> list[RLRecord]:
    sampler = ConstraintSampler(cfg)
    out, counts = [], {}
    for r in records:
        text, ids, kwargs = sampler.attach(r.prompt_text, r.id)
        for i in ids:
            counts[i] = counts.get(i, 0) + 1
        out.append(RLRecord(id=r.id, domain=cfg.domain, prompt=[{"role": "user", "content": text}], source=r.source,
                            instruction_id_list=ids, kwargs=kwargs,
                            metadata={**r.metadata, "base_prompt": r.prompt_text, "taxonomy": cfg.taxonomy},
                            ).validate(r.id))
    manifest.step("attach_constraints", len(records), len(out), taxonomy=cfg.taxonomy,
                  instruction_counts=dict(sorted(counts.items())), not_checkable_here=sampler.uncheckable)
    return out


def build(inputs: Sequence[str], out_dir: str, cfg: ConstraintConfig, build_cfg: rl_common.RLBuildConfig,
          source: str = "custom") -> list[RLRecord]:
    """Plain prompts -> dedup + decontaminate the base prompts (constraint text is shared template,
    not content) -> attach constraints -> write."""
    manifest = Manifest(f"rl/if_generated_{cfg.taxonomy}", config={"constraints": cfg, "build": build_cfg})
    bases = list(convert(read_rows(inputs, PLAIN_PROMPTS, manifest), lambda r: base_record(r, source), manifest))
    rl_common.read_step(manifest, len(bases))
    kept = rl_common.clean(bases, build_cfg, manifest, what="base_prompts")
    return rl_common.write(with_constraints(kept, cfg, manifest), build_cfg, manifest, out_dir)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.if_constraints", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rl_common.add_args(p)
    p.add_argument("--taxonomy", choices=TAXONOMIES, default="ifeval")
    p.add_argument("--min-constraints", type=int, default=1)
    p.add_argument("--max-constraints", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--domain", choices=["instruction", "instruction_rm"], default="instruction")
    p.add_argument("--source", default="custom")
    a = p.parse_args(argv)
    cfg = ConstraintConfig(a.taxonomy, a.min_constraints, a.max_constraints, a.seed, RewardDomain(a.domain))
    out = build(a.input, a.out_dir, cfg, rl_common.config_from_args(a), a.source)
    print(f"wrote {len(out)} prompts to {a.out_dir}/train.parquet")
    return 0


if __name__ == "__main__":
    from cascade.config.cli import run_cli  # a UserError is one line, exit 2

    raise SystemExit(run_cli(main, prog="python -m data_prep.if_constraints"))
