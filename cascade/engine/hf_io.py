"""HF import/export: start a stage from an HF directory; write an HF directory after a stage.

Two backends behind one interface:

* ``bridge``: Megatron-Bridge's AutoBridge (the cluster environment, requirements.txt).
* ``cascade``: our mapping in ``cascade.engine.hf_mapping`` (the CPU environment, where Bridge
  cannot be installed; see that module for how it is tested).

``hf_backend()`` picks ``bridge`` when ``megatron.bridge`` imports, else ``cascade``;
``CASCADE_HF_BACKEND=bridge|cascade`` forces one. Both read/write plain safetensors + config.json
+ tokenizer files, loadable by transformers and vLLM.

Export is collective (every rank calls it): TP pieces are gathered, each pipeline stage's first
TP/DP/CP rank writes that stage's tensors to its own safetensors shard, and rank 0 writes the
index, config and tokenizer. The directory appears atomically (written as ``<out>.partial``).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from megatron.core import parallel_state as ps
from megatron.core.transformer.module import MegatronModule
from safetensors import safe_open
from safetensors.torch import save_file

from cascade.config.schema.common import ModelConfig, ModelFamily
from cascade.engine import hf_mapping as hm
from cascade.engine.model import unwrap

_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
    "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json", "generation_config.json",
)


def hf_backend() -> str:
    """``bridge`` when Megatron-Bridge imports (or is forced), else ``cascade``."""
    forced = os.environ.get("CASCADE_HF_BACKEND", "auto")
    if forced in ("bridge", "cascade"):
        return forced
    try:
        importlib.import_module("megatron.bridge")
    except Exception:  # ImportError, or TE missing underneath Bridge
        return "cascade"
    return "bridge"


class HFReader:
    """Lazy reader of an HF directory's safetensors (single file or sharded with an index)."""

    def __init__(self, hf_dir: str | Path) -> None:
        self.dir = Path(hf_dir)
        index = self.dir / "model.safetensors.index.json"
        if index.is_file():
            self.where = json.loads(index.read_text())["weight_map"]
        else:
            files = sorted(self.dir.glob("*.safetensors"))
            if not files:
                raise FileNotFoundError(f"no safetensors in {self.dir}")
            self.where = {}
            for f in files:
                with safe_open(f, framework="pt") as h:
                    self.where.update({k: f.name for k in h.keys()})
        self.config = json.loads((self.dir / "config.json").read_text())

    def names(self) -> set[str]:
        return set(self.where)

    def get(self, name: str) -> torch.Tensor:
        if name not in self.where:
            raise KeyError(f"{name} not found in {self.dir}")
        with safe_open(self.dir / self.where[name], framework="pt") as h:
            return h.get_tensor(name)


def _global_layer_fn(chunk: MegatronModule):
    layers = chunk.decoder.layers if hasattr(chunk, "decoder") else []
    numbers = [layer.layer_number - 1 for layer in layers]
    return lambda i: numbers[i]


def iter_canonical_params(model: Sequence[MegatronModule]) -> Iterator[tuple[str, torch.nn.Parameter]]:
    """(canonical name, local parameter) for every HF-mapped parameter of this rank's chunks."""
    for chunk in unwrap(list(model)):
        to_global = _global_layer_fn(chunk)
        for name, param in chunk.named_parameters():
            canon = hm.canonical_name(name, to_global)
            if canon is not None:
                yield canon, param


def _config_dict(cfg: ModelConfig, dtype: torch.dtype) -> dict:
    """config.json of the HF model equivalent to ``cfg`` (NemotronH's for the hybrid family)."""
    if cfg.family is ModelFamily.NEMOTRON_H:
        from cascade.engine.hf_hybrid import hybrid_hf_config

        return hybrid_hf_config(cfg, dtype)
    return hm.hf_config_dict(cfg, dtype)


def _check_config(cfg: ModelConfig, hf_cfg: dict) -> None:
    if cfg.family is ModelFamily.NEMOTRON_H:
        from cascade.engine.hf_hybrid import check_hybrid_hf_config

        return check_hybrid_hf_config(cfg, hf_cfg)
    return hm.check_hf_config(cfg, hf_cfg)


# ---- cascade backend ---------------------------------------------------------------------------
def _import_cascade(model: Sequence[MegatronModule], hf_dir: Path, cfg: ModelConfig) -> None:
    reader = HFReader(hf_dir)
    if cfg.family is ModelFamily.NEMOTRON_H:
        from cascade.engine import hf_hybrid

        _check_config(cfg, reader.config)
        return hf_hybrid.import_hybrid(model, reader, cfg)
    hm.check_hf_config(cfg, reader.config)
    tp, rank = ps.get_tensor_model_parallel_world_size(), ps.get_tensor_model_parallel_rank()
    for canon, param in iter_canonical_params(model):
        hf = {n: reader.get(n) for n in hm.hf_names(canon, cfg)}
        local = hm.tp_shard(canon, hm.to_megatron(canon, hf, cfg), tp, rank)
        if local.shape != param.shape:
            raise ValueError(f"{canon}: HF gives {tuple(local.shape)}, model has {tuple(param.shape)}")
        with torch.no_grad():
            param.copy_(local.to(param.dtype))


def _gather_tp(canon: str, local: torch.Tensor) -> torch.Tensor:
    tp = ps.get_tensor_model_parallel_world_size()
    if hm.tp_dim(canon) is None or tp == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(tp)]
    dist.all_gather(parts, local.contiguous(), group=ps.get_tensor_model_parallel_group())
    return hm.tp_unshard(canon, parts)


def hf_state_dict(
    model: Sequence[MegatronModule], cfg: ModelConfig, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """This pipeline stage's weights under HF names, full (TP-gathered) tensors on the CPU.

    Collective over the tensor-parallel group; every TP rank gets the same dict."""
    if cfg.family is ModelFamily.NEMOTRON_H:
        from cascade.engine import hf_hybrid

        return hf_hybrid.hybrid_state_dict(model, cfg, dtype)
    out: dict[str, torch.Tensor] = {}
    for canon, param in iter_canonical_params(model):
        full = _gather_tp(canon, param.detach())
        for name, t in hm.to_hf(canon, full, cfg).items():
            out[name] = t.to("cpu", dtype or t.dtype).contiguous()
    return out


def _export_cascade(
    model: Sequence[MegatronModule], tmp: Path, cfg: ModelConfig, dtype: torch.dtype
) -> None:
    tensors = hf_state_dict(model, cfg, dtype)
    pp, pp_rank = ps.get_pipeline_model_parallel_world_size(), ps.get_pipeline_model_parallel_rank()
    writer = (ps.get_tensor_model_parallel_rank() == 0 and ps.get_data_parallel_rank() == 0
              and ps.get_context_parallel_rank() == 0)
    fname = "model.safetensors" if pp == 1 else f"model-{pp_rank + 1:05d}-of-{pp:05d}.safetensors"
    if writer:
        save_file(tensors, str(tmp / fname), metadata={"format": "pt"})
    listing = [(fname, {k: v.numel() * v.element_size() for k, v in tensors.items()})] if writer else []
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, listing)
    if dist.get_rank() == 0 and pp > 1:
        weight_map, total = {}, 0
        for entries in gathered:
            for fn, sizes in entries:
                weight_map.update({k: fn for k in sizes})
                total += sum(sizes.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


# ---- bridge backend ----------------------------------------------------------------------------
def _import_bridge(model: Sequence[MegatronModule], hf_dir: Path, cfg: ModelConfig) -> None:
    from megatron.bridge import AutoBridge
    from transformers import AutoConfig

    _check_config(cfg, json.loads((hf_dir / "config.json").read_text()))
    bridge = AutoBridge.from_hf_config(AutoConfig.from_pretrained(hf_dir, local_files_only=True))
    bridge.load_hf_weights(list(model), hf_path=str(hf_dir))


def _export_bridge(
    model: Sequence[MegatronModule], tmp: Path, cfg: ModelConfig, dtype: torch.dtype
) -> None:
    from megatron.bridge import AutoBridge
    from transformers import AutoConfig

    hf_cfg = AutoConfig.for_model(**_config_dict(cfg, dtype))
    bridge = AutoBridge.from_hf_config(hf_cfg)
    tensors = {n: t.to("cpu", dtype).contiguous()
               for n, t in bridge.export_hf_weights(list(model), cpu=True, show_progress=False)}
    if dist.get_rank() == 0:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})


# ---- interface -----------------------------------------------------------------------------
def import_hf(model: Sequence[MegatronModule], hf_dir: str | Path, cfg: ModelConfig) -> None:
    """Load an HF checkpoint's weights into this rank's chunks (any TP/PP layout).

    Checks the HF config against ``cfg`` first. With a distributed optimizer built already, call
    ``optimizer.reload_model_params()`` afterwards (or import before building it)."""
    hf_dir = Path(hf_dir)
    (_import_bridge if hf_backend() == "bridge" else _import_cascade)(model, hf_dir, cfg)


def export_hf(
    model: Sequence[MegatronModule],
    out_dir: str | Path,
    cfg: ModelConfig,
    tokenizer_dir: str | Path | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write an HF directory (safetensors, config.json, tokenizer) of the current weights.

    Collective. ``dtype`` defaults to the parameters' dtype; tokenizer files are copied from
    ``tokenizer_dir`` (usually the HF directory the run started from)."""
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".partial")
    dtype = dtype or next(p for _, p in iter_canonical_params(model)).dtype
    if dist.get_rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    (_export_bridge if hf_backend() == "bridge" else _export_cascade)(model, tmp, cfg, dtype)
    dist.barrier()
    if dist.get_rank() == 0:
        (tmp / "config.json").write_text(json.dumps(_config_dict(cfg, dtype), indent=2))
        if tokenizer_dir is not None:
            for name in _TOKENIZER_FILES:
                src = Path(tokenizer_dir) / name
                if src.is_file():
                    shutil.copy2(src, tmp / name)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    dist.barrier()
    return out
