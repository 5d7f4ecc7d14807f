"""Near-duplicate removal: exact duplicates by normalised-text hash, then MinHash + LSH.

Why: released prompt pools merge sources (TACO/APPS/CodeContests, NuminaMath/DeepScaleR) that
repeat the same problem with small edits (C1 §3.2.3 dedup, §4.6). Signatures are computed in a
process pool from word-shingle hashes (`ngrams`, vectorised per chunk); LSH banding finds
candidate pairs; a pair is a duplicate when the signature-estimated Jaccard similarity reaches
`threshold`. The first row of each duplicate cluster (input order) is kept.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from data_prep.decontaminate import pool_context
from data_prep.manifest import Manifest
from data_prep.ngrams import WordIds, encode, full_hashes, mix64, window_hashes

T = TypeVar("T")


@dataclass(frozen=True)
class DedupConfig:
    shingle: int = 5  # words per shingle
    num_perm: int = 64
    bands: int = 8  # num_perm / bands rows per band: candidate threshold ~ (1/bands)^(bands/num_perm)
    threshold: float = 0.8  # estimated Jaccard at which two rows are duplicates
    workers: int = 0
    chunk_rows: int = 512

    def __post_init__(self) -> None:
        if self.num_perm % self.bands:
            raise ValueError("num_perm must be a multiple of bands")


_SEEDS: dict[int, np.ndarray] = {}
_IDS: list[WordIds] = []


def _seeds(num_perm: int) -> np.ndarray:
    if num_perm not in _SEEDS:
        _SEEDS[num_perm] = mix64(np.arange(1, num_perm + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    return _SEEDS[num_perm]


def _signatures(job: tuple[list[str], int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(MinHash signatures [rows, num_perm], exact hashes [rows]) of a chunk of texts."""
    texts, k, num_perm = job
    if not _IDS:
        _IDS.append(WordIds())
    chunk = encode(texts, _IDS[0])
    exact = full_hashes(chunk)
    h, row = window_hashes(chunk, k)
    short = np.flatnonzero(chunk.lengths < k)  # fewer words than a shingle: the whole text is one
    h = np.concatenate([h, exact[short]])
    row = np.concatenate([row, short])
    sig = np.full((chunk.rows, num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    if len(h):
        perm = mix64(h[:, None] ^ _seeds(num_perm)[None, :])
        order = np.argsort(row, kind="stable")
        row, perm = row[order], perm[order]
        present, starts = np.unique(row, return_index=True)
        sig[present] = np.minimum.reduceat(perm, starts, axis=0)
    return sig, exact


def minhash(texts: Sequence[str], cfg: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    step = max(1, cfg.chunk_rows)
    jobs = [(list(texts[i : i + step]), cfg.shingle, cfg.num_perm) for i in range(0, len(texts), step)]
    workers = max(1, min(cfg.workers or len(os.sched_getaffinity(0)), len(jobs)))
    if workers == 1:
        parts = [_signatures(j) for j in jobs]
    else:
        with pool_context().Pool(workers) as pool:
            parts = list(pool.imap(_signatures, jobs, chunksize=1))
    if not parts:
        return np.zeros((0, cfg.num_perm), np.uint64), np.zeros(0, np.uint64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the earliest row is the root: it is kept


@dataclass
class DedupResult:
    keep: np.ndarray  # bool per row
    duplicate_of: np.ndarray  # int64: kept row this one duplicates, -1 if kept
    exact: int  # rows removed as exact duplicates
    near: int  # rows removed as near duplicates


def find_duplicates(texts: Sequence[str], cfg: DedupConfig = DedupConfig()) -> DedupResult:
    n = len(texts)
    sig, exact_h = minhash(texts, cfg)
    uf = _UnionFind(n)
    first_of: dict[int, int] = {}
    exact_dupes = 0
    for i, h in enumerate(exact_h.tolist()):
        j = first_of.setdefault(h, i)
        if j != i:
            uf.union(j, i)
            exact_dupes += 1
    reps = np.array(sorted(first_of.values()), dtype=np.int64)  # one row per exact-hash class
    rows_per_band = cfg.num_perm // cfg.bands
    for b in range(cfg.bands):
        band = np.ascontiguousarray(sig[reps, b * rows_per_band : (b + 1) * rows_per_band])
        keys = band.view(np.dtype((np.void, band.dtype.itemsize * rows_per_band))).ravel()
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        same = np.flatnonzero(sk[1:] == sk[:-1])  # neighbours in sorted order with equal band keys
        for s in same:
            a, c = int(reps[order[s]]), int(reps[order[s + 1]])
            ra, rc = uf.find(a), uf.find(c)
            if ra != rc and float(np.mean(sig[a] == sig[c])) >= cfg.threshold:
                uf.union(ra, rc)
    roots = np.array([uf.find(i) for i in range(n)], dtype=np.int64)
    keep = roots == np.arange(n)
    dup_of = np.where(keep, -1, roots)
    removed = int((~keep).sum())
    return DedupResult(keep, dup_of, exact_dupes, removed - exact_dupes)


def dedup_rows(rows: Sequence[T], text: Callable[[T], str], cfg: DedupConfig, manifest: Manifest,
               step: str = "dedup", row_id: Callable[[T], str] | None = None, examples: int = 20) -> list[T]:
    """The rows that are not duplicates of an earlier row; counts and examples go to the manifest."""
    res = find_duplicates([text(r) for r in rows], cfg)
    shown: list[dict[str, Any]] = []
    for i in np.flatnonzero(~res.keep)[:examples]:
        j = int(res.duplicate_of[i])
        shown.append({"row": row_id(rows[i]) if row_id else int(i), "duplicate_of": row_id(rows[j]) if row_id else j})
    kept = [r for r, k in zip(rows, res.keep) if k]
    manifest.step(step, len(rows), len(kept), exact_duplicates=res.exact, near_duplicates=res.near,
                  threshold=cfg.threshold, examples=shown)
    return kept


if __name__ == "__main__":  # a library step, not a command: --help says what it does and who runs it
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m data_prep.dedup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Not a command of its own: every prompt builder (python -m data_prep.rl_prompts, sft_blend, swe_prompts, c2_prompts) runs it.")
    parser.parse_args()
    print(f"{parser.prog} is a library step: every prompt builder (python -m data_prep.rl_prompts, sft_blend, swe_prompts, c2_prompts) runs it (see --help)", file=sys.stderr)
    sys.exit(2)
