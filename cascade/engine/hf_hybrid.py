"""HF <-> Megatron weights of the nemotron_h family (NemotronHForCausalLM), CPU tier, TP=EP=PP=1.

Why its own module: the hybrid's names do not follow the dense GPT mapping (``hf_mapping``):
every HF layer is ``backbone.layers.{i}.norm`` + one ``mixer`` (Mamba-2, attention or MoE), the
Mamba tensors keep Megatron's fused layouts (``in_proj`` = [z, x, B, C, dt], ``conv1d`` over
[x, B, C]), and the MoE router's expert bias is a Megatron *buffer* (HF
``gate.e_score_correction_bias``). Any TP / EP / expert-TP layout (PP=1, as the family is
built): fused Mamba tensors are TP-split per component (Megatron's ``partition_sizes``), routed
experts live on the EP rank that owns their global index and are split by expert TP. Tested by a
round trip and a logits comparison against transformers' NemotronH at TP=EP=1 and under EP=2 and
TP=2 (tests/engine/test_hybrid.py); Megatron-Bridge does the same on the cluster tier.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import torch
from megatron.core import parallel_state as ps
from megatron.core.transformer.module import MegatronModule
from megatron.core.utils import unwrap_model

from cascade.config.schema.common import ModelConfig

_GLOBAL = {
    "embedding.word_embeddings.weight": "backbone.embeddings.weight",
    "decoder.final_norm.weight": "backbone.norm_f.weight",
    "output_layer.weight": "lm_head.weight",
}
# megatron suffix after "decoder.layers.{i}." -> HF suffix after "backbone.layers.{i}."
_LAYER = {
    "norm.weight": "norm.weight",  # Mamba layer pre-norm
    "input_layernorm.weight": "norm.weight",  # attention layer pre-norm
    "pre_mlp_layernorm.weight": "norm.weight",  # MoE / MLP layer pre-norm
    "mixer.in_proj.weight": "mixer.in_proj.weight",
    "mixer.conv1d_weight": "mixer.conv1d.weight",
    "mixer.conv1d_bias": "mixer.conv1d.bias",
    "mixer.dt_bias": "mixer.dt_bias",
    "mixer.A_log": "mixer.A_log",
    "mixer.D": "mixer.D",
    "mixer.norm.weight": "mixer.norm.weight",
    "mixer.out_proj.weight": "mixer.out_proj.weight",
    "self_attention.linear_proj.weight": "mixer.o_proj.weight",
    "mlp.router.weight": "mixer.gate.weight",
    "mlp.router.expert_bias": "mixer.gate.e_score_correction_bias",
    "mlp.shared_experts.linear_fc1.weight": "mixer.shared_experts.up_proj.weight",
    "mlp.shared_experts.linear_fc2.weight": "mixer.shared_experts.down_proj.weight",
    "mlp.linear_fc1.weight": "mixer.up_proj.weight",
    "mlp.linear_fc2.weight": "mixer.down_proj.weight",
}
_EXPERT = re.compile(r"^mlp\.experts\.local_experts\.(\d+)\.linear_fc([12])\.weight$")
_LAYER_RE = re.compile(r"^decoder\.layers\.(\d+)\.(.+)$")


def _require_one_stage() -> None:
    if ps.get_pipeline_model_parallel_world_size() > 1:
        raise NotImplementedError("nemotron_h HF import/export: pipeline=1 only (as the family is built)")


def _shard_rule(name: str, cfg: ModelConfig) -> tuple[int | None, list[int] | None, bool]:
    """(split dim, component sizes of a fused tensor or None, is a routed expert) of a tensor."""
    m = _LAYER_RE.match(name)
    suffix = m.group(2) if m else name
    e = _EXPERT.match(suffix)
    if e:
        return (0 if e.group(2) == "1" else 1), None, True
    if cfg.mamba is not None:
        inner = cfg.mamba.num_heads * cfg.mamba.head_dim
        gn = cfg.mamba.num_groups * cfg.mamba.state_dim
        if suffix == "mixer.in_proj.weight":
            return 0, [inner, inner, gn, gn, cfg.mamba.num_heads], False
        if suffix in ("mixer.conv1d_weight", "mixer.conv1d_bias"):
            return 0, [inner, gn, gn], False
    dim0 = ("mixer.dt_bias", "mixer.A_log", "mixer.D", "mixer.norm.weight", "self_attention.linear_qkv.weight",
            "mlp.shared_experts.linear_fc1.weight", "mlp.linear_fc1.weight",
            "embedding.word_embeddings.weight", "output_layer.weight")
    dim1 = ("mixer.out_proj.weight", "self_attention.linear_proj.weight",
            "mlp.shared_experts.linear_fc2.weight", "mlp.linear_fc2.weight")
    return (0 if suffix in dim0 else 1 if suffix in dim1 else None), None, False


def _shard(full: torch.Tensor, dim: int | None, parts: list[int] | None, n: int, r: int) -> torch.Tensor:
    if dim is None or n == 1:
        return full
    if parts is None:
        return full.chunk(n, dim=dim)[r]
    return torch.cat([c.chunk(n, dim=dim)[r] for c in full.split(parts, dim=dim)], dim=dim)


def _unshard(pieces: list[torch.Tensor], dim: int | None, parts: list[int] | None) -> torch.Tensor:
    if dim is None or len(pieces) == 1:
        return pieces[0]
    if parts is None:
        return torch.cat(pieces, dim=dim)
    local = [p // len(pieces) for p in parts]
    split = [p.split(local, dim=dim) for p in pieces]
    return torch.cat([torch.cat([s[i] for s in split], dim=dim) for i in range(len(parts))], dim=dim)


def _global_expert_name(name: str, model: Sequence[MegatronModule]) -> str:
    """Local expert index -> global (EP rank r holds experts [r*n, (r+1)*n))."""
    m = _LAYER_RE.match(name)
    e = _EXPERT.match(m.group(2)) if m else None
    if e is None:
        return name
    (chunk,) = [unwrap_model(c) for c in model]
    layer = chunk.decoder.layers[int(m.group(1))]
    n_local = len(layer.mlp.experts.local_experts)
    index = ps.get_expert_model_parallel_rank() * n_local + int(e.group(1))
    return name.replace(f"local_experts.{e.group(1)}.", f"local_experts.{index}.")


def hf_name(name: str, model: ModelConfig) -> list[str]:
    """HF tensor names of one Megatron tensor (q/k/v for the fused QKV)."""
    if name in _GLOBAL:
        return [_GLOBAL[name]]
    m = _LAYER_RE.match(name)
    if not m:
        raise KeyError(f"no HF mapping for Megatron tensor {name}")
    pre, suffix = f"backbone.layers.{m.group(1)}.", m.group(2)
    if suffix == "self_attention.linear_qkv.weight":
        return [f"{pre}mixer.{p}_proj.weight" for p in ("q", "k", "v")]
    e = _EXPERT.match(suffix)
    if e:
        return [f"{pre}mixer.experts.{e.group(1)}.{'up' if e.group(2) == '1' else 'down'}_proj.weight"]
    if suffix in _LAYER:
        return [pre + _LAYER[suffix]]
    raise KeyError(f"no HF mapping for Megatron tensor {name}")


def named_tensors(model: Sequence[MegatronModule]) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter and the routers' expert-bias buffers of the (single) chunk."""
    (chunk,) = [unwrap_model(c) for c in model]
    yield from chunk.named_parameters()
    for name, buf in chunk.named_buffers():
        if name.endswith("router.expert_bias"):
            yield name, buf


def import_hybrid(model: Sequence[MegatronModule], reader, cfg: ModelConfig) -> None:  # noqa: ANN001
    """Copy an HF NemotronH checkpoint (``HFReader``) into the model."""
    from cascade.engine.hf_mapping import fuse_qkv

    _require_one_stage()
    tp, tp_rank = ps.get_tensor_model_parallel_world_size(), ps.get_tensor_model_parallel_rank()
    etp, etp_rank = ps.get_expert_tensor_parallel_world_size(), ps.get_expert_tensor_parallel_rank()
    for name, tensor in named_tensors(model):
        hf = [reader.get(n) for n in hf_name(_global_expert_name(name, model), cfg)]
        full = fuse_qkv(*hf, cfg) if len(hf) == 3 else hf[0]
        dim, parts, expert = _shard_rule(name, cfg)
        value = _shard(full, dim, parts, *((etp, etp_rank) if expert else (tp, tp_rank)))
        if value.shape != tensor.shape:
            raise ValueError(f"{name}: HF gives {tuple(value.shape)}, model has {tuple(tensor.shape)}")
        with torch.no_grad():
            tensor.copy_(value.to(tensor.dtype))


def hybrid_state_dict(
    model: Sequence[MegatronModule], cfg: ModelConfig, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """The model's weights under NemotronH's HF names (full tensors on the CPU). Collective over
    the TP, expert-TP and EP groups; every rank gets the whole dict."""
    import torch.distributed as dist

    from cascade.engine.hf_mapping import unfuse_qkv

    _require_one_stage()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in named_tensors(model):
        dim, fused, expert = _shard_rule(name, cfg)
        group = ps.get_expert_tensor_parallel_group() if expert else ps.get_tensor_model_parallel_group()
        t = tensor.detach()
        if dim is not None and dist.get_world_size(group) > 1:
            pieces = [torch.empty_like(t) for _ in range(dist.get_world_size(group))]
            dist.all_gather(pieces, t.contiguous(), group=group)
            t = _unshard(pieces, dim, fused)
        names = hf_name(_global_expert_name(name, model), cfg)
        parts = unfuse_qkv(t, cfg) if len(names) == 3 else (t,)
        for n, p in zip(names, parts):
            # the router bias stays fp32 (Megatron keeps it so; it only ranks experts)
            keep = n.endswith("e_score_correction_bias")
            out[n] = p.to("cpu", p.dtype if keep or dtype is None else dtype).contiguous()
    if ps.get_expert_model_parallel_world_size() > 1:  # each EP rank holds its own experts
        everyone: list = [None] * ps.get_expert_model_parallel_world_size()
        dist.all_gather_object(everyone, out, group=ps.get_expert_model_parallel_group())
        out = {k: v for part in everyone for k, v in part.items()}
    return out


_BLOCKS = {"M": "mamba", "*": "attention", "E": "moe", "-": "mlp"}


def hybrid_hf_config(model: ModelConfig, dtype: torch.dtype) -> dict:
    """config.json of the NemotronHForCausalLM equivalent to ``model``."""
    m, e = model.mamba, model.moe
    cfg: dict = dict(
        architectures=["NemotronHForCausalLM"], model_type="nemotron_h",
        vocab_size=model.vocab_size, hidden_size=model.hidden_size,
        num_hidden_layers=model.num_layers, hybrid_override_pattern=model.hybrid_layer_pattern,
        num_attention_heads=model.num_attention_heads, num_key_value_heads=model.num_query_groups,
        head_dim=model.kv_channels, intermediate_size=model.ffn_hidden_size,
        max_position_embeddings=model.max_position_embeddings, layer_norm_epsilon=model.norm_epsilon,
        tie_word_embeddings=model.tie_word_embeddings, attention_bias=model.add_qkv_bias,
        mlp_hidden_act="relu2" if model.activation == "squared_relu" else "silu",
        use_bias=False, mamba_proj_bias=False, use_conv_bias=True, residual_in_fp32=False,
        mamba_ssm_cache_dtype="float32", dtype=str(dtype).removeprefix("torch."), use_cache=True,
    )
    if m is not None:
        cfg.update(mamba_num_heads=m.num_heads, mamba_head_dim=m.head_dim, ssm_state_size=m.state_dim,
                   n_groups=m.num_groups, conv_kernel=m.conv_kernel, chunk_size=m.chunk_size,
                   mamba_hidden_act="silu")
    if e is not None:
        cfg.update(n_routed_experts=e.num_experts, num_experts_per_tok=e.top_k,
                   moe_intermediate_size=e.ffn_hidden_size,
                   moe_shared_expert_intermediate_size=e.shared_expert_ffn_hidden_size or 0,
                   n_shared_experts=1 if e.shared_expert_ffn_hidden_size else 0,
                   routed_scaling_factor=e.topk_scaling_factor or 1.0, norm_topk_prob=True,
                   n_group=1, topk_group=1)
    return cfg


def check_hybrid_hf_config(model: ModelConfig, hf: dict) -> None:
    """Raise ValueError naming every architecture field where ``hf`` differs from ``model``."""
    want = {k: v for k, v in hybrid_hf_config(model, torch.float32).items()
            if k in ("vocab_size", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
                     "mamba_num_heads", "mamba_head_dim", "ssm_state_size", "n_groups", "conv_kernel",
                     "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size",
                     "moe_shared_expert_intermediate_size", "tie_word_embeddings")}
    bad = [f"{k}: config {v} vs HF {hf.get(k)}" for k, v in want.items() if hf.get(k) != v]
    blocks = hf.get("layers_block_type")
    pattern = hf.get("hybrid_override_pattern")
    if pattern is None and blocks is not None:
        symbol = {"mamba": "M", "linear_attention": "M", "attention": "*", "full_attention": "*",
                  "moe": "E", "mlp": "-"}
        pattern = "".join(symbol.get(b, "?") for b in blocks)
    if pattern != model.hybrid_layer_pattern:
        bad.append(f"layer pattern: config {model.hybrid_layer_pattern} vs HF {pattern}")
    if bad:
        raise ValueError("HF checkpoint does not match the model config: " + "; ".join(bad))
