"""Presenting what :func:`vidstyle.metrics.measure` found: a terminal table and a plot.

Kept apart from the measuring so that :mod:`vidstyle.metrics` holds only the numbers;
matplotlib is imported only when a plot is drawn. The names are also importable from
:mod:`vidstyle.metrics`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from vidstyle.errors import OutputError

if TYPE_CHECKING:  # only for annotations: vidstyle.metrics imports this module
    from vidstyle.metrics import MetricsReport


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _times(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def format_report(report: MetricsReport, *, source: str = "input", output: str = "output") -> str:
    """A plain-text table of ``report`` for a terminal (the CLI's default output)."""
    w, h = report.size
    k = report.long_range_k
    lines = [
        f"{output} against {source}: {report.frames} frames ({report.pairs} pairs) at {w}x{h}, "
        f"from input frame {report.start_index}",
        "",
        f"{'warping error (Lai et al. 2018)':<34}{'output':>11}{'input':>11}{'ratio':>9}",
        f"{'  consecutive frames':<34}{_num(report.warping_error_output):>11}"
        f"{_num(report.warping_error_input):>11}{_times(report.flicker_ratio):>9}"
        "  <- flicker ratio",
    ]
    if k is not None:
        note = "" if report.long_range_output else f"  (needs more than {k} frames)"
        lines.append(
            f"{f'  frames t and t+{k}':<34}{_num(report.long_range_error_output):>11}"
            f"{_num(report.long_range_error_input):>11}{_times(report.long_range_ratio):>9}{note}"
        )
    if report.backbone is not None:
        sampled = "every frame" if report.every == 1 else f"every {report.every}th frame"
        lines += [
            "",
            f"{f'stylization ({report.backbone}, {sampled})':<34}",
            f"{'  style loss':<34}{_num(report.style_loss_output):>11}"
            f"{_num(report.style_loss_input):>11}{_times(report.style_loss_ratio):>9}"
            "  (< 1: moved toward the style)",
            f"{'  content loss':<34}{_num(report.content_loss):>11}"
            f"{'':>20}  (0: the input's shapes exactly)",
        ]
    lines += [
        "",
        "flicker ratio: how much the output changes along the input's motion, relative to the",
        "input itself. 1.0 is as steady as the source; 2.0 changes twice as much (flicker).",
    ]
    return "\n".join(lines)


def check_plot_path(path: str | os.PathLike[str]) -> Path:
    """Refuse a plot path that cannot be written, before any work is done."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"plot directory does not exist: {parent} (create it first)")
    if path.is_dir():
        raise OutputError(f"plot path is a directory: {path}")
    return path


def plot_report(report: MetricsReport, path: str | os.PathLike[str]) -> Path:
    """Write the per-pair error curves (output vs input, log scale) to ``path`` (PNG by suffix).

    With style numbers, a second panel shows the per-frame style loss of output and input.

    Raises:
        OutputError: the file cannot be written.
    """
    # Imported here: matplotlib is slow to import and only this function needs it. The Agg
    # canvas is used directly (no pyplot), so no global backend state is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    path = check_plot_path(path)
    panels = 2 if report.style_frames else 1
    fig = Figure(figsize=(8, 3.2 * panels), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # frame numbers
    s = report.start_index
    ax = axes[0]
    pairs = [s + t for t in range(report.pairs)]
    # The input (the floor) first, so the output stays visible where the two coincide.
    ax.plot(pairs, report.per_pair_input, color="C0", label="input, t to t+1")
    ax.plot(pairs, report.per_pair_output, color="C3", label="output, t to t+1")
    if report.long_range_output:
        k = report.long_range_k
        far = [s + t for t in range(len(report.long_range_output))]
        ax.plot(far, report.long_range_input, color="C0", ls="--", label=f"input, t to t+{k}")
        ax.plot(far, report.long_range_output, color="C3", ls="--", label=f"output, t to t+{k}")
    ax.set_yscale("log", nonpositive="clip")
    ax.set_xlabel("input frame t")
    ax.set_ylabel("warping error")
    ax.set_title(f"temporal consistency: flicker ratio {report.flicker_ratio:.2f}")
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    if panels == 2:
        ax = axes[1]
        frames = [s + t for t in report.style_frames]
        ax.plot(frames, report.style_loss_input_per_frame, color="C0", marker=".",
                label="input")
        ax.plot(frames, report.style_loss_per_frame, color="C3", marker=".", label="output")
        ax.set_yscale("log", nonpositive="clip")
        ax.set_xlabel("input frame")
        ax.set_ylabel(f"style loss ({report.backbone})")
        ratio = report.style_loss_ratio
        ax.set_title(f"stylization: style loss ratio {_times(ratio)}")
        ax.legend(fontsize="small")
        ax.grid(True, which="both", alpha=0.3)
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise OutputError(f"cannot write plot {path}: {exc}") from exc
    return path
