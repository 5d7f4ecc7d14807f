"""Cascade-2 RL prompt sets: multi-domain RL (C2 §4.3: STEM MCQA, structured output, workplace tool
calling) and long-context RL (C2 §4.6), in the one RL record schema (`cascade.data.records.RLRecord`).

One-time downloads (multi-domain subset: 18,147 rows; the card documents no columns, so every
subcommand accepts the column spellings below and fails at once, naming them, on a file without them):

  hf download nvidia/Nemotron-Cascade-2-RL-data --repo-type dataset --local-dir data/raw/c2-rl
  # or the Nano-3 sources it was drawn from (C2 §4.3): nvidia/Nemotron-RL-knowledge-mcqa,
  # nvidia/Nemotron-RL-agent-workplace_assistant, nvidia/Nemotron-RL-instruction_following-structured_outputs;
  # long-context QA (C2 §4.6) is the Nano-3 long-context blend, not in that repo: any rows of the shape below.

then, e.g.

  python -m data_prep.c2_prompts mcqa --input data/raw/c2-rl/mcqa --out-dir data/rl_c2/mcqa
  python -m data_prep.c2_prompts structured --input data/raw/c2-rl/structured --out-dir data/rl_c2/structured
  python -m data_prep.c2_prompts tools --input data/raw/c2-rl/workplace --out-dir data/rl_c2/tools
  python -m data_prep.c2_prompts long_context --input data/raw/long_context --out-dir data/rl_c2/long_context \\
      --tokenizer $TOKENIZER_DIR --max-prompt-tokens 32768

Columns expected (aliases accepted, see `--help` of each subcommand):
  mcqa:         question, options (list / {letter: text} / [{letter: text}]; absent: lettered lines in the
                question), answer (letter, 0-based index or the option's text) -> domain stem_mcqa
  structured:   prompt (text or messages), schema (JSON Schema, object or JSON text) -> structured_output,
                the schema in `reward_context.schema` (and appended to the prompt unless already in it)
  tools:        prompt, initial_state (workplace DB), expected_state and/or calls ([{name, arguments}], the
                gold calls; replayed to derive or check expected_state) -> tool_calling; the system turn
                lists the workplace tools, the call syntax the reward parses (`--call-syntax`) and the DB
  long_context: question, answer, documents (text or list) or a full prompt -> long_context_qa,
                `ground_truth` = the reference answer, `reward_context.question` for the judge

Each run reads rows (bad rows logged and skipped), converts them, removes near duplicates,
decontaminates (9-gram) and writes train.parquet + manifest.json (as `data_prep.rl_prompts`).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cascade.config.schema.rl import RewardDomain
from cascade.data.messages import ToolCall
from cascade.data.records import RLRecord
from cascade.data.tool_syntax import c1_call, c2_call
from cascade.rewards.mcqa import MAX_CHOICES, gold_letter
from cascade.rewards.structured_output import checked_schema
from cascade.rewards.tool_calling.workplace import TOOLS, normalize_state, replay
from data_prep import rl_common
from data_prep.manifest import Manifest
from data_prep.rl_prompts import prompt_messages, stable_id
from data_prep.sources import Column, Drop, InputSchema, Row, convert, maybe_json, read_rows

LETTERS = "ABCDEFGHIJ"
MCQA_SUFFIX = "Answer with the letter of the correct option. End your reply with a line 'Answer: X', where X is that letter."
STRUCTURED_SUFFIX = "Reply with only a JSON object that matches this JSON Schema:\n```json\n{schema}\n```"
LONG_CONTEXT_HEADER = "Read the documents below, then answer the question that follows them."
LONG_CONTEXT_SUFFIX = "Give a short final answer."
_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[).:]\s+\S", re.MULTILINE)


def _origin(row: Row, **extra: Any) -> dict[str, Any]:
    return {"origin": row.where, **{k: v for k, v in extra.items() if v not in (None, "")}}


# --- mcqa: STEM multiple choice (Nemotron-RL-knowledge-mcqa style) ------------------------------
MCQA = InputSchema("STEM MCQA (nvidia/Nemotron-Cascade-2-RL-data multi-domain / Nemotron-RL-knowledge-mcqa)", (
    Column("question", "str", ("problem", "prompt")),
    Column("options", "list[str] | {letter: text} | [{letter: text}] (or JSON)", ("choices",), required=False),
    Column("answer", "letter | 0-based index | option text", ("expected_answer", "ground_truth", "label")),
    Column("subject", "str", ("category", "subset"), required=False),
    Column("source", "str", ("data_source",), required=False),
    Column("id", "str | int", ("index", "uid", "question_id"), required=False),
))


def mcqa_options(value: Any) -> list[str]:
    """Options in letter order from a list, a {letter: text} map or a list of one-key maps."""
    opts = maybe_json(value)
    if isinstance(opts, dict):
        keys = sorted(opts)
        if keys != list(LETTERS[: len(keys)]):
            raise ValueError(f"option keys must be A, B, C...; got {keys[:12]}")
        opts = [opts[k] for k in keys]
    elif isinstance(opts, list) and opts and all(isinstance(o, dict) and len(o) == 1 for o in opts):
        if [next(iter(o)) for o in opts] != list(LETTERS[: len(opts)]):
            raise ValueError("option keys must be A, B, C... in order")
        opts = [next(iter(o.values())) for o in opts]
    if not isinstance(opts, list) or not all(isinstance(o, (str, int, float)) for o in opts):
        raise ValueError("options must be a list of texts")
    out = [str(o).strip() for o in opts]
    if not 2 <= len(out) <= MAX_CHOICES or not all(out):
        raise ValueError(f"need 2-{MAX_CHOICES} non-empty options, got {len(out)}")
    if len(set(out)) != len(out):
        raise Drop("duplicate_options")  # two right answers, or none
    return out


def mcqa_answer(value: Any, options: Sequence[str], n: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < n:
            raise ValueError(f"answer index {value} outside 0..{n - 1}")
        return LETTERS[value]
    text = str(value).strip()
    if text in options:
        return LETTERS[list(options).index(text)]
    return gold_letter(text, n)  # ValueError if not a letter among the options


def mcqa_prompt(question: str, options: Sequence[str]) -> str:
    lines = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))
    return f"{question}\n\n{lines}\n\n{MCQA_SUFFIX}"


def adapt_mcqa(row: Row, args: argparse.Namespace) -> RLRecord:
    question = str(row.data["question"]).strip()
    if not question:
        raise ValueError("empty question")
    if row.data.get("options") is not None:
        options = mcqa_options(row.data["options"])
        n, text = len(options), mcqa_prompt(question, options)
    else:  # the options are already lettered lines in the question
        found = _OPTION_LINE.findall(question)
        if len(found) < 2 or found != list(LETTERS[: len(found)]):
            raise ValueError("no options column and no lettered option lines (A), (B)... in the question")
        options, n, text = [], len(found), f"{question}\n\n{MCQA_SUFFIX}"
    letter = mcqa_answer(row.data["answer"], options, n)
    return RLRecord(id=stable_id("mcqa", row, text), domain=RewardDomain.STEM_MCQA,
                    prompt=[{"role": "user", "content": text}], source=str(row.data.get("source") or "mcqa"),
                    ground_truth=letter, reward_context={"num_choices": n},
                    metadata=_origin(row, subject=row.data.get("subject"))).validate(row.where)


# --- structured: instruction + JSON Schema ------------------------------------------------------
STRUCTURED = InputSchema("structured output (Nemotron-RL-instruction_following-structured_outputs style)", (
    Column("prompt", "str | list[{role, content}]", ("instruction", "question", "messages")),
    Column("schema", "JSON Schema object (or its JSON text)", ("schema_str", "json_schema", "response_schema")),
    Column("source", "str", ("data_source",), required=False),
    Column("id", "str | int", ("index", "uid"), required=False),
))


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def adapt_structured(row: Row, args: argparse.Namespace) -> RLRecord:
    msgs = prompt_messages(row.data["prompt"])
    schema = checked_schema(maybe_json(row.data["schema"]))  # ValueError: not a JSON Schema -> bad row
    if not isinstance(schema, dict) or not schema:
        raise ValueError("schema must be a non-empty JSON Schema object")
    shown = json.dumps(schema, ensure_ascii=False)  # one line: a third of the tokens of an indented schema
    if args.schema_in_prompt and _squash(json.dumps(schema, ensure_ascii=False)) not in _squash(msgs[-1]["content"]):
        msgs[-1] = {"role": "user", "content": f"{msgs[-1]['content']}\n\n{STRUCTURED_SUFFIX.format(schema=shown)}"}
    return RLRecord(id=stable_id("structured", row, msgs[-1]["content"]), domain=RewardDomain.STRUCTURED_OUTPUT,
                    prompt=msgs, source=str(row.data.get("source") or "structured"),
                    reward_context={"schema": schema}, metadata=_origin(row)).validate(row.where)


# --- tools: workplace-assistant tasks -----------------------------------------------------------
TOOLS_SCHEMA = InputSchema("workplace assistant (Nemotron-RL-agent-workplace_assistant style)", (
    Column("prompt", "str | list[{role, content}]", ("task", "instruction", "question", "messages")),
    Column("initial_state", "{employees, events, emails, tasks} (or JSON)", ("database", "initial_db", "state")),
    Column("expected_state", "same shape (or JSON)", ("final_state", "expected_db"), required=False),
    Column("calls", "[{name, arguments}] gold calls (or JSON)", ("gold_calls", "ground_truth_calls", "solution"),
           required=False),
    Column("source", "str", ("data_source",), required=False),
    Column("id", "str | int", ("index", "uid", "task_id"), required=False),
))
_ARG_TYPES = {"_text": "string", "_nonempty": "string", "_people": "email | list of emails",
              "_minute": "date-time YYYY-MM-DDTHH:MM", "_day": "date YYYY-MM-DD",
              "_status": "todo | in_progress | done"}
EXAMPLE_CALL = ToolCall("update_task", {"task_id": "task-7", "status": "done"})


def tool_lines(names: Sequence[str] = tuple(TOOLS)) -> str:
    """One line per listed tool: name(arg: type, optional?: type): description."""
    out = []
    for name in names:
        tool = TOOLS[name]
        args = [f"{a}: {_ARG_TYPES.get(t.__name__, 'value')}" for a, t in tool.required.items()]
        args += [f"{a}?: {_ARG_TYPES.get(t.__name__, 'value')}" for a, t in tool.optional.items()]
        out.append(f"- {name}({', '.join(args)}): {tool.description}")
    return "\n".join(out)


@lru_cache(maxsize=8)
def tools_system(syntax: str, names: tuple[str, ...] = tuple(TOOLS)) -> str:
    """The system turn's fixed part: the tools and the exact call syntax the reward parses."""
    example = c2_call(EXAMPLE_CALL) if syntax == "xml" else c1_call(EXAMPLE_CALL)
    return ("You are a workplace assistant. You change the company database only with these tools "
            "(? = optional argument):\n" + tool_lines(names) +
            "\n\nWrite each call in exactly this format (this example marks task-7 done):\n"
            + example + "\nMake the calls the request needs, in order, and no others.")


def tool_calls(value: Any) -> list[tuple[str, dict[str, Any]]]:
    calls = maybe_json(value)
    if not isinstance(calls, list) or not calls:
        raise ValueError("calls must be a non-empty list of {name, arguments}")
    out = []
    for c in calls:
        c = maybe_json(c)
        args = maybe_json(c.get("arguments", {})) if isinstance(c, dict) else None
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not isinstance(args, dict):
            raise ValueError("each call must be {name: str, arguments: object}")
        out.append((c["name"], args))
    return out


def _example_solves(initial: Any, expected: Any) -> bool:
    try:
        return replay(initial, [(EXAMPLE_CALL.name, EXAMPLE_CALL.arguments)]) == expected  # type: ignore[list-item]
    except ValueError:  # ToolError: no such task in this database
        return False


def adapt_tools(row: Row, args: argparse.Namespace) -> RLRecord:
    msgs = prompt_messages(row.data["prompt"])
    initial = normalize_state(maybe_json(row.data["initial_state"]), "initial_state")
    given = row.data.get("expected_state")
    expected = normalize_state(maybe_json(given), "expected_state") if given is not None else None
    if row.data.get("calls") is not None:
        calls = tool_calls(row.data["calls"])
        replayed = replay(initial, calls)  # ToolError: gold calls the DB refuses
        if any(name not in args.tools for name, _ in calls):
            raise Drop("unlisted_tool")  # the prompt would not show the tool the task needs
        if expected is not None and replayed != expected:
            raise ValueError("expected_state is not the state the gold calls produce")
        expected = replayed
    if expected is None:
        raise ValueError("need expected_state or the gold calls")
    if expected == initial:
        raise Drop("no_state_change")  # doing nothing would earn the reward
    if _example_solves(initial, expected):
        raise Drop("example_solves")  # copying the system turn's example would earn it
    system = tools_system(args.call_syntax, args.tools)
    if args.show_state:
        system += "\n\nThe current database (JSON):\n" + json.dumps(initial, ensure_ascii=False, sort_keys=True)
    if msgs[0]["role"] == "system":
        system = f"{system}\n\n{msgs.pop(0)['content']}"
    msgs = [{"role": "system", "content": system}, *msgs]
    return RLRecord(id=stable_id("tools", row, msgs[-1]["content"] + json.dumps(initial, sort_keys=True)),
                    domain=RewardDomain.TOOL_CALLING, prompt=msgs, source=str(row.data.get("source") or "workplace"),
                    reward_context={"initial_state": initial, "expected_state": expected},
                    metadata=_origin(row, call_syntax=args.call_syntax)).validate(row.where)


# --- long_context: documents + question, judged against a reference answer ---------------------
LONG = InputSchema("long-context QA (Nano-3 long-context blend style)", (
    Column("question", "str", ("query",)),
    Column("answer", "str | number", ("reference_answer", "expected_answer", "ground_truth")),
    Column("documents", "str | list[str | {title?, text}] (or JSON)", ("document", "context", "passages", "docs"),
           required=False),
    Column("prompt", "str | list[{role, content}]: the whole prompt, documents included", ("messages",),
           required=False),
    Column("source", "str", ("data_source",), required=False),
    Column("id", "str | int", ("index", "uid"), required=False),
))


def documents(value: Any) -> list[str]:
    docs = maybe_json(value)
    docs = [docs] if isinstance(docs, str) else docs
    if not isinstance(docs, list) or not docs:
        raise ValueError("documents must be a text or a non-empty list")
    out = []
    for d in docs:
        if isinstance(d, dict):
            title, body = str(d.get("title") or "").strip(), d.get("text", d.get("content"))
            if not isinstance(body, str):
                raise ValueError("a document object needs `text`")
            d = f"{title}\n{body}" if title else body
        if not isinstance(d, str) or not d.strip():
            raise ValueError("empty document")
        out.append(d.strip())
    return out


def long_context_prompt(docs: Sequence[str], question: str) -> str:
    body = "\n\n".join(f"<document index={i}>\n{d}\n</document>" for i, d in enumerate(docs, 1))
    return f"{LONG_CONTEXT_HEADER}\n\n{body}\n\nQuestion: {question}\n{LONG_CONTEXT_SUFFIX}"


def adapt_long_context(row: Row, args: argparse.Namespace) -> RLRecord:
    question, answer = str(row.data["question"]).strip(), row.data["answer"]
    answer = "" if answer is None else str(answer).strip()
    if not question or not answer:
        raise ValueError("empty question or answer")
    if row.data.get("documents") is not None:
        msgs = [{"role": "user", "content": long_context_prompt(documents(row.data["documents"]), question)}]
    elif row.data.get("prompt") is not None:
        msgs = prompt_messages(row.data["prompt"])
    else:
        raise ValueError("need documents or a prompt")
    if args.counter is not None:
        n = args.counter.prompt_tokens(msgs)
        if args.max_prompt_tokens and n > args.max_prompt_tokens:
            raise Drop("too_long")
        if n < args.min_prompt_tokens:
            raise Drop("too_short")
    return RLRecord(id=stable_id("lc", row, msgs[-1]["content"]), domain=RewardDomain.LONG_CONTEXT_QA, prompt=msgs,
                    source=str(row.data.get("source") or "long_context"), ground_truth=answer,
                    reward_context={"question": question}, metadata=_origin(row)).validate(row.where)


@dataclass(frozen=True)
class C2Source:
    schema: InputSchema
    adapt: Callable[[Row, argparse.Namespace], RLRecord]


SOURCES: dict[str, C2Source] = {
    "mcqa": C2Source(MCQA, adapt_mcqa),
    "structured": C2Source(STRUCTURED, adapt_structured),
    "tools": C2Source(TOOLS_SCHEMA, adapt_tools),
    "long_context": C2Source(LONG, adapt_long_context),
}


def build(name: str, args: argparse.Namespace, cfg: rl_common.RLBuildConfig) -> list[RLRecord]:
    src = SOURCES[name]
    manifest = Manifest(f"rl_c2/{name}", config={"source": src.schema.name, "args": _args(args), "build": cfg})
    args.counter = None
    if getattr(args, "tokenizer", None):
        from data_prep.tokens import TokenCounter

        args.counter = TokenCounter(args.tokenizer)
    dropped: Counter = Counter()
    rows = read_rows(args.input, src.schema, manifest)
    records = list(convert(rows, lambda r: src.adapt(r, args), manifest, dropped))
    rl_common.read_step(manifest, len(records) + sum(dropped.values()))
    manifest.step("filter", len(records) + sum(dropped.values()), len(records), dropped=dict(dropped))
    return rl_common.finish(records, cfg, manifest, args.out_dir)


def _tool_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in TOOLS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown tool(s) {unknown}; known: {','.join(TOOLS)}")
    return names


def _args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("func", "counter")}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="domain", required=True)
    for name, src in SOURCES.items():
        sp = sub.add_parser(name, help=src.schema.describe(), description=src.schema.describe())
        rl_common.add_args(sp)
        if name == "tools":
            sp.add_argument("--call-syntax", choices=["xml", "json"], default="xml",
                            help="the call format shown in the system turn: xml = the Cascade-2 template's "
                                 "(Qwen3-Coder), json = Cascade-1's (Qwen3); the reward reads both")
            sp.add_argument("--no-state", dest="show_state", action="store_false",
                            help="do not show the initial database in the system turn")
            sp.add_argument("--tools", type=_tool_names, default=tuple(TOOLS),
                            help=f"comma-separated tools to list (default all: {','.join(TOOLS)}); rows whose "
                                 "gold calls use another are dropped")
        if name == "structured":
            sp.add_argument("--no-schema-in-prompt", dest="schema_in_prompt", action="store_false",
                            help="do not append the schema to prompts that lack it (rows whose instruction "
                                 "already spells out the keys and values; a small model copies a shown schema)")
        if name == "long_context":
            sp.add_argument("--tokenizer", help="local tokenizer dir: enables the prompt-token limits")
            sp.add_argument("--max-prompt-tokens", type=int, default=0, help="0: no limit (C2 §4.6: 32K)")
            sp.add_argument("--min-prompt-tokens", type=int, default=0)
    a = p.parse_args(argv)
    out = build(a.domain, a, rl_common.config_from_args(a))
    print(f"wrote {len(out)} {a.domain} prompts to {a.out_dir}/train.parquet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
