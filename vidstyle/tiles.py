"""Tiles: a frame too large for the device's memory, optimized a piece at a time.

The optimizer needs the backbone's activations (and their gradients) for every pixel it
updates, so its memory grows with the frame; at 4K that is more than many machines have.
Here a frame is cut into overlapping tiles. Each iteration runs the backbone on one tile at a
time, so only one tile's activations are ever held, and adds each tile's gradient into the
whole frame's, weighted by a window that fades across the overlap; then one optimizer step
moves the whole frame. Every pixel thus takes one step per iteration from a blend of the
gradients of the tiles that see it, and no tile ever has an edge of its own in the picture:
where a tile's view ends (its network sees zero padding there), its weight has already fallen
to nothing.

Each tile is held to the whole style (its Gram matrices against the style's) and to its own
part of the frame's content and temporal target: the same losses as untiled, computed on a
window of the frame. What a tile cannot see is the frame beyond its overlap, so patterns
larger than a tile are not coordinated across tiles; the overlap is there so that every
pixel's weight comes from tiles that see some way around it.

Pure tensor and integer functions; conventions as elsewhere, frames ``(1, C, H, W)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

OVERLAP = 128
"""Pixels that neighbouring tiles share: the weight of each fades over them, and the network's
view of a pixel near a tile's edge reaches this far into the neighbour's part."""
MIN_TILE = 3 * OVERLAP
"""The smallest tile side used: below it the overlap would be most of each tile."""


@dataclass(frozen=True)
class Tile:
    """One tile: rows ``top:bottom`` and columns ``left:right`` of the frame, and its weight
    there, ``(1, 1, bottom - top, right - left)``; the weights of all tiles sum to 1 at every
    pixel."""

    top: int
    bottom: int
    left: int
    right: int
    weight: Tensor

    @property
    def pixels(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left)

    def of(self, frame: Tensor) -> Tensor:
        """The tile's part of ``frame`` ``(B, C, H, W)``, a view."""
        return frame[..., self.top:self.bottom, self.left:self.right]


def spans(length: int, count: int, overlap: int) -> list[tuple[int, int]]:
    """``count`` spans ``(start, stop)`` that cover ``0..length``, neighbours sharing at least
    ``overlap`` pixels, all of the same size."""
    if count < 1 or length < 1:
        raise ValueError(f"need count >= 1 and length >= 1, got {count} and {length}")
    if count == 1:
        return [(0, length)]
    size = min(length, math.ceil((length + (count - 1) * overlap) / count))
    step = (length - size) / (count - 1)
    return [(round(i * step), round(i * step) + size) for i in range(count)]


def _ramp(start: int, stop: int, overlap: int, lo_edge: bool, hi_edge: bool) -> Tensor:
    """A span's weight along one axis, before normalising: 1 inside, falling linearly to
    near 0 over ``overlap`` pixels towards each end that is not the frame's edge."""
    i = torch.arange(stop - start, dtype=torch.float32)
    w = torch.ones(stop - start)
    if overlap > 0:
        if not lo_edge:
            w = torch.minimum(w, (i + 0.5) / overlap)
        if not hi_edge:
            w = torch.minimum(w, (stop - start - i - 0.5) / overlap)
    return w.clamp(min=1e-3)


def plan(height: int, width: int, rows: int, columns: int, overlap: int = OVERLAP
         ) -> list[Tile]:
    """Tiles for a ``height x width`` frame in ``rows x columns``, neighbours overlapping by at
    least ``overlap`` pixels, with weights that fade across each overlap and sum to 1.

    Returns:
        The tiles, row by row; one tile of the whole frame (weight 1) for ``1 x 1``.
    """
    ys, xs = spans(height, rows, overlap), spans(width, columns, overlap)
    raw = []
    for r, (top, bottom) in enumerate(ys):
        wy = _ramp(top, bottom, overlap, r == 0, r == rows - 1)
        for c, (left, right) in enumerate(xs):
            wx = _ramp(left, right, overlap, c == 0, c == columns - 1)
            raw.append((top, bottom, left, right, wy[:, None] * wx[None, :]))
    total = torch.zeros(height, width)
    for top, bottom, left, right, w in raw:
        total[top:bottom, left:right] += w
    return [Tile(top, bottom, left, right,
                 (w / total[top:bottom, left:right])[None, None])
            for top, bottom, left, right, w in raw]


def grid_for(height: int, width: int, most_pixels: float, overlap: int = OVERLAP
             ) -> tuple[int, int]:
    """The fewest ``(rows, columns)`` of tiles, overlapping by ``overlap``, none over
    ``most_pixels`` pixels and none with a side under :data:`MIN_TILE` (unless the frame's is).

    Raises:
        ValueError: when even tiles of :data:`MIN_TILE` pixels a side would be too many pixels.
    """
    if height * width <= most_pixels:
        return 1, 1

    def side(length: int, count: int) -> int:
        start, stop = spans(length, count, overlap)[0]
        return stop - start

    def most(length: int) -> int:  # the most tiles along an axis before they get too small
        count = 1
        while side(length, count + 1) >= min(MIN_TILE, length) and count < length // max(
                overlap, 1):
            count += 1
        return count

    # The fewest tiles; of as many, the least work (pixels of all tiles, overlaps counted).
    best: tuple[int, int, int, int] | None = None  # (tiles, pixels, rows, columns)
    for rows in range(1, most(height) + 1):
        for columns in range(1, most(width) + 1):
            area = side(height, rows) * side(width, columns)
            if area <= most_pixels:
                candidate = (rows * columns, rows * columns * area, rows, columns)
                best = candidate if best is None else min(best, candidate)
                break
    if best is None:
        raise ValueError(f"tiles of {MIN_TILE} px a side would need more memory than there is")
    return best[2], best[3]


def accumulate(grad: Tensor, tile: Tile, tile_grad: Tensor, share: float) -> None:
    """Add ``tile``'s gradient ``tile_grad`` ``(1, C, h, w)``, weighted by its window (on the
    same device) and ``share``, into the frame's ``grad`` ``(1, C, H, W)`` in place."""
    tile.of(grad).add_(tile_grad * tile.weight * share)

