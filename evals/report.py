"""`python -m evals.report RUN_DIR`: the stage-by-stage table (like the model cards) and plots.

Columns are the run's stages in cascade order: from `--cascade YAML` (cascade.stages), else the
run dir's `NN_name` numbering. Rows are benchmarks (registry order). Each cell is our headline
score ± its standard error (percent); with published numbers (`--paper`, automatic for the 8B/14B
cascades) the paper's value for that stage follows in brackets. Writes RUN_DIR/report/:
report.md, report.json, benchmarks.png and, when stages logged metrics.jsonl, rl_curves.png.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from cascade.config.cli import DEBUG_FLAG, run_cli
from cascade.config.errors import UserError
from cascade.fileio import atomic_write_text
from cascade.runtime.stage_timing import COLUMNS, TIMING_FILE
from cascade.runtime.stage_timing import summarize as summarize_timing
from evals.benchmarks import benchmark_names
from evals.paper import MODEL_BY_CASCADE, PaperNumbers, load_numbers, paper_numbers_for
from evals.runner import RESULTS_SCHEMA, results_path
from evals.training_logs import METRICS_FILE, read_metrics, summarize

_NUMBERED = re.compile(r"^(\d+)_(.+)$")


@dataclass(frozen=True)
class StageColumn:
    index: int
    name: str
    dir: Path
    results: dict | None  # the stage's results document, None if it has none yet

    @property
    def label(self) -> str:
        return f"{self.index:02d} {self.name}"


def discover_stages(run_dir: Path, cascade: str | None = None) -> tuple[list[StageColumn], str | None]:
    """Stages in cascade order and the cascade's name (None when unknown)."""
    if cascade:
        from cascade.stages import load_cascade

        plan = load_cascade(cascade)
        cols = []
        for s in plan.chain:
            local = run_dir / f"{s.index:02d}_{s.name}"
            d = local if local.is_dir() else s.output_dir
            cols.append(StageColumn(s.index, s.name, d, _read_results(d, s.name)))
        return cols, plan.name
    cols, cascade_name = [], None
    for d in sorted((p for p in run_dir.iterdir() if p.is_dir() and _NUMBERED.match(p.name)),
                    key=lambda p: int(_NUMBERED.match(p.name).group(1))):
        m = _NUMBERED.match(d.name)
        cols.append(StageColumn(int(m.group(1)), m.group(2), d, _read_results(d, m.group(2))))
        cascade_name = cascade_name or _cascade_from_marker(d)
    return cols, cascade_name


def _read_results(stage_dir: Path, name: str) -> dict | None:
    path = results_path(stage_dir, name)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a results file ({e}); re-run its stage's eval to rewrite it") from e
    if not isinstance(doc, dict) or doc.get("schema") != RESULTS_SCHEMA or not isinstance(doc.get("benchmarks"), dict):
        schema = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise UserError(f"{path}: schema {schema!r}, expected {RESULTS_SCHEMA!r} with a `benchmarks` mapping")
    return doc


def _cascade_from_marker(stage_dir: Path) -> str | None:
    """The cascade name recorded by the launcher's COMPLETE marker (its cascade YAML's `name`)."""
    marker = stage_dir / "COMPLETE"
    try:
        source = json.loads(marker.read_text()).get("cascade")
        if source:
            from cascade.stages import load_cascade

            return load_cascade(source).name
    except Exception:  # noqa: BLE001 - the marker is a hint only
        return None
    return None


def _cell(result: dict | None, paper: float | None) -> str:
    if result is None:
        text = "–"
    elif "skipped" in result:
        text = "skip"
    else:
        se = result.get("stderr")
        text = f"{result['score']:.1f}" + (f" ± {se:.1f}" if se is not None else "")
    return text + (f" [{paper:.1f}]" if paper is not None else "")


def build_table(stages: list[StageColumn], paper: PaperNumbers | None) -> dict:
    """Rows (one per benchmark any stage ran) aligned with the stage columns, as plain data."""
    ran = [s for s in stages if s.results]
    seen = {b for s in ran for b in s.results["benchmarks"]}
    order = [b for b in benchmark_names() if b in seen] + sorted(seen - set(benchmark_names()))
    rows = []
    for bench in order:
        cells = [s.results["benchmarks"].get(bench) for s in ran]
        done = [c for c in cells if c and "skipped" not in c]
        latest = done[-1] if done else next(c for c in cells if c)
        ns = sorted({c["n_items"] for c in done})
        label = latest.get("title", bench)
        if done:
            label += f" (n={ns[0] if len(ns) == 1 else 'varies'}, {latest['metric']})"
        paper_row = latest.get("paper_row")
        published = [paper.by_stage.get(s.name, {}).get(paper_row) if paper and paper_row else None for s in ran]
        rows.append({
            "benchmark": bench, "title": label,
            "scores": [c["score"] if c and "skipped" not in c else None for c in cells],
            "stderrs": [c.get("stderr") if c and "skipped" not in c else None for c in cells],
            "paper": published,
            "cells": [_cell(c, p) for c, p in zip(cells, published)],
            "skipped": {s.name: c["skipped"] for s, c in zip(ran, cells) if c and "skipped" in c},
            "notes": latest.get("notes", ""),
        })
    training = {s.label: asdict(t) for s in stages if (t := summarize(read_metrics(s.dir)))}
    return {"stages": [s.label for s in ran], "stage_names": [s.name for s in ran],
            "missing": [s.label for s in stages if not s.results], "rows": rows, "training": training}


def stage_times(run_dir: Path, stages: list[StageColumn]) -> dict[str, dict[str, float]]:
    """Seconds per phase column of every timed stage dir (side stages too), in the order they ran."""
    dirs = {s.dir.resolve(): s.label for s in stages}
    found = [(p.parent, summarize_timing(p)) for p in run_dir.glob(f"*/{TIMING_FILE}")]
    found += [(d, summarize_timing(d / TIMING_FILE)) for d in dirs if d.parent != run_dir]
    rows = [(d, t) for d, t in found if t]
    rows.sort(key=lambda r: (r[0] / TIMING_FILE).stat().st_mtime)
    return {dirs.get(d.resolve(), d.name): t for d, t in rows}


def _mmss(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(round(seconds % 60)):02d}s"


def render_times(times: dict[str, dict[str, float]]) -> list[str]:
    cols = [*COLUMNS, "other", "total"]
    lines = ["", f"Where each stage's time went (from its {TIMING_FILE}; start-up = interpreter, imports, model "
             "and engine set-up, weight loading; other = exit and what no phase timed):", "",
             "| stage | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for label, t in times.items():
        retried = f" ({int(t['attempts'])} attempts)" if t["attempts"] > 1 else ""
        lines.append(f"| {label}{retried} | " + " | ".join(_mmss(t[c]) for c in cols) + " |")
    if len(times) > 1:
        lines.append("| **all** | " + " | ".join(_mmss(sum(t[c] for t in times.values())) for c in cols) + " |")
    return lines


def render_markdown(run_dir: Path, table: dict, paper: PaperNumbers | None, plots: dict[str, Path | None]) -> str:
    lines = [f"# Evaluation report: {run_dir.name}", ""]
    lines.append("Stages in cascade order; scores in percent, headline metric (avg@k = pass@1 averaged over k "
                 "samples) ± standard error over items.")
    if paper:
        lines.append(f"[x] = published value for {paper.model_title} after that stage ({paper.source}).")
    lines += ["", "| benchmark | " + " | ".join(table["stages"]) + " |",
              "|---|" + "---|" * len(table["stages"])]
    for row in table["rows"]:
        lines.append(f"| {row['title']} | " + " | ".join(row["cells"]) + " |")
    notes = [f"- {r['title']}: {r['notes']}" for r in table["rows"] if r.get("notes")]
    if notes:
        lines += ["", "Notes:"] + notes
    skipped = {(r["title"], why) for r in table["rows"] for why in r["skipped"].values()}
    if skipped:
        lines += ["", "Skipped:"] + [f"- {title}: {' '.join(why.split())}" for title, why in sorted(skipped)]
    if table["missing"]:
        lines += ["", "No results yet: " + ", ".join(table["missing"])]
    if table.get("training"):
        lines += ["", f"Training (from each stage's {METRICS_FILE}; mean of the first and of the last steps):", "",
                  "| stage | metric | start | end | steps |", "|---|---|---|---|---|"]
        for label, t in table["training"].items():
            lines.append(f"| {label} | {t['key']} | {t['first']:.3g} | {t['last']:.3g} | {t['steps']} |")
    if table.get("times"):
        lines += render_times(table["times"])
    for title, path in plots.items():
        if path is not None:
            lines += ["", f"![{title}]({path.name})"]
    return "\n".join(lines) + "\n"


def make_report(run_dir: str | Path, cascade: str | None = None, paper_model: str = "auto",
                out_dir: str | Path | None = None, plots: bool = True) -> Path:
    """Build the report; returns the path of report.md."""
    from evals.plots import plot_benchmarks, plot_training_curves

    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():  # checked first: a mistyped dir must not get a report/ of its own
        raise UserError(f"run dir {run_dir} does not exist" if not run_dir.exists() else f"{run_dir} is not a directory")
    stages, cascade_name = discover_stages(run_dir, cascade)
    if not stages:
        raise UserError(f"{run_dir}: no stage directories (NN_name) found: is this a cascade's run dir?")
    if not any(s.results for s in stages):
        looked = ", ".join(str(results_path(s.dir, s.name)) for s in stages[:2])
        raise UserError(f"{run_dir}: no stage has eval results yet ({len(stages)} stage(s); looked for {looked}, ...)")
    if paper_model == "auto":
        paper_model = MODEL_BY_CASCADE.get(cascade_name or "", "none")
    paper = None if paper_model == "none" else paper_numbers_for(paper_model, [s.name for s in stages])
    table = {**build_table(stages, paper), "times": stage_times(run_dir, stages)}
    out = Path(out_dir) if out_dir else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path | None] = {}
    if plots:
        made["benchmarks vs stage"] = plot_benchmarks(table["stage_names"], table["rows"], out / "benchmarks.png")
        made["RL reward and response length"] = plot_training_curves(
            [(s.name, read_metrics(s.dir)) for s in stages], out / "rl_curves.png")
    atomic_write_text(out / "report.json", json.dumps({**table, "paper_model": paper_model,
                                                  "plots": {k: str(v) if v else None for k, v in made.items()}},
                                                 indent=2) + "\n")
    md = out / "report.md"
    atomic_write_text(md, render_markdown(run_dir, table, paper, made))
    return md


def _main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m evals.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="a cascade's run dir (holds NN_<stage>/evals/<stage>.json)")
    ap.add_argument("--cascade", help="cascade YAML: stage order and names (default: the NN_ numbering)")
    ap.add_argument("--paper", default="auto", choices=["auto", "none", *load_numbers()["models"]],
                    help="show the paper's per-stage numbers for this model (auto: from the cascade name)")
    ap.add_argument("--out", help="output dir (default RUN_DIR/report)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args([a for a in argv if a != DEBUG_FLAG])
    md = make_report(args.run_dir, args.cascade, args.paper, args.out, plots=not args.no_plots)
    print(md.read_text())
    print(f"[evals] wrote {md} (training curves read from <stage>/{METRICS_FILE})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog="python -m evals.report")


if __name__ == "__main__":
    sys.exit(main())
