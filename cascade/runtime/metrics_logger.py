"""Per-step metrics for every trainer (SFT, RL): ``metrics.jsonl``, TensorBoard, W&B, and a
progress line with ETA on rank 0.

Why one module: the evals/report code reads ``<stage_dir>/metrics.jsonl`` of every stage, so SFT
and RL must write the same format, and resume must keep it clean: after a restart from
checkpoint step ``c`` the lines past ``c`` (steps trained again) are dropped first, so the file
holds each step exactly once. TensorBoard gets ``purge_step`` for the same reason; W&B resumes
the same run id (kept in ``<output_dir>/wandb_run_id``).

Format (contract with evals/): one JSON object per line, ``{"step": int, "time": unix seconds,
<name>: float | null, ...}``; non-finite values are written as ``null``. Step 0 holds what was
measured before training (e.g. the initial held-out loss).

Sinks are a registry (``SINKS``): ``jsonl`` always, ``tensorboard`` when
``logging.tensorboard``, ``wandb`` when ``logging.wandb`` is set (imported lazily: wandb is
optional; ``check_sinks_available`` fails early, on every rank, when it is configured but absent).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cascade.config.schema.common import LoggingConfig
from cascade.runtime.stage_dirs import atomic_write_text

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
WANDB_ID_FILE = "wandb_run_id"
Value = float | int | None


class MetricSink(Protocol):
    def write(self, step: int, metrics: Mapping[str, Value]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SinkContext:
    """What a sink factory may read: where to write, from which step, the run's identity."""

    output_dir: Path
    logging: LoggingConfig
    resume_step: int | None  # the checkpoint step a restart continues from; None: fresh start
    run_name: str
    config: Mapping[str, Any]


def _clean(value: Any) -> Value:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    v = float(value)
    return v if math.isfinite(v) else None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every line of a ``metrics.jsonl`` (a torn last line, from a kill mid-write, is skipped)."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class JsonlSink:
    """Appends one line per step; on start drops lines a restart will write again."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        keep_up_to = -1 if resume_step is None else resume_step
        if path.exists():
            kept = [r for r in read_metrics(path) if int(r.get("step", -1)) <= keep_up_to]
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a")

    def write(self, step: int, metrics: Mapping[str, Value]) -> None:
        self._f.write(json.dumps({"step": step, "time": round(time.time(), 3), **metrics}) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class TensorBoardSink:
    """Scalars under ``<output_dir>/tensorboard``; ``purge_step`` hides the events of steps a
    restart trains again (all of them after a fresh start)."""

    def __init__(self, log_dir: Path, resume_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # a fresh start purges everything an earlier (uncheckpointed) attempt wrote
        purge = 0 if resume_step is None else resume_step + 1
        self._w = SummaryWriter(log_dir=str(log_dir), purge_step=purge)

    def write(self, step: int, metrics: Mapping[str, Value]) -> None:
        for name, value in metrics.items():
            if value is not None:
                self._w.add_scalar(name, value, global_step=step)
        self._w.flush()

    def close(self) -> None:
        self._w.close()


class WandbSink:
    """One W&B run per stage directory, resumed across restarts (the id is stored on disk)."""

    def __init__(self, ctx: SinkContext) -> None:
        import wandb

        cfg = ctx.logging.wandb
        id_file = ctx.output_dir / WANDB_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else wandb.util.generate_id()
        atomic_write_text(id_file, run_id + "\n")
        self._wandb = wandb
        self._run = wandb.init(project=cfg.project, entity=cfg.entity, name=cfg.name or ctx.run_name,
                               id=run_id, resume="allow", dir=str(ctx.output_dir), config=dict(ctx.config))

    def write(self, step: int, metrics: Mapping[str, Value]) -> None:
        self._run.log({k: v for k, v in metrics.items() if v is not None}, step=step)

    def close(self) -> None:
        self._run.finish()


SinkFactory = Callable[[SinkContext], MetricSink | None]
SINKS: dict[str, SinkFactory] = {
    "jsonl": lambda c: JsonlSink(c.output_dir / METRICS_FILE, c.resume_step),
    "tensorboard": lambda c: TensorBoardSink(c.output_dir / TENSORBOARD_DIR, c.resume_step)
    if c.logging.tensorboard else None,
    "wandb": lambda c: WandbSink(c) if c.logging.wandb is not None else None,
}


def check_sinks_available(logging_cfg: LoggingConfig) -> None:
    """Fail before training (on every rank) when a configured sink's package is missing."""
    if logging_cfg.wandb is not None and importlib.util.find_spec("wandb") is None:
        raise RuntimeError("logging.wandb is set but the `wandb` package is not installed: "
                           "`pip install wandb` (pinned in requirements.txt), or remove logging.wandb")
    if logging_cfg.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise RuntimeError("logging.tensorboard=true but `tensorboard` is not installed: "
                           "`pip install tensorboard`, or set logging.tensorboard=false")


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class StepClock:
    """Step durations of this process, for s/step and the ETA (the first step, which pays for
    warm-up, is left out once later ones exist)."""

    def __init__(self) -> None:
        self.started = time.time()
        self.durations: list[float] = []

    def add(self, seconds: float) -> None:
        self.durations.append(seconds)

    def seconds_per_step(self) -> float | None:
        d = self.durations[1:] or self.durations
        return sum(d) / len(d) if d else None

    def eta(self, remaining_steps: int) -> float | None:
        sps = self.seconds_per_step()
        return None if sps is None else sps * remaining_steps


# What the progress line shows, in order: (metric name, label, format).
PROGRESS_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("loss", "loss", "{:.4f}"),
    ("val/loss", "val", "{:.4f}"),
    ("reward/mean", "reward", "{:.3f}"),
    ("lr", "lr", "{:.2e}"),
    ("grad_norm", "gnorm", "{:.3f}"),
    ("tokens_per_s", "tok/s", "{:,.0f}"),
    ("mfu", "mfu", "{:.1%}"),
    ("packing_efficiency", "pack", "{:.1%}"),
)


def progress_line(prefix: str, step: int, total: int, metrics: Mapping[str, Value], clock: StepClock) -> str:
    """``[sft] step 12/30 (40%) | loss 1.2345 | ... | 10.2 s/step | elapsed 2m03s | ETA 3m04s``."""
    parts = [f"[{prefix}] step {step}/{total} ({step / max(total, 1):.0%})"]
    for key, label, fmt in PROGRESS_FIELDS:
        if key in metrics:
            value = metrics[key]
            parts.append(f"{label} {'n/a' if value is None else fmt.format(value)}")
    sps = clock.seconds_per_step()
    if sps is not None:
        parts.append(f"{sps:.2f} s/step")
    parts.append(f"elapsed {format_duration(time.time() - clock.started)}")
    parts.append(f"ETA {format_duration(clock.eta(total - step))}")
    return " | ".join(parts)


class MetricsLogger:
    """Rank 0 writes every step to every sink and prints a progress line every
    ``logging.log_interval`` steps (and at the last step, and whenever held-out metrics arrive);
    other ranks do nothing, so callers need no rank checks."""

    def __init__(
        self,
        output_dir: str | Path,
        logging_cfg: LoggingConfig,
        *,
        total_steps: int,
        resume_step: int | None,
        rank: int,
        run_name: str,
        config: Mapping[str, Any] | None = None,
        prefix: str = "train",
    ) -> None:
        self.total_steps = total_steps
        self.log_interval = max(1, logging_cfg.log_interval)
        self.main = rank == 0
        self.prefix = prefix
        self.clock = StepClock()
        self.sinks: dict[str, MetricSink] = {}
        if self.main:
            ctx = SinkContext(Path(output_dir), logging_cfg, resume_step, run_name, dict(config or {}))
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            for name, factory in SINKS.items():
                sink = factory(ctx)
                if sink is not None:
                    self.sinks[name] = sink

    def info(self, message: str) -> None:
        """A line on rank 0's stdout, prefixed with the trainer's name."""
        if self.main:
            print(f"[{self.prefix}] {message}", flush=True)

    def log(self, step: int, metrics: Mapping[str, Any], *, step_seconds: float | None = None) -> None:
        """Record one step (``step_seconds``: its wall time, for s/step and the ETA)."""
        if step_seconds is not None:
            self.clock.add(step_seconds)
        if not self.main:
            return
        clean = {k: _clean(v) for k, v in metrics.items()}
        for sink in self.sinks.values():
            sink.write(step, clean)
        held_out = any(k.startswith("val/") for k in clean)
        if step > 0 and (step % self.log_interval == 0 or step == self.total_steps or held_out):
            print(progress_line(self.prefix, step, self.total_steps, clean, self.clock), flush=True)
        elif step == 0 and clean:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in clean.items() if isinstance(v, float))
            print(f"[{self.prefix}] before training: {shown}", flush=True)

    def close(self) -> None:
        for sink in self.sinks.values():
            try:
                sink.close()
            except Exception as e:  # a broken W&B connection must not fail a finished stage
                print(f"[{self.prefix}] closing metrics sink failed: {e}", file=sys.stderr, flush=True)
        self.sinks.clear()

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
