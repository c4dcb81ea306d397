"""Temporal consistency metrics: the warping error of Lai et al. (ECCV 2018), and friends.

For each consecutive pair, output frame ``t+1`` is warped back onto frame ``t`` with the
flow ``t -> t+1`` computed on the *input* frames, and the squared RGB difference (values in
[0, 1]) is averaged over the pixels the binary non-occlusion mask keeps. The same error of the
input against itself is the floor a perfectly steady stylization would reach, so the ratio of
the two (the *flicker ratio*) makes clips of different content comparable: 1.0 is as steady
as the source, 2.0 changes twice as much along the motion as the source does.

:func:`measure` adds a long-range error (frames ``t`` and ``t+k`` with the direct flow between
them, which catches slow drift that consecutive pairs miss) and, given the style image, how
far the output moved toward the style on the backbone the optimizer uses. It streams both
videos and keeps only the last ``k+1`` frames. Presenting the result (a table, a plot) is
:mod:`vidstyle.report`'s work; its functions are importable from here too.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidstyle.config import BACKBONES, OptimConfig, StyleConfig, check_choice
from vidstyle.errors import InputError
from vidstyle.flow import DISFlow, FlowEstimator, flow_pair
from vidstyle.io import Frame, iter_frames
from vidstyle.io.images import to_tensor
from vidstyle.report import check_plot_path, format_report, plot_report
from vidstyle.warp import consistency_mask, warp

__all__ = [
    "ClipError",
    "MetricsReport",
    "check_plot_path",
    "clip_warping_error",
    "format_report",
    "measure",
    "plot_report",
    "warping_error",
]


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


def _masked_errors(frames: Tensor, later: Tensor, flow: Tensor, mask: Tensor) -> Tensor:
    """Per-image warping error of ``(N, 3, H, W)`` stacks sharing one ``(1, 2, H, W)`` flow.

    Output and input are measured in one batch with the *same* mask, so their ratio compares
    like with like. Returns ``(N,)``.
    """
    n = frames.shape[0]
    diff = (warp(later, flow.expand(n, -1, -1, -1)) - frames).square().sum(1, keepdim=True)
    # A pair with nothing trusted (a scene cut) scores 0 for both rather than dividing by 0.
    return (diff * mask).sum((1, 2, 3)) / mask.sum().clamp_min(1.0)


@dataclass(frozen=True)
class ClipError:
    output: float
    """Mean warping error of the output over consecutive pairs."""
    source: float
    """The same for the input: what a perfectly steady stylization would score."""

    @property
    def flicker_ratio(self) -> float:
        """``output / source``: 1.0 is as steady as the source."""
        return _ratio(self.output, self.source)


def _ratio(a: float, b: float) -> float:
    return a / max(b, 1e-12)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


@dataclass(frozen=True)
class MetricsReport:
    """What :func:`measure` found. Per-pair lists are in output frame order.

    ``per_pair_output[t]`` is the error between output frames ``t`` and ``t+1``;
    ``long_range_output[t]`` between ``t`` and ``t+k``. Output frame ``t`` is input frame
    ``start_index + t``.
    """

    frames: int
    """Output frames measured."""
    start_index: int
    size: tuple[int, int]
    """``(width, height)`` the errors were measured at (the output's size)."""
    per_pair_output: tuple[float, ...]
    per_pair_input: tuple[float, ...]
    long_range_k: int | None
    """The ``k`` asked for; None when the long-range error was switched off."""
    long_range_output: tuple[float, ...] = ()
    long_range_input: tuple[float, ...] = ()
    backbone: str | None = None
    """Backbone of the stylization numbers; None when no style image was given."""
    every: int = 1
    style_frames: tuple[int, ...] = ()
    """Output frame indices whose style and content losses were measured."""
    style_loss_per_frame: tuple[float, ...] = ()
    """Style loss of each sampled output frame (against the style's Gram targets)."""
    style_loss_input_per_frame: tuple[float, ...] = ()
    """The same for the input frame it came from: where the optimizer started."""
    content_loss_per_frame: tuple[float, ...] = ()

    @property
    def pairs(self) -> int:
        return len(self.per_pair_output)

    @property
    def warping_error_output(self) -> float:
        return _mean(self.per_pair_output)

    @property
    def warping_error_input(self) -> float:
        return _mean(self.per_pair_input)

    @property
    def flicker_ratio(self) -> float:
        """Output error over input error: 1.0 is as steady as the source, higher flickers."""
        return _ratio(self.warping_error_output, self.warping_error_input)

    @property
    def long_range_error_output(self) -> float | None:
        return _mean(self.long_range_output) if self.long_range_output else None

    @property
    def long_range_error_input(self) -> float | None:
        return _mean(self.long_range_input) if self.long_range_input else None

    @property
    def long_range_ratio(self) -> float | None:
        out, src = self.long_range_error_output, self.long_range_error_input
        return None if out is None or src is None else _ratio(out, src)

    @property
    def style_loss_output(self) -> float | None:
        return _mean(self.style_loss_per_frame) if self.style_loss_per_frame else None

    @property
    def style_loss_input(self) -> float | None:
        return _mean(self.style_loss_input_per_frame) if self.style_loss_input_per_frame else None

    @property
    def style_loss_ratio(self) -> float | None:
        """Output style loss over the input's: below 1 the output moved toward the style."""
        out, src = self.style_loss_output, self.style_loss_input
        return None if out is None or src is None else _ratio(out, src)

    @property
    def content_loss(self) -> float | None:
        """Mean content loss of output against input features (0: shapes kept exactly)."""
        return _mean(self.content_loss_per_frame) if self.content_loss_per_frame else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; numbers that could not be measured are None."""
        return {
            "frames": self.frames,
            "pairs": self.pairs,
            "start_index": self.start_index,
            "size": list(self.size),
            "warping_error_output": self.warping_error_output,
            "warping_error_input": self.warping_error_input,
            "flicker_ratio": self.flicker_ratio,
            "long_range_k": self.long_range_k,
            "long_range_error_output": self.long_range_error_output,
            "long_range_error_input": self.long_range_error_input,
            "long_range_ratio": self.long_range_ratio,
            "backbone": self.backbone,
            "every": self.every,
            "style_loss_output": self.style_loss_output,
            "style_loss_input": self.style_loss_input,
            "style_loss_ratio": self.style_loss_ratio,
            "content_loss": self.content_loss,
            "per_pair": {"output": list(self.per_pair_output), "input": list(self.per_pair_input)},
            "per_pair_long_range": {
                "output": list(self.long_range_output),
                "input": list(self.long_range_input),
            },
            "per_frame_style": {
                "frames": list(self.style_frames),
                "output": list(self.style_loss_per_frame),
                "input": list(self.style_loss_input_per_frame),
                "content": list(self.content_loss_per_frame),
            },
        }


class _StyleProbe:
    """Style and content losses exactly as :class:`~vidstyle.optimize.FrameStylizer` sees them.

    The Gram targets come from a FrameStylizer built for this frame size, so the style image
    is resized the same way (long side = ``style_scale`` x the frame's) and the numbers are
    the unweighted terms of the optimizer's own loss.
    """

    def __init__(
        self,
        style: str | os.PathLike[str],
        *,
        backbone: str,
        style_scale: float,
        frame_size: tuple[int, int],
        device: torch.device,
    ) -> None:
        from vidstyle.features import load_backbone
        from vidstyle.io.images import load_image
        from vidstyle.optimize import FrameStylizer

        image = load_image(style)  # before the backbone: a missing file fails fast
        net = load_backbone(backbone, device=device)
        self.stylizer = FrameStylizer(
            net,
            [image.to(device)],
            style=StyleConfig(backbone=backbone, style_scale=style_scale),
            optim=OptimConfig(),
            frame_size=frame_size,
        )

    @torch.no_grad()
    def __call__(self, output: Tensor, source: Tensor) -> tuple[float, float, float]:
        """``(style loss of output, style loss of input, content loss)`` for one frame."""
        from vidstyle.losses import content_loss, style_loss

        s = self.stylizer
        feats = s.backbone(torch.cat((output, source)), s.taps)  # one forward for both
        out = {k: v[:1] for k, v in feats.items()}
        src = {k: v[1:] for k, v in feats.items()}
        content = sum(float(content_loss(out[k], src[k])) for k in s.content_layers)
        return (
            float(style_loss(out, s.targets)),
            float(style_loss(src, s.targets)),
            content,
        )


def _close(frames: Iterator[Frame]) -> None:
    # iter_frames is a generator (typed as an Iterator): closing it closes its container.
    close = getattr(frames, "close", None)
    if close is not None:
        close()


def _first_two(frames: Iterator[Frame], path: str | os.PathLike[str]) -> tuple[Frame, Frame]:
    first, second = next(frames, None), next(frames, None)
    if first is None or second is None:
        count = "no frames" if first is None else "only 1 frame"
        raise InputError(
            f"{Path(path).name} has {count}; the temporal metrics compare consecutive frames "
            "and need at least 2"
        )
    return first, second


def measure(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    start_index: int = 0,
    long_range: int | None = 10,
    style: str | os.PathLike[str] | None = None,
    backbone: str = "efficientnet-lite0",
    style_scale: float = 1.0,
    every: int = 1,
    device: torch.device | str = "cpu",
    estimator: FlowEstimator | None = None,
    light: Sequence[float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> MetricsReport:
    """Measure how steady ``output`` (a stylization of ``source``) is, and how stylized.

    Output frame ``t`` is compared with source frame ``start_index + t``; source frames are
    resized to the output's size before the flow is computed. Only the last ``k+1`` frames
    of each video are held.

    Args:
        start_index: input frame index of the output's first frame (a render of a range).
        long_range: ``k`` of the long-range error (frames ``t`` and ``t+k``, direct flow);
            None or 0 skips it. A clip of ``k`` frames or fewer gets no long-range numbers.
        style: the style image; None skips the stylization numbers (and the backbone).
        backbone, style_scale: as in the render, so the losses match what the optimizer saw.
        every: measure the style and content losses on every ``every``-th output frame.
        estimator: flow ``(a, b) -> (1, 2, H, W)`` (see :mod:`vidstyle.flow`); by default
            OpenCV DIS's medium preset, the yardstick of every figure in
            benchmarks/RESULTS.md. It shares its algorithm with the render's default flow, so
            it is blind to some of that flow's errors: ``make_flow("deepflow")`` measures with
            an estimator the render did not use.
        light: where the source's change of light is known (a clip made darker by known
            gains, as ``benchmarks/light.py`` does), its brightness at each output frame. The
            earlier frame of each pair, output and input alike, is scaled by how much brighter
            the later one is before they are compared, so a painting that follows a fade is
            as steady as the same painting under steady light, and one that lags or repaints
            it is not. Without it, the input's own error grows with the change of light and
            a painting that lags the fade scores steadier.
        progress: called with the number of output frames measured so far.

    Raises:
        InputError, DecodeError: a missing, unreadable or undecodable file or style image.
        ValueError: bad arguments; an output with fewer than 2 frames; an output with more
            frames than the input has from ``start_index``.
    """
    if start_index < 0:
        raise ValueError(f"start index must be >= 0, got {start_index}")
    k = long_range or 0
    if k < 0:
        raise ValueError(f"long-range k must be >= 1 (or 0 to skip it), got {long_range}")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if light is not None and min(light, default=1.0) <= 0:
        raise ValueError("light must be positive at every frame")
    check_choice("backbone", backbone, BACKBONES)
    device = torch.device(device)

    with contextlib.ExitStack() as stack:
        out_frames = iter_frames(output)
        stack.callback(_close, out_frames)  # closes the container if we stop early
        first, second = _first_two(out_frames, output)
        height, width = first.image.shape[:2]
        src_frames = iter_frames(source, size=(width, height), start_index=start_index)
        stack.callback(_close, src_frames)
        src_first = next(src_frames, None)
        if src_first is None:
            raise InputError(
                f"{Path(source).name} has no frame {start_index}: the start index is beyond "
                "its end"
            )
        probe = None
        if style is not None:
            probe = _StyleProbe(
                style, backbone=backbone, style_scale=style_scale,
                frame_size=(height, width), device=device,
            )
        flow_of: FlowEstimator = estimator or DISFlow(device, preset="medium")

        # (input image for the flow, output tensor, input tensor, output index), newest last.
        ring: deque[tuple[np.ndarray, Tensor, Tensor, int]] = deque(maxlen=max(k, 1) + 1)
        pair_out: list[float] = []
        pair_src: list[float] = []
        long_out: list[float] = []
        long_src: list[float] = []
        style_frames: list[int] = []
        style_out: list[float] = []
        style_src: list[float] = []
        content: list[float] = []

        def errors(earlier: tuple[np.ndarray, Tensor, Tensor, int],
                   later: tuple[np.ndarray, Tensor, Tensor, int]) -> tuple[float, float]:
            # t -> t+n on the input, as Lai et al., and its partner for the mask.
            flow, reverse = flow_pair(flow_of, later[0], earlier[0])
            mask = consistency_mask(flow, reverse)
            before = torch.cat((earlier[1], earlier[2]))
            if light is not None:
                before = before * (light[later[3]] / light[earlier[3]])
            err = _masked_errors(before, torch.cat((later[1], later[2])), flow, mask)
            return float(err[0]), float(err[1])

        src_iter = itertools.chain([src_first], src_frames)
        count = 0
        for index, frame in enumerate(itertools.chain([first, second], out_frames)):
            src = next(src_iter, None)
            if src is None:
                raise InputError(
                    f"{Path(output).name} has more frames than {Path(source).name} has from "
                    f"frame {start_index} on ({index}); is the start index right, and is the "
                    "output a render of this input?"
                )
            if frame.image.shape != src.image.shape:
                raise InputError(
                    f"output frame {index} is {frame.image.shape[1]}x{frame.image.shape[0]}, "
                    f"expected {width}x{height} like the first (a size change mid-stream)"
                )
            with torch.no_grad():
                if light is not None and index >= len(light):
                    raise ValueError(f"light has {len(light)} values; the output has more frames")
                entry = (src.image, to_tensor(frame.image, device), to_tensor(src.image, device),
                         index)
                ring.append(entry)
                if len(ring) >= 2:
                    e_out, e_src = errors(ring[-2], entry)
                    pair_out.append(e_out)
                    pair_src.append(e_src)
                if k and len(ring) == k + 1:
                    e_out, e_src = errors(ring[0], entry)
                    long_out.append(e_out)
                    long_src.append(e_src)
                if probe is not None and index % every == 0:
                    s_out, s_src, c = probe(entry[1], entry[2])
                    style_frames.append(index)
                    style_out.append(s_out)
                    style_src.append(s_src)
                    content.append(c)
            count = index + 1
            if progress is not None:
                progress(count)

    return MetricsReport(
        frames=count,
        start_index=start_index,
        size=(width, height),
        per_pair_output=tuple(pair_out),
        per_pair_input=tuple(pair_src),
        long_range_k=k or None,
        long_range_output=tuple(long_out),
        long_range_input=tuple(long_src),
        backbone=backbone if probe is not None else None,
        every=every,
        style_frames=tuple(style_frames),
        style_loss_per_frame=tuple(style_out),
        style_loss_input_per_frame=tuple(style_src),
        content_loss_per_frame=tuple(content),
    )


def clip_warping_error(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    start_index: int = 0,
    estimator: FlowEstimator | None = None,
) -> ClipError:
    """Warping error of ``output`` against the motion of ``source`` (consecutive pairs only).

    ``output`` frame ``k`` is compared with ``source`` frame ``start_index + k``; the source is
    resized to the output's size before the flow is computed. See :func:`measure`.
    """
    report = measure(source, output, start_index=start_index, long_range=None,
                     estimator=estimator)
    return ClipError(output=report.warping_error_output, source=report.warping_error_input)
