"""A frame too large for the memory budget, rendered in tiles: peak memory, time, and whether
a tile's edge shows.

    pip install -e ".[bench]"                                   # scikit-image: the photograph
    python benchmarks/tiles.py                                  # one 4K frame in 6 GB
    python benchmarks/tiles.py --size 1920x1080 --max-memory 2.8 --iterations 50

Renders one frame, a real photograph (``skimage.data.coffee``) scaled to ``--size``, with
:func:`vidstyle.pipeline.render` (``--max-side 0``, ``--max-memory``, ``--iterations`` for
the frame, early stopping off) in this process, and prints:

* the tiles the budget called for, the seconds, and this process's peak memory (RSS);
* whether a tile's edge shows: the style loss (the render's backbone and Gram targets) of
  square crops centred on the lines where neighbouring tiles meet, against crops beside them
  (goal: within 1.2x); and the mean step between neighbouring pixels across those lines
  against the columns (rows) beside them (1.0: the line is like its neighbours; the input's
  own figure beside it).

One frame has no temporal term: the warping error along tile edges needs a clip, which this
does not measure.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CROP = 256


def _photo(width: int, height: int) -> np.ndarray:
    from skimage import data

    image = data.coffee()  # 400x600 RGB
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)


def _lines(length: int, count: int) -> list[int]:
    """Where neighbouring tiles along an axis meet: the middle of each overlap."""
    from vidstyle.tiles import OVERLAP, spans

    pieces = spans(length, count, OVERLAP)
    return [(a_stop + b_start) // 2 for (_, a_stop), (b_start, _) in zip(pieces, pieces[1:])]


def _step_ratio(image: np.ndarray, lines: list[int], axis: int, near: int = 32) -> float:
    """Mean |difference| between neighbouring pixels across ``lines`` (along ``axis``: 1 for
    columns, 0 for rows) over the same within ``near`` pixels of them (the line itself and
    its next neighbours left out): 1.0 where the line is like the columns beside it."""
    grey = image.astype(np.float32).mean(axis=2)
    steps = np.abs(np.diff(grey, axis=axis)).mean(axis=1 - axis)  # one per column (or row)
    at = [steps[c - 1] for c in lines]
    beside = [steps[c - 1 + d] for c in lines for d in range(-near, near + 1) if abs(d) > 2
              and 0 <= c - 1 + d < len(steps)]
    return float(np.mean(at) / np.mean(beside))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="3840x2160", help="WxH (default 3840x2160)")
    parser.add_argument("--max-memory", type=float, default=6.0, help="GB (default 6)")
    parser.add_argument("--iterations", type=int, default=20, help="for the frame (default 20)")
    parser.add_argument("--style", type=Path, default=REPO / "sample_videos" / "ink.jpg")
    parser.add_argument("--keep", type=Path, help="also write the frame to this PNG")
    args = parser.parse_args(argv)
    width, height = (int(n) for n in args.size.lower().split("x"))

    from vidstyle.config import OptimConfig, RenderConfig
    from vidstyle.features import load_backbone
    from vidstyle.io import VideoWriter, iter_frames
    from vidstyle.io.images import load_image, to_tensor, write_png
    from vidstyle.losses import gram_matrix
    from vidstyle.optimize import FrameStylizer
    from vidstyle.pipeline import Progress, render

    tiles = [(1, 1)]
    with tempfile.TemporaryDirectory() as tmp:
        clip, out = Path(tmp) / "still.mp4", Path(tmp) / "out.mp4"
        source = _photo(width, height)
        with VideoWriter(clip, width=width, height=height, rate=Fraction(24),
                         time_base=Fraction(1, 24), crf=12) as writer:
            writer.write(source, 0.0)

        def seen(p: Progress) -> None:
            tiles[0] = p.tiles

        cfg = RenderConfig(input=clip, styles=(args.style,), output=out, max_side=0,
                           max_memory=args.max_memory,
                           optim=OptimConfig(first_iterations=args.iterations, early_stop=0))
        began = time.perf_counter()
        render(cfg, progress=seen)
        seconds = time.perf_counter() - began
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB
        frame = next(iter(iter_frames(out))).image
        source = next(iter(iter_frames(clip))).image
    if args.keep:
        write_png(args.keep, frame)
    rows, columns = tiles[0]
    print(f"{width}x{height}, {args.iterations} iterations, --max-memory {args.max_memory:g}: "
          f"{rows}x{columns} tiles, {seconds:.0f} s, peak RSS {peak:.2f} GiB "
          f"(2 CPU cores; {torch.get_num_threads()} threads)", flush=True)
    if (rows, columns) == (1, 1):
        print("one tile: no edges to measure")
        return 0

    # The style loss of crops centred on the lines where tiles meet against crops beside
    # them (CROP * 3/4 away, outside the overlap, on the same rows or columns): neighbours
    # show much the same part of the photo, so the content's share of the loss cancels.
    net = load_backbone(cfg.style.backbone, device=torch.device("cpu"))
    stylizer = FrameStylizer(net, [load_image(args.style)], style=cfg.style, optim=cfg.optim,
                             frame_size=(height, width))
    half, away = CROP // 2, CROP * 3 // 4
    ys, xs = _lines(height, rows), _lines(width, columns)
    spots = [(y, x, (0, away)) for x in xs for y in range(half, height - half + 1, CROP)]
    spots += [(y, x, (away, 0)) for y in ys for x in range(half, width - half + 1, CROP)]

    def loss(y: int, x: int) -> float:
        y0 = min(max(y - half, 0), height - CROP)
        x0 = min(max(x - half, 0), width - CROP)
        crop = to_tensor(np.ascontiguousarray(frame[y0:y0 + CROP, x0:x0 + CROP]),
                         torch.device("cpu"))
        with torch.no_grad():
            feats = stylizer.features(crop, stylizer.style_layers)
            return sum(float(((gram_matrix(feats[k]) - stylizer.targets[k]) ** 2).mean())
                       for k in stylizer.style_layers) / len(stylizer.style_layers)

    on = [loss(y, x) for y, x, _ in spots]
    beside = [(loss(y - dy, x - dx) + loss(y + dy, x + dx)) / 2 for y, x, (dy, dx) in spots]
    ratios = np.array(on) / np.array(beside)
    print(f"style loss of {CROP}px crops on the lines where tiles meet / beside them: mean "
          f"{ratios.mean():.2f}, worst {ratios.max():.2f} over {len(spots)} crops "
          "(goal at most 1.2)")
    for name, lines, axis in (("columns", xs, 1), ("rows", ys, 0)):
        if lines:
            print(f"step between neighbouring pixels across the {name} where tiles meet, "
                  f"against the {name} beside them: {_step_ratio(frame, lines, axis):.2f} "
                  f"(input: {_step_ratio(source, lines, axis):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
