"""Decontamination: drop training rows that share a 9-gram with an evaluation item, that equal a
short eval item outright, or (code) that point at the same problem URL (C1 §3.2, §4.5, §4.6).

Why this shape: the eval side is small (10^4-10^5 items) and becomes a sorted uint64 array of
n-gram hashes; the training side can be millions of rows, scanned in chunks by a process pool
(`ngrams` hashes a whole chunk in a few numpy passes). A row is flagged when it shares at least
`min_overlap` n-grams with the index. `max_doc_freq` optionally drops n-grams that occur in many eval
items (boilerplate such as shared instruction templates), and `ignore_texts` removes n-grams of
known template text (e.g. IF constraint descriptions) from the index.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from data_prep.eval_sets import DEFAULT_OFFLINE, EvalItem, canonical_url, offline_eval_items, parse_eval_file_args
from data_prep.manifest import Manifest
from data_prep.ngrams import WordIds, encode, full_hashes, in_sorted, presence_bits, window_hashes, word_windows

T = TypeVar("T")
REASONS = ("none", "ngram", "exact", "url")  # index = reason code in DecontamResult.reason


@dataclass(frozen=True)
class DecontamConfig:
    n: int = 9  # C1: 9-gram decontamination
    # A row is contaminated by an eval item when it shares at least `min_coverage` of the item's
    # distinct n-grams, or at least `min_overlap` of them. A single shared n-gram is too weak:
    # math and code problems share 9-word boilerplate ("what is the sum of all possible values
    # of"). `min_coverage=0, min_overlap=1` flags any shared n-gram.
    # Coverage is shared / max(item n-grams, coverage_floor), so a 10-word item is not "covered"
    # by one shared phrase ("write a function to find the volume of a ..."); a row holding all of an
    # item's n-grams (a verbatim copy, however short) is always flagged.
    min_coverage: float = 0.2
    min_overlap: int = 20
    coverage_floor: int = 10
    min_word_tokens: int = 3  # index only n-grams with >= this many words (not numbers/symbols)
    max_doc_freq: int = 20  # >0: ignore n-grams found in more than this many eval items (boilerplate)
    url_match: bool = True  # C1 §4.6: raw problem-URL matching for code
    eval_sets: tuple[str, ...] = DEFAULT_OFFLINE  # catalogue names (evals.catalogue)
    eval_files: tuple[str, ...] = ()  # NAME=PATH, user-provided local eval files
    workers: int = 0  # 0: one per usable core
    chunk_rows: int = 4096


class EvalIndex:
    """Hashed n-grams (and short-item full hashes, and canonical URLs) of a list of eval items."""

    def __init__(self, items: Sequence[EvalItem], n: int = 9, max_doc_freq: int = 0,
                 ignore_texts: Sequence[str] = (), min_word_tokens: int = 3, coverage_floor: int = 10) -> None:
        self.items, self.n = list(items), n
        word_ids = WordIds()
        chunk = encode([it.text for it in self.items], word_ids, keep_words=True)
        h, row = window_hashes(chunk, n)
        informative = word_windows(chunk, n) >= min_word_tokens  # "1 2 3 4 5 6 7 8 9" says nothing
        h, row = h[informative], row[informative]
        order = np.lexsort((row, h))
        h, row = h[order], row[order]
        distinct = np.ones(len(h), dtype=bool)
        distinct[1:] = (h[1:] != h[:-1]) | (row[1:] != row[:-1])
        h, row = h[distinct], row[distinct]
        self.item_ngrams = np.bincount(row, minlength=len(self.items)).astype(np.int32)
        self.coverage_floor = coverage_floor
        uniq, first, df = np.unique(h, return_index=True, return_counts=True)
        keep = df <= max_doc_freq if max_doc_freq > 0 else np.ones(len(uniq), dtype=bool)
        if ignore_texts:
            ig, _ = window_hashes(encode(list(ignore_texts), word_ids), n)
            keep &= ~in_sorted(uniq, np.unique(ig))
        self.hashes = uniq[keep]
        self.bits = presence_bits(self.hashes)
        self.owner = row[first][keep].astype(np.int32)
        self.dropped_boilerplate = int((~keep).sum())
        short = np.flatnonzero(chunk.lengths < n)  # too short for an n-gram: match the whole text
        fh = full_hashes(chunk)[short]
        o = np.argsort(fh, kind="stable")
        self.short_hashes, self.short_owner = fh[o], short[o].astype(np.int32)
        self.urls = {canonical_url(u): i for i, it in enumerate(self.items) for u in it.urls}

    def state(self) -> tuple[Any, ...]:
        """What a worker needs (arrays and the URL map, not the eval texts)."""
        return (self.n, self.hashes, self.owner, self.item_ngrams, self.coverage_floor, self.short_hashes,
                self.short_owner, self.urls, self.bits)

    def describe(self) -> dict[str, Any]:
        return {"items": len(self.items), "n": self.n, "ngrams": int(len(self.hashes)),
                "boilerplate_ngrams_dropped": self.dropped_boilerplate, "short_items": int(len(self.short_hashes)),
                "urls": len(self.urls), "sets": dict(Counter(it.set for it in self.items))}


@dataclass
class DecontamResult:
    hits: np.ndarray  # int32: distinct n-grams the row shares with its matched eval item
    match: np.ndarray  # int32: index of the eval item first matched, -1 if none
    reason: np.ndarray  # int8: code into REASONS
    flagged: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.flagged = self.reason > 0

    def summary(self, index: EvalIndex, examples: int = 20, row_ids: Sequence[str] | None = None) -> dict[str, Any]:
        by: dict[str, Counter] = {r: Counter() for r in REASONS[1:]}
        shown = []
        for i in np.flatnonzero(self.flagged):
            item = index.items[self.match[i]]
            by[REASONS[self.reason[i]]][item.set] += 1
            if len(shown) < examples:
                shown.append({"row": row_ids[i] if row_ids else int(i), "reason": REASONS[self.reason[i]],
                              "eval_set": item.set, "eval_id": item.id, "shared_ngrams": int(self.hits[i])})
        return {"removed": int(self.flagged.sum()), "by_reason": {k: dict(v) for k, v in by.items() if v},
                "examples": shown}


_STATE: dict[str, Any] = {}


def _init_worker(state: tuple[Any, ...], min_overlap: int, min_coverage: float) -> None:
    _STATE.update(index=state, min_overlap=min_overlap, min_coverage=min_coverage, word_ids=WordIds())


def _ngram_matches(h: np.ndarray, row: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: (flagged, best-matching eval item, n-grams shared with it)."""
    n, hashes, owner, item_ngrams, floor = _STATE["index"][:5]
    flagged = np.zeros(rows, dtype=bool)
    match = np.full(rows, -1, dtype=np.int32)
    shared = np.zeros(rows, dtype=np.int32)
    hit = in_sorted(h, hashes, _STATE["index"][8])
    if not hit.any():
        return flagged, match, shared
    hh, rr = h[hit], row[hit]
    order = np.lexsort((hh, rr))  # distinct (row, n-gram): a repeated n-gram counts once
    hh, rr = hh[order], rr[order]
    first = np.ones(len(hh), dtype=bool)
    first[1:] = (hh[1:] != hh[:-1]) | (rr[1:] != rr[:-1])
    hh, rr = hh[first], rr[first]
    items = owner[np.searchsorted(hashes, hh)].astype(np.int64)
    pair, counts = np.unique(rr * len(item_ngrams) + items, return_counts=True)
    prow, pitem = pair // len(item_ngrams), pair % len(item_ngrams)
    coverage = counts / np.maximum(item_ngrams[pitem], floor)
    contained = counts >= item_ngrams[pitem]  # every n-gram of the item: a verbatim (normalised) copy
    bad = (counts >= _STATE["min_overlap"]) | (coverage >= _STATE["min_coverage"]) | contained
    order = np.lexsort((-coverage, prow))  # per row, the best-covered item first
    prow, pitem, counts, bad = prow[order], pitem[order], counts[order], bad[order]
    lead = np.ones(len(prow), dtype=bool)
    lead[1:] = prow[1:] != prow[:-1]
    flagged[prow[bad]] = True
    match[prow[lead]] = pitem[lead]
    shared[prow[lead]] = counts[lead]
    return flagged, match, shared


def _scan(job: tuple[list[str], list[Sequence[str]] | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    texts, row_urls = job
    n, _, _, _, _, short_h, short_o, urls, _ = _STATE["index"]
    chunk = encode(texts, _STATE["word_ids"])
    h, row = window_hashes(chunk, n)
    flagged, match, hits = _ngram_matches(h, row, chunk.rows)
    reason = flagged.astype(np.int8)
    fh = full_hashes(chunk)
    exact = in_sorted(fh, short_h) & (reason == 0)
    if exact.any():
        match[exact] = short_o[np.searchsorted(short_h, fh[exact])]
        reason[exact] = 2
    if row_urls is not None and urls:
        for i, us in enumerate(row_urls):
            if reason[i] == 0:
                for u in us or ():
                    j = urls.get(canonical_url(u))
                    if j is not None:
                        reason[i], match[i] = 3, j
                        break
    match[reason == 0] = -1
    return hits, match, reason


def pool_context() -> Any:
    """fork where available: workers inherit the index without pickling and callers need no
    `if __name__ == "__main__"` guard; spawn elsewhere."""
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


class Decontaminator:
    """Scans batches of training texts against one index; keeps its worker pool between batches
    (streaming products call `scan` once per batch)."""

    def __init__(self, index: EvalIndex, cfg: DecontamConfig = DecontamConfig()) -> None:
        self.index, self.cfg = index, cfg
        state = list(index.state())
        if not cfg.url_match:
            state[7] = {}
        self._state = tuple(state)
        self._workers = max(1, cfg.workers or len(os.sched_getaffinity(0)))
        self._pool: Any = None

    def scan(self, texts: Sequence[str], urls: Sequence[Sequence[str]] | None = None) -> DecontamResult:
        step = max(1, self.cfg.chunk_rows)
        jobs = [(list(texts[i : i + step]), None if urls is None else list(urls[i : i + step]))
                for i in range(0, len(texts), step)]
        if len(jobs) <= 1 or self._workers == 1:
            _init_worker(self._state, self.cfg.min_overlap, self.cfg.min_coverage)
            parts = [_scan(j) for j in jobs]
        else:
            if self._pool is None:
                self._pool = pool_context().Pool(self._workers, _init_worker,
                                                 (self._state, self.cfg.min_overlap, self.cfg.min_coverage))
            parts = list(self._pool.imap(_scan, jobs, chunksize=1))
        if not parts:
            z = np.zeros(0, dtype=np.int32)
            return DecontamResult(z, z.copy(), np.zeros(0, dtype=np.int8))
        return DecontamResult(*(np.concatenate(p) for p in zip(*parts)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> Decontaminator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SHARED: dict[str, Any] = {}


def _scan_range(span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Worker side of a forked scan: the texts are inherited from the parent, not pickled."""
    lo, hi = span
    urls = _SHARED["urls"]
    return _scan((_SHARED["texts"][lo:hi], None if urls is None else urls[lo:hi]))


def decontaminate(texts: Sequence[str], index: EvalIndex, cfg: DecontamConfig = DecontamConfig(),
                  urls: Sequence[Sequence[str]] | None = None) -> DecontamResult:
    """Flag every training text that overlaps the eval index (see module docstring). With fork
    available, workers are forked after the texts exist and read them from the parent's memory
    (only row ranges and small result arrays cross the pipes)."""
    workers = max(1, cfg.workers or len(os.sched_getaffinity(0)))
    step = max(1, cfg.chunk_rows)
    if workers == 1 or len(texts) <= step or "fork" not in mp.get_all_start_methods():
        with Decontaminator(index, cfg) as d:
            return d.scan(texts, urls)
    state = list(index.state())
    if not cfg.url_match:
        state[7] = {}
    _SHARED.update(texts=texts, urls=urls)
    try:
        spans = [(i, min(i + step, len(texts))) for i in range(0, len(texts), step)]
        with mp.get_context("fork").Pool(workers, _init_worker, (tuple(state), cfg.min_overlap, cfg.min_coverage)) as pool:
            parts = pool.map(_scan_range, spans, chunksize=1)
    finally:
        _SHARED.clear()
    return DecontamResult(*(np.concatenate(p) for p in zip(*parts)))


_INDEX_CACHE: dict[tuple[Any, ...], EvalIndex] = {}


def build_index(cfg: DecontamConfig, extra_items: Sequence[EvalItem] = (),
                ignore_texts: Sequence[str] = ()) -> EvalIndex:
    """The index for a config; reused within a process (one toy build runs seven products against
    the same eval sets) as long as the eval files are unchanged."""
    files = tuple((spec, _mtime(spec.partition("=")[2])) for spec in cfg.eval_files)
    key = (cfg.eval_sets, files, cfg.n, cfg.max_doc_freq, cfg.min_word_tokens, cfg.coverage_floor,
           tuple(extra_items), hash(tuple(ignore_texts)))
    if key not in _INDEX_CACHE:
        items = offline_eval_items(cfg.eval_sets) + parse_eval_file_args(cfg.eval_files) + list(extra_items)
        if len(_INDEX_CACHE) >= 4:
            _INDEX_CACHE.clear()
        _INDEX_CACHE[key] = EvalIndex(items, cfg.n, cfg.max_doc_freq, ignore_texts, cfg.min_word_tokens,
                                      cfg.coverage_floor)
    return _INDEX_CACHE[key]


def _mtime(path: str) -> float:
    p = Path(path)
    return max((f.stat().st_mtime for f in ([p] if p.is_file() else p.rglob("*"))), default=0.0)


def filter_rows(rows: Sequence[T], text: Callable[[T], str], index: EvalIndex, cfg: DecontamConfig,
                manifest: Manifest, step: str = "decontaminate",
                urls: Callable[[T], Sequence[str]] | None = None, row_id: Callable[[T], str] | None = None) -> list[T]:
    """The rows that survive decontamination; counts, reasons and examples go to the manifest."""
    res = decontaminate([text(r) for r in rows], index, cfg, [urls(r) for r in rows] if urls else None)
    ids = [row_id(r) for r in rows] if row_id else None
    kept = [r for r, bad in zip(rows, res.flagged) if not bad]
    manifest.step(step, len(rows), len(kept), index=index.describe(), **res.summary(index, row_ids=ids))
    return kept


def add_args(parser: argparse.ArgumentParser, default_sets: Sequence[str] = DEFAULT_OFFLINE) -> None:
    g = parser.add_argument_group("decontamination")
    g.add_argument("--eval-sets", default=",".join(default_sets),
                   help="comma-separated eval sets by their evals names, e.g. aime24,lcb_v6 ('' for none; "
                        "sets outside the offline cache need their download); see data_prep.eval_sets")
    g.add_argument("--eval-file", action="append", default=[], metavar="NAME=PATH",
                   help="a local eval set file/directory under a label, e.g. lcb_v6=data/eval/livecodebench")
    g.add_argument("--ngram", type=int, default=9)
    g.add_argument("--min-overlap", type=int, default=DecontamConfig.min_overlap,
                   help="flag a row sharing this many distinct n-grams with one eval item")
    g.add_argument("--min-coverage", type=float, default=DecontamConfig.min_coverage,
                   help="... or this fraction of the eval item's n-grams (0 with --min-overlap 1: any match)")
    g.add_argument("--max-doc-freq", type=int, default=DecontamConfig.max_doc_freq)
    g.add_argument("--no-decontam", action="store_true", help="skip decontamination (recorded in the manifest)")
    g.add_argument("--workers", type=int, default=0, help="processes for decontamination and dedup (0: all cores)")


def config_from_args(args: argparse.Namespace) -> DecontamConfig | None:
    if args.no_decontam:
        return None
    sets = tuple(s for s in args.eval_sets.split(",") if s)
    return DecontamConfig(n=args.ngram, min_overlap=args.min_overlap, min_coverage=args.min_coverage,
                          max_doc_freq=args.max_doc_freq,
                          eval_sets=sets, eval_files=tuple(args.eval_file), workers=args.workers)


if __name__ == "__main__":  # a library step, not a command: --help says what it does and who runs it
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m data_prep.decontaminate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Not a command of its own: python -m data_prep.sft_blend, rl_prompts, swe_prompts and c2_prompts run it with the options below.")
    add_args(parser)
    parser.parse_args()
    print(f"{parser.prog} is a library step: python -m data_prep.sft_blend, rl_prompts, swe_prompts and c2_prompts run it with the options below (see --help)", file=sys.stderr)
    sys.exit(2)
