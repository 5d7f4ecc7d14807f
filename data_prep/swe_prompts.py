"""SWE RL prompts (agentless code repair, C1 §4.7.1 / paper.md §3.8) from nvidia/Nemotron-Cascade-RL-SWE.

    hf download nvidia/Nemotron-Cascade-RL-SWE --repo-type dataset --local-dir data/raw/rl-swe   # ~109,996 rows
    python -m data_prep.swe_prompts --input data/raw/rl-swe --tokenizer $QWEN3_8B_BASE \\
        --max-prompt-tokens 16384 --out-dir data/rl/swe_16k      # 8B stage 1 (24576: swe_24k; 14B: 32768, swe_32k)

Input columns: instance_id, prompt, golden_patch, relevant_file_contents ([{file_path, content}]),
source (+ optional problem_statement / original_prompt, used as the issue text when present).
Two prompt subsets per instance, both up to the stage's prompt length l:
  * "gt": the ground-truth files only (those the golden patch modifies);
  * "mixed": the ground-truth files plus localized (noisy) files, added one at a time in the given
    order while the prompt stays within l and there are at most 5 files; file order is shuffled.
Instances whose ground-truth-only prompt exceeds l are dropped; prompts under `--min-prompt-tokens`
(8K in the paper) are discarded. `--exclude-repos-from` drops every instance of a repository that
appears in an evaluation set (SWE-bench Verified), as C1 §3.3.2 does.

The repair prompt follows the Agentless SEARCH/REPLACE format that `cascade.rewards.swe` parses
(the paper's App. C.2 prompt text is not in our references).
"""

from __future__ import annotations

import argparse
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from cascade.config.schema.rl import RewardDomain
from cascade.data.records import RecordWriter, RLRecord
from data_prep import decontaminate as dc
from data_prep import rl_common
from data_prep.eval_sets import parse_eval_file_args
from data_prep.manifest import Manifest
from data_prep.outputs import is_holdout
from data_prep.sources import (
    Column,
    Drop,
    InputSchema,
    Row,
    convert,
    expand_inputs,
    iter_raw_rows,
    maybe_json,
    read_rows,
)
from data_prep.tokens import TokenCounter

SWE = InputSchema("nvidia/Nemotron-Cascade-RL-SWE", (
    Column("instance_id", "str"),
    Column("prompt", "str"),
    Column("golden_patch", "str (unified diff)", ("patch",)),
    Column("relevant_file_contents", "list[{file_path, content}] (or {path: content}, or JSON)", ("file_contents",)),
    Column("source", "str", required=False),
    Column("issue", "str", ("problem_statement", "original_prompt"), required=False),
))

PROMPT_HEAD = ("We are currently solving the following issue within our repository. Here is the issue text:\n"
               "--- BEGIN ISSUE ---\n{issue}\n--- END ISSUE ---\n\n"
               "Below are some code segments, each from a relevant file. One or more of these files may contain bugs.\n\n")
FILE_BLOCK = "--- BEGIN FILE ---\n```\n### {path}\n{content}\n```\n--- END FILE ---\n\n"
PROMPT_TAIL = """Please first localize the bug based on the issue statement, and then generate *SEARCH/REPLACE* edits to fix the issue.

Every *SEARCH/REPLACE* edit must use this format:
1. The file path
2. The start of search block: <<<<<<< SEARCH
3. A contiguous chunk of lines to search for in the existing source code
4. The dividing line: =======
5. The lines to replace into the source code
6. The end of the replace block: >>>>>>> REPLACE

Here is an example:

```python
### mathweb/flask/app.py
<<<<<<< SEARCH
from flask import Flask
=======
import math
from flask import Flask
>>>>>>> REPLACE
```

Please note that the *SEARCH/REPLACE* edit REQUIRES PROPER INDENTATION. If you would like to add the line '        print(x)', you must fully write that out, with all those spaces before the code!
Wrap each *SEARCH/REPLACE* edit in a code block as shown in the example above. If you have multiple *SEARCH/REPLACE* edits, use a separate code block for each one. Put all edits between <solution> and </solution>."""


@dataclass(frozen=True)
class SWEConfig:
    max_prompt_tokens: int = 16384  # l: 16K / 24K (8B stages), 32K (14B)
    min_prompt_tokens: int = 8192  # C1: prompts shorter than 8K are discarded
    max_files: int = 5  # mixed localization: at most 5 files
    subsets: tuple[str, ...] = ("gt", "mixed")
    seed: int = 0
    exclude_repos: frozenset[str] = field(default_factory=frozenset)


def file_contents(value: Any) -> dict[str, str]:
    """`relevant_file_contents` as {path: content}, in the given order."""
    v = maybe_json(value)
    if isinstance(v, dict):
        return {str(k): str(c) for k, c in v.items()}
    if not isinstance(v, list):
        raise ValueError("relevant_file_contents must be a list of {file_path, content} or a dict")
    out: dict[str, str] = {}
    for f in v:
        path = f.get("file_path", f.get("path")) if isinstance(f, dict) else None
        if not path or not isinstance(f.get("content"), str):
            raise ValueError("each relevant file needs file_path and content")
        out[str(path)] = f["content"]
    return out


def patched_files(patch: str) -> tuple[list[str], list[str]]:
    """(modified or deleted files, added files) of a unified diff."""
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError

    try:
        ps = PatchSet(patch)
    except UnidiffParseError as e:
        raise ValueError(f"golden_patch is not a unified diff: {e}") from None
    strip = lambda p: p[2:] if p[:2] in ("a/", "b/") else p  # noqa: E731
    modified = [strip(f.source_file) for f in ps if not f.is_added_file]
    added = [strip(f.target_file) for f in ps if f.is_added_file]
    if not modified and not added:
        raise ValueError("golden_patch changes no file")
    return modified, added


def repo_of(instance_id: str) -> str:
    """SWE-bench-style ids `owner__repo-1234` -> `owner/repo`."""
    m = re.match(r"^(.+?)__(.+)-\d+$", instance_id)
    return f"{m.group(1)}/{m.group(2)}".lower() if m else instance_id.rsplit("-", 1)[0].lower()


def load_excluded_repos(specs: Sequence[str]) -> frozenset[str]:
    """Repositories of an eval set's local files (rows with `repo` or `instance_id`)."""
    repos = set()
    for spec in specs:
        for path in expand_inputs([spec]):
            for _, row in iter_raw_rows(path):
                if isinstance(row, dict) and (row.get("repo") or row.get("instance_id")):
                    repos.add(str(row["repo"]).lower() if row.get("repo") else repo_of(str(row["instance_id"])))
    return frozenset(repos)


class PromptBuilder:
    def __init__(self, counter: TokenCounter, cfg: SWEConfig) -> None:
        self.counter, self.cfg = counter, cfg

    def render(self, issue: str, files: dict[str, str]) -> str:
        return (PROMPT_HEAD.format(issue=issue.strip()) + "".join(FILE_BLOCK.format(path=p, content=c)
                for p, c in files.items()) + PROMPT_TAIL)

    def tokens(self, text: str) -> int:
        return self.counter.prompt_tokens([{"role": "user", "content": text}])

    def _shuffled(self, rng: random.Random, files: dict[str, str]) -> dict[str, str]:
        order = list(files)
        rng.shuffle(order)
        return {p: files[p] for p in order}

    def subsets(self, key: str, issue: str, files: dict[str, str],
                gt: list[str]) -> dict[str, tuple[str, dict[str, str], int]]:
        """{subset: (prompt, shown files, tokens)} within the budget (Drop when nothing fits).
        Noisy files are chosen on summed per-part token counts (each file tokenized once); the
        final prompt is counted exactly and trimmed if the sum under-estimated it."""
        rng = random.Random(f"{self.cfg.seed}:{key}")
        limit = self.cfg.max_prompt_tokens
        gt_files = {p: files[p] for p in gt}
        base_text = self.render(issue, self._shuffled(rng, gt_files))
        base_tokens = self.tokens(base_text)
        if base_tokens > limit:
            raise Drop("gt_over_limit")  # over l before any noisy file
        out = {"gt": (base_text, gt_files, base_tokens)}
        chosen, budget = dict(gt_files), base_tokens
        for path in (p for p in files if p not in gt_files):
            if len(chosen) >= self.cfg.max_files:
                break
            cost = self.counter.count(FILE_BLOCK.format(path=path, content=files[path]))
            if budget + cost > limit:
                break  # files are added one by one until the next would exceed l
            chosen[path], budget = files[path], budget + cost
        while len(chosen) > len(gt_files):
            text = self.render(issue, self._shuffled(rng, chosen))
            tokens = self.tokens(text)
            if tokens <= limit:
                out["mixed"] = (text, chosen, tokens)
                break
            chosen.pop(next(reversed(chosen)))  # the sum under-estimated: drop the last noisy file
        return {k: v for k, v in out.items() if k in self.cfg.subsets}


def adapt(row: Row, builder: PromptBuilder, dropped: Counter) -> list[RLRecord]:
    iid = str(row.data["instance_id"]).strip()
    patch = str(row.data["golden_patch"])
    if not iid or not patch.strip():
        raise ValueError("empty instance_id or golden_patch")
    if repo_of(iid) in builder.cfg.exclude_repos:
        raise Drop("repo_in_eval_set")
    files = file_contents(row.data["relevant_file_contents"])
    modified, added = patched_files(patch)
    missing = [p for p in modified if p not in files]
    if missing:
        raise Drop("gt_file_missing")
    issue = str(row.data.get("issue") or row.data["prompt"])
    built = builder.subsets(iid, issue, files, modified)
    records = []
    for subset, (text, shown, tokens) in built.items():
        if tokens < builder.cfg.min_prompt_tokens:
            dropped[f"{subset}_under_min_tokens"] += 1
            continue
        original = {**shown, **{p: "" for p in added}}  # a new file starts empty
        records.append(RLRecord(
            id=f"{iid}:{subset}", domain=RewardDomain.SWE, prompt=[{"role": "user", "content": text}],
            source=str(row.data.get("source") or "swe"), golden_patch=patch, original=original,
            metadata={"instance_id": iid, "subset": subset, "prompt_tokens": tokens, "files": list(shown),
                      "issue": issue, "origin": row.where}).validate(row.where))
    if not records:
        raise Drop("no_prompt_in_budget")
    return records


def issue_text(r: RLRecord) -> str:
    return str(r.metadata.get("issue") or r.prompt_text)


def build(inputs: Sequence[str], out_dir: str | Path, tokenizer: str, cfg: SWEConfig,
          build_cfg: rl_common.RLBuildConfig, batch_instances: int = 256) -> dict[str, int]:
    """Streams: SWE rows carry whole files (~110K instances x 2 subsets would not fit in memory),
    so instances are built, decontaminated (issue text) and written batch by batch. The two
    subsets of an instance are near-duplicates by design (no dedup) and share a side of the split.
    `build_cfg.max_rows` caps the number of instances read."""
    out = Path(out_dir)
    manifest = Manifest("rl/swe", config={"swe": cfg, "tokenizer": tokenizer, "build": build_cfg})
    builder = PromptBuilder(TokenCounter(tokenizer), cfg)
    dropped: Counter = Counter()
    decon = dc.Decontaminator(dc.build_index(build_cfg.decontam), build_cfg.decontam) if build_cfg.decontam else None
    writers = {"train": RecordWriter(out / "train.parquet", RLRecord)}
    if build_cfg.val_fraction > 0:
        writers["val"] = RecordWriter(out / "val.parquet", RLRecord)
    counts: Counter = Counter()
    removed: Counter = Counter()
    examples: list[dict[str, Any]] = []
    groups = convert(read_rows(inputs, SWE, manifest), lambda r: adapt(r, builder, dropped), manifest, dropped)
    try:
        while True:
            batch = list(islice(groups, batch_instances))
            if build_cfg.max_rows:
                batch = batch[: max(0, build_cfg.max_rows - counts["instances"])]
            if not batch:
                break
            counts["instances"] += len(batch)
            records = [r for g in batch for r in g]
            counts.update(f"subset_{r.metadata['subset']}" for r in records)
            if decon is not None:
                res = decon.scan([issue_text(r) for r in records])
                summary = res.summary(decon.index, row_ids=[r.id for r in records])
                for reason, by_set in summary["by_reason"].items():
                    removed.update({f"{reason}:{k}": v for k, v in by_set.items()})
                examples.extend(summary["examples"][: max(0, 20 - len(examples))])
                records = [r for r, bad in zip(records, res.flagged) if not bad]
            for r in records:
                held = "val" in writers and is_holdout(r.metadata["instance_id"], build_cfg.val_fraction)
                side = "val" if held else "train"
                writers[side].write(r)
                counts[side] += 1
    finally:
        if decon is not None:
            decon.close()
    written = {name: w.close() for name, w in writers.items()}
    built = counts["subset_gt"] + counts["subset_mixed"]
    instance_drops = sum(v for k, v in dropped.items() if not k.endswith("_under_min_tokens"))
    rl_common.read_step(manifest, counts["instances"] + instance_drops)
    manifest.step("build_prompts", counts["instances"] + instance_drops, built, instances=counts["instances"],
                  dropped=dict(dropped), subsets={"gt": counts["subset_gt"], "mixed": counts["subset_mixed"]})
    if decon is not None:
        by_reason: dict[str, dict[str, int]] = {}
        for key, v in removed.items():
            reason, _, name = key.partition(":")
            by_reason.setdefault(reason, {})[name] = v
        manifest.step("decontaminate", built, sum(written.values()), index=decon.index.describe(),
                      removed=sum(removed.values()), by_reason=by_reason, examples=examples)
    else:
        manifest.notes.append("decontamination disabled")
    manifest.notes.append("dedup not applied: the two subsets of an instance are near-duplicates by design")
    manifest.step("write", sum(written.values()), sum(written.values()), **written)
    for name, n in written.items():
        manifest.add_output(out / f"{name}.parquet", n)
    manifest.write(out)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.swe_prompts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rl_common.add_args(p)
    p.add_argument("--tokenizer", required=True, help="local HF tokenizer directory of the policy")
    p.add_argument("--max-prompt-tokens", type=int, default=16384)
    p.add_argument("--min-prompt-tokens", type=int, default=8192)
    p.add_argument("--max-files", type=int, default=5)
    p.add_argument("--subsets", default="gt,mixed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude-repos-from", action="append", default=[], metavar="PATH",
                   help="eval set files with repo/instance_id columns (e.g. SWE-bench Verified)")
    a = p.parse_args(argv)
    parse_eval_file_args(a.eval_file)  # fail early on a bad NAME=PATH
    cfg = SWEConfig(a.max_prompt_tokens, a.min_prompt_tokens, a.max_files, tuple(a.subsets.split(",")), a.seed,
                    load_excluded_repos(a.exclude_repos_from))
    written = build(a.input, a.out_dir, a.tokenizer, cfg, rl_common.config_from_args(a))
    print(f"wrote {written['train']} SWE prompts to {a.out_dir}/train.parquet")
    return 0


if __name__ == "__main__":
    from cascade.config.cli import run_cli  # a UserError is one line, exit 2

    raise SystemExit(run_cli(main, prog="python -m data_prep.swe_prompts"))
