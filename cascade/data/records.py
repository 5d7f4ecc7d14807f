"""The record schemas every trainer reads: RL prompts, SFT conversations, preference pairs.

Why one module: data_prep writes these files and the RL trainer, the rewards and the SFT/RM
recipes read them, so the field names, the per-domain requirements and the on-disk (parquet)
layout live in one place. `domain` values come from `RewardDomain` (the reward registry's key).

On disk every product is parquet with a fixed Arrow schema. Fields whose shape varies by row
(code `tests`, IF `kwargs`, SWE `original`, `metadata`, `reward_context`) are stored as JSON text
and decoded here, so one RL schema serves every domain. `reward_context` is the open-ended part:
an object whose keys are merged into the reward row (a structured-output `schema`, tool-calling
`initial_state`/`expected_state`); files written before it existed read as an empty context. A bad row raises `RecordError` naming the file and row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cascade.config.schema.common import ChatMode
from cascade.config.schema.rl import RewardDomain

Message = dict[str, str]  # {"role": ..., "content": ...}
ROLES = ("system", "user", "assistant", "tool")
SFT_MODES = (ChatMode.THINKING, ChatMode.INSTRUCT)  # half_half is a sampling mix, not a row mode

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


class RecordError(ValueError):
    """A row that does not fit its schema; `where` is "file row N" (1-based)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where, self.reason = where, message


def check_messages(messages: Any, where: str = "", last_role: str | None = None) -> list[Message]:
    """A validated copy of a chat message list (role/content strings, known roles)."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise RecordError(where, "messages must be a non-empty list of {role, content}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("content"), str):
            raise RecordError(where, f"message {i} is not a {{role, content: str}} object")
        if m.get("role") not in ROLES:
            raise RecordError(where, f"message {i} has role {m.get('role')!r}; expected one of {ROLES}")
        out.append({"role": str(m["role"]), "content": m["content"]})
    if last_role and out[-1]["role"] != last_role:
        raise RecordError(where, f"the last message must be from the {last_role}, got {out[-1]['role']}")
    return out


def _need(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise RecordError(where, message)


def _check_math(r: RLRecord, where: str) -> None:
    _need(isinstance(r.ground_truth, str) and r.ground_truth.strip() != "", where,
          "math records need a non-empty `ground_truth`")


def _check_code(r: RLRecord, where: str) -> None:
    t = r.tests
    _need(isinstance(t, dict), where, "code records need `tests` = {inputs: [...], outputs: [...]}")
    if "test_code" in t:  # the rewards' assert-based extension (HumanEval/MBPP style)
        _need(isinstance(t["test_code"], str) and t["test_code"].strip() != "", where, "empty `tests.test_code`")
        return
    ins, outs = t.get("inputs"), t.get("outputs")
    _need(isinstance(ins, list) and isinstance(outs, list) and len(ins) == len(outs) > 0, where,
          "`tests.inputs` and `tests.outputs` must be non-empty lists of equal length")
    _need(t.get("fn_name") is None or isinstance(t["fn_name"], str), where, "`tests.fn_name` must be a string")


def _check_instruction(r: RLRecord, where: str) -> None:
    ids, kw = r.instruction_id_list, r.kwargs
    _need(isinstance(ids, list) and len(ids) > 0 and all(isinstance(x, str) for x in ids), where,
          "instruction records need a non-empty `instruction_id_list` of strings")
    _need(isinstance(kw, list) and len(kw) == len(ids) and all(isinstance(x, dict) for x in kw), where,
          "`kwargs` must be a list of dicts, one per instruction id")


def _check_swe(r: RLRecord, where: str) -> None:
    _need(isinstance(r.golden_patch, str) and r.golden_patch.strip() != "", where,
          "swe records need a non-empty `golden_patch`")
    o = r.original
    _need(isinstance(o, dict) and len(o) > 0 and all(isinstance(v, str) for v in o.values()), where,
          "swe records need `original` = {file path: original file content}")


def _check_mcqa(r: RLRecord, where: str) -> None:
    gt = r.ground_truth.strip() if isinstance(r.ground_truth, str) else ""
    _need(len(gt) == 1 and gt.upper() in "ABCDEFGHIJ", where, "stem_mcqa records need `ground_truth` = one letter A-J")


def _needs_context(*names: str) -> Callable[[RLRecord, str], None]:
    def check(r: RLRecord, where: str) -> None:
        missing = [n for n in names if r.reward_context.get(n) is None]
        _need(not missing, where, f"{r.domain.value} records need `reward_context` keys {list(names)}; "
                                  f"missing {missing}")

    return check


# What each reward domain needs beyond the shared fields (the rewards CLI contract).
DOMAIN_CHECKS: dict[RewardDomain, Callable[[RLRecord, str], None]] = {
    RewardDomain.MATH: _check_math,
    RewardDomain.CODE: _check_code,
    RewardDomain.INSTRUCTION: _check_instruction,
    RewardDomain.INSTRUCTION_RM: _check_instruction,
    RewardDomain.REWARD_MODEL: lambda r, where: None,
    RewardDomain.SWE: _check_swe,
    RewardDomain.STEM_MCQA: _check_mcqa,
    RewardDomain.STRUCTURED_OUTPUT: _needs_context("schema"),
    RewardDomain.TOOL_CALLING: _needs_context("initial_state", "expected_state"),
    RewardDomain.GENRM: lambda r, where: None,
    RewardDomain.LONG_CONTEXT_QA: lambda r, where: (_check_math(r, where), _needs_context("question")(r, where)),
}
# The fields each domain's scorer reads from a record (besides `response`, `prompt`, `messages`).
DOMAIN_FIELDS: dict[RewardDomain, tuple[str, ...]] = {
    RewardDomain.MATH: ("ground_truth",),
    RewardDomain.CODE: ("tests",),
    RewardDomain.INSTRUCTION: ("instruction_id_list", "kwargs"),
    RewardDomain.INSTRUCTION_RM: ("instruction_id_list", "kwargs"),
    RewardDomain.REWARD_MODEL: (),
    RewardDomain.SWE: ("golden_patch", "original"),
    RewardDomain.STEM_MCQA: ("ground_truth",),
    RewardDomain.STRUCTURED_OUTPUT: (),  # `schema` travels in reward_context
    RewardDomain.TOOL_CALLING: (),  # `initial_state`, `expected_state` travel in reward_context
    RewardDomain.GENRM: (),
    RewardDomain.LONG_CONTEXT_QA: ("ground_truth",),  # `question` travels in reward_context
}
# Row keys a reward_context may not set (they come from the record itself or the rollout).
RESERVED_CONTEXT_KEYS = frozenset({"id", "domain", "prompt", "messages", "response", "group", "reward", "info"})


@dataclass(frozen=True)
class RLRecord:
    """One RL prompt; `domain` routes it to its reward, the optional fields are that reward's input."""

    id: str
    domain: RewardDomain
    prompt: list[Message]  # chat messages, last one from the user; no /think flags (the template adds them)
    source: str
    ground_truth: str | None = None  # math: the final answer (LaTeX or plain)
    tests: dict[str, Any] | None = None  # code: {"inputs": [...], "outputs": [...], "fn_name"?: str} (or {"test_code"})
    instruction_id_list: list[str] | None = None  # instruction: IFEval/IFBench ids
    kwargs: list[dict[str, Any]] | None = None  # instruction: one dict of checker args per id
    golden_patch: str | None = None  # swe: the reference unified diff
    original: dict[str, str] | None = None  # swe: {path: original content} of every file shown
    metadata: dict[str, Any] = field(default_factory=dict)  # provenance: url, subset, pass rates...
    reward_context: dict[str, Any] = field(default_factory=dict)  # extra reward-row fields (merged into the row)

    def validate(self, where: str = "") -> RLRecord:
        _need(isinstance(self.id, str) and self.id != "", where, "`id` must be a non-empty string")
        _need(isinstance(self.source, str), where, "`source` must be a string")
        check_messages(self.prompt, where, last_role="user")
        _need(isinstance(self.reward_context, dict), where, "`reward_context` must be an object")
        clash = sorted((set(self.reward_context) & RESERVED_CONTEXT_KEYS) | {
            k for k in self.reward_context if k in DOMAIN_FIELDS[RewardDomain(self.domain)]})
        _need(not clash, where, f"`reward_context` may not set {clash} (record fields or rollout keys)")
        DOMAIN_CHECKS[RewardDomain(self.domain)](self, where)
        return self

    @property
    def prompt_text(self) -> str:
        """The last user turn: what IFEval-style checkers call `prompt`."""
        return self.prompt[-1]["content"]

    def reward_fields(self) -> dict[str, Any]:
        """The rewards CLI input row for this record, minus `response` (its contract); the
        `reward_context` keys are merged in (validation keeps them from shadowing a record field)."""
        row: dict[str, Any] = {**self.reward_context, "id": self.id, "domain": self.domain.value, "prompt": self.prompt_text,
                               "messages": [dict(m) for m in self.prompt]}
        for name in DOMAIN_FIELDS[self.domain]:
            row[name] = getattr(self, name)
        return row

    def to_row(self) -> dict[str, Any]:
        enc = _json_or_none
        return {
            "id": self.id, "domain": RewardDomain(self.domain).value, "source": self.source,
            "prompt": [dict(m) for m in self.prompt], "ground_truth": self.ground_truth,
            "tests": enc(self.tests), "instruction_id_list": self.instruction_id_list,
            "kwargs": enc(self.kwargs), "golden_patch": self.golden_patch,
            "original": enc(self.original), "metadata": json.dumps(self.metadata, sort_keys=True),
            "reward_context": enc(self.reward_context) if self.reward_context else None,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any], where: str = "") -> RLRecord:
        try:
            domain = RewardDomain(row.get("domain"))
        except ValueError:
            raise RecordError(where, f"unknown domain {row.get('domain')!r}; expected one of "
                                     f"{[d.value for d in RewardDomain]}") from None
        rec = cls(
            id=str(row.get("id") or ""), domain=domain, prompt=row.get("prompt"),  # type: ignore[arg-type]
            source=str(row.get("source") or ""), ground_truth=row.get("ground_truth"),
            tests=_decode(row.get("tests"), where, "tests"),
            instruction_id_list=_as_list(row.get("instruction_id_list")),
            kwargs=_decode(row.get("kwargs"), where, "kwargs"), golden_patch=row.get("golden_patch"),
            original=_decode(row.get("original"), where, "original"),
            metadata=_decode(row.get("metadata"), where, "metadata") or {},
            reward_context=_decode(row.get("reward_context"), where, "reward_context") or {},
        )
        return rec.validate(where)


@dataclass(frozen=True)
class SFTRecord:
    """One SFT conversation in the released `messages` schema; `mode` is the final answer's mode.

    Messages keep every field the chat template understands (`reasoning_content`, `tool_calls`,
    inline `<think>`), so they are stored as JSON text; `cascade.data.sft_dataset` reads them.
    """

    id: str
    messages: list[dict[str, Any]]
    mode: ChatMode
    domain: str  # blend bucket: general, math, code, science, tool_calling, swe, ...
    source: str
    tools: list[dict[str, Any]] | None = None  # function specs for tool-calling conversations

    def validate(self, where: str = "") -> SFTRecord:
        from cascade.data.chat_template import final_mode  # the template decides what is renderable
        from cascade.data.messages import TemplateError, normalize_tools

        _need(isinstance(self.id, str) and self.id != "", where, "`id` must be a non-empty string")
        _need(ChatMode(self.mode) in SFT_MODES, where, f"`mode` must be one of {[m.value for m in SFT_MODES]}")
        _need(isinstance(self.messages, list) and bool(self.messages), where, "`messages` must be a non-empty list")
        _need(self.messages[-1].get("role") == "assistant" if isinstance(self.messages[-1], Mapping) else False,
              where, "the last message must be the assistant answer")
        try:
            final_mode(self.messages, self.mode)
            normalize_tools(self.tools)
        except (TemplateError, ValueError, TypeError, AttributeError) as e:
            raise RecordError(where, str(e)) from None
        return self

    def to_row(self) -> dict[str, Any]:
        return {"id": self.id, "messages": json.dumps(self.messages, ensure_ascii=False),
                "mode": ChatMode(self.mode).value, "domain": self.domain, "source": self.source,
                "tools": _json_or_none(self.tools)}

    @classmethod
    def from_row(cls, row: Mapping[str, Any], where: str = "") -> SFTRecord:
        try:
            mode = ChatMode(row.get("mode"))
        except ValueError:
            raise RecordError(where, f"unknown mode {row.get('mode')!r}") from None
        return cls(id=str(row.get("id") or ""), messages=_decode(row.get("messages"), where, "messages"),
                   mode=mode, domain=str(row.get("domain") or ""), source=str(row.get("source") or ""),
                   tools=_decode(row.get("tools"), where, "tools")).validate(where)


@dataclass(frozen=True)
class PreferenceRecord:
    """One reward-model training pair: the same prompt, a preferred and a dispreferred answer."""

    id: str
    prompt: list[Message]
    chosen: str
    rejected: str
    source: str

    def validate(self, where: str = "") -> PreferenceRecord:
        _need(isinstance(self.id, str) and self.id != "", where, "`id` must be a non-empty string")
        check_messages(self.prompt, where, last_role="user")
        _need(isinstance(self.chosen, str) and self.chosen.strip() != "", where, "`chosen` is empty")
        _need(isinstance(self.rejected, str) and self.rejected.strip() != "", where, "`rejected` is empty")
        _need(self.chosen != self.rejected, where, "`chosen` and `rejected` are identical")
        return self

    def to_row(self) -> dict[str, Any]:
        return {"id": self.id, "prompt": [dict(m) for m in self.prompt], "chosen": self.chosen,
                "rejected": self.rejected, "source": self.source}

    @classmethod
    def from_row(cls, row: Mapping[str, Any], where: str = "") -> PreferenceRecord:
        return cls(id=str(row.get("id") or ""), prompt=row.get("prompt"),  # type: ignore[arg-type]
                   chosen=row.get("chosen"), rejected=row.get("rejected"),  # type: ignore[arg-type]
                   source=str(row.get("source") or "")).validate(where)


RL_SCHEMA = pa.schema([
    ("id", pa.string()), ("domain", pa.string()), ("source", pa.string()), ("prompt", _MESSAGES),
    ("ground_truth", pa.string()), ("tests", pa.string()), ("instruction_id_list", pa.list_(pa.string())),
    ("kwargs", pa.string()), ("golden_patch", pa.string()), ("original", pa.string()), ("metadata", pa.string()),
    ("reward_context", pa.string()),
])
# Columns added after files were written: a file without one reads it as null.
OPTIONAL_COLUMNS: dict[type, frozenset[str]] = {RLRecord: frozenset({"reward_context"})}
SFT_SCHEMA = pa.schema([("id", pa.string()), ("messages", pa.string()), ("mode", pa.string()),
                        ("domain", pa.string()), ("source", pa.string()), ("tools", pa.string())])
PREFERENCE_SCHEMA = pa.schema([("id", pa.string()), ("prompt", _MESSAGES), ("chosen", pa.string()),
                               ("rejected", pa.string()), ("source", pa.string())])

RecordT = RLRecord | SFTRecord | PreferenceRecord
SCHEMAS: dict[type, pa.Schema] = {RLRecord: RL_SCHEMA, SFTRecord: SFT_SCHEMA, PreferenceRecord: PREFERENCE_SCHEMA}


def write_records(path: str | Path, records: Sequence[RecordT], record_type: type | None = None) -> int:
    """Write records of one type to parquet (an empty list still gets the right schema)."""
    kind = record_type or (type(records[0]) if records else None)
    if kind not in SCHEMAS:
        raise TypeError("write_records needs RLRecord, SFTRecord or PreferenceRecord (pass record_type)")
    if any(type(r) is not kind for r in records):
        raise TypeError(f"all records must be {kind.__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([r.to_row() for r in records], schema=SCHEMAS[kind])
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # never leave a half-written file under the final name
    return len(records)


class RecordWriter:
    """Streaming parquet writer for one record type (products too large to hold in memory)."""

    def __init__(self, path: str | Path, record_type: type, batch_rows: int = 2048) -> None:
        self.path, self.schema = Path(path), SCHEMAS[record_type]
        self.record_type, self.batch_rows, self.rows = record_type, batch_rows, 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._writer = pq.ParquetWriter(self._tmp, self.schema)
        self._buf: list[dict[str, Any]] = []

    def write(self, record: RecordT) -> None:
        if type(record) is not self.record_type:
            raise TypeError(f"expected {self.record_type.__name__}, got {type(record).__name__}")
        self._buf.append(record.to_row())
        self.rows += 1
        if len(self._buf) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._writer.write_table(pa.Table.from_pylist(self._buf, schema=self.schema))
            self._buf = []

    def close(self) -> int:
        self._flush()
        self._writer.close()
        self._tmp.replace(self.path)
        return self.rows

    def discard(self) -> None:
        """Drop what was written; the final path (an earlier product, say) is left untouched."""
        self._buf = []
        self._writer.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # leave nothing under the final name
            self.discard()


def iter_records(path: str | Path, record_type: type, errors: list[RecordError] | None = None) -> Iterator[Any]:
    """Records of `record_type` from a parquet file. Missing columns fail at once, naming the
    expected schema; a bad row raises RecordError, or is appended to `errors` and skipped."""
    path = Path(path)
    schema = SCHEMAS[record_type]
    pf = pq.ParquetFile(path)
    present = set(pf.schema_arrow.names)
    optional = OPTIONAL_COLUMNS.get(record_type, frozenset())
    missing = [n for n in schema.names if n not in present and n not in optional]
    if missing:
        raise RecordError(str(path), f"missing column(s) {missing}; expected schema: {describe(schema)}")
    row_no = 0
    for batch in pf.iter_batches(columns=[n for n in schema.names if n in present]):
        for row in batch.to_pylist():
            row_no += 1
            try:
                yield record_type.from_row(row, f"{path} row {row_no}")
            except RecordError as e:
                if errors is None:
                    raise
                errors.append(e)


def read_records(path: str | Path, record_type: type, errors: list[RecordError] | None = None) -> list[Any]:
    return list(iter_records(path, record_type, errors))


def read_rl_records(path: str | Path, errors: list[RecordError] | None = None) -> list[RLRecord]:
    """The RL trainer's reader: every row validated for its domain."""
    return read_records(path, RLRecord, errors)


def describe(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in schema)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _decode(value: Any, where: str, name: str) -> Any:
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise RecordError(where, f"`{name}` is not valid JSON ({e.msg})") from None


def _as_list(value: Any) -> list[Any] | None:
    return None if value is None else list(value)


def as_messages(prompt: str | Iterable[Mapping[str, Any]], system: str | None = None) -> list[Message]:
    """A plain prompt string (or a message list) as chat messages, with an optional system turn."""
    msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    return ([{"role": "system", "content": system}] if system else []) + msgs  # type: ignore[list-item]
