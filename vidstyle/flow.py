"""Optical flow between *input* frames, both directions.

Flows are returned as ``(1, 2, H, W)`` float32 tensors in pixels, ``(dx, dy)``:
``flow(a, b)[p]`` points from pixel ``p`` of ``a`` to where it is in ``b``, so that
``warp(b, flow(a, b)) ~= a`` (see :mod:`vidstyle.warp`).

The estimators, by name (:data:`vidstyle.config.FLOW_METHODS`):

* ``dis`` (the default): OpenCV's DIS, refined down to full resolution; beside the edges of
  moving things each pixel takes the motion of the neighbour that matches it best
  (:func:`sharpen_edges`, ``--flow-edges fill`` leaves this out), and the pixels where the two
  directions still disagree are filled from their neighbours along the image's edges.
* ``dis-coarse``: the same refined DIS one pyramid level coarser: a third of the cost, for
  the long-term references if time matters more than steadiness (``--long-term-flow``).
* ``dis-medium``: OpenCV's DIS medium preset, the flow of earlier releases: faster, coarser.
* ``deepflow``: OpenCV's DeepFlow, a different algorithm from DIS; slower, and there to measure
  a render with a flow it did not use (``vidstyle metrics --flow deepflow``).
* ``raft``: torchvision's RAFT-small, meant for a GPU.

How each was chosen, on scenes whose motion is known exactly: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidstyle.config import FLOW_EDGES, FLOW_METHODS, check_choice
from vidstyle.hub import load_into
from vidstyle.warp import occlusion_mask

# The refined DIS works at full resolution up to this long side and halves the finest level
# above it, so that its cost grows with the frame no faster than the optimizer's does.
FINEST_SIDE = 640


class FlowEstimator(Protocol):
    def __call__(self, a: np.ndarray, b: np.ndarray) -> Tensor:
        """Flow from ``a`` to ``b``, both ``(H, W, 3)`` uint8 RGB; returns ``(1, 2, H, W)``."""
        ...


@runtime_checkable
class PairFlowEstimator(FlowEstimator, Protocol):
    """An estimator that improves a pair of flows once it has both directions."""

    def pair(self, a: np.ndarray, b: np.ndarray) -> tuple[Tensor, Tensor]:
        """``(flow a -> b, flow b -> a)``, each ``(1, 2, H, W)``."""
        ...


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _tensor(flow: np.ndarray, device: torch.device) -> Tensor:
    """``(H, W, 2)`` float32 -> ``(1, 2, H, W)`` on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1)[None].to(device)


def finest_scale(height: int, width: int) -> int:
    """The refined DIS's finest pyramid level for a ``height x width`` frame: 0 (full
    resolution) up to :data:`FINEST_SIDE`, one level coarser per doubling above it."""
    return max(0, math.ceil(math.log2(max(height, width) / FINEST_SIDE)))


def fill_rejected(
    flow: Tensor, reverse: Tensor, guide: np.ndarray, *, smoothness: float = 500.0,
    sigma_color: float = 5.0,
) -> Tensor:
    """``flow`` with the pixels that fail the forward-backward check replaced by an edge-aware
    fill from the pixels that pass.

    Args:
        flow: ``(1, 2, H, W)`` pixels, out of the frame ``guide``.
        reverse: ``(1, 2, H, W)``, the flow back.
        guide: that frame, ``(H, W, 3)`` uint8; the fill does not cross its edges.
        smoothness, sigma_color: the ``lambda`` and ``sigma_color`` of OpenCV's fast global
            smoother (``cv2.ximgproc.fastGlobalSmootherFilter``), chosen on the true-motion
            scenes.

    Returns:
        ``(1, 2, H, W)``: ``flow`` where it passes, the fill elsewhere.

    Why: DIS spreads a moving object's motion a few pixels into the background beside it, so
    the background there was dragged along with the object and repainted afterwards. The two
    directions disagree on those pixels; their neighbours on the same side of the image's
    edge have the right motion. The fill is normalized (a smoothed flow over a smoothed mask)
    so that rejected pixels contribute nothing. Pixels the check still rejects afterwards
    (true occlusions) remain untrusted by the render's masks.
    """
    keep = occlusion_mask(flow, reverse)[0, 0].cpu().numpy()
    if keep.all() or not keep.any():
        return flow
    values = flow[0].cpu().numpy()
    smooth = cv2.ximgproc.fastGlobalSmootherFilter
    weight = smooth(guide, keep, smoothness, sigma_color)
    filled = np.stack([smooth(guide, np.ascontiguousarray(v * keep), smoothness, sigma_color)
                       for v in values]) / np.maximum(weight, 1e-6)
    out = np.where(keep > 0, values, filled).astype(np.float32)
    return torch.from_numpy(out)[None].to(flow.device)


# Sharpening at motion edges (:func:`sharpen_edges`), chosen on the true-motion scenes at
# 320x180 (benchmarks/RESULTS.md). The offsets are in pixels at full resolution where DIS works
# at full resolution; they grow with DIS's finest level, as its blur across edges does.
SHARPEN_RADII = (2, 4, 6)
# A candidate must beat the pixel's own flow by this factor of the matching cost...
SHARPEN_MARGIN = 0.7
# ...and differ from it by more than this (px): under a smooth motion (a zoom) the
# neighbours' flows differ by a fraction of a pixel, and choosing among them on noise would
# only add error.
SHARPEN_MIN_CHANGE = 0.25


def _shifted(values: Tensor, dx: int, dy: int, pad: int) -> Tensor:
    """``values`` (``(C, H + 2 pad, W + 2 pad)``, replicate-padded) read at ``p + (dx, dy)``
    for every pixel ``p`` of the unpadded ``(C, H, W)``."""
    h, w = values.shape[-2] - 2 * pad, values.shape[-1] - 2 * pad
    return values[:, pad + dy:pad + dy + h, pad + dx:pad + dx + w]


def _box_max(values: Tensor, radius: int) -> Tensor:
    """The maximum of ``values`` ``(B, C, H, W)`` over each ``(2 radius + 1)``-square window,
    in two 1-D passes (the same maximum, much cheaper for a wide window)."""
    k = 2 * radius + 1
    rows = F.max_pool2d(values, (1, k), 1, (0, radius))
    return F.max_pool2d(rows, (k, 1), 1, (radius, 0))


def sharpen_edges(
    flow: Tensor, image: Tensor, other: Tensor, *, radii: tuple[int, ...] = SHARPEN_RADII,
    margin: float = SHARPEN_MARGIN, min_change: float = SHARPEN_MIN_CHANGE,
) -> Tensor:
    """``flow`` with each pixel near a motion edge given the flow of the neighbour that
    explains it best.

    Args:
        flow: ``(1, 2, H, W)`` pixels, from ``image`` to ``other``.
        image, other: ``(1, C, H, W)`` float, the two frames.
        radii: the candidates are the flows at ``p + r (dx, dy)`` for each ``r`` and each of
            the 8 directions.
        margin, min_change: a candidate replaces the pixel's own flow only where its
            matching cost is below ``margin`` times the own flow's, and it differs from the
            own flow by more than ``min_change`` px.

    Returns:
        ``(1, 2, H, W)``: the flow, changed only within ``max(radii)`` px of a motion edge
        (a change of more than ``min_change`` px between neighbouring pixels).

    Why: a variational flow (DIS's refinement) is smooth across the edge of a moving object,
    so for a few pixels on each side it is a blend of the object's motion and the
    background's, and the background beside a moving card is dragged along with it. The
    right motion of such a pixel is, almost always, that of a neighbour a few pixels away on
    its own side of the edge. The matching cost is the frames' difference after the warp (L1
    over the channels), averaged over a 3x3 window so that one noisy pixel does not decide.
    The edge-aware fill (:func:`fill_rejected`) cannot do this: it fills only the pixels the
    two directions disagree on, and a blend that is wrong in both directions in
    the same way passes that check. Only pixels near a change of motion are evaluated, so
    the cost follows the length of the edges, not the frame's area.
    """
    _, _, h, w = flow.shape
    reach = max(radii)
    # Motion edges: where the flow changes by more than min_change from a pixel to the next,
    # which under a smooth motion such as a zoom it does not; and the pixels within reach.
    across = (flow[..., :, 1:] - flow[..., :, :-1]).abs().amax(1)[0] > min_change
    down = (flow[..., 1:, :] - flow[..., :-1, :]).abs().amax(1)[0] > min_change
    steep = torch.zeros(h, w, dtype=torch.bool, device=flow.device)
    steep[:, 1:] |= across
    steep[:, :-1] |= across
    steep[1:] |= down
    steep[:-1] |= down
    if not steep.any():
        return flow
    band = _box_max(steep[None, None].to(flow.dtype), reach)[0, 0] > 0
    # The pixels whose cost is needed: the band and its 3x3 windows.
    needed = _box_max(band[None, None].to(flow.dtype), 1)[0, 0] > 0
    ys, xs = needed.nonzero(as_tuple=True)
    where = torch.stack((xs, ys)).to(flow.dtype)  # (2, N) pixel positions (x, y)
    pad = reach
    padded = F.pad(flow, (pad, pad, pad, pad), mode="replicate")[0]  # (2, H+2p, W+2p)
    own = flow[0][:, ys, xs]  # (2, N)
    seen = image[0][:, ys, xs]  # (C, N)
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=flow.dtype,
                         device=flow.device)[:, None]
    directions = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
    by, bx = band.nonzero(as_tuple=True)
    # How many of each band pixel's 3x3 window lie inside the frame.
    count = ((3 - (by == 0).long() - (by == h - 1).long())
             * (3 - (bx == 0).long() - (bx == w - 1).long())).to(flow.dtype)

    def cost(candidates: Tensor) -> Tensor:
        """The matching cost at the band's pixels, ``(K, M)``, of ``candidates``
        ``(K, 2, N)``."""
        # The normalization of vidstyle.warp.warp's grid, folded into one scale per axis.
        grid = ((where + candidates) * scale - 1.0).transpose(1, 2)[None]  # (1, K, N, 2)
        sampled = F.grid_sample(other, grid, mode="bilinear", padding_mode="border",
                                align_corners=True)[0]  # (C, K, N)
        # Scattered into a frame with a zero border, so that each band pixel's 3x3 window is
        # nine reads; only the needed pixels hold costs, and a band pixel's window lies
        # inside them or outside the frame.
        dense = flow.new_zeros(len(candidates), h + 2, w + 2)
        dense[:, ys + 1, xs + 1] = (sampled - seen[:, None]).abs().sum(0)
        total = sum(dense[:, by + 1 + dy, bx + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        return total / count

    best_cost = cost(own[None])[0]
    mine = best_cost * margin
    best = flow[0][:, band]  # (2, M)
    in_band = band[ys, xs]
    # One radius at a time: its 8 candidates are evaluated together, and memory stays at 8
    # candidates whatever the number of radii.
    for r in radii:
        candidates = torch.stack([_shifted(padded, r * dx, r * dy, pad)[:, ys, xs]
                                  for dx, dy in directions])  # (8, 2, N)
        costs = cost(candidates)  # (8, M)
        differs = (candidates - own).square().sum(1)[:, in_band] > min_change**2
        costs = torch.where(differs & (costs < mine), costs, torch.inf)
        c, k = costs.min(0)
        better = c < best_cost
        best_cost = torch.where(better, c, best_cost)
        chosen = candidates[:, :, in_band].gather(0, k[None, None].expand(1, 2, -1))[0]
        best = torch.where(better[None], chosen, best)
    out = flow.clone()
    out[0][:, band] = best
    return out


class DISFlow:
    """OpenCV's DIS optical flow on the CPU.

    ``preset="fine"`` (the default) refines DIS down to the finest level
    :func:`finest_scale` allows, with a denser patch grid (stride 2), 10 variational
    refinement iterations and a smoother field (alpha 40); :meth:`pair` then sharpens both
    directions at motion edges (:func:`sharpen_edges`, with ``edges="sharpen"``, the default)
    and fills the pixels where they disagree (:func:`fill_rejected`). ``preset="coarse"`` is the
    same stopped one pyramid level higher (the variational refinement still ends at full
    resolution). ``preset="medium"`` is
    OpenCV's medium preset as it is, without the fill. Where we differ from OpenCV's presets:
    on scenes with known motion the medium preset's error was several times the fine one's,
    mostly along moving objects' edges. The fine one costs several times more per pair,
    which a render with long-term references pays once per reference (figures:
    benchmarks/RESULTS.md).
    """

    def __init__(self, device: torch.device | str = "cpu", *, preset: str = "fine",
                 edges: str = "sharpen") -> None:
        check_choice("DIS preset", preset, ("fine", "coarse", "medium"))
        check_choice("flow edges", edges, FLOW_EDGES)
        self.device = torch.device(device)
        self.preset = preset
        self.edges = edges
        # The cv2 stubs lack the module-level factory (it exists at run time).
        self._dis = cv2.DISOpticalFlow_create(  # type: ignore[attr-defined]
            cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
        )
        if preset != "medium":
            self._dis.setPatchStride(2)
            self._dis.setVariationalRefinementIterations(10)
            self._dis.setVariationalRefinementAlpha(40.0)

    def _level(self, a: np.ndarray) -> int:
        return finest_scale(*a.shape[:2]) + (self.preset == "coarse")

    def __call__(self, a: np.ndarray, b: np.ndarray) -> Tensor:
        return self._calc(_gray(a), _gray(b))

    def _calc(self, a: np.ndarray, b: np.ndarray) -> Tensor:
        """The flow between two ``(H, W)`` uint8 grey frames."""
        if self.preset != "medium":
            self._dis.setFinestScale(self._level(a))
        return _tensor(self._dis.calc(a, b, None), self.device)

    def pair(self, a: np.ndarray, b: np.ndarray) -> tuple[Tensor, Tensor]:
        ga, gb = _gray(a), _gray(b)
        ab, ba = self._calc(ga, gb), self._calc(gb, ga)
        if self.preset == "medium":
            return ab, ba
        if self.edges == "sharpen":
            # DIS's blur across an edge grows with the level it stops at, and so do the
            # candidates' offsets.
            radii = tuple(r * 2 ** self._level(a) for r in SHARPEN_RADII)
            # Matched on luma, as DIS is: a codec keeps the chroma at half resolution, and
            # its blurred colour edges misled the matching (measured on the true-motion
            # scenes as decoded: benchmarks/RESULTS.md).
            ta, tb = (torch.from_numpy(x).to(self.device)[None, None].float() / 255
                      for x in (ga, gb))
            ab, ba = sharpen_edges(ab, ta, tb, radii=radii), sharpen_edges(ba, tb, ta, radii=radii)
        # Both fills from the (sharpened) pair, so neither sees the other's filled pixels.
        return fill_rejected(ab, ba, a), fill_rejected(ba, ab, b)


class DeepFlow:
    """OpenCV's DeepFlow (Weinzaepfel et al. 2013) on the CPU: an estimator independent of
    DIS, to measure renders with a flow they did not use."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._flow = cv2.optflow.createOptFlow_DeepFlow()

    def __call__(self, a: np.ndarray, b: np.ndarray) -> Tensor:
        # OpenCV allocates the output for None; the stubs do not say so.
        flow = self._flow.calc(_gray(a), _gray(b), None)  # type: ignore[call-overload]
        return _tensor(flow, self.device)


class RaftFlow:
    """torchvision's RAFT-small (``Raft_Small_Weights.DEFAULT``), meant for a GPU.

    The weights come from the torch cache (see :mod:`vidstyle.hub`); ``weights_file`` reads
    them from a file instead.
    """

    def __init__(self, device: torch.device | str = "cpu", weights_file: str | None = None) -> None:
        from torchvision.models.optical_flow import Raft_Small_Weights, raft_small

        self.device = torch.device(device)
        weights = Raft_Small_Weights.DEFAULT
        model = raft_small(weights=None)
        # No option to name: the flow weights come from the torch cache only.
        load_into(model, weights, weights_file=weights_file, option=None,
                  expected="a torchvision RAFT-small state dict")
        self.model = model.eval().requires_grad_(False).to(self.device)

    @torch.inference_mode()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> Tensor:
        h, w = a.shape[:2]
        ta, tb = (
            torch.from_numpy(x).permute(2, 0, 1)[None].to(self.device).float() / 127.5 - 1.0
            for x in (a, b)
        )
        # RAFT needs sides divisible by 8 and at least 128 (its correlation pyramid): pad by
        # replication, then crop the flow back.
        ph, pw = (max(128, h + (-h) % 8) - h, max(128, w + (-w) % 8) - w)
        if ph or pw:
            ta = F.pad(ta, (0, pw, 0, ph), mode="replicate")
            tb = F.pad(tb, (0, pw, 0, ph), mode="replicate")
        flow = self.model(ta, tb, num_flow_updates=12)[-1]
        return flow[..., :h, :w].float().contiguous()


def make_flow(method: str, device: torch.device | str = "cpu", *,
              edges: str = "sharpen") -> FlowEstimator:
    """The estimator named ``method`` (one of :data:`vidstyle.config.FLOW_METHODS`); ``edges``
    (:data:`vidstyle.config.FLOW_EDGES`) is how the refined DIS treats motion edges."""
    check_choice("flow method", method, FLOW_METHODS)
    if method == "raft":
        return RaftFlow(device)
    if method == "deepflow":
        return DeepFlow(device)
    return DISFlow(device, preset=method.removeprefix("dis-") if "-" in method else "fine",
                   edges=edges)


class ReferenceFlows:
    """The flows between a frame and its references: ``near`` to the frame next to it, ``far``
    to the long-term ones further away.

    Why two: a render with long-term references computes one flow pair per reference, and the
    refined DIS costs several times the medium preset per pair; the far references are held
    with a lower weight and only where the consecutive chain lost track (figures:
    benchmarks/RESULTS.md).
    """

    def __init__(self, near: FlowEstimator, far: FlowEstimator | None = None) -> None:
        self.near = near
        self.far = near if far is None else far

    def pair(self, prev: np.ndarray, cur: np.ndarray, offset: int = 1) -> tuple[Tensor, Tensor]:
        """:func:`flow_pair` between ``cur`` and ``prev``, ``offset`` frames apart."""
        return flow_pair(self.near if abs(offset) <= 1 else self.far, prev, cur)


def reference_flows(method: str, far: str, device: torch.device | str = "cpu", *,
                    edges: str = "sharpen") -> ReferenceFlows:
    """The estimators a render's config names: ``method`` for the neighbour, ``far`` (a method,
    or ``"same"``) for the long-term references; ``edges`` as :func:`make_flow`'s."""
    near = make_flow(method, device, edges=edges)
    return ReferenceFlows(near, None if far in ("same", method)
                          else make_flow(far, device, edges=edges))


def flow_pair(estimator: FlowEstimator, prev: np.ndarray, cur: np.ndarray) -> tuple[Tensor, Tensor]:
    """``(backward, forward)`` flows: ``cur -> prev`` and ``prev -> cur``.

    The backward flow warps the previous stylized frame onto the current one; the forward
    flow is its partner in the consistency check.
    """
    if isinstance(estimator, PairFlowEstimator):
        return estimator.pair(cur, prev)
    return estimator(cur, prev), estimator(prev, cur)
