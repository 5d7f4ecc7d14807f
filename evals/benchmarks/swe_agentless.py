"""SWE-bench under C1's Agentless-style protocol (C1 §3.3.1, §7.1, App. B): localization ->
repair in SEARCH/REPLACE form -> regression and reproduction tests -> majority vote.

Why its own pipeline: a one-shot diff is not what the paper evaluates nor what SWE RL trains. Here
the policy answers in the format SWE RL trains on (data_prep.swe_prompts' repair prompt; edits
parsed and applied by cascade.rewards.swe.patch, the reward's own parser), and the chosen edit
becomes the unified diff the `swebench` harness (Docker) or a local test run judges.

Per instance, on a git checkout at its base commit:
1. localization: ``localization_samples`` (16, §7.1) sampled file lists, ranked by frequency, fused
   by reciprocal rank fusion (k = 0, §7.1) with a retrieval ranking; C1 retrieves with NV-Embed-Code,
   which needs a served embedding model: ``retrieve`` is pluggable, the default is BM25 over file
   contents (our deviation, named in the result);
2. repair: ``repair_samples`` candidate SEARCH/REPLACE answers on the top ``top_files`` files;
3. validation: each applicable candidate runs the regression tests and the generated reproduction
   tests (``reproduction_samples`` = 10 per issue, §3.3.1; those that do not fail on the original
   code are discarded);
4. selection: most regression tests passed, then most reproduction tests passed, then majority
   vote over identical changes, then the shortest patch (§3.3.1 ties: shorter generation).
Tests run in subprocesses on temporary copies of the checkout: model-written code, so run this on
a machine you would run untrusted code on (the swebench harness isolates with Docker). Regression
tests are pytest node ids (SWE-bench's PASS_TO_PASS for pytest repositories; django's test ids
need their own runner: not handled). The localization and reproduction prompts are our wording of
what C1 describes; the repair prompt is the one SWE RL trains on.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cascade.rewards.swe.patch import (
    PatchFormatError,
    apply_search_replace,
    changed_files,
    parse_search_replace,
    solution_text,
    unified_diff,
)
from cascade.rewards.text import split_thinking
from data_prep.swe_prompts import FILE_BLOCK, PROMPT_HEAD, PROMPT_TAIL

Generate = Callable[[Sequence[str], int], list[list[str]]]  # prompts, n -> n responses per prompt
Retrieve = Callable[[str, dict[str, str]], list[str]]  # issue, {path: content} -> ranked paths

LOCALIZE_PROMPT = (
    "Please look through the following GitHub problem description and the repository structure and provide "
    "a list of files that one would need to edit to fix the problem.\n\n### GitHub Problem Description ###\n"
    "{issue}\n\n###\n\n### Repository Structure ###\n{files}\n\n###\n\nPlease only provide the full path and "
    "return at most 5 files, ordered by importance, one per line, wrapped in ```."
)
REPRO_PROMPT = (
    "We are currently solving the following issue within our repository. Here is the issue text:\n"
    "--- BEGIN ISSUE ---\n{issue}\n--- END ISSUE ---\n\nBelow are the relevant files.\n\n{files}"
    "Please write one pytest test file that reproduces the issue: it must fail on the current code and pass "
    "once the issue is fixed. Put the whole file in a single ```python code block."
)


@dataclass(frozen=True)
class AgentlessConfig:
    localization_samples: int = 16  # §7.1: 16 localization rollouts, aggregated by frequency
    rrf_k: float = 0.0  # §7.1: reciprocal rank fusion with k = 0
    top_files: int = 4  # §4.7: top-k (k >= 4) localized files in the repair prompt
    repair_samples: int = 8  # candidates per instance: NOT FOUND in C1; our choice
    reproduction_samples: int = 10  # §3.3.1: ~10 reproduction tests per issue
    test_timeout_s: float = 300.0  # one pytest run: NOT FOUND; our choice


@dataclass(frozen=True)
class Instance:
    instance_id: str
    repo_dir: Path  # a git checkout at the base commit
    issue: str
    regression_tests: tuple[str, ...]  # pytest node ids that pass before the fix (PASS_TO_PASS)


@dataclass
class Candidate:
    response: str
    patch: str = ""  # unified diff ("" when the edits could not be parsed or applied)
    error: str = ""
    regression_passed: int = 0
    reproduction_passed: int = 0
    key: str = ""  # the normalised change, for the vote


@dataclass
class AgentlessResult:
    instance_id: str
    patch: str  # the selected unified diff ("" if no candidate applied)
    localized: list[str]
    candidates: list[Candidate]
    reproduction_tests: list[str]  # kept: they fail on the original code
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- repository


def repo_files(repo: Path) -> dict[str, str]:
    """{path: content} of the tracked Python files at the checkout."""
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "*.py"], capture_output=True, text=True, check=True)
    return {p: (repo / p).read_text(errors="replace") for p in out.stdout.split()}


def run_pytest(repo: Path, args: Sequence[str], timeout_s: float) -> dict[str, bool]:
    """{node id: passed} of the tests one pytest run executed (``-rA`` summary lines); a file that
    could not be collected and a test whose set-up errored are absent; {} if pytest could not run."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "--continue-on-collection-errors",
           *args]
    try:
        proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {}
    results: dict[str, bool] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^(PASSED|FAILED) (\S+)", line)
        if m:
            results[m.group(2)] = m.group(1) == "PASSED"
    return results


def _patched_copy(repo: Path, new_files: dict[str, str], extra: dict[str, str], into: Path) -> Path:
    dst = into / "repo"
    shutil.copytree(repo, dst, ignore=shutil.ignore_patterns(".git"))
    for rel, content in {**new_files, **extra}.items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_text(content)
    return dst


# ---------------------------------------------------------------------------------------- localization


def _tokens(text: str) -> list[str]:
    return [t.lower() for t in re.findall(r"[A-Za-z_][A-Za-z0-9_]+", text)]


def bm25_rank(issue: str, files: dict[str, str], k1: float = 1.5, b: float = 0.75) -> list[str]:
    """Files ranked by BM25 of the issue's words against path + content (the default retrieval)."""
    docs = {p: _tokens(p + "\n" + c) for p, c in files.items()}
    if not docs:
        return []
    avg = sum(len(d) for d in docs.values()) / len(docs) or 1.0
    df = Counter(t for d in docs.values() for t in set(d))
    query = set(_tokens(issue))
    scores = {}
    for p, d in docs.items():
        tf = Counter(d)
        scores[p] = sum(math.log(1 + (len(docs) - df[t] + 0.5) / (df[t] + 0.5)) * tf[t] * (k1 + 1)
                        / (tf[t] + k1 * (1 - b + b * len(d) / avg)) for t in query if tf[t])
    return sorted(scores, key=lambda p: (-scores[p], p))


def parse_file_list(response: str, known: set[str]) -> list[str]:
    """Known repository paths named in the answer, in order, without repeats."""
    answer = split_thinking(response).answer or ""
    out: list[str] = []
    for token in re.findall(r"[\w./-]+\.py", answer):
        path = token.strip("`'\"")
        if path in known and path not in out:
            out.append(path)
    return out


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: float = 0.0) -> list[str]:
    """sum over rankings of 1 / (k + rank), ranks from 1; ties keep first appearance."""
    score: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            score[item] = score.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(score, key=lambda x: -score[x])


def localize(inst: Instance, files: dict[str, str], generate: Generate, cfg: AgentlessConfig,
             retrieve: Retrieve = bm25_rank) -> list[str]:
    prompt = LOCALIZE_PROMPT.format(issue=inst.issue.strip(), files="\n".join(sorted(files)))
    answers = generate([prompt], cfg.localization_samples)[0]
    votes = Counter(p for a in answers for p in parse_file_list(a, set(files)))
    by_frequency = sorted(votes, key=lambda p: -votes[p])
    return reciprocal_rank_fusion([by_frequency, retrieve(inst.issue, files)], cfg.rrf_k)[: cfg.top_files]


# ---------------------------------------------------------------------------------------- repair, tests, vote


def repair_prompt(issue: str, files: dict[str, str]) -> str:
    """The SWE RL repair prompt (data_prep.swe_prompts): the format the policy was trained on."""
    return (PROMPT_HEAD.format(issue=issue.strip())
            + "".join(FILE_BLOCK.format(path=p, content=c) for p, c in files.items()) + PROMPT_TAIL)


def to_candidate(response: str, context: dict[str, str]) -> Candidate:
    """A SEARCH/REPLACE answer (as SWE RL trains) -> new file contents -> unified diff."""
    cand = Candidate(response)
    try:
        edits = parse_search_replace(solution_text(response))
        if not edits:
            raise PatchFormatError("no SEARCH/REPLACE edit")
        new = apply_search_replace(context, edits)
    except PatchFormatError as e:
        cand.error = str(e)
        return cand
    cand.patch = unified_diff(context, new)
    cand.key = "\n".join(f"{p}\n{d}" for p, d in sorted(changed_files(context, new).items()))
    if not cand.patch:
        cand.error = "the edits change nothing"
    return cand


def _python_block(response: str) -> str:
    blocks = re.findall(r"```python[^\n]*\n(.*?)```", split_thinking(response).answer or "", re.DOTALL)
    return blocks[-1] if blocks else ""


def reproduction_tests(inst: Instance, context: dict[str, str], generate: Generate,
                       cfg: AgentlessConfig) -> list[str]:
    """Generated tests that fail on the original code (the others do not trigger the bug)."""
    shown = "".join(FILE_BLOCK.format(path=p, content=c) for p, c in context.items())
    answers = generate([REPRO_PROMPT.format(issue=inst.issue.strip(), files=shown)], cfg.reproduction_samples)[0]
    tests = {_repro_name(i): code for i, code in enumerate(c for c in map(_python_block, answers) if c)}
    if not tests:
        return []
    with tempfile.TemporaryDirectory() as tmp:  # one run: a file that does not even collect just drops out
        results = run_pytest(_patched_copy(inst.repo_dir, {}, tests, Path(tmp)), list(tests), cfg.test_timeout_s)
    return [code for name, code in tests.items() if _file_results(results, name).count(False)]


def _repro_name(i: int) -> str:
    return f"test_cascade_repro_{i}.py"


def _file_results(results: dict[str, bool], file: str) -> list[bool]:
    return [ok for node, ok in results.items() if node.split("::", 1)[0] == file]


def validate(cand: Candidate, inst: Instance, context: dict[str, str], tests: list[str],
             cfg: AgentlessConfig) -> None:
    """Regression and reproduction tests on a copy of the checkout with the candidate applied."""
    new = apply_search_replace(context, parse_search_replace(solution_text(cand.response)))
    extra = {_repro_name(i): code for i, code in enumerate(tests)}
    with tempfile.TemporaryDirectory() as tmp:  # one pytest run for both kinds
        repo = _patched_copy(inst.repo_dir, new, extra, Path(tmp))
        res = run_pytest(repo, [*inst.regression_tests, *extra], cfg.test_timeout_s)
    cand.regression_passed = sum(res.get(t, False) for t in inst.regression_tests)
    cand.reproduction_passed = sum(bool(r) and all(r) for r in (_file_results(res, n) for n in extra))


def select(candidates: Sequence[Candidate]) -> Candidate | None:
    """Best regression, then reproduction tests; then the most frequent change; then the shortest."""
    ok = [c for c in candidates if c.patch]
    if not ok:
        return None
    best = max((c.regression_passed, c.reproduction_passed) for c in ok)
    tier = [c for c in ok if (c.regression_passed, c.reproduction_passed) == best]
    votes = Counter(c.key for c in tier)
    return min(tier, key=lambda c: (-votes[c.key], len(c.patch)))


def run_agentless(inst: Instance, generate: Generate, cfg: AgentlessConfig | None = None,
                  retrieve: Retrieve = bm25_rank) -> AgentlessResult:
    """The whole pipeline for one instance; the result's ``patch`` goes to the harness."""
    cfg = cfg or AgentlessConfig()
    files = repo_files(inst.repo_dir)
    localized = localize(inst, files, generate, cfg, retrieve)
    context = {p: files[p] for p in localized}
    answers = generate([repair_prompt(inst.issue, context)], cfg.repair_samples)[0]
    candidates = [to_candidate(a, context) for a in answers]
    tests = reproduction_tests(inst, context, generate, cfg)
    for cand in candidates:
        if cand.patch:
            validate(cand, inst, context, tests, cfg)
    chosen = select(candidates)
    notes = [] if retrieve is not bm25_rank else ["retrieval: BM25 (C1 uses NV-Embed-Code)"]
    return AgentlessResult(inst.instance_id, chosen.patch if chosen else "", localized, candidates, tests, notes)


# ---------------------------------------------------------------------------------------- a real policy, CLI


def generator_policy(generator: object, *, max_new_tokens: int = 32768, temperature: float = 0.6,
                     top_p: float = 0.95, seed: int = 0, template: str = "cascade1") -> Generate:
    """``Generate`` over a cascade Generator (vLLM or transformers): C1 chat template in thinking
    mode, T 0.6, top-p 0.95, 32K thinking budget (C1 App. B for SWE-bench Verified)."""
    from cascade.data.chat_template import render_generation_prompt
    from cascade.generation import SamplingParams

    calls = [0]

    def generate(prompts: Sequence[str], n: int) -> list[list[str]]:
        calls[0] += 1
        rendered = [render_generation_prompt([{"role": "user", "content": p}], variant=template, mode="thinking")
                    for p in prompts]
        params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                seed=seed * 1000 + calls[0])
        return [[s.text for s in out.samples] for out in generator.generate(rendered, params)]  # type: ignore[attr-defined]

    return generate


def main(argv: Sequence[str] | None = None) -> int:
    """Predictions for the swebench harness: one Agentless run per instance over local checkouts."""
    import argparse
    import json

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", required=True, help="SWE-bench JSONL (instance_id, problem_statement, PASS_TO_PASS)")
    p.add_argument("--repos", required=True, help="DIR/<instance_id>/: git checkouts at each base commit")
    p.add_argument("--model", required=True, help="local HF model directory")
    p.add_argument("--backend", default="vllm", choices=["vllm", "transformers"])
    p.add_argument("--out", required=True, help="predictions JSONL for swebench.harness.run_evaluation")
    p.add_argument("--max-new-tokens", type=int, default=32768)  # C1 App. B: 32K thinking budget
    p.add_argument("--rope-factor", type=float, default=2.0, help="YaRN factor (C1 App. B: 8B 2, 14B 3)")
    a = p.parse_args(argv)
    from cascade.config.schema.common import RopeScaling
    from cascade.generation import GeneratorConfig, build_generator

    rope = RopeScaling(factor=a.rope_factor, original_max_position_embeddings=32768)
    gen = build_generator(GeneratorConfig(model_path=a.model, backend=a.backend, rope_scaling=rope,
                                          max_model_len=int(32768 * a.rope_factor)))
    policy = generator_policy(gen, max_new_tokens=a.max_new_tokens)
    with open(a.out, "w") as out:
        for line in Path(a.instances).read_text().splitlines():
            row = json.loads(line)
            p2p = row.get("PASS_TO_PASS") or []
            inst = Instance(row["instance_id"], Path(a.repos) / row["instance_id"], row["problem_statement"],
                            tuple(json.loads(p2p) if isinstance(p2p, str) else p2p))
            res = run_agentless(inst, policy)
            out.write(json.dumps({"instance_id": inst.instance_id, "model_name_or_path": "cascade-agentless",
                                  "model_patch": res.patch}) + "\n")
            out.flush()
    gen.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
