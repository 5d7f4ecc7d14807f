"""Math benchmarks from the offline cache: GSM8K test, MATH (full test, MATH-500, the 4500-problem
train pool) and AIME 2024 / 2025-I. Plain dicts, file order, deduplicated.

Caveats (found when these files were checked): OLMo's Minerva-normalised MATH `answer` is sometimes
broken (e.g. `\\left(` -> `\\le(`), so gold is the last `\\boxed{}` of the solution; GSM8K gold is
`short_answer` (== the number after `####`).
"""

from __future__ import annotations

import re
from typing import Any

from cascade.offline import paths
from cascade.offline._io import oe_docs, read_json

MATH_SUBJECTS = {  # file slug -> the subject name MATH uses (`type`)
    "algebra": "Algebra",
    "counting_and_probability": "Counting & Probability",
    "geometry": "Geometry",
    "intermediate_algebra": "Intermediate Algebra",
    "number_theory": "Number Theory",
    "prealgebra": "Prealgebra",
    "precalculus": "Precalculus",
}
AIME_SOURCES = {2024: "AIME2024", 2025: "AIME2025"}  # MMATH has AIME 2025 I only (15 problems)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed x`) in `text`, braces matched."""
    starts = [m.start() for m in re.finditer(r"\\(?:boxed|fbox)\b", text)]
    for start in reversed(starts):
        i = text.index("\\", start) + (6 if text.startswith("\\boxed", start) else 5)
        if i < len(text) and text[i] == " ":  # `\boxed 5` form: up to whitespace or `$`
            m = re.match(r" +([^\s$]+)", text[i:])
            if m:
                return m.group(1)
            continue
        while i < len(text) and text[i] in " \t":
            i += 1
        if i >= len(text) or text[i] != "{":
            continue
        depth, j = 0, i
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j]
            j += 1
    return None


_CALC = re.compile(r"<<[^>]*>>")


def gsm8k_test() -> list[dict[str, Any]]:
    """GSM8K test (1319): id, question, answer (original, with `<<calc>>` and `#### N`),
    short_answer (gold number, thousands separators removed: "2,125" -> "2125"), solution (the
    reasoning without calculator annotations or the #### line)."""
    out = []
    for d in oe_docs("gsm8k", "gold_bpb_5shot", "GSM8K test"):
        reasoning = d["answer"].split("####")[0]
        out.append({
            "id": str(d["id"]),
            "question": d["question"],
            "answer": d["answer"],
            "short_answer": str(d["short_answer"]).replace(",", "").strip(),
            "solution": _CALC.sub("", reasoning).strip(),
        })
    return out


def _math_item(d: dict[str, Any], subject_slug: str, level: int | None) -> dict[str, Any]:
    gold = last_boxed(d["solution"])
    if gold is None:
        raise ValueError(f"MATH {subject_slug}/{d['index']}: solution has no \\boxed{{}}")
    return {
        "id": f"{subject_slug}/{d['index']}",
        "problem": d["problem"],
        "solution": d["solution"],
        "answer": gold,
        "subject": MATH_SUBJECTS.get(subject_slug),
        "level": level,
    }


def _level(value: object) -> int | None:
    m = re.search(r"\d+", str(value))
    return int(m.group()) if m else None


def _subject_slug(subject: str) -> str:
    for slug, name in MATH_SUBJECTS.items():
        if subject in (slug, name):
            return slug
    raise ValueError(f"unknown MATH subject {subject!r}; one of {sorted(MATH_SUBJECTS)}")


def math_test_full(subject: str | None = None) -> list[dict[str, Any]]:
    """The MATH test set (5000; 7 subjects, `subject` filters by slug or name): id, problem,
    solution, answer (last box), subject, level (int)."""
    slugs = [_subject_slug(subject)] if subject else list(MATH_SUBJECTS)
    out = []
    for slug in slugs:
        for d in oe_docs(f"minerva_math_{slug}", "gold_bpb_0shot", f"MATH test ({slug})"):
            out.append(_math_item(d, slug, _level(d["level"])))
    return out


def _norm(problem: str) -> str:
    return " ".join(problem.split())


def math500() -> list[dict[str, Any]]:
    """MATH-500 (500; the HuggingFaceH4 set): id, problem, solution, answer (last box of the
    solution, not OLMo's normalised answer), subject (recovered from the full test), level."""
    subject_of = {_norm(m["problem"]): m["subject"] for m in math_test_full()}
    out = []
    for d in oe_docs("minerva_math_500", "gold_bpb_0shot", "MATH-500"):
        item = _math_item(d, "math500", _level(d["level"]))
        item["subject"] = subject_of.get(_norm(d["problem"]))
        out.append(item)
    return out


def math_train_pool() -> list[dict[str, Any]]:
    """MATH test minus MATH-500 (4500, the PRM800K 'train' split): an RL/SFT pool disjoint from
    the MATH-500 eval set (matched on whitespace-normalised problem text)."""
    held_out = {_norm(m["problem"]) for m in math500()}
    return [m for m in math_test_full() if _norm(m["problem"]) not in held_out]


def aime(year: int, lang: str = "en") -> list[dict[str, Any]]:
    """AIME problems from MMATH: 2024 (I+II, 30) or 2025 (I only, 15): id, problem, answer (str),
    source, lang. `lang` picks one of MMATH's ten translations (en is the original)."""
    if year not in AIME_SOURCES:
        raise ValueError(f"AIME {year} is not in the offline data; available: {sorted(AIME_SOURCES)}")
    items = read_json(paths.require(f"{paths.MMATH_DIR}/{lang}.json", f"MMATH ({lang})"))
    src = AIME_SOURCES[year]
    return [
        {"id": f"{src}-{x['data_source_id']}", "problem": x["question"], "answer": str(x["answer"]),
         "source": src, "lang": x.get("lang", lang)}
        for x in items
        if x["data_source"] == src
    ]
