"""Optical flow between *input* frames, both directions.

Flows are returned as ``(1, 2, H, W)`` float32 tensors in pixels, ``(dx, dy)``:
``flow(a, b)[p]`` points from pixel ``p`` of ``a`` to where it is in ``b``, so that
``warp(b, flow(a, b)) ~= a`` (see :mod:`vidstyle.warp`).

The estimators, by name (:data:`vidstyle.config.FLOW_METHODS`):

* ``dis`` (the default): OpenCV's DIS, refined down to full resolution, with the pixels where
  the two directions disagree filled from their neighbours along the image's edges.
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

from vidstyle.config import FLOW_METHODS, check_choice
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


class DISFlow:
    """OpenCV's DIS optical flow on the CPU.

    ``preset="fine"`` (the default) refines DIS down to the finest level
    :func:`finest_scale` allows, with a denser patch grid (stride 2), 10 variational
    refinement iterations and a smoother field (alpha 40), and :meth:`pair` fills the pixels
    where the two directions disagree (:func:`fill_rejected`). ``preset="coarse"`` is the
    same stopped one pyramid level higher (the variational refinement still ends at full
    resolution). ``preset="medium"`` is
    OpenCV's medium preset as it is, without the fill. Where we differ from OpenCV's presets:
    on scenes with known motion the medium preset's error was several times the fine one's,
    mostly along moving objects' edges. The fine one costs several times more per pair,
    which a render with long-term references pays once per reference (figures:
    benchmarks/RESULTS.md).
    """

    def __init__(self, device: torch.device | str = "cpu", *, preset: str = "fine") -> None:
        check_choice("DIS preset", preset, ("fine", "coarse", "medium"))
        self.device = torch.device(device)
        self.preset = preset
        # The cv2 stubs lack the module-level factory (it exists at run time).
        self._dis = cv2.DISOpticalFlow_create(  # type: ignore[attr-defined]
            cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
        )
        if preset != "medium":
            self._dis.setPatchStride(2)
            self._dis.setVariationalRefinementIterations(10)
            self._dis.setVariationalRefinementAlpha(40.0)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> Tensor:
        if self.preset != "medium":
            self._dis.setFinestScale(finest_scale(*a.shape[:2]) + (self.preset == "coarse"))
        return _tensor(self._dis.calc(_gray(a), _gray(b), None), self.device)

    def pair(self, a: np.ndarray, b: np.ndarray) -> tuple[Tensor, Tensor]:
        ab, ba = self(a, b), self(b, a)
        if self.preset == "medium":
            return ab, ba
        # Both fills from the raw pair, so neither sees the other's filled pixels.
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


def make_flow(method: str, device: torch.device | str = "cpu") -> FlowEstimator:
    """The estimator named ``method`` (one of :data:`vidstyle.config.FLOW_METHODS`)."""
    check_choice("flow method", method, FLOW_METHODS)
    if method == "raft":
        return RaftFlow(device)
    if method == "deepflow":
        return DeepFlow(device)
    return DISFlow(device, preset=method.removeprefix("dis-") if "-" in method else "fine")


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


def reference_flows(method: str, far: str, device: torch.device | str = "cpu") -> ReferenceFlows:
    """The estimators a render's config names: ``method`` for the neighbour, ``far`` (a method,
    or ``"same"``) for the long-term references."""
    near = make_flow(method, device)
    return ReferenceFlows(near, None if far in ("same", method) else make_flow(far, device))


def flow_pair(estimator: FlowEstimator, prev: np.ndarray, cur: np.ndarray) -> tuple[Tensor, Tensor]:
    """``(backward, forward)`` flows: ``cur -> prev`` and ``prev -> cur``.

    The backward flow warps the previous stylized frame onto the current one; the forward
    flow is its partner in the consistency check.
    """
    if isinstance(estimator, PairFlowEstimator):
        return estimator.pair(cur, prev)
    return estimator(cur, prev), estimator(prev, cur)
