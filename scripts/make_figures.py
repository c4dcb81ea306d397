"""Make the README's pictures from the bundled samples: ``python scripts/make_figures.py``.

Renders the first second of ``sample_videos/pan.mp4`` with both bundled styles at the default
settings and writes

* ``docs/demo.png``: input frames on top, each style below, with frame numbers;
* ``docs/steadiness.png``: the warping error (``vidstyle metrics``) of each pair of frames for
  the ink render, for the same render without the temporal loss (per-frame stylization), and
  for the input itself, with the flicker ratios in the legend.

``python scripts/make_figures.py --fast FOLDER`` writes instead

* ``docs/fast.jpg``: three frames at the render's full size, the input on top, the default
  render in the middle, ``--fast`` below, from the renders ``python benchmarks/fast.py --keep
  FOLDER`` left in ``FOLDER``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from vidstyle.config import RenderConfig, StyleConfig
from vidstyle.io import iter_frames
from vidstyle.metrics import MetricsReport, measure
from vidstyle.pipeline import render

ROOT = Path(__file__).resolve().parents[1]
SHOW = (0, 8, 16, 23)
FAST_SHOW = (5, 22, 39)


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def _plot(reports: dict[str, MetricsReport], target: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    source = next(iter(reports.values())).per_pair_input
    pairs = range(1, len(source) + 1)
    for name, report in reports.items():
        ax.plot(pairs, report.per_pair_output, label=f"{name} (flicker ratio "
                f"{report.flicker_ratio:.1f})")
    ax.plot(pairs, source, "k--", label="input (1.0)")
    ax.set_yscale("log")
    ax.set_xlabel("frame pair (t, t+1)")
    ax.set_ylabel("warping error")
    ax.set_title("pan.mp4 with ink.jpg: change along the motion, lower is steadier")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(target)


def fast_sheet(folder: Path) -> Path:
    """``docs/fast.jpg`` from the clip and renders ``benchmarks/fast.py`` kept in ``folder``."""
    rows = []
    for name, label in (("long.mp4", "input"), ("default.mp4", "default"), ("fast.mp4", "--fast")):
        frames = iter_frames(folder / name, stop_index=max(FAST_SHOW) + 1)
        images = {f.index: f.image for f in frames if f.index in FAST_SHOW}
        if len(images) < len(FAST_SHOW):
            raise SystemExit(f"{folder / name} has fewer than {max(FAST_SHOW) + 1} frames: "
                             "run benchmarks/fast.py with --default-frames 40 or more")
        rows.append([_label(images[i], f"{label} {i}") for i in FAST_SHOW])
    h, w = rows[1][0].shape[:2]
    rows = [[cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA) for image in row]
            for row in rows]  # all at the default render's size, should the source differ
    sheet = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
    target = ROOT / "docs" / "fast.jpg"
    # JPEG at high quality: strokes stay visible at a fifth of the PNG's size.
    cv2.imwrite(str(target), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 90])
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", type=Path, metavar="FOLDER",
                        help="write docs/fast.jpg from benchmarks/fast.py's kept renders")
    args = parser.parse_args()
    if args.fast is not None:
        target = fast_sheet(args.fast)
        print(f"wrote {target.relative_to(ROOT)}")
        return 0
    clip = ROOT / "sample_videos" / "pan.mp4"
    ink = ROOT / "sample_videos" / "ink.jpg"
    rows = [[_label(f.image, f"input {f.index}") for f in iter_frames(clip, stop_index=24)
             if f.index in SHOW]]
    reports: dict[str, MetricsReport] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for style in ("ink", "embers"):
            out = Path(tmp) / f"{style}.mp4"
            render(RenderConfig(input=clip, styles=(ROOT / "sample_videos" / f"{style}.jpg",),
                                output=out, frames=(0, 24)))
            rows.append([_label(f.image, f"{style} {f.index}") for f in iter_frames(out)
                         if f.index in SHOW])
            if style == "ink":
                reports["vidstyle"] = measure(clip, out, long_range=None)
        per_frame = Path(tmp) / "per-frame.mp4"
        render(RenderConfig(input=clip, styles=(ink,), output=per_frame, frames=(0, 24),
                            style=StyleConfig(temporal_weight=0.0)))
        reports["per-frame (--temporal-weight 0)"] = measure(clip, per_frame, long_range=None)
    _plot(reports, ROOT / "docs" / "steadiness.png")
    sheet = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
    target = ROOT / "docs" / "demo.png"
    target.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(target), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {target.relative_to(ROOT)} ({sheet.shape[1]}x{sheet.shape[0]})")
    for name, report in reports.items():
        print(f"{name}: flicker ratio {report.flicker_ratio:.2f}")
    print("wrote docs/steadiness.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
