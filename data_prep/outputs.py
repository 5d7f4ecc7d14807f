"""Writing a product: deterministic train/val splits, upsampling, parquet files plus manifest.

Why deterministic hashing: re-running a script on the same inputs must give byte-identical splits,
and related rows (parallel thinking / instruct answers to one prompt) must land on the same side
of the split, so the split key is a hash of a caller-chosen key (e.g. the prompt), not a RNG.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from cascade.config.errors import UserError
from cascade.data.records import write_records
from data_prep.manifest import Manifest

T = TypeVar("T")


def unit_hash(key: str, salt: str = "") -> float:
    """A stable pseudo-random number in [0, 1) for `key`."""
    digest = hashlib.sha1(f"{salt}\x00{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_holdout(key: str, fraction: float, salt: str = "cascade-val") -> bool:
    return fraction > 0 and unit_hash(key, salt) < fraction


def split_holdout(rows: Sequence[T], fraction: float, key: Callable[[T], str],
                  salt: str = "cascade-val") -> tuple[list[T], list[T]]:
    """(train, held out) by hashed key; with fraction > 0 at least one row is held out."""
    train, val = [], []
    for r in rows:
        (val if is_holdout(key(r), fraction, salt) else train).append(r)
    if fraction > 0 and not val and len(train) > 1:
        val.append(train.pop(min(range(len(train)), key=lambda i: unit_hash(key(train[i]), salt))))
    return train, val


def upsample(records: Sequence[Any], factor: float, salt: str = "cascade-upsample") -> list[Any]:
    """Repeat records `factor` times (C1: SWE 3x, stage-2 science 2x); a fractional part keeps a
    hashed subset for one more copy. Copies get ids `<id>#up<k>` so ids stay unique."""
    if factor < 0:
        raise ValueError("upsampling factor must be >= 0")
    whole, frac = int(factor), factor - int(factor)
    out = []
    for r in records:
        copies = whole + (1 if frac > 0 and unit_hash(r.id, salt) < frac else 0)
        out.extend(r if k == 0 else replace(r, id=f"{r.id}#up{k}") for k in range(copies))
    return out


def write_product(out_dir: str | Path, files: dict[str, tuple[Sequence[Any], type]], manifest: Manifest) -> Path:
    """Write `{file name: (records, record type)}` under out_dir, then the manifest.

    A product with no record at all is refused (a UserError naming the counts of every step),
    so an empty or mistyped input never leaves an empty product that a stage would train on.
    """
    out = Path(out_dir)
    inputs = {Path(src["path"]).resolve() for src in manifest.sources if src.get("path")}
    if clash := [name for name in files if (out / name).resolve() in inputs]:
        raise UserError(f"{out / clash[0]}: is an input of this run; write the product to another --out-dir")
    if not any(len(records) for records, _ in files.values()):
        counts = ", ".join(f"{s.get('name')} {s.get('rows_in')}->{s.get('rows_out')}" for s in manifest.steps)
        raise UserError(f"{out}: {manifest.product} has 0 records ({counts or 'no input rows'}): nothing written; "
                        "check the input paths and filters")
    for name, (records, kind) in files.items():
        path = out / name
        n = write_records(path, records, kind)
        manifest.add_output(path, n)
    return manifest.write(out)


class ShuffledWriter:
    """Writes a product too large for memory in a shuffled order: rows go to `shards` temporary
    files by hashed id, then each shard is shuffled in memory and appended to the final file.
    Why: blends are read domain by domain (and upsampled copies are written next to their
    original), but a trainer that streams the file must not see domain-sized blocks."""

    def __init__(self, path: str | Path, record_type: type, shards: int = 64, seed: str = "cascade-shuffle") -> None:
        from cascade.data.records import RecordWriter

        self.path, self.record_type, self.seed = Path(path), record_type, seed
        self.shards = max(1, shards)
        self._dir = self.path.with_name(f".{self.path.name}.shards")
        self._dir.mkdir(parents=True, exist_ok=True)
        self._writers = [RecordWriter(self._dir / f"{i:04d}.parquet", record_type) for i in range(self.shards)]
        self.rows = 0

    def write(self, record: Any) -> None:
        self._writers[int(unit_hash(record.id, self.seed) * self.shards)].write(record)
        self.rows += 1

    def discard(self) -> None:
        """Drop every shard; the final path is left untouched."""
        import shutil

        for w in self._writers:
            w.discard()
        shutil.rmtree(self._dir, ignore_errors=True)

    def close(self) -> int:
        import random
        import shutil

        from cascade.data.records import RecordWriter, iter_records

        with RecordWriter(self.path, self.record_type) as out:
            for i, w in enumerate(self._writers):
                w.close()
                rows = list(iter_records(w.path, self.record_type))
                random.Random(f"{self.seed}:{i}").shuffle(rows)
                for r in rows:
                    out.write(r)
        shutil.rmtree(self._dir, ignore_errors=True)
        return self.rows
