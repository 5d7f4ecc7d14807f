"""Local files for the benchmarks the offline cache does not carry, and how to get them once.

On a cluster, a user downloads these once into `$CASCADE_EVAL_DATA` (default `<repo>/.cache/evals`);
nothing is fetched at evaluation time. The commands below are also in evals/README.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cascade.config.errors import UserError

ENV_VAR = "CASCADE_EVAL_DATA"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Download:
    subdir: str
    what: str
    command: str


DOWNLOADS = {
    "livecodebench": Download(
        "livecodebench", "LiveCodeBench code_generation_lite (test*.jsonl, release v6)",
        "hf download livecodebench/code_generation_lite --repo-type dataset --local-dir $CASCADE_EVAL_DATA/livecodebench",
    ),
    "gpqa": Download(
        "gpqa", "GPQA Diamond (gpqa_diamond.csv; gated: accept the terms on the Hub first)",
        "hf download Idavidrein/gpqa gpqa_diamond.csv --repo-type dataset --local-dir $CASCADE_EVAL_DATA/gpqa",
    ),
    "mmlu_pro": Download(
        "mmlu_pro", "MMLU-Pro test split (parquet)",
        "hf download TIGER-Lab/MMLU-Pro --repo-type dataset --local-dir $CASCADE_EVAL_DATA/mmlu_pro",
    ),
    "ifeval": Download(
        "ifeval", "IFEval prompts (ifeval_input_data.jsonl, 541 prompts)",
        "hf download google/IFEval --repo-type dataset --local-dir $CASCADE_EVAL_DATA/ifeval",
    ),
    "arena_hard": Download(
        "arena_hard", "ArenaHard v0.1 questions and the gpt-4-0314 baseline answers",
        "git clone --depth 1 https://github.com/lmarena/arena-hard-auto /tmp/arena-hard-auto && mkdir -p "
        "$CASCADE_EVAL_DATA/arena_hard && cp /tmp/arena-hard-auto/data/arena-hard-v0.1/question.jsonl "
        "/tmp/arena-hard-auto/data/arena-hard-v0.1/model_answer/gpt-4-0314.jsonl $CASCADE_EVAL_DATA/arena_hard/",
    ),
    "swe_bench_verified": Download(
        "swe_bench_verified", "SWE-bench Verified (500 instances; optional oracle-context prompts under text/)",
        "hf download princeton-nlp/SWE-bench_Verified --repo-type dataset --local-dir "
        "$CASCADE_EVAL_DATA/swe_bench_verified  # then, for prompts with code context: python -m "
        "swebench.inference.make_datasets.create_text_dataset --dataset_name_or_path princeton-nlp/SWE-bench_Verified "
        "--splits test --file_source oracle --prompt_style style-3 --output_dir $CASCADE_EVAL_DATA/swe_bench_verified/text",
    ),
    "aime25_full": Download(
        "aime25", "AIME 2025 I+II (optional; offline we have AIME 2025-I only): aime25.jsonl with id, problem, answer",
        "hf download opencompass/AIME2025 --repo-type dataset --local-dir /tmp/aime25 && python -c \"import json,glob;"
        "rows=[json.loads(l) for f in sorted(glob.glob('/tmp/aime25/*.jsonl')) for l in open(f)];"
        "open('$CASCADE_EVAL_DATA/aime25/aime25.jsonl','w').writelines(json.dumps({'id':f'AIME2025-{i}',"
        "'problem':r['question'],'answer':str(r['answer'])})+'\\n' for i,r in enumerate(rows))\"",
    ),
    "lcb_pro": Download(
        "lcb_pro", "LiveCodeBench Pro problems WITH tests (the public release may have statements only): "
        "*.jsonl / *.parquet, one row per problem: id, quarter (25q1|25q2), difficulty (easy|medium|hard), "
        "problem_statement, time_limit_s, memory_limit_mb, tests [{input, output}]",
        "mkdir -p $CASCADE_EVAL_DATA/lcb_pro  # then write problems.jsonl in the layout above from a copy that has "
        "the tests (no public download of the tests is known to us; see evals/README.md)",
    ),
    "bfcl": Download(
        "bfcl", "BFCL V3 question files (BFCL_v3_{simple,multiple,parallel,parallel_multiple}.json) and "
        "possible_answer/ (the same names)",
        "hf download gorilla-llm/Berkeley-Function-Calling-Leaderboard --repo-type dataset "
        "--local-dir $CASCADE_EVAL_DATA/bfcl",
    ),
}


class EvalDataMissing(FileNotFoundError):
    """A benchmark's local files are absent; the message says how to download them once."""


class EvalDataError(UserError, ValueError):
    """A downloaded file is malformed: one line naming the file and row (a CLI prints it, exit 2)."""


def eval_data_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".cache" / "evals"


def data_dir(key: str) -> Path:
    """The directory of one download (may not exist)."""
    return eval_data_dir() / DOWNLOADS[key].subdir


def require_files(key: str, pattern: str) -> list[Path]:
    """Files matching `pattern` (a glob, recursive with **) under the download's directory, or
    EvalDataMissing naming the directory and the one-time command."""
    d = data_dir(key)
    found = sorted(p for p in d.glob(pattern) if p.is_file()) if d.is_dir() else []
    if not found:
        dl = DOWNLOADS[key]
        raise EvalDataMissing(
            f"{dl.what}: no {pattern} under {d}. Download it once (${ENV_VAR} = {eval_data_dir()}):\n  {dl.command}"
        )
    return found
