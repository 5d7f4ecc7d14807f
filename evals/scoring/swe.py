"""SWE-bench Verified through the official `swebench` harness (Docker), where Docker exists.

Each response's patch (the last ```diff block of the answer, or its `diff --git` tail) becomes a
prediction; the harness applies it in the instance's container and runs FAIL_TO_PASS/PASS_TO_PASS.
Samples of the same instance go to separate harness runs (a predictions file holds one patch per
instance). The run id hashes the predictions, so a rerun reuses the harness's finished reports.
Without Docker or swebench the scorer is unavailable and the benchmark is skipped, saying why.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence

from cascade.rewards.swe.patch import (
    PatchFormatError,
    apply_search_replace,
    parse_search_replace,
    solution_text,
    unified_diff,
)
from cascade.rewards.text import split_thinking
from evals.scoring import ScoreResult, ScorerUnavailable, ScoringContext, register_scorer
from evals.spec import EvalItem

MODEL_NAME = "cascade"
_DIFF_BLOCK = re.compile(r"```(?:diff|patch)[^\n]*\n(.*?)```", re.DOTALL)


def extract_patch(response: str, files: dict[str, str] | None = None) -> str:
    """The unified diff a response proposes ("" if none). Given the files the prompt showed, SEARCH/
    REPLACE edits (what SWE RL trains, C1 §4.7) are applied to them and turned into a unified diff."""
    answer = split_thinking(response).answer or ""
    blocks = _DIFF_BLOCK.findall(answer)
    if blocks and not (files and "<<<<<<< SEARCH" in blocks[-1]):
        patch = blocks[-1]
    elif "diff --git" in answer:
        patch = answer[answer.index("diff --git"):]
    elif files:
        return _search_replace_patch(response, files)
    else:
        return ""
    return patch.strip("\n") + "\n"


def _search_replace_patch(response: str, files: dict[str, str]) -> str:
    try:
        new = apply_search_replace(files, parse_search_replace(solution_text(response)))
    except PatchFormatError:
        return ""
    return unified_diff(files, new)


def swe_unavailable_reason() -> str | None:
    """Why the harness cannot run here, or None."""
    if importlib.util.find_spec("swebench") is None:
        return "the swebench harness is not installed (pip install swebench==5.0.2)"
    docker = shutil.which("docker")
    if docker is None:
        return "docker is not installed"
    try:
        ok = subprocess.run([docker, "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return None if ok else "the docker daemon is not reachable (`docker info` failed)"


@register_scorer("swe")
class SweBenchHarness:
    def __init__(self, ctx: ScoringContext) -> None:
        reason = swe_unavailable_reason()
        if reason:
            raise ScorerUnavailable(f"SWE-bench Verified needs Docker and the official harness: {reason}")
        self.cfg = ctx.config.swe
        self.work = ctx.work_dir / "swebench"
        self.work.mkdir(parents=True, exist_ok=True)

    def _run(self, items: list[EvalItem], patches: list[str]) -> dict[str, bool]:
        preds = [{"instance_id": it.id, "model_name_or_path": MODEL_NAME, "model_patch": p}
                 for it, p in zip(items, patches)]
        digest = hashlib.sha256(json.dumps(preds, sort_keys=True).encode()).hexdigest()[:16]
        run_id = f"cascade-{digest}"
        dataset = self.work / f"{run_id}.dataset.json"
        dataset.write_text(json.dumps([it.reference["instance"] for it in items]))
        pred_file = self.work / f"{run_id}.predictions.jsonl"
        pred_file.write_text("".join(json.dumps(p) + "\n" for p in preds))
        cmd = [sys.executable, "-m", "swebench.harness.run_evaluation", "--dataset_name", str(dataset),
               "--predictions_path", str(pred_file), "--run_id", run_id, "--max_workers",
               str(self.cfg.max_workers), "--timeout", str(self.cfg.timeout_s), "--namespace", self.cfg.namespace,
               "--report_dir", str(self.work)]
        subprocess.run(cmd, cwd=self.work, check=False)
        resolved = {}
        for it in items:
            report = self.work / "logs" / "run_evaluation" / run_id / MODEL_NAME / it.id / "report.json"
            if report.is_file():
                resolved[it.id] = bool(json.loads(report.read_text()).get(it.id, {}).get("resolved", False))
        return resolved

    def score(self, items: Sequence[EvalItem], responses: Sequence[str]) -> list[ScoreResult]:
        patches = [extract_patch(r, it.reference.get("files")) for it, r in zip(items, responses)]
        rounds: dict[int, list[int]] = {}  # round r holds at most one sample per instance
        seen: dict[str, int] = {}
        for i, it in enumerate(items):
            r = seen[it.id] = seen.get(it.id, -1) + 1
            rounds.setdefault(r, []).append(i)
        out: list[ScoreResult | None] = [None] * len(items)
        for idx in rounds.values():
            todo = [i for i in idx if patches[i]]
            resolved = self._run([items[i] for i in todo], [patches[i] for i in todo]) if todo else {}
            for i in idx:
                if not patches[i]:
                    out[i] = ScoreResult(0.0, {"reason": "no_patch"})
                elif items[i].id not in resolved:
                    out[i] = ScoreResult(0.0, {"error": "harness produced no report (see evals work dir logs)"})
                else:
                    out[i] = ScoreResult(float(resolved[items[i].id]), {"resolved": resolved[items[i].id]})
        return out  # type: ignore[return-value]

    def close(self) -> None:
        pass
