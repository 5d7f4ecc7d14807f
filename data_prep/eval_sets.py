"""Evaluation sets to decontaminate against, by the names of the one catalogue (`evals.catalogue`)
that the benchmarks use too, plus local files a user provides.

Offline sets (in the offline cache): aime24, aime25 (2025-I), math (the full MATH test, MATH-500
included), math500, gsm8k, mmlu, humaneval, mbpp, ifbench. The other benchmarks (lcb_v5, lcb_v6,
gpqa_diamond, mmlu_pro, ifeval, swe_bench_verified, arena_hard) read the local copies evals reads
(`$CASCADE_EVAL_DATA`, `evals/data_files.py` lists the one-time downloads): name them in
`--eval-sets` once downloaded, or pass any file with `--eval-file NAME=PATH` (jsonl / json /
parquet / csv; the text and URL columns are found by name), e.g.

  hf download livecodebench/code_generation_lite --repo-type dataset --local-dir data/eval/livecodebench
  --eval-file lcb_v6=data/eval/livecodebench --eval-file gpqa_diamond=data/eval/gpqa/gpqa_diamond.csv

Old names (aime2024, aime2025, livecodebench, gpqa, swebench_verified) still work, with a note.
LiveCodeBench rows carry no URL column; their problem URLs are rebuilt from platform and ids.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_prep.sources import SUFFIXES, expand_inputs, iter_raw_rows
from evals.catalogue import CATALOGUE, EvalSet, canonical_name, default_decontamination_sets, get_eval_set, offline_sets

TEXT_FIELDS = ("question_content", "problem_statement", "question", "Question", "problem", "prompt",
               "instruction", "text", "input")
EXTRA_TEXT_FIELDS = ("options", "choices")  # MMLU-Pro / MMLU: options are part of the item
URL_FIELDS = ("url", "problem_url", "link", "source_url", "question_url")


@dataclass(frozen=True)
class EvalItem:
    set: str  # eval set name (a catalogue name such as "aime24", or a user's --eval-file NAME)
    id: str
    text: str
    urls: tuple[str, ...] = ()


# The catalogue's offline sets minus those another default set covers (math500 is inside math).
DEFAULT_OFFLINE = default_decontamination_sets()


def _local_items(entry: EvalSet, loaded: set[str]) -> list[EvalItem]:
    """A downloaded benchmark's items from the directory evals reads; each download once."""
    from evals.data_files import DOWNLOADS, data_dir

    assert entry.download is not None
    if entry.download in loaded:
        return []
    loaded.add(entry.download)
    path = data_dir(entry.download)
    if not path.is_dir():
        raise ValueError(f"eval set {entry.name!r} is not in the offline cache and {path} does not exist; "
                         f"download it once: {DOWNLOADS[entry.download].command}")
    return load_eval_file(entry.name, path)


def offline_eval_items(names: Sequence[str] = DEFAULT_OFFLINE) -> list[EvalItem]:
    """Items of catalogue sets: offline ones from the cache, downloaded ones from their local copy."""
    entries: list[EvalSet] = []
    for n in names:
        try:
            entry = get_eval_set(n)
            if entry not in entries:  # an old name next to its new one counts once
                entries.append(entry)
        except KeyError as e:
            raise ValueError(f"unknown eval set {n!r}; known: {sorted(CATALOGUE)} "
                             f"(offline: {list(offline_sets())})") from e
    items: list[EvalItem] = []
    loaded: set[str] = set()
    for entry in entries:
        if entry.texts is not None:
            items += [EvalItem(entry.name, i, t) for i, t in entry.texts()]
        else:
            items += _local_items(entry, loaded)
    return items


# --- URLs --------------------------------------------------------------------------------------
_CF = re.compile(r"codeforces\.com/(?:problemset/problem|contest|gym)/(\d+)/(?:problem/)?([a-z]\d?)")
_AC = re.compile(r"atcoder\.jp/contests/([\w-]+)/tasks/([\w-]+)")
_LC = re.compile(r"leetcode\.(?:com|cn)/problems/([\w-]+)")
URL_RE = re.compile(r"https?://[^\s)\]>\"']+", re.IGNORECASE)


def canonical_url(url: str) -> str:
    """One spelling per problem: Codeforces problemset/contest links, AtCoder and LeetCode slugs
    are mapped to a canonical key; anything else loses scheme, `www.`, query and trailing slash."""
    u = url.strip().lower()
    for rx, fmt in ((_CF, "codeforces:{}/{}"), (_AC, "atcoder:{}/{}"), (_LC, "leetcode:{}")):
        m = rx.search(u)
        if m:
            return fmt.format(*m.groups())
    u = re.sub(r"^[a-z]+://", "", u)
    u = re.sub(r"^www\.", "", u)
    return re.split(r"[?#]", u)[0].rstrip("/")


def urls_in(text: str) -> list[str]:
    return URL_RE.findall(text)


def _lcb_url(row: dict[str, Any]) -> str | None:
    """LiveCodeBench rows: platform + ids -> the problem URL (the dataset has no URL column)."""
    plat, qid, cid = (str(row.get(k) or "") for k in ("platform", "question_id", "contest_id"))
    if plat == "atcoder" and cid and qid:
        return f"https://atcoder.jp/contests/{cid}/tasks/{qid}"
    if plat == "codeforces" and qid:
        m = re.match(r"(\d+)_?([A-Za-z]\d?)$", qid)
        return f"https://codeforces.com/problemset/problem/{m.group(1)}/{m.group(2)}" if m else None
    if plat == "leetcode" and row.get("question_title"):
        slug = re.sub(r"[^a-z0-9]+", "-", str(row["question_title"]).lower()).strip("-")
        return f"https://leetcode.com/problems/{slug}/"
    return None


def _row_text(row: dict[str, Any]) -> str | None:
    field = next((f for f in TEXT_FIELDS if isinstance(row.get(f), str) and row[f].strip()), None)
    if field is None:
        return None
    parts = [row[field]]
    for extra in EXTRA_TEXT_FIELDS:
        if isinstance(row.get(extra), (list, tuple)):
            parts.append("\n".join(map(str, row[extra])))
    return "\n".join(parts)


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.csv as pacsv

    return pacsv.read_csv(path).to_pylist()


def load_eval_file(name: str, path: str | Path) -> list[EvalItem]:
    """A user-provided eval set (file or directory). Each row's text is its first non-empty field
    among TEXT_FIELDS (+ options); URLs come from URL_FIELDS, the text, or LiveCodeBench ids."""
    p = Path(path)
    files = sorted(p.rglob("*.csv")) + expand_inputs([p]) if p.is_dir() else [p]
    items: list[EvalItem] = []
    for f in files:
        rows = _csv_rows(f) if f.suffix == ".csv" else [r for _, r in iter_raw_rows(f) if isinstance(r, dict)]
        for i, row in enumerate(rows):
            text = _row_text(row)
            if text is None:
                continue
            urls = [str(row[k]) for k in URL_FIELDS if row.get(k)] + urls_in(text)
            lcb = _lcb_url(row)
            if lcb:
                urls.append(lcb)
            rid = next((str(row[k]) for k in ("id", "instance_id", "question_id", "task_id", "key") if row.get(k)),
                       f"{f.name}:{i}")
            items.append(EvalItem(name, rid, text, tuple(urls)))
    if not items:
        raise ValueError(f"eval file(s) {path}: no row has a text field among {TEXT_FIELDS} "
                         f"(supported files: {SUFFIXES + ('.csv',)})")
    return items


def parse_eval_file_args(specs: Sequence[str]) -> list[EvalItem]:
    """`NAME=PATH` command-line specs -> eval items (an old catalogue name is translated)."""
    items = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--eval-file expects NAME=PATH, got {spec!r}")
        items += load_eval_file(canonical_name(name), path)
    return items


if __name__ == "__main__":  # a library step, not a command: --help says what it does and who runs it
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m data_prep.eval_sets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Not a command of its own: the decontamination step of every prompt builder reads these sets (--eval-sets, --eval-file NAME=PATH).")
    parser.parse_args()
    print(f"{parser.prog} is a library step: the decontamination step of every prompt builder reads these sets (--eval-sets, --eval-file NAME=PATH) (see --help)", file=sys.stderr)
    sys.exit(2)
