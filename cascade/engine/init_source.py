"""What `init_from` may name, and where a fresh stage's weights and tokenizer come from.

A stage output directory (see `cascade.runtime.stage_dirs`) holds `checkpoints/` (Megatron dist
checkpoints with a `latest` pointer), `hf/` (the HF export) and `stage_manifest.json`.
`init_from` accepts (first match wins, see `INIT_RESOLVERS`):
  1. a committed Megatron checkpoint `iter_N/` (has cascade_meta.json),
  2. a Megatron checkpoint root (has a `latest` pointer),
  3. a stage output directory: its final Megatron checkpoint (`checkpoints/latest`) when present
     (exact weights, any TP/PP layout), else its `hf/` export,
  4. an HF model directory (config.json + safetensors): the first stage's base model.
Weights from a Megatron checkpoint are loaded without optimizer state or RNG (a new stage); the
tokenizer comes from the stage's `hf/` export, or the `tokenizer_dir` of its manifest.
Torch-free: the launcher resolves `init_from` before any rank starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cascade import fileio

CHECKPOINTS_DIR = "checkpoints"
HF_DIR = "hf"

MANIFEST = "stage_manifest.json"
CONFIG_FILE = "config.json"
_TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")

InitFormat = Literal["megatron", "hf"]


class InitSourceError(FileNotFoundError):
    """`init_from` names nothing a stage can start from."""


@dataclass(frozen=True)
class InitSource:
    """Where a fresh stage's weights and tokenizer come from."""

    given: str  # init_from as the stage graph (or the user) gave it
    format: InitFormat
    path: Path  # the HF directory, or the committed Megatron iter_N directory
    tokenizer_dir: Path

    def to_json(self) -> dict[str, str]:
        return {"given": self.given, "format": self.format, "path": str(self.path),
                "tokenizer_dir": str(self.tokenizer_dir)}


def has_tokenizer(path: Path) -> bool:
    return any((path / name).is_file() for name in _TOKENIZER_MARKERS)


def is_hf_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and (
        any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").is_file())


def _latest_in(root: Path) -> Path | None:
    try:
        return fileio.read_latest(root)
    except FileNotFoundError as e:
        raise InitSourceError(str(e)) from None


def _stage_tokenizer(stage_dir: Path) -> Path | None:
    """The tokenizer a stage directory hands on: its HF export, else its manifest's."""
    if has_tokenizer(stage_dir / HF_DIR):
        return stage_dir / HF_DIR
    manifest = read_manifest(stage_dir)
    if manifest and manifest.get("tokenizer_dir"):
        return Path(manifest["tokenizer_dir"])
    return None


def _need_tokenizer(tok: Path | None, where: Path) -> Path:
    if tok is None or not has_tokenizer(tok):
        raise InitSourceError(f"{where}: found weights but no tokenizer (no hf/ export with tokenizer "
                              f"files and no tokenizer_dir in {MANIFEST})")
    return tok


def _from_iter_dir(p: Path, given: str) -> InitSource | None:
    if not (p / fileio.CKPT_META).is_file():
        return None
    stage_dir = p.parent.parent  # <stage>/checkpoints/iter_N
    return InitSource(given, "megatron", p, _need_tokenizer(_stage_tokenizer(stage_dir), p))


def _from_ckpt_root(p: Path, given: str) -> InitSource | None:
    latest = _latest_in(p)
    if latest is None:
        return None
    return InitSource(given, "megatron", latest, _need_tokenizer(_stage_tokenizer(p.parent), p))


def _from_stage_dir(p: Path, given: str) -> InitSource | None:
    ckpts, hf = p / CHECKPOINTS_DIR, p / HF_DIR
    latest = _latest_in(ckpts) if ckpts.is_dir() else None
    if latest is not None:
        return InitSource(given, "megatron", latest, _need_tokenizer(_stage_tokenizer(p), p))
    if is_hf_dir(hf):
        return InitSource(given, "hf", hf, _need_tokenizer(hf, hf))
    return None


def _from_hf_dir(p: Path, given: str) -> InitSource | None:
    if not is_hf_dir(p):
        return None
    return InitSource(given, "hf", p, _need_tokenizer(p, p))


INIT_RESOLVERS: tuple[tuple[str, Callable[[Path, str], InitSource | None]], ...] = (
    ("megatron checkpoint iter_N/", _from_iter_dir),
    ("megatron checkpoint root with `latest`", _from_ckpt_root),
    ("stage output dir (checkpoints/latest or hf/)", _from_stage_dir),
    ("HF model dir (config.json + safetensors)", _from_hf_dir),
)


def resolve_init(init_from: str | Path) -> InitSource:
    """What a fresh stage loads, from an HF directory or an earlier stage's output."""
    p = Path(init_from).expanduser()
    if not p.is_dir():
        raise InitSourceError(f"init_from {p} does not exist (or is not a directory)")
    for _, resolver in INIT_RESOLVERS:
        found = resolver(p, str(init_from))
        if found is not None:
            return found
    kinds = "; ".join(name for name, _ in INIT_RESOLVERS)
    raise InitSourceError(f"init_from {p} is none of: {kinds}. If it is a stage that has not finished, "
                          "run that stage first.")


def read_manifest(output_dir: str | Path) -> dict | None:
    """A stage's manifest, or None when it has none (yet)."""
    try:
        return json.loads((Path(output_dir) / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
