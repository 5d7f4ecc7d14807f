"""Raw inputs for the toy Cascade-2's extra RL prompt sets, in the shapes `data_prep.c2_prompts` reads.

Why these sources: the toy must stay offline and its evals clean, and a 135M instruct model must
sometimes earn a reward (else GRPO gets no signal). So: MMLU validation + dev for MCQA (the test
split is a toy eval); seeded generators of our own for structured output (small flat schemas whose
keys and values the prompt spells out) and for workplace tasks (one call, sometimes two, every
argument given in the request); and for long-context QA a "document" of GSM8K toy-split problems
with their worked answers (`toy_sources.gsm8k_toy`, never the held-out ids) and a question about
one of them. Each row also carries `gold` (a reference response, ignored by the product script) so
that tests and the toy's report can check a right answer earns 1 and a wrong one 0.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from cascade.data.messages import ToolCall
from cascade.data.tool_syntax import c1_call, c2_call
from data_prep import toy_sources as ts
from data_prep.c2_prompts import long_context_prompt

Row = dict[str, Any]
LETTERS = "ABCD"
MCQA_MAX_CHARS = 500  # question + options: keeps the toy prompts within ~200 SmolLM2 tokens
TOY_TOOLS = ("update_task", "send_email", "create_event")  # what tool_rows' gold calls use


# --- MCQA: MMLU validation + dev ----------------------------------------------------------------
def mcqa_rows(n: int) -> list[Row]:
    rows = []
    short = [r for r in ts.mmlu_toy() if len(r["question"]) + sum(map(len, r["choices"])) <= MCQA_MAX_CHARS]
    for r in ts.pick(short, n, "c2-mcqa"):
        letter = LETTERS[r["answer"]]
        rows.append({"question": r["question"], "options": r["choices"], "answer": letter,
                     "subject": r["subject"], "source": f"mmlu/{r['subject']}",
                     "gold": f"The correct option is ({letter}).\nAnswer: {letter}"})
    return rows


# --- structured output: flat objects described in the prompt -------------------------------------
_NAMES = ("Mara Quinn", "Tom Okafor", "Lena Berg", "Ravi Shah", "Ines Costa", "Jonah Reed", "Aiko Mori",
          "Sam Novak", "Priya Nair", "Omar Haddad", "Clara Wu", "Felix Lang")
_TITLES = ("The Silent Harbor", "Glass Orchard", "Northern Lights", "Paper Moons", "The Last Ferry",
           "Iron Meadow", "Blue Lantern", "Winter Garden", "Salt and Stone", "The Hollow Road")
_CITIES = ("Lisbon", "Oslo", "Nairobi", "Lima", "Osaka", "Denver", "Krakow", "Hanoi", "Perth", "Quito")
_ITEMS = ("desk lamp", "water bottle", "backpack", "notebook", "coffee mug", "headphones", "umbrella", "bike helmet")
Field = tuple[str, dict[str, Any], Callable[[random.Random], Any], str]  # key, schema, value draw, phrase
_KINDS: dict[str, tuple[Field, ...]] = {
    "book": (("title", {"type": "string"}, lambda g: g.choice(_TITLES), "titled '{v}'"),
             ("author", {"type": "string"}, lambda g: g.choice(_NAMES), "written by {v}"),
             ("year", {"type": "integer", "minimum": 1800}, lambda g: g.randint(1850, 2024), "published in {v}"),
             ("genre", {"type": "string", "enum": ["fiction", "history", "science", "poetry"]},
              lambda g: g.choice(["fiction", "history", "science", "poetry"]), "in the genre {v}")),
    "product": (("name", {"type": "string"}, lambda g: g.choice(_ITEMS), "called '{v}'"),
                ("price", {"type": "number", "minimum": 0}, lambda g: g.randint(3, 90) + 0.5, "costing {v} dollars"),
                ("in_stock", {"type": "boolean"}, lambda g: g.random() < 0.5, "in stock: {v}"),
                ("color", {"type": "string", "enum": ["red", "green", "blue", "black"]},
                 lambda g: g.choice(["red", "green", "blue", "black"]), "colored {v}")),
    "person": (("name", {"type": "string"}, lambda g: g.choice(_NAMES), "named {v}"),
               ("age", {"type": "integer", "minimum": 0}, lambda g: g.randint(18, 80), "aged {v}"),
               ("city", {"type": "string"}, lambda g: g.choice(_CITIES), "living in {v}"),
               ("role", {"type": "string", "enum": ["engineer", "teacher", "nurse", "chef"]},
                lambda g: g.choice(["engineer", "teacher", "nurse", "chef"]), "working as a {v}")),
    "trip": (("city", {"type": "string"}, lambda g: g.choice(_CITIES), "to {v}"),
             ("days", {"type": "integer", "minimum": 1}, lambda g: g.randint(2, 14), "lasting {v} days"),
             ("travelers", {"type": "integer", "minimum": 1}, lambda g: g.randint(1, 6), "for {v} travelers"),
             ("by_train", {"type": "boolean"}, lambda g: g.random() < 0.5, "by train: {v}")),
}


def _json_value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, bool) else str(v)


def structured_rows(n: int, seed: int = 0) -> list[Row]:
    """n distinct tasks: a 2-4 field object of one kind, every value given in the prompt."""
    rng, rows, seen = random.Random(f"toy-c2-structured-{seed}"), [], set()
    kinds = sorted(_KINDS)
    while len(rows) < n:
        kind = kinds[len(rows) % len(kinds)]
        fields = _KINDS[kind]
        k = rng.randint(2, len(fields))
        chosen = [fields[0]] + rng.sample(fields[1:], k - 1)
        chosen.sort(key=fields.index)
        if not any("enum" in f[1] or "minimum" in f[1] for f in chosen):
            continue  # every task has one or two constrained fields
        values = {key: draw(rng) for key, _, draw, _ in chosen}
        text = (f"Describe a {kind} " + ", ".join(ph.format(v=_json_value(values[key])) for key, _, _, ph in chosen)
                + ". Reply with only a JSON object with the keys " + ", ".join(f'"{key}"' for key, *_ in chosen) + ".")
        if text in seen:
            continue
        seen.add(text)
        schema = {"type": "object", "properties": {key: dict(s) for key, s, _, _ in chosen},
                  "required": [key for key, *_ in chosen], "additionalProperties": False}
        rows.append({"prompt": text, "schema": schema, "source": f"toy/structured/{kind}", "id": f"toy-structured-{len(rows)}",
                     "gold": json.dumps(values)})
    return rows


# --- workplace tool calling: one or two calls, every argument in the request --------------------
_STAFF = (("Ana Lima", "ana"), ("Raj Patel", "raj"), ("Li Wei", "li"), ("Sara Cohen", "sara"),
          ("Tom Berg", "tom"), ("Nia Okoye", "nia"), ("Ken Ito", "ken"), ("Eva Ruiz", "eva"))
_TASK_TITLES = ("Draft budget", "Fix login bug", "Update wiki", "Order laptops", "Plan offsite", "Review contract",
                "Clean backlog", "Prepare demo", "Write release notes", "Book venue")
_SUBJECTS = ("Budget", "Demo", "Offsite", "Release", "Contract", "Laptops")
_EVENT_TITLES = ("Design review", "Sprint planning", "Budget sync", "Team lunch", "Demo rehearsal", "One-on-one")


def _email(handle: str) -> str:
    return f"{handle}@corp.example"


def workplace_db(rng: random.Random) -> dict[str, Any]:
    staff = rng.sample(_STAFF, 4)
    titles = rng.sample(_TASK_TITLES, 3)
    employees = {f"emp-{i}": {"name": n, "email": _email(h), "department": rng.choice(["sales", "engineering", "ops"])}
                 for i, (n, h) in enumerate(staff, 1)}
    tasks = {f"task-{i}": {"title": t, "assignee": _email(rng.choice(staff)[1]), "status": rng.choice(["todo", "in_progress"]),
                           "due": f"2025-0{rng.randint(3, 9)}-{rng.randint(10, 28)}"} for i, t in enumerate(titles, 1)}
    return {"employees": employees, "events": {}, "emails": {}, "tasks": tasks}


def _one_task(rng: random.Random, db: dict[str, Any]) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    emails = [e["email"] for e in db["employees"].values()]
    tid = rng.choice(sorted(db["tasks"]))
    task = db["tasks"][tid]
    kind = rng.choice(["status", "assign", "email", "event"])
    if kind == "status":
        status = rng.choice([s for s in ("todo", "in_progress", "done") if s != task["status"]])
        return (f"Set the status of {tid} ('{task['title']}') to {status}.",
                [("update_task", {"task_id": tid, "status": status})])
    if kind == "assign":
        who = rng.choice([e for e in emails if e != task["assignee"]])
        return (f"Reassign {tid} ('{task['title']}') to {who}.", [("update_task", {"task_id": tid, "assignee": who})])
    if kind == "email":
        who, subject = rng.choice(emails), rng.choice(_SUBJECTS)
        body = f"Please check task {tid}."
        return (f"Send an email to {who} with the subject '{subject}' and the body '{body}'.",
                [("send_email", {"to": who, "subject": subject, "body": body})])
    people = sorted(rng.sample(emails, 2))
    day, hour, title = f"2025-04-{rng.randint(10, 28)}", rng.randint(9, 16), rng.choice(_EVENT_TITLES)
    start, end = f"{day}T{hour:02d}:00", f"{day}T{hour + 1:02d}:00"
    return (f"Create an event titled '{title}' from {start} to {end} with {people[0]} and {people[1]}.",
            [("create_event", {"title": title, "start": start, "end": end, "attendees": people})])


def tool_rows(n: int, seed: int = 0, syntax: str = "json") -> list[Row]:
    """n distinct workplace tasks on small databases; about one in four needs two calls."""
    rng, rows, seen = random.Random(f"toy-c2-tools-{seed}"), [], set()
    render = c2_call if syntax == "xml" else c1_call
    while len(rows) < n:
        db = workplace_db(rng)
        text, calls = _one_task(rng, db)
        if rng.random() < 0.25:
            text2, calls2 = _one_task(rng, db)
            if calls2[0][0] != calls[0][0] or calls2[0][1].get("task_id") != calls[0][1].get("task_id"):
                text, calls = f"{text} Then: {text2[0].lower()}{text2[1:]}", calls + calls2
        text += " Reply with only the <tool_call> block." if len(calls) == 1 else " Reply with only the <tool_call> blocks."
        key = text + json.dumps(db, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        gold = "\n".join(render(ToolCall(name, args)) for name, args in calls)
        rows.append({"prompt": text, "initial_state": db, "calls": [{"name": c, "arguments": a} for c, a in calls],
                     "source": "toy/workplace", "id": f"toy-tools-{len(rows)}", "gold": gold})
    return rows


# --- long-context QA: a document of GSM8K toy-split problems, a question about one ---------------
def _entry(i: int, r: Row) -> str:
    return f"Problem {i}: {r['question']}\nSolution: {r['solution']}\nFinal answer: {r['short_answer']}"


def _opening(question: str, words: int = 10) -> str:
    parts = question.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def long_context_rows(n: int, count: Callable[[str], int], min_tokens: int = 320, max_tokens: int = 660,
                      seed: int = 0) -> list[Row]:
    """n documents, each of GSM8K toy-split problems (each problem used once) grown until the
    prompt (`count`: tokens of the rendered prompt text) is within [min_tokens, max_tokens]."""
    rng = random.Random(f"toy-c2-lc-{seed}")
    pool = ts.pick(ts.gsm8k_toy(), 10 * n, f"c2-long-context-{seed}")
    rows: list[Row] = []
    while len(rows) < n and pool:
        picked: list[Row] = []
        doc = ""
        while pool:
            picked.append(pool.pop())
            doc = "\n\n".join(_entry(i, r) for i, r in enumerate(picked, 1))
            if count(long_context_prompt([doc], "x" * 80)) >= min_tokens:
                break
        j = rng.randrange(len(picked))
        target = picked[j]
        question = f"What is the final answer to Problem {j + 1}, the one that begins \"{_opening(target['question'])}\"?"
        if not min_tokens <= count(long_context_prompt([doc], question)) <= max_tokens:
            continue  # overshot with one long problem: its problems are spent, try the next ones
        rows.append({"documents": [doc], "question": question, "answer": target["short_answer"],
                     "source": "toy/gsm8k-long-context", "id": f"toy-lc-{len(rows)}",
                     "gold": f"Problem {j + 1} works it out: the final answer is {target['short_answer']}."})
    return rows
