"""Reward-model preference pairs (C1 §4.2): chosen / rejected answers to the same prompt.

    hf download nvidia/Nemotron-Cascade-RM-Training --repo-type dataset --local-dir data/raw/rm   # 81,808 rows
    python -m data_prep.rm_pairs --input data/raw/rm --out-dir data/rm

Accepted row shapes (column names are matched, the released card's exact schema is not in our
sources): pairwise `prompt | context | messages` + `chosen` + `rejected` (strings or message lists
ending in the answer), or HelpSteer3-style `context` + `response1` + `response2` +
`overall_preference` (negative: response1 is better; 0 = tie, removed as C1 does for HelpSteer3).
"""

from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

from cascade.data.records import PreferenceRecord
from data_prep.manifest import Manifest
from data_prep.outputs import split_holdout, write_product
from data_prep.rl_prompts import prompt_messages
from data_prep.sources import Column, Drop, InputSchema, Row, convert, maybe_json, read_rows

PAIRS = InputSchema("preference pairs (Nemotron-Cascade-RM-Training / HelpSteer3)", (
    Column("prompt", "str | list[{role, content}]", ("context", "messages", "conversation", "question")),
    Column("chosen", "str | list[messages]", ("response1", "response_a", "chosen_response")),
    Column("rejected", "str | list[messages]", ("response2", "response_b", "rejected_response")),
    Column("preference", "int (<0: first better, >0: second better)", ("overall_preference",), required=False),
    Column("source", "str", ("data_source",), required=False),
    Column("id", "str", ("index", "uid"), required=False),
))


def answer_text(value: Any) -> str:
    """An answer given as text or as a message list (its last assistant turn)."""
    v = maybe_json(value)
    if isinstance(v, list):
        turns = [m for m in v if isinstance(m, dict) and m.get("role") == "assistant"]
        if not turns:
            raise ValueError("answer message list has no assistant turn")
        v = turns[-1].get("content")
    if not isinstance(v, str) or not v.strip():
        raise ValueError("empty answer")
    return v


def adapt(row: Row) -> PreferenceRecord:
    msgs = prompt_messages(row.data["prompt"])
    a, b = answer_text(row.data["chosen"]), answer_text(row.data["rejected"])
    pref = row.data.get("preference")
    if pref is not None:  # HelpSteer3: response1/response2 plus a signed preference
        pref = float(pref)
        if pref == 0:
            raise Drop("tie")
        if pref > 0:
            a, b = b, a
    if a == b:
        raise Drop("identical_answers")
    key = "\n".join(m["content"] for m in msgs) + "\x00" + a + "\x00" + b
    rid = str(row.data.get("id") or "") or hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]
    return PreferenceRecord(id=f"rm-{rid}", prompt=msgs, chosen=a, rejected=b,
                            source=str(row.data.get("source") or "rm")).validate(row.where)


def build(inputs: Sequence[str], out_dir: str, val_fraction: float = 0.02) -> dict[str, int]:
    manifest = Manifest("rm", config={"val_fraction": val_fraction})
    dropped: Counter = Counter()
    pairs = list(convert(read_rows(inputs, PAIRS, manifest), adapt, manifest, dropped))
    total = sum(s.get("rows") or 0 for s in manifest.sources)
    manifest.step("read", total, len(pairs) + sum(dropped.values()), bad_rows=manifest.bad_row_count)
    manifest.step("filter", len(pairs) + sum(dropped.values()), len(pairs), dropped=dict(dropped))
    # split by prompt: pairs that share a prompt stay on one side
    train, val = split_holdout(pairs, val_fraction, key=lambda p: "\n".join(m["content"] for m in p.prompt))
    manifest.step("split", len(pairs), len(train), val=len(val))
    write_product(out_dir, {"train.parquet": (train, PreferenceRecord), "val.parquet": (val, PreferenceRecord)},
                  manifest)
    return {"train": len(train), "val": len(val)}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.rm_pairs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", nargs="+", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--val-fraction", type=float, default=0.02)
    a = p.parse_args(argv)
    counts = build(a.input, a.out_dir, a.val_fraction)
    print(f"wrote {counts['train']} train / {counts['val']} val pairs to {a.out_dir}")
    return 0


if __name__ == "__main__":
    from cascade.config.cli import run_cli  # a UserError is one line, exit 2

    raise SystemExit(run_cli(main, prog="python -m data_prep.rm_pairs"))
