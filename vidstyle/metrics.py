"""Temporal consistency metrics: the warping error of Lai et al. (ECCV 2018).

For each consecutive pair, output frame ``t+1`` is warped back onto frame ``t`` with the
flow ``t -> t+1`` computed on the *input* frames, and the squared RGB difference (values in
[0, 1]) is averaged over the pixels the binary non-occlusion mask keeps. The same error of the
input against itself is the floor a perfectly steady stylization would reach.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

from vidstyle.flow import DISFlow, FlowEstimator
from vidstyle.io import iter_frames
from vidstyle.pipeline import to_tensor
from vidstyle.warp import consistency_mask, warp


def warping_error(frame: Tensor, next_frame: Tensor, flow: Tensor, reverse: Tensor) -> Tensor:
    """Masked mean squared error between ``frame`` and ``next_frame`` warped onto it.

    Args:
        frame, next_frame: ``(B, 3, H, W)`` in [0, 1] (frames ``t`` and ``t+1``).
        flow: ``(B, 2, H, W)`` input flow ``t -> t+1``; ``reverse`` the flow ``t+1 -> t``.

    Returns:
        Scalar: ``sum_i M_i |O_t(i) - W(O_{t+1})(i)|^2 / sum_i M_i`` (the squared norm sums
        the three channels, as in Lai et al.).
    """
    mask = consistency_mask(flow, reverse)
    diff = (warp(next_frame, flow) - frame).square().sum(1, keepdim=True)
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)


@dataclass(frozen=True)
class ClipError:
    output: float
    """Mean warping error of the output over consecutive pairs."""
    source: float
    """The same for the input: what a perfectly steady stylization would score."""

    @property
    def flicker_ratio(self) -> float:
        """``output / source``: 1.0 is as steady as the source."""
        return self.output / max(self.source, 1e-12)


def clip_warping_error(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    start_index: int = 0,
    estimator: FlowEstimator | None = None,
) -> ClipError:
    """Warping error of ``output`` against the motion of ``source``.

    ``output`` frame ``k`` is compared with ``source`` frame ``start_index + k``; the source is
    resized to the output's size before the flow is computed.
    """
    estimator = estimator or DISFlow()
    out_frames = iter_frames(output)
    first = next(out_frames)
    size = (first.image.shape[1], first.image.shape[0])
    src_frames = iter_frames(source, size=size, start_index=start_index)
    errors_out: list[float] = []
    errors_src: list[float] = []
    prev_out, prev_src = first.image, next(src_frames).image
    for out, src in zip(out_frames, src_frames):
        flow = estimator(prev_src, src.image)
        reverse = estimator(src.image, prev_src)
        with torch.no_grad():
            for images, errs in (((prev_out, out.image), errors_out),
                                 ((prev_src, src.image), errors_src)):
                a, b = (to_tensor(x, flow.device) for x in images)
                errs.append(float(warping_error(a, b, flow, reverse)))
        prev_out, prev_src = out.image, src.image
    if not errors_out:
        raise ValueError("the warping error needs at least two frames")
    return ClipError(
        output=sum(errors_out) / len(errors_out), source=sum(errors_src) / len(errors_src)
    )
