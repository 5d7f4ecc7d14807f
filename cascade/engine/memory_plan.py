"""Per-GPU memory plan of a stage's layout, computed from its typed config before a job starts.

Why: a layout that cannot fit an 80 GiB H100 otherwise fails minutes into a multi-node job (after
the queue wait, model load and the first rollout). The plan is plain arithmetic over the config:
no torch, no GPU, no Megatron import, so ``python -m cascade.engine memory`` and ``run-stage`` can
ask it anywhere. What it counts, per GPU of the worst pipeline stage:

* training: weights, fp32 main gradients, fp32 master weights + Adam moments (sharded over DP by
  the distributed optimizer; routed experts over EP x expert TP, their optimizer state over the
  expert data-parallel group), activations of one micro-batch at the stage's sequence length
  (Korthikanti et al. 2022, below), the fp32 logits, and a CUDA context/NCCL reserve;
* RL/MOPD rollouts (colocated vLLM): vLLM's budget ``gpu_memory_utilization x GPU`` must hold its
  weights at rollout TP, a runtime reserve and the KV cache of one longest rollout; while vLLM is
  awake the trainer's weights, gradients and optimizer state stay resident (only activations are
  gone), while training vLLM sleeps and holds no GPU memory. The two phases are checked apart.

The nemotron_h family (Mamba-2 / attention / MoE) is counted layer kind by layer kind in
``cascade.engine.memory_hybrid`` (and its vLLM cache: KV for the attention layers, a fixed fp32
SSM state per Mamba layer and sequence).

Constants marked "estimate" were never compared with a GPU measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

from cascade.config.schema.common import ModelConfig, ModelFamily, ParallelConfig
from cascade.engine.memory_hybrid import hybrid_param_counts, hybrid_training, hybrid_vllm_cache

GIB = 1024**3
# CUDA context, cuBLAS workspaces and NCCL communicator buffers per process, in both phases.
# Estimate, not yet measured on a GPU.
CUDA_RESERVE_GIB = 3.0
# vLLM's own non-KV memory beyond the weights: profiling-run activations at its default
# max_num_batched_tokens, CUDA graphs, sampler buffers. Estimate, not yet measured on a GPU.
VLLM_RUNTIME_RESERVE_GIB = 4.0
# Per logit element of the training loss (vocab-parallel, per GPU): the bf16 output of the LM
# head (2 B), its fp32 copy that vocab_parallel_cross_entropy keeps for backward (4 B), and the
# fp32 gradient of that copy in backward (4 B). Conservative: a temperature division can add one
# more short-lived fp32 copy.
LOGITS_BYTES = 10
# Transformer Engine FP8 keeps the bf16 weights and adds an FP8 copy (1 B) plus its transpose
# (1 B, for the backward GEMMs on Hopper) per linear-layer parameter. With fp8_param the bf16
# weights become FP8 + transpose, i.e. the same 2 B: we count no saving from either.
FP8_EXTRA_BYTES = 2
_DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


@dataclass(frozen=True)
class ParamCounts:
    """Parameters of one model, split by how the layout shards them."""

    layer_sharded: int  # per transformer layer: the TP-split matrices (and QKV bias)
    layer_replicated: int  # per transformer layer: RMSNorm weights (copied on every TP rank)
    embedding: int  # vocab x hidden, vocab-parallel, first pipeline stage
    output_layer: int  # vocab x hidden on the last stage (tied: a copy only when PP > 1)
    final_norm: int
    num_layers: int
    tied: bool

    @property
    def total(self) -> int:
        """The HF model's count (a tied embedding once): what ``python -m cascade.engine params`` prints."""
        per_layer = self.layer_sharded + self.layer_replicated
        head = 0 if self.tied else self.output_layer
        return self.num_layers * per_layer + self.embedding + head + self.final_norm


def param_counts(model: ModelConfig) -> ParamCounts:
    """Count parameters analytically (SwiGLU MLP, GQA attention, RMSNorm, no linear biases)."""
    h, d = model.hidden_size, model.kv_channels
    q, kv = model.num_attention_heads * d, model.num_query_groups * d
    qkv = h * (q + 2 * kv) + ((q + 2 * kv) if model.add_qkv_bias else 0)
    sharded = qkv + q * h + 3 * h * model.ffn_hidden_size  # QKV, output projection, fc1 (gate+up), fc2
    replicated = 2 * h + (2 * d if model.qk_layernorm else 0)  # two RMSNorms (+ q/k norms per head dim)
    vh = model.vocab_size * h
    return ParamCounts(sharded, replicated, vh, vh, h, model.num_layers, model.tie_word_embeddings)


def layer_activation_coefficient(model: ModelConfig, parallel: ParallelConfig) -> float:
    """Bytes per token per hidden unit that one layer keeps for backward, per GPU (16-bit activations).

    Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models" (MLSys 2023):
    a GPT layer stores ``s*b*h*(10 + 24/t)`` bytes with tensor parallelism, ``34*s*b*h/t`` with
    sequence parallelism, plus ``5*a*s^2*b`` for the attention scores, which selective recompute
    drops. The 10 are the two norm inputs (4), the QKV and fc1 inputs (4), two dropout masks (2;
    kept, conservatively, although our dropout is 0); the 24 are Q, K, V (6), the projection input
    (2) and the MLP's two 4h-wide tensors (16). We keep that accounting and give each tensor our
    widths: GQA K/V of ``query_groups*kv_channels``, SwiGLU's fc1 output ``2F`` (saved) and fc2
    input ``F``, and the q/k norm inputs. For F = 8h/3, MHA, no QK-norm it is exactly 10 + 24/t.
    The ``a*s^2`` term is never counted: Transformer Engine's fused/flash attention stores only the
    softmax statistics, so "none" and "selective" keep the same activations on our GPUs.
    """
    h, d, f = model.hidden_size, model.kv_channels, model.ffn_hidden_size
    q, kv = model.num_attention_heads * d, model.num_query_groups * d
    unsplit = 10.0
    split = (2 * (q + 2 * kv) + 2 * q + 4 * f + 2 * f) / h
    if model.qk_layernorm:
        split += 2 * (q + kv) / h
    t = parallel.tensor
    return (unsplit + split) / t if parallel.sequence_parallel else unsplit + split / t


@dataclass(frozen=True)
class Line:
    phase: str  # "training", "rollout" or "vllm"
    label: str
    gib: float


@dataclass(frozen=True)
class MemoryPlan:
    """The estimate for one stage: a table, the two phase peaks and the verdict."""

    source: str
    layout: str
    gpu_memory_gib: float
    lines: tuple[Line, ...]
    training_peak_gib: float
    rollout_peak_gib: float | None  # None: no rollout phase (SFT, reward model)
    vllm_sequences: int | None  # longest rollouts whose KV cache fits vLLM's budget
    fits: bool
    reason: str  # the first thing that does not fit, or a summary

    def table(self) -> str:
        """The human-readable table; its last line is ``fits=true ...`` / ``fits=false ...``."""
        out = [f"memory plan for {self.source} on a {self.gpu_memory_gib:g} GiB GPU", self.layout,
               f"{'phase':<9} {'component':<80} {'GiB':>7}"]
        out += [f"{ln.phase:<9} {ln.label:<80} {ln.gib:>7.2f}" for ln in self.lines]
        out.append(f"fits={'true' if self.fits else 'false'} {self.reason}")
        return "\n".join(out)


def _gib(n: float) -> float:
    return n / GIB


def _rows_and_length(config: object) -> tuple[int, int, str]:
    """Sequences per micro-batch and their length (tokens) for the stage kind; a description."""
    kind = getattr(config.kind, "value", str(config.kind))  # type: ignore[attr-defined]
    mbs = config.train.micro_batch_size  # type: ignore[attr-defined]
    if hasattr(config, "rollout"):  # RL, MOPD: padded to the longest prompt + response
        r = config.rollout  # type: ignore[attr-defined]
        return mbs, r.max_prompt_length + r.max_response_length, "prompt+response"
    if kind == "reward_model":  # a micro-batch of pairs: chosen and rejected
        return 2 * mbs, config.data.seq_length, "chosen + rejected"  # type: ignore[attr-defined]
    return mbs, config.data.seq_length, "packed"  # type: ignore[attr-defined]


def world_size_of(config: object) -> int:
    """Ranks of the stage's job: launch.nodes x processes per node (as the launchers submit it)."""
    launch, parallel = config.launch, config.parallel  # type: ignore[attr-defined]
    return launch.node_count(parallel.model_parallel_size) * launch.tasks_per_node()


def mopd_teacher_models(config: object) -> int:
    """An upper bound on the distinct teacher models a MOPD stage holds at once (0 for other
    kinds): one per pinned checkpoint and per stage a ``best_of`` may pick, at most one per domain.
    Which stages win is known only at stage start, from their evals."""
    mopd = getattr(config, "mopd", None)
    if mopd is None:
        return 0
    names: set[str] = set()
    for teacher in mopd.teachers.values():
        names.update([f"checkpoint:{teacher.checkpoint}"] if teacher.checkpoint else teacher.best_of)
    return min(len(mopd.teachers), len(names))


def plan_memory(config: object, gpu_memory_gib: float = 80.0, *, world_size: int | None = None,
                source: str = "") -> MemoryPlan:
    """The per-GPU memory plan of a typed stage config (any kind with the engine sections).

    ``world_size`` defaults to the launch section's job shape; ``run-stage`` passes the real one.
    Raises ValueError when the world size cannot hold TP*PP*CP.
    """
    model: ModelConfig = config.model  # type: ignore[attr-defined]
    par: ParallelConfig = config.parallel  # type: ignore[attr-defined]
    prec, optim = config.precision, config.optim  # type: ignore[attr-defined]
    kind = getattr(config.kind, "value", str(config.kind))  # type: ignore[attr-defined]
    world = world_size_of(config) if world_size is None else world_size
    if world < 1 or world % par.model_parallel_size:
        raise ValueError(f"world size {world} is not a multiple of TP*PP*CP = {par.model_parallel_size}")
    if world % par.expert_model_parallel_size:
        raise ValueError(f"world size {world} is not a multiple of expert TP*EP*PP = {par.expert_model_parallel_size}")
    dp, t, p, cp = world // par.model_parallel_size, par.tensor, par.pipeline, par.context
    hybrid = model.family is ModelFamily.NEMOTRON_H
    if hybrid and p > 1:
        raise ValueError("nemotron_h is planned (and built) with pipeline=1 only")
    pc = param_counts(model)
    rows, length, what = _rows_and_length(config)
    tokens = rows * length / cp  # per GPU: CP splits the sequence
    hyb = hybrid_training(model, par, world, tokens) if hybrid else None
    total_params = hybrid_param_counts(model).total if hybrid else pc.total

    # Parameters per GPU on the first and the last pipeline stage (layers split evenly).
    layers = -(-model.num_layers // p)
    body = layers * (pc.layer_sharded / t + pc.layer_replicated)
    head = model.hidden_size if kind == "reward_model" else pc.output_layer / t  # RM: a [1, h] head
    if p == 1:
        first = last = body + pc.embedding / t + (0 if pc.tied and kind != "reward_model" else head) + pc.final_norm
    else:
        first, last = body + pc.embedding / t, body + head + pc.final_norm
    linear = layers * pc.layer_sharded / t  # what FP8 quantises
    experts, edp = 0.0, 1
    if hyb is not None:
        first = last = hyb.dense_params
        experts, edp, linear = hyb.expert_params, hyb.expert_dp, hyb.dense_params + hyb.expert_params

    wbytes = _DTYPE_BYTES[prec.params_dtype]
    obytes = 8 if prec.params_dtype == "fp32" else 12  # fp32 params are their own master copy
    odiv = dp if optim.use_distributed_optimizer else 1

    def static(dense: float) -> list[tuple[str, float]]:
        params = dense + experts
        ex = f" incl. {experts / 1e9:.3f}e9 expert" if experts else ""
        optimizer = dense * obytes / odiv + experts * obytes / (edp if optim.use_distributed_optimizer else 1)
        opt_div = f"DP {odiv}" + (f", experts / expert DP {edp}" if experts else "")
        rows = [(f"weights ({prec.params_dtype}, {params / 1e9:.3f}e9 params/GPU{ex})", params * wbytes),
                ("gradients (fp32 main grads: grad_reduce_in_fp32)", params * 4),
                (f"optimizer (fp32 master + Adam m, v: {obytes} B/param / {opt_div})", optimizer)]
        if prec.fp8 is not None:
            rows.append((f"FP8 weight copies + transposes ({prec.fp8}, {FP8_EXTRA_BYTES} B/linear param)",
                         linear * FP8_EXTRA_BYTES))
        if getattr(getattr(config, "loss", None), "kl_coef", 0.0) > 0:
            rows.append(("reference model weights (loss.kl_coef > 0)", params * wbytes))
        teachers = mopd_teacher_models(config)
        if teachers and config.mopd.offload_teachers:  # type: ignore[attr-defined]
            rows.append((f"MOPD teacher weights (one of up to {teachers} at a time: mopd.offload_teachers)",
                         params * wbytes))
        elif teachers:
            rows.append((f"MOPD teacher weights (up to {teachers} forward-only models, resident)",
                         teachers * params * wbytes))
        return rows

    coef = layer_activation_coefficient(model, par)
    per_layer = coef * tokens * model.hidden_size
    if par.recompute == "full":  # keep each layer's input; one layer's activations while recomputing
        stored = (2.0 / t if par.sequence_parallel else 2.0) * tokens * model.hidden_size
        acts_first, acts_last = model.num_layers * stored + per_layer, layers * stored + per_layer
        act_note = "recompute full"
    else:  # 1F1B: the first stage holds p micro-batches of L/p layers (Korthikanti, Sec. 4.2.3)
        inflight = 1.0 + ((p - 1) / (p * par.virtual_pipeline) if par.virtual_pipeline else 0.0)
        acts_first, acts_last = model.num_layers * per_layer * inflight, layers * per_layer
        act_note = f"recompute {par.recompute}, {coef:.1f} B x s x h per layer"
    if hyb is not None:
        acts_first = acts_last = hyb.activations
        act_note = hyb.note
    logits = 0.0 if kind == "reward_model" else tokens * model.vocab_size / t * LOGITS_BYTES
    reserve = CUDA_RESERVE_GIB * GIB

    stages = {"first": (first, acts_first, 0.0 if p > 1 else logits), "last": (last, acts_last, logits)}
    totals = {k: sum(b for _, b in static(w)) + a + lg + reserve for k, (w, a, lg) in stages.items()}
    worst = max(totals, key=lambda k: totals[k]) if p > 1 else "first"
    w, acts, lg = stages[worst]
    stage_note = f" (worst pipeline stage: {worst})" if p > 1 else ""
    lines = [Line("training", label, _gib(b)) for label, b in static(w)]
    lines += [Line("training", f"activations ({rows}x{length} tokens {what}, /CP {cp}, {act_note})", _gib(acts)),
              Line("training", f"logits (fp32, {LOGITS_BYTES} B x tokens x vocab / TP {t})", _gib(lg)),
              Line("training", "CUDA context + NCCL reserve (estimate)", CUDA_RESERVE_GIB),
              Line("training", f"training peak{stage_note}", _gib(totals[worst]))]
    training_peak = _gib(totals[worst])
    layout = (f"layout: {kind}, TP={t} PP={p}{f' VP={par.virtual_pipeline}' if par.virtual_pipeline else ''} "
              f"CP={cp} SP={'on' if par.sequence_parallel else 'off'} DP={dp} "
              f"{f'EP={par.expert} ETP={par.expert_tensor or t} ' if hybrid else ''}({world} GPUs), "
              f"recompute={par.recompute}, {prec.params_dtype}{f' fp8={prec.fp8}' if prec.fp8 else ''}, "
              f"{'distributed' if optim.use_distributed_optimizer else 'replicated'} optimizer")

    failures: list[str] = []
    if training_peak > gpu_memory_gib:
        failures.append(f"training peak {training_peak:.1f} GiB > {gpu_memory_gib:g} GiB usable")
    rollout_peak: float | None = None
    nseq: int | None = None
    summary = f"training peak {training_peak:.1f} GiB"
    rollout = getattr(config, "rollout", None)
    if rollout is not None and rollout.backend == "vllm":
        rtp = rollout.tensor_parallel
        vweights = _gib(total_params * 2 / rtp)  # bf16, vocab and layers split by rollout TP
        kv_fixed = getattr(rollout, "kv_cache_gib", None)  # a fixed KV size replaces the utilization share
        budget = (vweights + VLLM_RUNTIME_RESERVE_GIB + kv_fixed if kv_fixed is not None
                  else rollout.gpu_memory_utilization * gpu_memory_gib)
        budget_label = (f"vLLM awake: weights + runtime + kv_cache_gib {kv_fixed:g}" if kv_fixed is not None
                        else f"vLLM budget ({rollout.gpu_memory_utilization:g} x {gpu_memory_gib:g} GiB)")
        kv_heads = max(1, model.num_query_groups // rtp)  # per GPU; fewer groups than ranks: replicated
        kv_token = 2 * model.num_layers * kv_heads * model.kv_channels * 2  # K and V, bf16, per GPU
        state = 0
        if hybrid:  # attention layers' KV + each Mamba layer's fixed state (fp32 SSM state)
            kv_token, state = hybrid_vllm_cache(model, rtp)
        kv_seq = _gib(kv_token * length + state)
        free_kv = budget - vweights - VLLM_RUNTIME_RESERVE_GIB
        nseq = max(0, int(free_kv // kv_seq))
        trainer = _gib(sum(b for _, b in static(max(first, last))))
        rollout_peak = trainer + budget + CUDA_RESERVE_GIB
        lines += [Line("rollout", "trainer weights + grads + optimizer (stay resident)", trainer),
                  Line("rollout", budget_label, budget),
                  Line("rollout", "CUDA context + NCCL reserve (estimate)", CUDA_RESERVE_GIB),
                  Line("rollout", "rollout peak", rollout_peak),
                  Line("vllm", f"weights (bf16, {total_params / 1e9:.2f}e9 params / rollout TP {rtp})", vweights),
                  Line("vllm", "runtime reserve: profiling activations, CUDA graphs (estimate)",
                       VLLM_RUNTIME_RESERVE_GIB),
                  Line("vllm", f"KV cache of one longest rollout ({length} tokens x {kv_token} B"
                       f"{f' + Mamba state {state} B' if state else ''})", kv_seq),
                  Line("vllm", f"KV space left in the budget: {nseq} longest rollout(s) fit", free_kv)]
        if rollout_peak > gpu_memory_gib:
            failures.append(f"rollout peak {rollout_peak:.1f} GiB > {gpu_memory_gib:g} GiB usable "
                            "(trainer state + vLLM budget)")
        if nseq < 1:
            failures.append(f"vLLM budget {budget:.1f} GiB cannot hold weights {vweights:.1f} + runtime "
                            f"{VLLM_RUNTIME_RESERVE_GIB:g} + one {length}-token KV cache {kv_seq:.1f} GiB "
                            f"(rollout TP {rtp})")
        summary += (f", rollout peak {rollout_peak:.1f} GiB of {gpu_memory_gib:g} GiB; "
                    f"vLLM holds {nseq} longest rollout(s) of {length} tokens")
    else:
        summary += f" of {gpu_memory_gib:g} GiB"
    return MemoryPlan(source=source, layout=layout, gpu_memory_gib=gpu_memory_gib, lines=tuple(lines),
                      training_peak_gib=training_peak, rollout_peak_gib=rollout_peak, vllm_sequences=nseq,
                      fits=not failures, reason=failures[0] if failures else summary)
