"""Chunk planning: where a long video is cut into parts for several workers (pure numpy).

Inside a shot the work is sequential (each frame starts from the previous stylized frame), so
a long render is spread over workers by cutting it into chunks: at shot cuts where the video
has them (:func:`shot_cuts`, from :func:`frame_differences`), at even points otherwise
(:func:`plan_chunks`). A chunk that continues the previous chunk's shot renders a few frames
early (its *pre-roll*) and has a seam, reconciled afterwards (:mod:`vidstyle.seams`). Nothing
here needs Ray: :mod:`vidstyle.distributed` runs the plan.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from vidstyle.config import RenderConfig
from vidstyle.errors import InputError

DEFAULT_PREROLL = 8
"""Frames rendered before a chunk's first kept frame, to establish its temporal chain."""
DEFAULT_SEAM_WINDOW = 10
"""Frames after each seam optimized again with temporal terms toward both neighbours."""


def frame_differences(frames: Iterable[np.ndarray], *, side: int = 64) -> list[float]:
    """Mean absolute difference of consecutive frames, in grey, downscaled to ``side`` px.

    Args:
        frames: ``(H, W, 3)`` uint8 RGB images, in order.

    Returns:
        ``d[k]`` in [0, 1]: the difference between frames ``k`` and ``k + 1`` (one fewer than
        the frames). Downscaling first makes it robust to noise and small motion.
    """
    import cv2

    diffs: list[float] = []
    prev: np.ndarray | None = None
    for image in frames:
        h, w = image.shape[:2]
        scale = side / max(h, w)
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        if prev is not None:
            diffs.append(float(np.abs(grey - prev).mean()))
        prev = grey
    return diffs


def shot_cuts(differences: Sequence[float], *, factor: float = 4.0, floor: float = 0.08
              ) -> list[int]:
    """Frames that begin a new shot, from :func:`frame_differences`.

    Frame ``k + 1`` begins a shot when ``differences[k]`` is more than ``factor`` times the
    median difference and above ``floor``: a pan or a moving object changes consecutive
    frames a little and steadily, a cut changes most of the picture at once. The floor keeps
    a still video (median near 0) from seeing cuts in noise.

    Returns:
        Sorted positions ``k + 1`` (each > 0).
    """
    if not differences:
        return []
    median = statistics.median(differences)
    limit = max(factor * median, floor)
    return [k + 1 for k, d in enumerate(differences) if d > limit]


@dataclass(frozen=True)
class Chunk:
    """A part of the frame range rendered by one worker. Positions count from the range's
    first frame, ends exclusive."""

    start: int
    """First kept frame."""
    stop: int
    render_from: int
    """First rendered frame: ``start`` minus the pre-roll (``start`` at a shot cut)."""
    seam: bool
    """True when the chunk continues the previous chunk's shot, so the seam before ``start``
    is reconciled; False for the first chunk and for chunks that begin at a shot cut."""

    @property
    def preroll(self) -> int:
        return self.start - self.render_from

    def __len__(self) -> int:
        return self.stop - self.start


def plan_chunks(
    count: int,
    chunks: int,
    *,
    cuts: Sequence[int] = (),
    preroll: int = DEFAULT_PREROLL,
    min_length: int = DEFAULT_SEAM_WINDOW + 1,
) -> list[Chunk]:
    """Cut ``count`` frames into at most ``chunks`` parts, at shot cuts where possible.

    Boundaries start at even points; each moves to the nearest shot cut within half a chunk
    when that keeps every chunk at least ``min_length`` frames long. A chunk that begins at a
    cut needs neither pre-roll nor seam; any other renders from ``preroll`` frames earlier,
    but never from before the start of its shot. Fewer chunks are made when ``count`` frames
    cannot give each ``min_length``.

    Raises:
        ValueError: ``count``, ``chunks``, ``preroll`` or ``min_length`` out of range.
    """
    if count < 1 or chunks < 1 or preroll < 0 or min_length < 1:
        raise ValueError(
            f"need count >= 1, chunks >= 1, preroll >= 0 and min_length >= 1, got {count}, "
            f"{chunks}, {preroll}, {min_length}"
        )
    n = max(1, min(chunks, count // min_length))
    targets = [round(j * count / n) for j in range(1, n)]
    cut_set = sorted({c for c in cuts if 0 < c < count})
    bounds = [0]
    for j, target in enumerate(targets):
        following = targets[j + 1] if j + 1 < len(targets) else count
        fits = [c for c in cut_set
                if abs(c - target) <= count / (2 * n)
                and c - bounds[-1] >= min_length and following - c >= min_length]
        bounds.append(min(fits, key=lambda c: (abs(c - target), c)) if fits else target)
    bounds.append(count)

    plan = []
    for start, stop in zip(bounds, bounds[1:]):
        if start == 0 or start in cut_set:
            plan.append(Chunk(start, stop, start, seam=False))
            continue
        shot_start = max([0, *(c for c in cut_set if c <= start)])
        plan.append(Chunk(start, stop, max(start - preroll, shot_start), seam=True))
    return plan


def scan(cfg: RenderConfig) -> tuple[list[int], list[float], list[float]]:
    """Decode the selected range once, small: its frame indices, times and differences."""
    from vidstyle.io import iter_frames, probe
    from vidstyle.pipeline import frame_selection

    info = probe(cfg.input)
    start, stop, _ = frame_selection(info, cfg)
    scale = 64 / max(info.width, info.height)
    size = (max(2, round(info.width * scale)), max(2, round(info.height * scale)))
    indices: list[int] = []
    times: list[float] = []

    def images() -> Iterator[np.ndarray]:
        frames = iter_frames(cfg.input, size=size, start_index=start, stop_index=stop,
                             start_time=cfg.start, end_time=cfg.end)
        with contextlib.closing(frames):
            for frame in frames:
                indices.append(frame.index)
                times.append(frame.time)
                yield frame.image

    diffs = frame_differences(images())
    if not indices:
        raise InputError(f"the selected range of {cfg.input.name} contains no frames")
    return indices, times, diffs
