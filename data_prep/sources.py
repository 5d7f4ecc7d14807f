"""Reading the released datasets' local copies: jsonl / json / parquet with a declared schema.

Why: every product script reads rows in some released schema (e.g. `instance_id, prompt,
golden_patch, relevant_file_contents, source`). A file that lacks a required column is the wrong
file: fail at once and print the expected schema. A single malformed row (bad JSON, a missing or
mistyped field) is logged with file and row number, counted in the manifest and skipped.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyarrow.parquet as pq

from cascade.config.errors import UserError
from cascade.data.records import RecordError
from data_prep.manifest import Manifest

T = TypeVar("T")
SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


class SchemaError(ValueError):
    """An input file without a required column: the message names the file and the schema."""


@dataclass(frozen=True)
class Column:
    name: str  # the name the adapters use
    doc: str = "str"  # the type, for error messages
    aliases: tuple[str, ...] = ()  # other spellings accepted in input files
    required: bool = True


@dataclass(frozen=True)
class InputSchema:
    name: str  # e.g. "nvidia/Nemotron-Cascade-RL-SWE"
    columns: tuple[Column, ...]

    def describe(self) -> str:
        parts = []
        for c in self.columns:
            alias = f" (or {', '.join(c.aliases)})" if c.aliases else ""
            parts.append(f"{c.name}{alias}: {c.doc}{'' if c.required else ' [optional]'}")
        return f"{self.name}: " + "; ".join(parts)

    def resolve(self, present: Iterable[str], where: str) -> dict[str, str]:
        """Map each schema column to the name used in the file; SchemaError if a required one is absent."""
        have = set(present)
        mapping, missing = {}, []
        for c in self.columns:
            found = next((n for n in (c.name, *c.aliases) if n in have), None)
            if found is not None:
                mapping[c.name] = found
            elif c.required:
                missing.append(c.name)
        if missing:
            raise SchemaError(f"{where}: missing column(s) {missing}; found {sorted(have)}. "
                              f"Expected schema {self.describe()}")
        return mapping


@dataclass(frozen=True)
class Row:
    where: str  # "path row N" (1-based: the line of a jsonl file, the row of a parquet file)
    data: dict[str, Any]  # schema column name -> value (optional columns may be absent)


class MissingInput(UserError, FileNotFoundError):
    """An input path that does not exist: the user's mistake (one line, exit 2), and still a
    FileNotFoundError for library callers."""


def require_inputs(paths: Iterable[str | Path]) -> None:
    """Every path exists (a file or a directory), else `MissingInput` naming the first that does not."""
    for p in map(Path, paths):
        if not p.exists():
            raise MissingInput(f"input {p} does not exist")


def expand_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Files named directly, plus every data file below a named directory (sorted, stable)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(SUFFIXES)
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            require_inputs([p])
            files.append(p)
    return files


def iter_raw_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based row number, parsed object or the exception that parsing raised)."""
    name = path.name
    if name.endswith(".parquet"):
        n = 0
        for batch in pq.ParquetFile(path).iter_batches():
            for row in batch.to_pylist():
                n += 1
                yield n, row
    elif name.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    yield n, e
    elif name.endswith(".json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data if isinstance(data, list) else data.get("data", data.get("rows"))
        if not isinstance(rows, list):
            raise SchemaError(f"{path}: a .json input must hold a list of row objects")
        yield from enumerate(rows, 1)
    else:
        raise SchemaError(f"{path}: unsupported file type (use one of {SUFFIXES})")


def _columns_of(path: Path) -> list[str] | None:
    if path.name.endswith(".parquet"):
        return list(pq.ParquetFile(path).schema_arrow.names)
    for _, obj in iter_raw_rows(path):
        if isinstance(obj, dict):
            return list(obj)
    return None  # no parseable row: nothing to check


def read_rows(paths: Sequence[str | Path], schema: InputSchema, manifest: Manifest) -> Iterator[Row]:
    """Rows of every input file, renamed to the schema's column names. Each file is hashed into
    the manifest; a missing column raises SchemaError before any row is read."""
    for path in expand_inputs(paths):
        cols = _columns_of(path)
        if cols is None:
            manifest.add_source(path, rows=0)
            continue
        mapping = schema.resolve(cols, str(path))
        required = [c.name for c in schema.columns if c.required]
        entry = manifest.add_source(path, schema=schema.name)
        count = 0
        for n, obj in iter_raw_rows(path):
            count += 1
            where = f"{path} row {n}"
            if isinstance(obj, Exception):
                manifest.bad_row(where, f"invalid JSON: {obj}")
                continue
            if not isinstance(obj, dict):
                manifest.bad_row(where, f"expected an object, got {type(obj).__name__}")
                continue
            absent = [c for c in required if mapping[c] not in obj]
            if absent:
                manifest.bad_row(where, f"missing field(s) {absent}")
                continue
            yield Row(where, {c: obj[src] for c, src in mapping.items() if src in obj})
        entry["rows"] = count


class Drop(Exception):
    """Raised by an adapter for a well-formed row that the recipe filters out (counted by reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def convert(rows: Iterable[Row], fn: Callable[[Row], T], manifest: Manifest,
            dropped: Counter | None = None) -> Iterator[T]:
    """Apply a row adapter. A row it rejects as malformed (RecordError/ValueError/TypeError/
    KeyError) is a bad row: logged with file and row, counted, skipped. A `Drop` is a filter
    decision, counted by reason in `dropped`."""
    for row in rows:
        try:
            yield fn(row)
        except Drop as d:
            if dropped is not None:
                dropped[d.reason] += 1
        except (RecordError, ValueError, TypeError, KeyError, AttributeError) as e:
            manifest.bad_row(row.where, f"{type(e).__name__}: {e}")


def maybe_json(value: Any) -> Any:
    """Decode a field that some releases store as JSON text and others as nested data."""
    if isinstance(value, str):
        s = value.strip()
        if s and s[0] in "[{":
            return json.loads(s)
    return value
