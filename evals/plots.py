"""PNG plots for the stage-by-stage report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from evals.training_logs import CURVE_KEYS  # noqa: E402


def _save(fig: "plt.Figure", out: Path) -> None:
    """Write the PNG atomically: a reader (or a killed report) never sees half a file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot_benchmarks(stages: list[str], rows: list[dict], out: Path) -> Path:
    """One panel per benchmark: our score (± stderr) after each stage, published values as
    hollow markers where the paper reports that stage. `rows[i]` has title, scores, stderrs,
    paper (lists aligned with `stages`, None where absent)."""
    n = max(1, len(rows))
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    x = list(range(len(stages)))
    for ax, row in zip(axes.flat, rows):
        pts = [(i, s, e) for i, (s, e) in enumerate(zip(row["scores"], row["stderrs"])) if s is not None]
        if pts:
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] or 0 for p in pts],
                        marker="o", capsize=3, label="ours")
        paper = [(i, v) for i, v in enumerate(row["paper"]) if v is not None]
        if paper:
            ax.plot([p[0] for p in paper], [p[1] for p in paper], "s", mfc="none", color="tab:red", label="paper")
            ax.legend(fontsize=7)
        top = max([s + (e or 0) for _, s, e in pts] + [v for _, v in paper] + [1.0])
        ax.set_ylim(0, min(100.0, top * 1.15) if top < 87 else 100.0)
        ax.set_title(row["title"], fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(stages, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("score (%)", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, out)
    plt.close(fig)
    return out


def plot_training_curves(curves: list[tuple[str, list[dict]]], out: Path) -> Path | None:
    """One column per RL stage (each on its own scale: RLHF's reward-model scores and the
    verifiers' 0/1 rewards do not share an axis), one row per curve (reward, response length).
    None when no stage logged an RL curve."""
    curves = [(name, rows) for name, rows in curves if any(CURVE_KEYS[0] in r for r in rows)]
    if not curves:
        return None
    fig, axes = plt.subplots(len(CURVE_KEYS), len(curves), figsize=(3.2 * len(curves), 2.6 * len(CURVE_KEYS)),
                             squeeze=False)
    for col, (name, rows) in enumerate(curves):
        for row, key in enumerate(CURVE_KEYS):
            ax = axes[row][col]
            pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3)
            ax.set_title(f"{name}: {key}", fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, out)
    plt.close(fig)
    return out
