"""Word n-gram hashing, vectorised over many rows at once (shared by decontamination and dedup).

Why vectorised: decontaminating millions of rows means ~10^8-10^9 n-gram look-ups. Per-row Python
sets of n-gram strings cost ~1 µs per n-gram and hundreds of MB for the eval index; instead each
word gets a stable 64-bit id (cached), a chunk of rows becomes one flat uint64 array, and the
n-gram hashes of the whole chunk are computed with `n` numpy passes (polynomial rolling hash,
wrapping uint64 arithmetic). Windows that cross a row boundary are masked out. Hashes are stable
across processes and runs (no use of Python's randomised `hash`).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

_WORD = re.compile(r"\w+")
_BASE = np.uint64(0x100000001B3)  # FNV-64 prime as the polynomial base (odd, large)
_FULL_SEED = np.uint64(0x9E3779B97F4A7C15)


def words(text: str) -> list[str]:
    """Normalised words: case-folded runs of letters/digits/underscore (punctuation, spacing and
    case differences between copies of the same text disappear; casefold also maps ß to ss)."""
    return _WORD.findall(text.casefold())


def _word_id(t: str) -> int:
    b = t.encode("utf-8")
    return (zlib.crc32(b) << 32) | zlib.crc32(b, 0x5BD1E995)


class WordIds:
    """word -> stable 64-bit id (two CRCs of the UTF-8 bytes), memoised per process. Looks a whole
    chunk up at once: new words are found with a set difference, then one C-level `map`."""

    def __init__(self, max_cache: int = 4_000_000) -> None:
        self._cache: dict[str, int] = {}
        self._max = max_cache

    def array(self, toks: list[str]) -> np.ndarray:
        cache = self._cache
        new = set(toks).difference(cache)
        if len(cache) + len(new) > self._max:
            cache.clear()
            new = set(toks)
        cache.update((t, _word_id(t)) for t in new)
        return np.fromiter(map(cache.__getitem__, toks), dtype=np.uint64, count=len(toks))

    def __call__(self, toks: list[str]) -> list[int]:
        return self.array(toks).tolist()


@dataclass
class Chunk:
    """A chunk of rows as one flat array of word ids plus per-row offsets."""

    ids: np.ndarray  # uint64, all rows' word ids concatenated
    starts: np.ndarray  # int64, offset of each row in `ids`
    lengths: np.ndarray  # int64, words per row
    words: list[str] | None = None  # the words themselves (only when asked for)

    @property
    def rows(self) -> int:
        return len(self.lengths)


def encode(texts: Sequence[str], word_ids: WordIds, keep_words: bool = False) -> Chunk:
    per_row = [_WORD.findall(t.casefold()) for t in texts]
    lengths = np.fromiter(map(len, per_row), dtype=np.int64, count=len(per_row))
    flat = list(chain.from_iterable(per_row))
    starts = np.zeros(len(texts), dtype=np.int64)
    if len(texts) > 1:
        np.cumsum(lengths[:-1], out=starts[1:])
    return Chunk(word_ids.array(flat), starts, lengths, flat if keep_words else None)


def window_hashes(chunk: Chunk, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every n-word window that lies inside one row, and the row of each window."""
    total = len(chunk.ids)
    if total < n:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    m = total - n + 1
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h *= _BASE
            h += chunk.ids[j : j + m]
    row_of = np.repeat(np.arange(chunk.rows, dtype=np.int64), chunk.lengths)
    inside = row_of[:m] == row_of[n - 1 : n - 1 + m]
    return h[inside], row_of[:m][inside]


def word_windows(chunk: Chunk, n: int) -> np.ndarray:
    """For the windows `window_hashes` returns (same order): how many of their tokens are words
    rather than numbers. Recomputes from `chunk.words`, which `encode(..., keep_words=True)` fills."""
    if chunk.words is None:
        raise ValueError("encode(..., keep_words=True) is needed for word_windows")
    is_word = np.fromiter((not w.isdigit() for w in chunk.words), dtype=np.int64, count=len(chunk.words))
    total = len(is_word)
    if total < n:
        return np.empty(0, np.int64)
    m = total - n + 1
    c = np.concatenate([[0], np.cumsum(is_word)])
    counts = c[n : n + m] - c[:m]
    row_of = np.repeat(np.arange(chunk.rows, dtype=np.int64), chunk.lengths)
    return counts[row_of[:m] == row_of[n - 1 : n - 1 + m]]


def full_hashes(chunk: Chunk) -> np.ndarray:
    """One hash of each row's whole word sequence (for exact-match checks and exact dedup)."""
    if chunk.rows == 0:
        return np.empty(0, np.uint64)
    out = np.full(chunk.rows, _FULL_SEED, dtype=np.uint64)
    if len(chunk.ids) == 0:
        return out
    # position-from-end of every word selects its power of the base: sum ids[k] * B^(len-1-k)
    row_of = np.repeat(np.arange(chunk.rows, dtype=np.int64), chunk.lengths)
    pos_from_end = (chunk.starts + chunk.lengths)[row_of] - 1 - np.arange(len(chunk.ids))
    powers = _powers(int(chunk.lengths.max()))
    with np.errstate(over="ignore"):
        terms = chunk.ids * powers[pos_from_end]
        nonempty = chunk.lengths > 0
        sums = np.add.reduceat(terms, chunk.starts[nonempty])
        out[nonempty] += sums * _BASE + chunk.lengths[nonempty].astype(np.uint64)
    return out


_POW_CACHE: list[np.ndarray] = []


def _powers(n: int) -> np.ndarray:
    if not _POW_CACHE or len(_POW_CACHE[0]) < n:
        size = max(n, 4096)
        p = np.empty(size, dtype=np.uint64)
        p[0] = 1
        with np.errstate(over="ignore"):
            for i in range(1, size):
                p[i] = p[i - 1] * _BASE
        _POW_CACHE[:] = [p]
    return _POW_CACHE[0]


def in_sorted(values: np.ndarray, sorted_index: np.ndarray, prefilter: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask: which `values` occur in `sorted_index`. With a `prefilter` (see
    `presence_bits`) most misses are rejected by one table look-up before the binary search."""
    mask = np.zeros(len(values), dtype=bool)
    if len(sorted_index) == 0 or len(values) == 0:
        return mask
    cand = np.flatnonzero(prefilter[values >> _SHIFT]) if prefilter is not None else np.arange(len(values))
    v = values[cand]
    pos = np.searchsorted(sorted_index, v)
    pos[pos == len(sorted_index)] = 0
    mask[cand] = sorted_index[pos] == v
    return mask


_BITS = 25  # a 32 MB presence table: ~3% false candidates for a 1M-n-gram index
_SHIFT = np.uint64(64 - _BITS)


def presence_bits(sorted_index: np.ndarray) -> np.ndarray:
    """A boolean table keyed by the top bits of a hash: False means "certainly not in the index"."""
    table = np.zeros(1 << _BITS, dtype=bool)
    table[sorted_index >> _SHIFT] = True
    return table


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a cheap, well-mixed permutation of uint64 values (MinHash)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
