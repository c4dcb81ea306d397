"""Seams of a chunked render: the frames after each seam repainted toward both chunks, and
the chunks' frames joined into one video.

Chunks (:mod:`vidstyle.chunking`) are rendered apart, so at a seam inside a shot the earlier
chunk's strokes meet the later chunk's. :func:`reconcile_seam` paints the first frames after
the seam again, each held by the one temporal rule of :mod:`vidstyle.temporal` to the chain
behind it and to the later chunk's chain ahead, with weights that pass from the one to the
other in equal steps. :func:`join` then encodes the kept frames of every chunk, seam windows
replaced, with the source's audio. Nothing here needs Ray: :mod:`vidstyle.distributed` runs
these as tasks; the work folder's layout lives here so that both agree on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vidstyle.config import OptimConfig, RenderConfig
from vidstyle.errors import InputError, OutputError
from vidstyle.io.encode import chroma_blocks
from vidstyle.io.store import FrameStore
from vidstyle.temporal import EARLIER, LATER, Reference, TemporalPolicy, hold

if TYPE_CHECKING:
    from vidstyle.chunking import Chunk
    from vidstyle.flow import ReferenceFlows
    from vidstyle.io import VideoInfo
    from vidstyle.optimize import FrameStylizer


# -- the work folder ---------------------------------------------------------------------------


def work_folder(output: Path) -> Path:
    """Where a chunked render of ``output`` keeps its chunks and seams until the join."""
    return output.parent / f".{output.name}.chunks"


def chunk_output(work: Path, number: int) -> Path:
    """The output name whose frame store holds chunk ``number``'s frames."""
    return work / f"chunk-{number:03d}.mp4"


def seam_output(work: Path, number: int) -> Path:
    """The output name whose frame store holds the reconciled frames of seam ``number``."""
    return work / f"seam-{number:03d}.mp4"


def read_store(output: Path) -> FrameStore:
    """The frames a render left in its work folder (whatever settings it had)."""
    store = FrameStore(output, key="")
    store.read()
    return store


# -- reconciling a seam ------------------------------------------------------------------------


def seam_optim(optim: OptimConfig) -> OptimConfig:
    """How a seam's frames are optimized: as the render's, but every iteration at half the step.

    A window frame starts on a blend of two finished paintings, close to where it should end:
    a half step lets it settle instead of re-growing strokes. Early stopping is off: the loss
    of a frame that starts this close is flat for its first steps, and the rule ended such
    frames half painted (both measured: see benchmarks/RESULTS.md).
    """
    return dataclasses.replace(optim, early_stop=0.0, lr=optim.lr / 2)


def seam_position(index: int, start: int, window: int) -> float:
    """Where a painting of input frame ``index`` lies between the two chains of a seam window:
    0 for the earlier chunk's chain (``index < start``), 1 for the later chunk's, and
    ``(k + 1) / (window + 1)`` for the reconciled frame ``k = index - start`` of the window.

    These are the window's aims: each reconciled frame a further ``1 / (window + 1)`` of the
    way from the earlier chain to the later one, so that no step carries more of the
    difference than another.
    """
    if index < start:
        return 0.0
    return min(index - start + 1, window + 1) / (window + 1)


def seam_weight(aim: float, behind: Sequence[float], *, anchor: float = 0.0) -> float:
    """The weight of the references behind a seam frame, against ``1 -`` it for those ahead.

    Args:
        aim: the frame's :func:`seam_position`.
        behind: the positions of the paintings behind it that it is held to, closest first.
        anchor: the render's long-term anchor (:attr:`TemporalPolicy.anchor`).

    The references on one side fold into one target (:func:`vidstyle.temporal.long_term_target`):
    where every reference saw a pixel, the closest counts 1 and each farther one ``anchor``,
    so the chain behind sits at the like mean of ``behind``. The later chunk's chain ahead sits
    at 1. The weight ``a`` puts the blend ``a * behind + (1 - a)`` at ``aim``.

    With the previous frame alone behind (``--long-term 1``) this is ``(w-k)/(w+1-k)``. Farther
    references reach into the earlier chunk (position 0) for most of the window, and weighted
    like that one they held the window's last frames back towards the earlier chain: the
    window then ended with a step onto the later chunk's frames (measured with
    ``benchmarks/chunks.py``: see benchmarks/RESULTS.md).
    """
    if not behind:
        return 0.0
    folded = (behind[0] + anchor * sum(behind[1:])) / (1 + anchor * (len(behind) - 1))
    if folded >= 1.0:
        return 1.0
    return min(max((1.0 - aim) / (1.0 - folded), 0.0), 1.0)


def reconcile_seam(
    stylizer: FrameStylizer,
    flows: ReferenceFlows,
    device: torch.device,
    *,
    start: int,
    window: int,
    inputs: Mapping[int, np.ndarray],
    behind: Mapping[int, np.ndarray],
    ahead: Mapping[int, np.ndarray],
    offsets: Sequence[int] = (1,),
    policy: TemporalPolicy | None = None,
    iterations: int,
    preserve_colors: bool = False,
) -> list[np.ndarray]:
    """Paint again the ``window`` frames from input frame ``start`` on, so that they pass
    from the earlier chunk's chain to the later one's.

    Frame ``k`` of the window (input frame ``start + k``) is a frame like any other, held by
    :func:`vidstyle.temporal.hold` to references on both sides: the frames ``offsets`` before
    it (already reconciled ones, or the earlier chunk's), weighted :func:`seam_weight`
    ``a_k``, and the later chunk's frames ``offsets`` after it, weighted ``1 - a_k``, so
    that it lands at its :func:`seam_position`. It
    starts from the later chunk's own painting of it moved all the way to the target where
    the target is trusted: the weights already say how much of each chain the frame takes.

    Args:
        stylizer: a :class:`~vidstyle.optimize.FrameStylizer` for the frame size.
        flows: the optical flow estimators for near and far references; device: where to
            optimize.
        start, window: the seam's first frame (an input frame index) and the frames to paint.
        inputs: input frames ``(H, W, 3)`` uint8 by index; at least ``start - 1`` to
            ``start + window``, and more for farther ``offsets``.
        behind: the earlier chunk's paintings by index (before ``start``).
        ahead: the later chunk's paintings by index (from ``start`` on).
        offsets: how far back and ahead each frame looks (the render's ``--long-term``).
        policy: the temporal rule (default: the pipeline's).
        iterations: optimizer iterations per frame.

    Returns:
        The ``window`` reconciled frames, uint8 RGB.
    """
    from vidstyle.io.images import to_image, to_tensor
    from vidstyle.optimize import keep_colors

    policy = TemporalPolicy() if policy is None else policy
    needed = [start - 1, *range(start, start + window + 1)]
    if window < 1 or any(i not in inputs for i in needed) or start - 1 not in behind or any(
            i not in ahead for i in range(start, start + window + 1)):
        raise ValueError(f"a seam window of {window} at frame {start} needs the input frames "
                         f"{start - 1} to {start + window}, the earlier chunk's frame "
                         f"{start - 1} and the later chunk's frames {start} to {start + window}")
    sources: dict[int, torch.Tensor] = {}  # input frames as tensors, made once each

    def source(index: int) -> torch.Tensor:
        if index not in sources:
            sources[index] = to_tensor(inputs[index], device)
        return sources[index]

    done: dict[int, np.ndarray] = {}
    for k in range(window):
        i = start + k
        content = to_tensor(inputs[i], device)
        found: list[tuple[int, int, int, np.ndarray]] = []  # (side, offset, index, painting)
        for side, paintings in ((EARLIER, behind), (LATER, ahead)):
            for j in sorted(offsets):
                p = i + side * j
                painted = done.get(p) if side < 0 and p >= start else paintings.get(p)
                if painted is not None and p in inputs:
                    found.append((side, j, p, painted))
        a = seam_weight(seam_position(i, start, window),
                        [seam_position(p, start, window) for s, _, p, _ in found if s < 0],
                        anchor=policy.anchor)
        references: list[Reference] = []
        for side, j, p, painted in found:
            backward, forward = flows.pair(inputs[p], inputs[i], j)
            references.append(Reference(
                painting=to_tensor(painted, device), source=source(p), flow=backward,
                reverse=forward, side=side, weight=a if side < 0 else 1.0 - a,
            ))
        own = to_tensor(ahead[i], device)
        held = hold(content, references, policy, base=own, blend=1.0)
        result, _ = stylizer.stylize(content, held.init, iterations=iterations,
                                     warped=held.target, mask=held.weight)
        if preserve_colors:
            result = keep_colors(result, content)
        done[i] = to_image(result)
    return [done[start + k] for k in range(window)]


def reconcile(
    cfg: RenderConfig, work: Path, number: int, start: int, window: int,
    on_frame: Callable[[int], None] | None = None,
) -> int:
    """Reconcile the seam before chunk ``number`` (input frame ``start``) of the chunked render
    in ``work`` and keep the result in that seam's frame store; returns the frames painted.

    ``on_frame(n)`` is told how many frames are kept so far.
    """
    from vidstyle.device import plan_tiles, resolve_device
    from vidstyle.features import load_backbone
    from vidstyle.flow import reference_flows
    from vidstyle.io import iter_frames, probe, working_size
    from vidstyle.io.images import load_image
    from vidstyle.optimize import FrameStylizer

    device = resolve_device(cfg.device)
    info = probe(cfg.input)
    width, height = working_size(info.width, info.height, cfg.max_side)
    earlier = read_store(chunk_output(work, number - 1))
    later = read_store(chunk_output(work, number))
    reach = max(cfg.style.long_term)
    held_behind = {f.index for f in earlier.frames}
    held_ahead = {f.index for f in later.frames}
    lo = max(min(held_behind, default=start - 1), start - reach)
    hi = min(max(held_ahead, default=start + window) + 1, start + window + reach)
    frames = list(iter_frames(cfg.input, size=(width, height), start_index=lo, stop_index=hi))
    inputs = {f.index: f.image for f in frames}
    if any(i not in inputs for i in range(start - 1, start + window + 1)):
        raise InputError(f"{cfg.input.name} ended early: frames {start - 1} to {start + window} "
                         "were not all decodable")
    backbone = load_backbone(cfg.style.backbone, device=device, weights_file=cfg.style.weights)
    stylizer = FrameStylizer(
        backbone, [load_image(p).to(device) for p in cfg.styles], style=cfg.style,
        optim=seam_optim(cfg.optim), frame_size=(height, width), blend=cfg.style.style_blend,
        tiles=plan_tiles(cfg.style.backbone, width, height, device, cfg.max_memory,
                         2 * len(cfg.style.long_term)),  # neighbours on both sides
        chroma=chroma_blocks(cfg.codec),
    )
    images = reconcile_seam(
        stylizer,
        reference_flows(cfg.flow.flow, cfg.flow.long_term_flow, device, edges=cfg.flow.flow_edges),
        device,
        start=start, window=window, inputs=inputs,
        behind={i: earlier.load(i) for i in held_behind if i < start and i in inputs},
        ahead={i: later.load(i) for i in held_ahead if i >= start and i in inputs},
        offsets=cfg.style.long_term, policy=TemporalPolicy.of(cfg),
        iterations=cfg.optim.iterations, preserve_colors=cfg.style.preserve_colors,
    )
    times = {f.index: f.time for f in frames}
    store = FrameStore(seam_output(work, number), key="seam")
    store.start()
    for k, image in enumerate(images):
        store.add(start + k, times[start + k], image)
        if on_frame is not None:
            on_frame(len(store.frames))
    return len(images)


# -- joining -----------------------------------------------------------------------------------


def join(
    work: Path, plan: Sequence[Chunk], seams: Sequence[int], first: int, info: VideoInfo,
    cfg: RenderConfig, output: Path,
) -> list[str]:
    """Encode the kept frames of every chunk, seam windows replaced, with the source audio;
    returns the audio streams left out."""
    from vidstyle.io.encode import encode_stored

    # (input frame index, time, the store that holds its final picture), in order.
    sources: list[tuple[int, float, FrameStore]] = []
    for j, chunk in enumerate(plan):
        store = read_store(chunk_output(work, j))
        seam = read_store(seam_output(work, j)) if j in seams else None
        reconciled = {f.index for f in seam.frames} if seam is not None else set()
        times = {f.index: f.time for f in store.frames}
        for index in range(first + chunk.start, first + chunk.stop):
            if index not in times:
                raise OutputError(f"chunk {j} is missing frame {index} in {store.folder}")
            holder = seam if seam is not None and index in reconciled else store
            sources.append((index, times[index], holder))
    return encode_stored(output, info, cfg.input, sources, crf=cfg.crf, codec=cfg.codec)
