"""Benchmark registry: name -> BenchmarkSpec. Built-in benchmark modules register on import;
they are imported on first lookup so `evals.benchmarks` stays cheap to import. A benchmark is
registered only under its name in `evals.catalogue`, the list decontamination reads too."""

from __future__ import annotations

import importlib

from evals.catalogue import CATALOGUE, benchmark_set_names
from evals.spec import BenchmarkSpec

_REGISTRY: dict[str, BenchmarkSpec] = {}
_BUILTIN_MODULES = (
    "evals.benchmarks.math",
    "evals.benchmarks.code",
    "evals.benchmarks.knowledge",
    "evals.benchmarks.instruction",
    "evals.benchmarks.arena",
    "evals.benchmarks.swe",
    "evals.benchmarks.lcb_pro",
    "evals.benchmarks.bfcl",
)
_loaded = False


def register_benchmark(spec: BenchmarkSpec) -> BenchmarkSpec:
    """Add `spec`; its name must be a benchmark in the eval-set catalogue, offline there iff here."""
    if spec.name not in benchmark_set_names():
        raise ValueError(f"benchmark {spec.name!r} is not in evals/catalogue.py; add it there so that "
                         f"data_prep decontaminates against it (benchmarks: {', '.join(benchmark_set_names())})")
    if spec.offline != CATALOGUE[spec.name].offline:
        raise ValueError(f"benchmark {spec.name!r}: offline={spec.offline} but the catalogue says "
                         f"offline={CATALOGUE[spec.name].offline}")
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"benchmark {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for name in _BUILTIN_MODULES:
            importlib.import_module(name)
        _loaded = True


def get_benchmark(name: str) -> BenchmarkSpec:
    """The benchmark registered as `name`; KeyError naming the known ones."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(benchmark_names())}") from None


def benchmark_names() -> list[str]:
    """Every registered benchmark, in registration (report row) order."""
    _load_builtins()
    return list(_REGISTRY)
