"""The pipeline: decode -> flow -> warp + mask -> stylize -> encode (+ audio remux).

:func:`render` is the library's entry point. It never prints: progress leaves through the
``progress`` callback as :class:`Progress` records, and failures as
:class:`vidstyle.errors.VidstyleError` subclasses.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vidstyle.config import RenderConfig
from vidstyle.errors import DeviceError, InputError
from vidstyle.features import load_backbone
from vidstyle.flow import flow_pair, make_flow
from vidstyle.io import VideoInfo, VideoWriter, check_output_path, iter_frames, probe, working_size
from vidstyle.io.images import load_image
from vidstyle.optimize import FrameStylizer
from vidstyle.warp import consistency_mask, warp


@dataclass(frozen=True)
class Progress:
    """One progress report: sent after every iteration and once more when a frame is done."""

    frame: int
    """Frames finished so far in this render, counting the current one when ``frame_done``."""
    total: int | None
    """Frames this render will produce, when the container says how many it has."""
    source_index: int
    """The current frame's index in the input."""
    iteration: int
    iterations: int
    loss: float
    elapsed: float
    """Seconds since the render started (model loading included)."""
    frame_done: bool


@dataclass(frozen=True)
class RenderResult:
    output: Path
    frames: int
    size: tuple[int, int]
    device: str
    seconds: float
    iterations: int
    dropped_audio: tuple[str, ...]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when usable, else CPU. An explicit ``cuda`` that cannot work is an error.

    The device is checked by allocating on it, so a broken driver fails here, not mid-render.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for but no CUDA GPU is usable here; "
                              "use --device cpu (slower) or --device auto")
        try:
            torch.zeros(1, device=device)
        except RuntimeError as exc:
            raise DeviceError(f"CUDA is present but unusable: {exc}") from exc
    return device


def frame_selection(info: VideoInfo, cfg: RenderConfig) -> tuple[int, int | None, int | None]:
    """``(start_index, stop_index, expected_frames)`` for ``cfg``'s range on ``info``."""
    start, stop = cfg.frames if cfg.frames is not None else (0, None)
    count = info.frame_count
    if count is None and info.duration:
        count = round(info.duration * float(info.rate))
    expected = None
    if count is not None:
        if start >= count:
            raise InputError(
                f"frame range starts at {start} but {info.path.name} has {count} frames"
            )
        end = count if stop is None else min(stop, count)
        if cfg.start is not None or cfg.end is not None:
            t0 = cfg.start or 0.0
            t1 = cfg.end if cfg.end is not None else count / float(info.rate)
            if info.duration is not None and t0 >= info.duration:
                raise InputError(
                    f"--start {t0} is beyond the end of {info.path.name} ({info.duration:.2f} s)"
                )
            expected = max(1, round((min(t1, count / float(info.rate)) - t0) * float(info.rate)))
        else:
            expected = end - start
    return start, stop, expected


def to_tensor(image: np.ndarray, device: torch.device) -> Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float32 in [0, 1] on ``device``."""
    return torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float().div_(255)


def to_image(x: Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` in [0, 1] -> ``(H, W, 3)`` uint8 on the host."""
    return x[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def render(
    cfg: RenderConfig, *, progress: Callable[[Progress], None] | None = None
) -> RenderResult:
    """Render ``cfg.input`` stylized by ``cfg.styles`` into ``cfg.output_path``.

    Inputs and the output path are checked before any model is loaded, so bad arguments fail
    in a second. The output appears only when complete.
    """
    began = time.monotonic()
    output = cfg.output_path
    info = probe(cfg.input)
    styles = [load_image(p) for p in cfg.styles]
    check_output_path(output, overwrite=cfg.overwrite, inputs=(cfg.input, *cfg.styles))
    start, stop, expected = frame_selection(info, cfg)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)

    width, height = working_size(info.width, info.height, cfg.max_side)
    backbone = load_backbone(
        cfg.style.backbone, device=device, weights_file=cfg.style.weights
    )
    stylizer = FrameStylizer(
        backbone,
        [s.to(device) for s in styles],
        style=cfg.style,
        optim=cfg.optim,
        frame_size=(height, width),
    )
    temporal = cfg.style.temporal_weight > 0
    flow = make_flow(cfg.flow.flow, device) if temporal else None

    frames = iter_frames(
        cfg.input,
        size=(width, height),
        start_index=start,
        stop_index=stop,
        start_time=cfg.start,
        end_time=cfg.end,
    )
    first = next(frames, None)
    if first is None:
        raise InputError(f"the selected range of {cfg.input.name} contains no frames")

    done = 0
    total_iterations = 0

    def notify(index: int, budget: int, it: int, loss: float, *, finished: bool = False) -> None:
        if progress is not None:
            elapsed = time.monotonic() - began
            progress(Progress(done, expected, index, it, budget, loss, elapsed, finished))

    prev_image: np.ndarray | None = None
    prev_out: Tensor | None = None
    last_time = first.time
    with VideoWriter(
        output,
        width=width,
        height=height,
        rate=info.rate,
        time_base=info.time_base,
        audio_source=cfg.input if info.audio_streams else None,
        start_time=first.time,
    ) as writer:
        for frame in itertools.chain([first], frames):
            content = to_tensor(frame.image, device)
            warped = mask = None
            if flow is not None and prev_out is not None and prev_image is not None:
                backward, forward = flow_pair(flow, prev_image, frame.image)
                warped = warp(prev_out, backward)
                mask = consistency_mask(backward, forward)
                # Start from the warped previous result; disoccluded pixels have no history,
                # so they start from the input and are stylized afresh.
                init = mask * warped + (1 - mask) * content
                budget = cfg.optim.iterations
            else:
                init = content
                budget = cfg.optim.first_iterations

            out, stats = stylizer.stylize(
                content,
                init,
                iterations=budget,
                warped=warped,
                mask=mask,
                on_iteration=functools.partial(notify, frame.index, budget),
            )
            writer.write(to_image(out), frame.time)
            done += 1
            total_iterations += stats.iterations
            last_time = frame.time
            prev_image, prev_out = frame.image, out
            notify(frame.index, budget, stats.iterations, stats.loss, finished=True)
        # Audio runs to the end of the last frame's display time.
        writer.end_time = last_time + 1.0 / float(info.rate)
    return RenderResult(
        output=output,
        frames=done,
        size=(width, height),
        device=str(device),
        seconds=time.monotonic() - began,
        iterations=total_iterations,
        dropped_audio=tuple(writer.dropped_audio),
    )
