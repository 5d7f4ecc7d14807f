"""Memory-plan arithmetic of the nemotron_h family (Mamba-2 / attention / MoE layers).

Why apart from ``memory_plan``: a hybrid layer stack is not one repeated GPT layer. Parameters
split three ways (TP-sharded matrices; replicated norms and routers; routed experts split over
expert parallelism x expert TP, whose optimizer state is sharded over the *expert* data-parallel
group), activations differ per layer kind, and in vLLM only the attention layers have a KV cache
while every Mamba layer holds a fixed-size state per sequence (conv + SSM state, the SSM state in
fp32: ``mamba_ssm_cache_dtype``). Plain arithmetic: no torch, no Megatron.

Activation bytes per token are estimates in the spirit of Korthikanti et al. (16-bit tensors
that backward needs), never compared with a GPU measurement; the MoE part assumes balanced
routing (each GPU's experts see ``top_k`` copies of its share of the tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

from cascade.config.schema.common import ModelConfig, ParallelConfig


@dataclass(frozen=True)
class HybridCounts:
    """Parameters of a hybrid model by how the layout shards them (whole model)."""

    sharded: int  # TP-split matrices, Mamba conv/dt/A/D and gated-norm weights, shared experts
    replicated: int  # layer norms and routers (a copy on every TP rank)
    experts: int  # routed experts: split over expert x expert_tensor
    embedding: int
    output_layer: int
    final_norm: int
    tied: bool
    active_experts: int  # the routed-expert parameters one token passes through (top_k of them)

    @property
    def total(self) -> int:
        head = 0 if self.tied else self.output_layer
        return self.sharded + self.replicated + self.experts + self.embedding + head + self.final_norm

    @property
    def active(self) -> int:
        return self.total - self.experts + self.active_experts


def _mlp_params(model: ModelConfig, ffn: int) -> int:
    return (3 if model.activation == "swiglu" else 2) * model.hidden_size * ffn


def hybrid_param_counts(model: ModelConfig) -> HybridCounts:
    """Count a nemotron_h model layer by layer from its pattern (matches the meta-device build)."""
    h, d = model.hidden_size, model.kv_channels
    q, kv = model.num_attention_heads * d, model.num_query_groups * d
    sharded = replicated = experts = active = 0
    for sym in model.hybrid_layer_pattern or "":
        replicated += h  # the layer's pre-norm
        if sym == "M":
            m = model.mamba
            inner, gn = m.num_heads * m.head_dim, m.num_groups * m.state_dim
            conv_dim = inner + 2 * gn
            sharded += h * (2 * inner + 2 * gn + m.num_heads) + conv_dim * (m.conv_kernel + 1)
            sharded += 3 * m.num_heads + inner + inner * h  # dt_bias, A_log, D; gated norm; out_proj
        elif sym == "*":
            sharded += h * (q + 2 * kv) + q * h + ((q + 2 * kv) if model.add_qkv_bias else 0)
        elif sym == "E":
            e = model.moe
            replicated += e.num_experts * h  # router
            if e.shared_expert_ffn_hidden_size:
                sharded += _mlp_params(model, e.shared_expert_ffn_hidden_size)
            experts += e.num_experts * _mlp_params(model, e.ffn_hidden_size)
            active += e.top_k * _mlp_params(model, e.ffn_hidden_size)
        elif sym == "-":
            sharded += _mlp_params(model, model.ffn_hidden_size)
    vh = model.vocab_size * h
    return HybridCounts(sharded, replicated, experts, vh, vh, h, model.tie_word_embeddings, active)


def layer_bytes_per_token(model: ModelConfig, sym: str, tp: int, etp: int, sp: bool) -> float:
    """Bytes one layer of kind ``sym`` keeps for backward per token, per GPU (estimate)."""
    h = model.hidden_size
    unsplit = 4.0 * h  # the norm input and the first linear's input
    split = routed = 0.0
    if sym == "M":
        m = model.mamba
        inner, gn = m.num_heads * m.head_dim, m.num_groups * m.state_dim
        split += 2 * (2 * inner + 2 * gn + m.num_heads)  # in_proj output z x B C dt
        split += 2 * (inner + 2 * gn) + 3 * 2 * inner  # conv output; scan output, gated norm, out_proj input
        split += 4.0 * inner * m.state_dim / m.chunk_size  # fp32 SSD chunk states
    elif sym == "*":
        q, kv = model.num_attention_heads * model.kv_channels, model.num_query_groups * model.kv_channels
        split += 2 * (q + 2 * kv) + 2 * q  # Q, K, V; projection input (flash attention: no s^2 term)
    elif sym in "E-":
        glu = 3 if model.activation == "swiglu" else 2
        if sym == "E":
            e = model.moe
            unsplit += 4.0 * e.num_experts  # fp32 router scores
            # each token's top_k copies: permuted fc1 input and fc2 output (h wide), fc1 output
            # and activation output (F wide, split by expert TP); under SP a GPU routes 1/TP of them
            routed = e.top_k * (2 * 2 * h + glu * 2 * e.ffn_hidden_size / etp) / (tp if sp else 1)
            if e.shared_expert_ffn_hidden_size:
                split += glu * 2 * e.shared_expert_ffn_hidden_size
        else:
            split += glu * 2 * model.ffn_hidden_size
    return routed + ((unsplit + split) / tp if sp else unsplit + split / tp)


@dataclass(frozen=True)
class HybridTraining:
    """Per-GPU training quantities of a hybrid stage."""

    dense_params: float  # per GPU, optimizer sharded over DP
    expert_params: float  # per GPU, optimizer sharded over the expert data-parallel group
    expert_dp: int
    activations: float  # bytes of one micro-batch
    note: str


def hybrid_training(model: ModelConfig, par: ParallelConfig, world: int, tokens: float) -> HybridTraining:
    """Weights split and activations of one micro-batch of ``tokens`` tokens per GPU (PP=1)."""
    hc = hybrid_param_counts(model)
    t, etp, ep = par.tensor, par.expert_tensor or par.tensor, par.expert
    head = 0 if hc.tied else hc.output_layer
    dense = hc.sharded / t + hc.replicated + (hc.embedding + head) / t + hc.final_norm
    experts = hc.experts / (ep * etp)
    edp = max(1, world // (etp * ep * par.pipeline))
    pattern = model.hybrid_layer_pattern or ""
    per = {s: layer_bytes_per_token(model, s, t, etp, par.sequence_parallel) for s in set(pattern)}
    if par.recompute == "full":  # each layer's input, plus one layer recomputed at a time
        stored = 2.0 * model.hidden_size / (t if par.sequence_parallel else 1)
        acts = (len(pattern) * stored + max(per.values())) * tokens
        note = "recompute full"
    else:
        acts = sum(per[s] for s in pattern) * tokens
        kinds = ", ".join(f"{s} {per[s] / model.hidden_size:.1f}" for s in sorted(per))
        note = f"recompute {par.recompute}, B x s x h per layer kind: {kinds}"
    return HybridTraining(dense, experts, edp, acts, note)


def hybrid_vllm_cache(model: ModelConfig, rtp: int) -> tuple[int, int]:
    """(KV bytes per token, Mamba state bytes per sequence) per GPU at rollout TP ``rtp``: K/V
    in bf16 for the attention layers only; conv state (bf16) and SSM state (fp32) per Mamba layer."""
    pattern = model.hybrid_layer_pattern or ""
    kv_heads = max(1, model.num_query_groups // rtp)
    kv_token = 2 * pattern.count("*") * kv_heads * model.kv_channels * 2
    state = 0
    if model.mamba is not None:
        m = model.mamba
        heads = max(1, m.num_heads // rtp)
        conv_dim = (m.num_heads * m.head_dim + 2 * m.num_groups * m.state_dim) // rtp
        state = pattern.count("M") * (heads * m.head_dim * m.state_dim * 4 + conv_dim * (m.conv_kernel - 1) * 2)
    return kv_token, state
