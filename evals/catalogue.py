"""The one catalogue of evaluation sets, read by the benchmarks (`evals.benchmarks`) and by
decontamination (`data_prep.eval_sets`), so training data is cleaned against exactly the sets we
evaluate on, under the same names.

Every benchmark's registry name is a catalogue name (registration refuses any other). A set is
either in the offline cache (its texts for decontamination are read here) or a local download
(`download` names the `evals.data_files` entry; decontamination reads the same files). Old names
are accepted as aliases with a note on stderr. Importing this module is cheap: data is read only
when a set's texts are asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Texts = list[tuple[str, str]]  # (item id, text to decontaminate against)


@dataclass(frozen=True)
class EvalSet:
    name: str
    texts: Callable[[], Texts] | None = None  # offline sets: (id, text) per item
    download: str | None = None  # local sets: key in evals.data_files.DOWNLOADS
    benchmark: bool = True  # evals runs it (False: decontamination only)
    decontaminate_by_default: bool = True  # in data_prep's default --eval-sets (offline sets only)
    aliases: tuple[str, ...] = ()
    note: str = ""

    @property
    def offline(self) -> bool:
        return self.texts is not None


def _offline() -> Any:
    import cascade.offline as off  # lazy: the offline cache is read only when texts are asked for

    return off


def _rows(load: Callable[[Any], list[dict[str, Any]]], id_key: str, text: Callable[[dict[str, Any]], str]
          ) -> Callable[[], Texts]:
    return lambda: [(str(r[id_key]), text(r)) for r in load(_offline())]


def _mmlu_texts() -> Texts:
    seen: dict[str, int] = {}
    out = []
    for r in _offline().mmlu("test"):  # ids as evals.benchmarks.knowledge numbers them: subject/index
        n = seen[r["subject"]] = seen.get(r["subject"], -1) + 1
        out.append((f"{r['subject']}/{n}", r["question"] + "\n" + "\n".join(r["choices"])))
    return out


_SETS = (
    EvalSet("gsm8k", _rows(lambda o: o.gsm8k_test(), "id", lambda r: r["question"])),
    EvalSet("math500", _rows(lambda o: o.math500(), "id", lambda r: r["problem"]), decontaminate_by_default=False,
            note="a subset of `math`, which the default decontaminates against"),
    EvalSet("math", _rows(lambda o: o.math_test_full(), "id", lambda r: r["problem"]), benchmark=False,
            note="the full MATH test set (5,000 problems, MATH-500 included)"),
    EvalSet("aime24", _rows(lambda o: o.aime(2024), "id", lambda r: r["problem"]), aliases=("aime2024",)),
    EvalSet("aime25", _rows(lambda o: o.aime(2025), "id", lambda r: r["problem"]), aliases=("aime2025",),
            note="offline: AIME 2025-I only"),
    EvalSet("humaneval", _rows(lambda o: o.humaneval(), "task_id", lambda r: r["prompt"])),
    EvalSet("mbpp", _rows(lambda o: o.mbpp(), "task_id", lambda r: r["text"] + "\n" + r["code"])),
    EvalSet("lcb_v5", download="livecodebench"),
    EvalSet("lcb_v6", download="livecodebench", aliases=("livecodebench",),
            note="LiveCodeBench release v6 holds the problems of both windows (v5 and v6)"),
    EvalSet("mmlu", _mmlu_texts),
    EvalSet("mmlu_pro", download="mmlu_pro"),
    EvalSet("gpqa_diamond", download="gpqa", aliases=("gpqa",)),
    EvalSet("arena_hard", download="arena_hard"),
    EvalSet("ifeval", download="ifeval"),
    EvalSet("ifbench", _rows(lambda o: o.ifbench(), "key", lambda r: r["prompt"])),
    EvalSet("swe_bench_verified", download="swe_bench_verified", aliases=("swebench_verified",)),
    *(EvalSet(f"lcb_pro_{q}_{d}", download="lcb_pro", note="LiveCodeBench Pro: one local file, all quarters")
      for q in ("25q1", "25q2") for d in ("easy", "med")),
    EvalSet("bfcl_v3", download="bfcl",
            note="BFCL V3 non-live AST categories (simple, multiple, parallel, parallel_multiple)"),
)
CATALOGUE: dict[str, EvalSet] = {s.name: s for s in _SETS}
ALIASES: dict[str, str] = {a: s.name for s in _SETS for a in s.aliases}
_noted: set[str] = set()


def canonical_name(name: str) -> str:
    """The catalogue name for `name` (an old alias is translated, with a note on stderr once);
    a name the catalogue does not know is returned unchanged."""
    new = ALIASES.get(name)
    if new is None:
        return name
    if name not in _noted:
        _noted.add(name)
        print(f"note: eval set {name!r} is now called {new!r} (the name evals uses); "
              f"please use {new!r}", file=sys.stderr)
    return new


def get_eval_set(name: str) -> EvalSet:
    """The catalogue entry for `name` or an alias; KeyError listing the known names."""
    try:
        return CATALOGUE[canonical_name(name)]
    except KeyError:
        raise KeyError(f"unknown eval set {name!r}; known: {', '.join(CATALOGUE)}") from None


def offline_sets() -> tuple[str, ...]:
    return tuple(s.name for s in _SETS if s.offline)


def default_decontamination_sets() -> tuple[str, ...]:
    """The offline sets data_prep decontaminates against unless told otherwise."""
    return tuple(s.name for s in _SETS if s.offline and s.decontaminate_by_default)


def benchmark_set_names() -> tuple[str, ...]:
    """Every name a benchmark may be registered under."""
    return tuple(s.name for s in _SETS if s.benchmark)
