"""`python -m cascade.rewards score --domain D IN.jsonl OUT.jsonl` (a stable contract: scripts and users rely on it).

Each output row is the input row plus `reward` (float) and `info` (dict). A row that cannot be
scored (invalid UTF-8 or JSON, nesting too deep to parse, missing or null fields, a verifier
crash) gets reward 0 and `info.error`; the output has one row per non-blank input line and the
run never stops on one bad row. Rows are scored in chunks so a large file streams; the output
is written to a temporary file beside it and renamed at the end, so it is never half-written
and never replaces its own input. A wrong path is a one-line error with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from cascade.config.cli import DEBUG_FLAG, run_cli
from cascade.config.errors import UserError
from cascade.config.schema.rl import (
    CodeSandboxConfig,
    CodeSwitchPenalty,
    GenRMConfig,
    RewardConfig,
    RewardDomain,
    ServedModelConfig,
)
from cascade.rewards.registry import DomainScorer, build_scorer


def _served(endpoint: str | None, checkpoint: str | None, name: str) -> ServedModelConfig | None:
    return ServedModelConfig(endpoint=endpoint, checkpoint=checkpoint, name=name) if endpoint or checkpoint else None


def config_from_args(args: argparse.Namespace) -> RewardConfig:
    """The RewardConfig a CLI invocation describes."""
    return RewardConfig(
        domain=RewardDomain(args.domain),
        code_switch=CodeSwitchPenalty(args.code_switch),
        timeout_s=args.timeout,
        num_workers=args.workers,
        reward_model=_served(args.rm_endpoint, args.rm_checkpoint, args.rm_model),
        judge=_served(args.judge_endpoint, args.judge_checkpoint, args.judge_model),
        sandbox=CodeSandboxConfig(per_test_timeout_s=args.per_test_timeout,
                                  allow_unsandboxed=args.allow_unsandboxed),
        genrm=GenRMConfig(endpoint=args.genrm_endpoint, name=args.genrm_model, timeout_s=args.genrm_timeout),
    )


_NEEDS_RM = (RewardDomain.REWARD_MODEL.value, RewardDomain.INSTRUCTION_RM.value)
_NEEDS_ENDPOINT = {RewardDomain.GENRM.value: ("genrm_endpoint", "--genrm-endpoint URL"),
                   RewardDomain.LONG_CONTEXT_QA.value: ("judge_endpoint", "--judge-endpoint URL")}


# The input fields each domain reads (besides `response`), for `score --help`.
DOMAIN_FIELDS_HELP = {
    RewardDomain.MATH.value: "ground_truth (final answer, LaTeX or plain)",
    RewardDomain.CODE.value: "tests ({inputs, outputs, fn_name?} or {test_code})",
    RewardDomain.INSTRUCTION.value: "prompt, instruction_id_list, kwargs (one dict per id)",
    RewardDomain.INSTRUCTION_RM.value: "prompt or messages, instruction_id_list, kwargs, group",
    RewardDomain.REWARD_MODEL.value: "prompt or messages",
    RewardDomain.SWE.value: "golden_patch, original ({path: content})",
    RewardDomain.STEM_MCQA.value: "ground_truth (gold letter A-J), num_choices? (default 10)",
    RewardDomain.STRUCTURED_OUTPUT.value: "schema (JSON Schema object or its JSON text)",
    RewardDomain.TOOL_CALLING.value: "initial_state, expected_state (workplace database objects or JSON text)",
    RewardDomain.GENRM.value: "prompt or messages, group (or uid/prompt_id; one group per chunk)",
    RewardDomain.LONG_CONTEXT_QA.value: "question, ground_truth (the judge never sees a document)",
}


def _fields_epilog() -> str:
    lines = [f"  {name:<18} {fields}" for name, fields in DOMAIN_FIELDS_HELP.items()]
    return "input fields per domain (every row also needs `response`):\n" + "\n".join(lines)


class UsageError(UserError):
    """A mistake in the command line: reported in one line, exit code 2 (cascade.config.cli)."""


def _chunks(lines: BinaryIO, size: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        chunk.append((n, line))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _parse_line(n: int, raw: bytes) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(row, None) for a JSON object line, else (None, the error row that stands for it)."""
    def bad(why: str, shown: Any) -> tuple[None, dict[str, Any]]:
        return None, {"line": n, "raw": shown, "reward": 0.0, "info": {"error": f"line {n}: {why}"}}

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return bad(f"invalid UTF-8 at byte {e.start}", raw[:1000].decode("utf-8", "replace"))
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        return bad(f"invalid JSON: {e.msg} (column {e.colno})", text.rstrip("\n")[:1000])
    except (RecursionError, ValueError, MemoryError) as e:  # nesting, integer digits
        return bad(f"unparsable JSON: {type(e).__name__}", text.rstrip("\n")[:1000])
    if not isinstance(row, dict):
        return bad(f"a JSON {type(row).__name__}, not an object", text.rstrip("\n")[:1000])
    return row, None


def _score_rows(scorer: DomainScorer, rows: list[dict[str, Any]]) -> list[tuple[float, dict[str, Any]]]:
    """Score a batch; if the scorer fails on it, score row by row so only the guilty row pays."""
    try:
        return [(float(r.reward), r.info) for r in scorer.score(rows)]
    except Exception:  # noqa: BLE001  (a scorer bug: isolate it)
        out = []
        for row in rows:
            try:
                r = scorer.score([row])[0]
                out.append((float(r.reward), r.info))
            except Exception as e:  # noqa: BLE001
                out.append((0.0, {"error": f"scorer failed: {type(e).__name__}: {str(e)[:300]}"}))
        return out


def score_chunk(scorer: DomainScorer, chunk: list[tuple[int, bytes]]) -> list[dict[str, Any]]:
    """Parse and score one chunk of input lines; every line yields exactly one output row."""
    out: list[dict[str, Any] | None] = [None] * len(chunk)
    rows, where = [], []
    for k, (n, line) in enumerate(chunk):
        row, error_row = _parse_line(n, line)
        if row is None:
            out[k] = error_row
        else:
            rows.append(row)
            where.append(k)
    for k, row, (reward, info) in zip(where, rows, _score_rows(scorer, rows) if rows else []):
        out[k] = {**row, "reward": reward, "info": info}
    return out  # type: ignore[return-value]


def _dumps(row: dict[str, Any]) -> str:
    """One JSON line; rows holding lone surrogates (not encodable as UTF-8) are written escaped."""
    text = json.dumps(row, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(row, ensure_ascii=True, default=str)
    return text


def _check_paths(inp: str, outp: str) -> tuple[Path, Path]:
    src, dst = Path(inp), Path(outp)
    if not src.exists():
        raise UsageError(f"input {src} does not exist")
    if src.is_dir():
        raise UsageError(f"input {src} is a directory, not a JSONL file")
    if dst.is_dir():
        raise UsageError(f"output {dst} is a directory; name a file")
    if not dst.parent.is_dir():
        raise UsageError(f"output directory {dst.parent} does not exist")
    if dst.exists() and os.path.samefile(src, dst) or src.resolve() == dst.resolve():
        raise UsageError(f"output {dst} is the input file: write the scores elsewhere")
    return src, dst


def cmd_score(args: argparse.Namespace) -> int:
    src, dst = _check_paths(args.input, args.output)
    if args.domain in _NEEDS_RM and not (args.rm_endpoint or args.rm_checkpoint):
        raise UsageError(f"--domain {args.domain} needs --rm-endpoint URL or --rm-checkpoint DIR")
    if args.domain in _NEEDS_ENDPOINT and not getattr(args, _NEEDS_ENDPOINT[args.domain][0]):
        raise UsageError(f"--domain {args.domain} needs {_NEEDS_ENDPOINT[args.domain][1]}")
    try:
        scorer = build_scorer(config_from_args(args))
    except ValueError as e:  # e.g. a served-model domain without its endpoint or checkpoint flags
        raise UsageError(f"--domain {args.domain}: {e}") from None
    total, errors, reward_sum = 0, 0, 0.0
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "w", encoding="utf-8") as fout:
            for chunk in _chunks(fin, args.chunk_size):
                for row in score_chunk(scorer, chunk):
                    fout.write(_dumps(row) + "\n")
                    total += 1
                    errors += "error" in row["info"]
                    reward_sum += row["reward"]
        os.replace(tmp, dst)
    finally:
        scorer.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    mean = reward_sum / total if total else 0.0
    print(f"scored {total} rows ({errors} errors), mean reward {mean:.4f} -> {dst}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m cascade.rewards", description="Cascade domain rewards")
    sub = ap.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("score", help="score a JSONL file of rollouts", epilog=_fields_epilog(),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    sc.add_argument("--domain", required=True, choices=[d.value for d in RewardDomain])
    sc.add_argument("input")
    sc.add_argument("output")
    sc.add_argument("--timeout", type=float, default=10.0, help="seconds per sample (code: per program)")
    sc.add_argument("--per-test-timeout", type=float, default=6.0, help="code: seconds per test")
    sc.add_argument("--workers", type=int, default=0, help="worker processes/slots (0: one per core)")
    sc.add_argument("--code-switch", default="off", choices=[m.value for m in CodeSwitchPenalty])
    sc.add_argument("--chunk-size", type=int, default=1024)
    sc.add_argument("--allow-unsandboxed", action="store_true",
                    help="code: run untrusted code WITHOUT bwrap if it is unavailable (unsafe)")
    sc.add_argument("--rm-endpoint")
    sc.add_argument("--rm-checkpoint")
    sc.add_argument("--rm-model", default="")
    sc.add_argument("--judge-endpoint")
    sc.add_argument("--judge-checkpoint")
    sc.add_argument("--judge-model", default="")
    sc.add_argument("--genrm-endpoint", help="genrm: the served pairwise GenRM (OpenAI-compatible chat URL); "
                    "a group's rows must share a group/uid/prompt_id (or prompt) and sit in one --chunk-size chunk")
    sc.add_argument("--genrm-model", default="", help="genrm: served model id")
    sc.add_argument("--genrm-timeout", type=float, default=600.0, help="genrm: seconds per pairwise judgement")
    sc.set_defaults(func=cmd_score)
    return ap


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args([a for a in argv if a != DEBUG_FLAG])
    return args.func(args)


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog="cascade.rewards")
