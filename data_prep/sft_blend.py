"""SFT blends for stage 1 (16K) and stage 2 (32K) from the released Nemotron-Cascade SFT data (C1 §3.2).

    hf download nvidia/Nemotron-Cascade-SFT-Stage-1 --repo-type dataset --local-dir data/raw/sft-stage-1  # ~5,436,618 rows
    hf download nvidia/Nemotron-Cascade-SFT-Stage-2 --repo-type dataset --local-dir data/raw/sft-stage-2  # ~7,797,730 rows
    hf download nvidia/Nemotron-Cascade-SFT-SWE --repo-type dataset --local-dir data/raw/sft-swe          # ~162,262 rows
    python -m data_prep.sft_blend --stage 1 --input data/raw/sft-stage-1 --out-dir data/sft/stage1
    python -m data_prep.sft_blend --stage 2 --input data/raw/sft-stage-2 --out-dir data/sft/stage2 \\
        [--extra swe=data/raw/sft-swe]
    # thinking-only models (8B-Thinking, 14B-Thinking; C1 §3.4): the same with --modes thinking
    python -m data_prep.sft_blend --stage 1 --modes thinking --input data/raw/sft-stage-1 --out-dir data/sft_thinking/stage1
    python -m data_prep.sft_blend --stage 2 --modes thinking --input data/raw/sft-stage-2 \\
        --out-dir data/sft_thinking/stage2 [--extra swe=data/raw/sft-swe]

(row counts from third-party copies; the official cards are not public in our sources.)
The recipe, per stage: which files feed which domain, which response modes each domain keeps
(general-domain data has parallel thinking and instruct answers; math/code/science/tool/SWE are
thinking only), and the upsampling (stage 2: science 2x, SWE 3x). Math, code and science prompts
are 9-gram decontaminated. Rows stream through in batches; the output is shuffled across
domains (hash-sharded), held-out rows are split by prompt so parallel answers stay together.
A thinking-only model (8B/14B-Thinking) uses `--modes thinking` (its SFT YAMLs read data/sft_thinking/).
"""

from __future__ import annotations

import argparse
import fnmatch
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cascade.config.schema.common import ChatMode
from cascade.data.records import RecordWriter, SFTRecord
from data_prep import decontaminate as dc
from data_prep.manifest import Manifest
from data_prep.outputs import ShuffledWriter, is_holdout
from data_prep.sources import (
    Column,
    Drop,
    InputSchema,
    Row,
    convert,
    expand_inputs,
    maybe_json,
    read_rows,
    require_inputs,
)

THINK, INSTRUCT = ChatMode.THINKING.value, ChatMode.INSTRUCT.value


@dataclass(frozen=True)
class DomainSpec:
    name: str
    patterns: tuple[str, ...]  # globs matched against paths relative to an input root
    modes: tuple[str, ...] = (THINK,)
    upsample: float = 1.0
    decontaminate: bool = False


@dataclass(frozen=True)
class BlendConfig:
    stage: int
    domains: tuple[DomainSpec, ...]
    modes: tuple[str, ...] = (THINK, INSTRUCT)  # the model's modes: unified 8B both, *-Thinking only thinking
    val_fraction: float = 0.005
    max_tokens: int = 0  # >0 (with a tokenizer): drop conversations longer than the stage's sequence length
    max_rows_per_domain: int = 0  # 0: all (a cap for smoke runs)
    shards: int = 64
    batch_rows: int = 4096
    decontam: dc.DecontamConfig | None = field(default_factory=dc.DecontamConfig)


GENERAL = DomainSpec("general", ("general.jsonl", "general/*", "general_*.jsonl"), (THINK, INSTRUCT))
# C1 §3.2: stage 1 = general (both modes) + math/code/science (thinking); stage 2 adds IF, tool
# calling and SWE, new math/code/science data, science upsampled 2x and all SWE data 3x.
RECIPES: dict[int, tuple[DomainSpec, ...]] = {
    1: (GENERAL,
        DomainSpec("math", ("math.jsonl", "math/*"), decontaminate=True),
        DomainSpec("code", ("code.jsonl", "code/*"), decontaminate=True),
        DomainSpec("science", ("science.jsonl", "science/*"), decontaminate=True)),
    2: (GENERAL,
        DomainSpec("instruction_following", ("instruction-following.jsonl", "instruction_following*", "if/*"),
                   (THINK, INSTRUCT)),
        DomainSpec("math", ("math.jsonl", "math/*"), decontaminate=True),
        DomainSpec("code", ("code.jsonl", "code/*"), decontaminate=True),
        DomainSpec("science", ("science.jsonl", "science/*"), upsample=2.0, decontaminate=True),
        DomainSpec("tool_calling", ("tool_calling.jsonl", "tool_calling/*")),
        DomainSpec("swe", ("swe_*.jsonl", "swe/*", "swe.jsonl"), upsample=3.0)),
}

SFT_ROWS = InputSchema("nvidia/Nemotron-Cascade-SFT-* (messages schema)", (
    Column("messages", "list[{role, content, reasoning_content?, tool_calls?}] (or JSON)", ("conversations",)),
    Column("thinking", "bool | 'on'/'off'", ("mode", "reasoning"), required=False),
    Column("tools", "list (or JSON)", (), required=False),
    Column("source", "str", ("data_source", "generator", "category"), required=False),
    Column("id", "str", ("uuid", "index"), required=False),
))


def domain_files(roots: Sequence[str], spec: DomainSpec, extra: dict[str, list[str]]) -> list[Path]:
    files = []
    for root in map(Path, roots):
        for f in expand_inputs([root]):
            rel = f.relative_to(root).as_posix() if root.is_dir() else f.name
            if any(fnmatch.fnmatch(rel, pat) for pat in spec.patterns):
                files.append(f)
    return files + expand_inputs(extra.get(spec.name, []))


def _mode_hint(value: Any) -> ChatMode | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return ChatMode.THINKING if value else ChatMode.INSTRUCT
    text = str(value).strip().lower()
    table = {"on": THINK, "true": THINK, "thinking": THINK, "off": INSTRUCT, "false": INSTRUCT, "instruct": INSTRUCT}
    if text not in table:
        raise ValueError(f"unrecognised thinking/mode value {value!r}")
    return ChatMode(table[text])


def to_record(row: Row, domain: str, cfg: BlendConfig) -> SFTRecord:
    from cascade.data.chat_template import final_mode

    msgs = maybe_json(row.data["messages"])
    if not isinstance(msgs, list):
        raise ValueError("messages must be a list")
    mode = final_mode(msgs, _mode_hint(row.data.get("thinking")))
    if mode.value not in cfg.modes:
        raise Drop(f"mode_{mode.value}_not_trained")
    rid = str(row.data.get("id") or "") or row.where.replace(" row ", ":")
    rec = SFTRecord(id=f"{domain}:{rid}", messages=msgs, mode=mode, domain=domain,
                    source=str(row.data.get("source") or domain), tools=maybe_json(row.data.get("tools")))
    return rec.validate(row.where)


def first_user(r: SFTRecord) -> str:
    return next((str(m.get("content") or "") for m in r.messages if m.get("role") == "user"), "")


def _batches(it: Iterator[SFTRecord], size: int) -> Iterator[list[SFTRecord]]:
    batch: list[SFTRecord] = []
    for r in it:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def build(roots: Sequence[str], out_dir: str | Path, cfg: BlendConfig, extra: dict[str, list[str]] | None = None,
          tokenizer: str | None = None) -> dict[str, int]:
    out = Path(out_dir)
    manifest = Manifest(f"sft/stage{cfg.stage}", config={"blend": cfg, "extra": extra or {}, "tokenizer": tokenizer})
    counter = None
    if cfg.max_tokens:
        from data_prep.tokens import TokenCounter

        if not tokenizer:
            raise ValueError("--max-tokens needs --tokenizer")
        counter = TokenCounter(tokenizer)
    decon = dc.Decontaminator(dc.build_index(cfg.decontam), cfg.decontam) if cfg.decontam else None
    train = ShuffledWriter(out / "train.parquet", SFTRecord, cfg.shards)
    val = RecordWriter(out / "val.parquet", SFTRecord)
    totals: Counter = Counter()
    try:
        for spec in cfg.domains:
            files = domain_files(roots, spec, extra or {})
            if not files:
                manifest.notes.append(f"domain {spec.name}: no input files match {spec.patterns}")
                continue
            c: Counter = Counter()
            dropped: Counter = Counter()
            domain_cfg = replace(cfg, modes=tuple(m for m in cfg.modes if m in spec.modes))
            records = convert(read_rows(files, SFT_ROWS, manifest), lambda r: to_record(r, spec.name, domain_cfg),
                              manifest, dropped)
            for batch in _batches(records, cfg.batch_rows):
                if cfg.max_rows_per_domain:
                    batch = batch[: max(0, cfg.max_rows_per_domain - c["converted"])]
                    if not batch:
                        break
                c["converted"] += len(batch)
                if counter is not None:
                    keep = [r for r in batch if counter.count(_rendered(r)) <= cfg.max_tokens]
                    dropped["over_max_tokens"] += len(batch) - len(keep)
                    batch = keep
                if decon is not None and spec.decontaminate:
                    res = decon.scan([first_user(r) for r in batch])
                    dropped["contaminated"] += int(res.flagged.sum())
                    batch = [r for r, bad in zip(batch, res.flagged) if not bad]
                for r in batch:
                    if is_holdout(first_user(r), cfg.val_fraction):
                        val.write(r)
                        c["val"] += 1
                        continue
                    c["train"] += 1
                    for k in range(_copies(r, spec.upsample)):
                        train.write(r if k == 0 else replace(r, id=f"{r.id}#up{k}"))
                        c["train_rows"] += 1
            read = c["converted"] + sum(v for k, v in dropped.items() if k.startswith("mode_"))
            manifest.step(f"{spec.name}", read, c["train_rows"] + c["val"], files=[str(f) for f in files],
                          dropped=dict(dropped), modes=list(domain_cfg.modes), upsample=spec.upsample,
                          train_prompts=c["train"], train_rows=c["train_rows"], val_rows=c["val"])
            totals.update({"train": c["train_rows"], "val": c["val"]})
    except BaseException:
        train.discard()
        val.discard()
        raise
    finally:
        if decon is not None:
            decon.close()
    if not train.rows and not val.rows:  # nothing is written: an earlier product in out_dir stays whole
        train.discard()
        val.discard()
        raise EmptyBlend(_why_empty(manifest))
    n_train, n_val = train.close(), val.close()
    manifest.step("write", n_train + n_val, n_train + n_val, train=n_train, val=n_val, shuffled=True)
    manifest.add_output(out / "train.parquet", n_train)
    manifest.add_output(out / "val.parquet", n_val)
    manifest.write(out)
    return {"train": n_train, "val": n_val}


class EmptyBlend(ValueError):
    """No row survived: the product would be empty (nothing was written)."""


def _why_empty(manifest: Manifest) -> str:
    """One line: each domain's files and drops, as the manifest would have recorded them."""
    parts = list(manifest.notes)
    for st in manifest.steps:
        dropped = {k: v for k, v in (st.get("dropped") or {}).items() if v}
        parts.append(f"domain {st['name']}: {len(st.get('files') or [])} file(s), {st['rows_in']} rows read"
                     + (f", dropped {dropped}" if dropped else ""))
    return "; ".join(parts) or "no domain produced rows"


def _copies(r: SFTRecord, factor: float) -> int:
    from data_prep.outputs import unit_hash

    whole, frac = int(factor), factor - int(factor)
    return whole + (1 if frac > 0 and unit_hash(r.id, "cascade-upsample") < frac else 0)


def _rendered(r: SFTRecord) -> str:
    from cascade.data.chat_template import render

    return render(r.messages, mode=r.mode, tools=r.tools)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.sft_blend", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", type=int, choices=sorted(RECIPES), required=True)
    p.add_argument("--input", nargs="+", required=True, help="local copies of the released SFT datasets")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--extra", action="append", default=[], metavar="DOMAIN=PATH", help="more files for a domain")
    p.add_argument("--modes", default="thinking,instruct", help="'thinking' for a thinking-only model")
    p.add_argument("--val-fraction", type=float, default=0.005)
    p.add_argument("--max-tokens", type=int, default=0, help="drop conversations longer than this (16384 / 32768)")
    p.add_argument("--tokenizer", help="local HF tokenizer directory (needed with --max-tokens)")
    p.add_argument("--max-rows-per-domain", type=int, default=0)
    p.add_argument("--shards", type=int, default=64)
    dc.add_args(p)
    a = p.parse_args(argv)
    extra: dict[str, list[str]] = {}
    for spec in a.extra:
        name, _, path = spec.partition("=")
        extra.setdefault(name, []).append(path)
    cfg = BlendConfig(a.stage, RECIPES[a.stage], tuple(a.modes.split(",")), a.val_fraction, a.max_tokens,
                      a.max_rows_per_domain, a.shards, decontam=dc.config_from_args(a))
    require_inputs([*a.input, *(x for paths in extra.values() for x in paths)])  # before anything is made
    try:
        counts = build(a.input, a.out_dir, cfg, extra, a.tokenizer)
    except EmptyBlend as e:
        from cascade.config.errors import UserError

        raise UserError(f"{a.out_dir}: 0 rows from --input {' '.join(a.input)}, nothing written ({e}); "
                        "check the input paths") from None
    print(f"wrote {counts['train']} train / {counts['val']} val rows to {a.out_dir}")
    return 0


if __name__ == "__main__":
    from cascade.config.cli import run_cli  # a UserError is one line, exit 2

    raise SystemExit(run_cli(main, prog="python -m data_prep.sft_blend"))
