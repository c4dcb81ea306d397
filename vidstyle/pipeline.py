"""The pipeline: decode -> flow -> warp + mask -> stylize -> encode (+ audio remux).

:func:`render` is the library's entry point. It never prints: progress leaves through the
``progress`` callback as :class:`Progress` records, and failures as
:class:`vidstyle.errors.VidstyleError` subclasses. Which painted neighbours hold each frame,
and where its pixels start, is the temporal model's decision (:mod:`vidstyle.temporal`);
this module streams the frames past it, pass after pass, and keeps what is finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import os
import pickle
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vidstyle import __version__, fast
from vidstyle.config import RenderConfig
from vidstyle.device import plan_tiles, resolve_device
from vidstyle.errors import DecodeError, InputError, Interrupted, OutputError
from vidstyle.features import load_backbone
from vidstyle.flow import ReferenceFlows, reference_flows
from vidstyle.io import (
    Frame,
    VideoInfo,
    check_codec,
    check_output_path,
    iter_frames,
    probe,
    working_size,
)
from vidstyle.io.encode import chroma_blocks, disk_errors, encode_stored
from vidstyle.io.images import load_image, to_image, to_tensor, write_png
from vidstyle.io.store import FrameStore
from vidstyle.optimize import FrameStats, FrameStylizer, keep_colors, seen_chroma
from vidstyle.overlap import ahead
from vidstyle.temporal import Reference, TemporalPolicy, exposure, hold, pass_offsets, trust

# Re-exported: callers of the pipeline ask it which device a render would use.
__all__ = ["Progress", "RenderResult", "encode_stored", "frame_selection", "render",
           "resolve_device", "run_key"]


@dataclass(frozen=True)
class Progress:
    """One progress report: sent after every iteration and once more when a frame is done."""

    frame: int
    """Frames finished so far, counting the current one when ``frame_done`` and those taken
    from an interrupted earlier run (``resumed``); with ``--passes``, over all passes."""
    total: int | None
    """Frames this render will stylize (times the passes), when the container says how many
    it has."""
    source_index: int
    """The current frame's index in the input."""
    iteration: int
    iterations: int
    loss: float
    elapsed: float
    """Seconds since the render started (model loading included)."""
    frame_done: bool
    resumed: int = 0
    """Frames taken from an interrupted earlier run: finished, but not in ``elapsed``."""
    size: tuple[int, int] | None = None
    """``(width, height)`` of the frames being stylized."""
    tiles: tuple[int, int] = (1, 1)
    """``(rows, columns)`` of the tiles each frame is optimized in (:mod:`vidstyle.tiles`)."""
    phase: str = "frames"
    """``"frames"``; with ``--fast``, first ``"keyframes"`` (``frame`` of ``total`` keyframes
    optimized, ``iteration`` within the current one) then ``"training"`` (``iteration`` of
    ``iterations`` training steps; ``frame`` and ``total`` as for ``"frames"``)."""


@dataclass(frozen=True)
class RenderResult:
    output: Path
    frames: int
    size: tuple[int, int]
    device: str
    seconds: float
    iterations: int
    dropped_audio: tuple[str, ...]
    resumed_frames: int = 0
    """Frames taken from an interrupted earlier run (``--resume``); with ``--passes``, counted
    once per pass."""


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


def run_key(cfg: RenderConfig, device: torch.device) -> str:
    """Identifies what a render's frames depend on, so ``--resume`` never mixes two renders."""
    settings = dataclasses.asdict(cfg)
    # Inputs are identified below by resolved path, size and time; the rest cannot change
    # the frames.
    for name in ("output", "overwrite", "resume", "keep_partial", "debug_dir", "input", "styles",
                 "crf", "codec", "max_memory"):
        settings.pop(name)
    if cfg.style.weights is not None:
        settings["style"]["weights"] = str(cfg.style.weights.resolve())
    chroma = seen_chroma(cfg.optim, chroma_blocks(cfg.codec))
    if chroma != (1, 1):  # the codec's chroma resolution is what the losses see
        settings["chroma"] = chroma
    if cfg.fast.fast:
        # The trained network is kept for a resume: one trained by other training settings
        # (the loss weights, the samples, the network's shape) must not be reused.
        settings["fast"]["training"] = {
            **dataclasses.asdict(fast.Training(steps=cfg.fast.fast_steps,
                                               crop=cfg.fast.fast_crop)),
            "pairs": FAST_PAIRS, "width": fast.WIDTH, "blocks": fast.BLOCKS,
        }
    digest = hashlib.sha256()
    for path in (cfg.input, *cfg.styles):
        stat = path.stat()
        # fsencode: file names need not be valid UTF-8 on POSIX.
        digest.update(os.fsencode(path.resolve()) + f"|{stat.st_size}|{stat.st_mtime_ns}".encode())
    blob = json.dumps(
        {"settings": settings, "device": device.type, "version": __version__},
        sort_keys=True,
        default=str,
    )
    digest.update(blob.encode())
    return digest.hexdigest()


def _check_store(store: FrameStore, cfg: RenderConfig) -> None:
    """Refuse to mix or silently discard the frames of an interrupted render."""
    if not store.exists() or cfg.overwrite:
        return
    if cfg.resume and store.stored_key() != store.key:
        raise OutputError(
            f"the interrupted render of {store.output.name} used other settings or inputs; "
            "rerun it with the same arguments, or pass --overwrite to start over"
        )
    if not cfg.resume:
        done = len(store.read())
        raise OutputError(
            f"an interrupted render of {store.output.name} exists ({done} frames done): add "
            "--resume to continue it, or --overwrite to start over"
        )


def _open_store(store: FrameStore, cfg: RenderConfig) -> None:
    """Continue the frames an interrupted run left (``--resume``), or start afresh.

    With both ``--resume`` and ``--overwrite`` (as batch renders do), frames of the same
    settings are continued and frames of other settings are discarded.
    """
    if cfg.resume and store.exists() and store.stored_key() == store.key:
        store.read()
        store.resume()
    else:
        store.start()


def render(
    cfg: RenderConfig,
    *,
    progress: Callable[[Progress], None] | None = None,
    encode: bool = True,
    overlap: bool = True,
) -> RenderResult:
    """Render ``cfg.input`` stylized by ``cfg.styles`` into ``cfg.output_path``.

    Inputs, the output path and memory are checked before any model is loaded, so bad
    arguments fail in a second. Finished frames are kept losslessly in a work folder beside
    the output as they are done (see :mod:`vidstyle.io.store`); the video is encoded from them
    at the end and appears only when complete.

    ``encode=False`` stops there: the frames stay in the work folder
    (``FrameStore(cfg.output_path, ...).folder``) and no video is written, for callers that
    assemble one video from several renders (:mod:`vidstyle.distributed`).

    ``overlap=True`` decodes each frame and computes its optical flow in a worker thread
    while the frame before it is being optimized (:mod:`vidstyle.overlap`); ``False`` does
    them in turn, for comparison (``benchmarks/speed.py --overlap``). The frames are the same.

    Raises:
        InputError, DecodeError, OutputError, WeightsError, DeviceError: as their names say.
        Interrupted: on Ctrl-C / SIGTERM; finished frames are kept for ``cfg.resume``.
    """
    began = time.monotonic()
    output = cfg.output_path
    info = probe(cfg.input)
    styles = [load_image(p) for p in cfg.styles]
    check_output_path(output, overwrite=cfg.overwrite, inputs=(cfg.input, *cfg.styles))
    check_codec(output, cfg.codec)
    start, stop, expected = frame_selection(info, cfg)
    device = resolve_device(cfg.device)
    width, height = working_size(info.width, info.height, cfg.max_side)
    # A one-frame range (a still) holds no frame to a neighbour.
    references = 0 if expected == 1 or cfg.style.temporal_weight == 0 else len(
        pass_offsets(cfg.style.long_term) if cfg.optim.passes > 1 else cfg.style.long_term)
    tiles = plan_tiles(cfg.style.backbone, width, height, device, cfg.max_memory, references)
    store = FrameStore(output, run_key(cfg, device))
    _check_store(store, cfg)

    backbone = load_backbone(cfg.style.backbone, device=device, weights_file=cfg.style.weights)
    stylizer = FrameStylizer(
        backbone,
        [s.to(device) for s in styles],
        style=cfg.style,
        optim=cfg.optim,
        frame_size=(height, width),
        blend=cfg.style.style_blend,
        tiles=tiles,
        chroma=chroma_blocks(cfg.codec),
    )
    flows = (reference_flows(cfg.flow.flow, cfg.flow.long_term_flow, device,
                             edges=cfg.flow.flow_edges)
             if cfg.style.temporal_weight > 0 else None)

    _open_store(store, cfg)
    resumed = store.work_done
    # With --passes every frame is stylized once per pass; progress counts them all.
    work = expected * cfg.optim.passes if expected is not None else None

    def notify(index: int, budget: int, it: int, loss: float, *, finished: bool = False) -> None:
        if progress is not None:
            elapsed = time.monotonic() - began
            done = store.work_done
            progress(Progress(done, work, index, it, budget, loss, elapsed, finished, resumed,
                              (width, height), tiles))

    state = RenderState(cfg=cfg, store=store, stylizer=stylizer, flows=flows, device=device,
                        notify=notify, policy=TemporalPolicy.of(cfg))
    frames = _range(state, start, stop)
    try:
        if cfg.fast.fast:
            net = _fast_network(state, start, stop, expected, began, progress)
        with contextlib.closing(frames):
            iterations = (_fast_pass(state, frames, net, overlap=overlap) if cfg.fast.fast
                          else _stylize_all(state, frames, overlap=overlap))
    except KeyboardInterrupt:
        if cfg.fast.fast and store.kept_file(_NETWORK_FILE) is None:
            raise Interrupted(
                "interrupted while preparing the --fast network; nothing of it is kept until "
                "its training ends, so the same command starts it again"
            ) from None
        of = f" of {work}" if work else ""
        passes = f" (over {cfg.optim.passes} passes)" if cfg.optim.passes > 1 else ""
        raise Interrupted(
            f"interrupted after {store.work_done}{of} frames{passes}; run the same command "
            "with --resume to continue"
        ) from None
    except DecodeError as exc:
        if not (cfg.keep_partial and store.frames):
            store.remove()
            raise
        _encode(store, output, info, cfg)
        store.remove()
        kept = len(store.frames)
        raise DecodeError(f"{exc}; kept the {kept} frames before it in {output}") from None
    if not store.frames:
        store.remove()
        raise InputError(f"the selected range of {cfg.input.name} contains no frames")
    dropped: list[str] = []
    if encode:
        dropped = _encode(store, output, info, cfg)
        store.remove()
    frames_done = store.frames
    return RenderResult(
        output=output,
        frames=len(frames_done),
        size=(width, height),
        device=str(device),
        seconds=time.monotonic() - began,
        iterations=iterations,
        dropped_audio=tuple(dropped),
        resumed_frames=resumed,
    )




def _encode(store: FrameStore, output: Path, info: VideoInfo, cfg: RenderConfig) -> list[str]:
    """Encode the stored frames (and the source's audio for their range) into ``output``."""
    return encode_stored(output, info, cfg.input, [(f.index, f.time, store) for f in store.frames],
                         crf=cfg.crf, codec=cfg.codec)


@dataclass(frozen=True)
class RenderState:
    """What every frame of one render is painted with, passed down as one object."""

    cfg: RenderConfig
    store: FrameStore
    stylizer: FrameStylizer
    flows: ReferenceFlows | None
    """None without the temporal loss: every frame is painted on its own."""
    device: torch.device
    notify: Callable[..., None]
    """``notify(index, budget, iteration, loss, finished=False)``: progress of a frame."""
    policy: TemporalPolicy
    exposures: dict[int, float] = dataclasses.field(default_factory=dict)
    """Each frame's exposure as the first pass measured it, for the later passes to paint at
    (frames absent: 1, as after a resume)."""


def _stylize_all(state: RenderState, frames: Iterator[Frame], *, overlap: bool = True) -> int:
    """Stylize every selected frame not already in the store (all passes), adding each to
    it when finished. Returns the number of optimizer iterations run."""
    iterations = _first_pass(state, frames, overlap=overlap)
    for pass_ in range(2, state.cfg.optim.passes + 1):
        iterations += _later_pass(state, pass_)
    return iterations


# (backward, forward) flows between a frame and each of its earlier frames, closest first.
_Flows = list[tuple[Tensor, Tensor]]


def _with_flows(
    frames: Iterator[Frame],
    flows: ReferenceFlows | None,
    offsets: Sequence[int],
    skip: set[int],
) -> Generator[tuple[Frame, _Flows], None, None]:
    """Each frame with its flows to the frames ``offsets`` back in the stream (as many as
    came before it); none for frames in ``skip`` (already stylized) or without ``flows``.

    The flows need only input frames, so this whole stage can run ahead of the optimizer.
    ``frames`` is left open: :func:`render` closes it, after the worker has stopped.
    """
    recent: deque[Frame] = deque(maxlen=max(offsets))
    for frame in frames:
        pairs: _Flows = []
        if flows is not None and frame.index not in skip:
            for j in offsets:
                if j > len(recent):
                    break
                pairs.append(flows.pair(recent[-j].image, frame.image, j))
        recent.append(frame)
        yield frame, pairs


def _first_pass(state: RenderState, frames: Iterator[Frame], *, overlap: bool = True) -> int:
    """The pass that streams the input: each frame starts from the frames before it."""
    finished = {f.index for f in state.store.frames}
    staged = _with_flows(frames, state.flows, state.cfg.style.long_term, finished)
    # The worker gets a low priority: on a CPU the optimizer already keeps every core busy,
    # and decoding or flow must not slow it down (measured: see benchmarks/RESULTS.md).
    with contextlib.closing(ahead(staged, nice=15) if overlap else staged) as stream:
        return _first_pass_of(state, stream, finished)


def _first_pass_of(
    state: RenderState, stream: Iterator[tuple[Frame, _Flows]], finished: set[int]
) -> int:
    """:func:`_first_pass` over frames that come with their flows."""
    cfg, store, device = state.cfg, state.store, state.device
    offsets = cfg.style.long_term
    # (input frame, its stylized frame or None until needed, its exposure) for the last
    # max(offsets) frames, kept in 8 bits (a quarter of a float tensor: at 4K, ten frames are
    # 0.25 GB, not 1 GB) and made a tensor when used, as the frame store would give it back.
    # A resumed render starts its exposure anew at 1 (it is not stored).
    history: deque[tuple[Frame, np.ndarray | None, float]] = deque(maxlen=max(offsets))
    iterations = 0
    for frame, flows in stream:
        if cfg.optim.passes > 1:
            store.keep_input(frame.index, frame.image)
        if frame.index in finished:
            history.append((frame, None, 1.0))  # loaded from the store only if needed
            continue
        content = to_tensor(frame.pixels, device)
        references: list[Reference] = []
        if state.flows is not None:
            for j in offsets:
                if j > len(history):
                    break
                old, painted, lit = history[-j]
                if painted is None:
                    painted = store.load(old.index)
                    history[-j] = (old, painted, lit)
                out = to_tensor(painted, device)
                # Flows computed ahead where the worker had them (not for a resumed frame's
                # first successor, whose history came from the store).
                backward, forward = (flows[len(references)] if len(flows) > len(references)
                                     else state.flows.pair(old.image, frame.image, j))
                references.append(Reference(painting=out, source=to_tensor(old.pixels, device),
                                            flow=backward, reverse=forward))
        budget = cfg.optim.iterations if references else cfg.optim.first_iterations
        before = history[-offsets[0]][2] if references else None
        image, stats, level = _stylize_frame(
            state, content, references, budget, base=None, index=frame.index, debug=True,
            on_iteration=functools.partial(state.notify, frame.index, budget), before=before,
        )
        store.add(frame.index, frame.time, image)
        iterations += stats.iterations
        # The chain continues from the stored 8-bit frame, exactly as a resumed run would.
        history.append((frame, image, level))
        state.exposures[frame.index] = level
        state.notify(frame.index, budget, stats.iterations, stats.loss, finished=True)
    return iterations


def _later_pass(state: RenderState, pass_: int) -> int:
    """Multi-pass (Ruder et al. section 3.4): sweep the stored frames again, backward on even
    passes, each frame held to its neighbours earlier in this pass's direction.

    A frame starts from its previous pass's result blended towards the warped neighbour
    where the motion is reliable (:func:`vidstyle.temporal.hold`), so a look settled
    anywhere in the range spreads through it in both directions: the first frames,
    stylized before the chain had settled, end as steady as the rest.
    """
    cfg, store, device, flows = state.cfg, state.store, state.device, state.flows
    assert flows is not None  # RenderConfig refuses passes without the temporal loss
    order = store.frames[::-1] if pass_ % 2 == 0 else store.frames
    done = store.done_in_pass(pass_)
    offsets = pass_offsets(cfg.style.long_term)
    # (index, input, painting), both 8-bit, as in the first pass.
    history: deque[tuple[int, np.ndarray | None, np.ndarray | None]] = deque(maxlen=max(offsets))
    iterations = 0
    budget = cfg.optim.iterations
    for stored in order:
        if stored.index in done:
            history.append((stored.index, None, None))
            continue
        source = store.load_input(stored.index)
        content = to_tensor(source, device)
        references: list[Reference] = []
        for j in offsets:
            if j > len(history):
                break
            index, image, painted = history[-j]
            if image is None or painted is None:
                image, painted = store.load_input(index), store.load(index)
                history[-j] = (index, image, painted)
            out = to_tensor(painted, device)
            backward, forward = flows.pair(image, source, j)
            references.append(Reference(painting=out, source=to_tensor(image, device),
                                        flow=backward, reverse=forward))
        base = to_tensor(store.load(stored.index), device)
        image, stats, _ = _stylize_frame(
            state, content, references, budget, base=base, index=stored.index, debug=False,
            on_iteration=functools.partial(state.notify, stored.index, budget),
            level=state.exposures.get(stored.index, 1.0),
        )
        store.add(stored.index, stored.time, image, pass_=pass_)
        iterations += stats.iterations
        history.append((stored.index, source, image))
        state.notify(stored.index, budget, stats.iterations, stats.loss, finished=True)
    return iterations


def _stylize_frame(
    state: RenderState,
    content: Tensor,
    references: Sequence[Reference],
    budget: int,
    *,
    base: Tensor | None,
    index: int,
    debug: bool,
    on_iteration: Callable[[int, float], None],
    level: float = 1.0,
    before: float | None = None,
) -> tuple[np.ndarray, FrameStats, float]:
    """Optimize one frame held to ``references``; returns it as stored (8-bit RGB), the
    optimizer's stats and the exposure it was painted at.

    ``base`` is the frame's result from the previous pass (None in the first pass);
    ``index`` the frame's index in the input; ``debug`` whether to write ``--debug-dir``
    pictures. ``level`` is the frame's exposure against the shot's start: the optimizer
    paints the frame divided by it, and the result is multiplied back
    (:attr:`TemporalPolicy.paint_at_exposure`). Given ``before``, the closest earlier
    neighbour's exposure, the frame's own is measured from it instead (the first pass).
    """
    cfg = state.cfg
    held = hold(content, references, state.policy, base=base)
    if before is not None:
        level = exposure(before, held.light)
    if debug and cfg.debug_dir is not None and held.weight is not None and held.target is not None:
        _write_debug(cfg.debug_dir, index, references[0].flow, held.weight, held.target)
    init = held.init
    if base is None and cfg.optim.init == "random":
        # Seeded per frame (so a resumed run draws the same noise), on the CPU (the same
        # numbers on every device).
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + index)
        init = torch.rand(content.shape, generator=generator).to(content.device)
    target = held.target
    seen = content
    if level != 1.0:
        seen, init = (content / level).clamp(0, 1), (init / level).clamp(0, 1)
        target = None if target is None else (target / level).clamp(0, 1)
    out, stats = state.stylizer.stylize(
        seen, init, iterations=budget, warped=target, mask=held.weight,
        on_iteration=on_iteration,
    )
    if level != 1.0:
        out = (out * level).clamp(0, 1)
    if cfg.style.preserve_colors:
        out = keep_colors(out, content)
    return to_image(out), stats, level


def _write_debug(
    folder: Path, index: int, flow: Tensor, mask: Tensor, warped: Tensor
) -> None:
    """Per-frame pictures of what the temporal term sees (``--debug-dir``)."""
    from torchvision.utils import flow_to_image

    with disk_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
    pictures = {
        "flow": flow_to_image(flow.float().cpu())[0].permute(1, 2, 0).numpy(),
        "mask": to_image(mask.expand(-1, 3, -1, -1)),
        "warped": to_image(warped),
    }
    for name, picture in pictures.items():
        write_png(folder / f"{index:06d}-{name}.png", picture)


# Consecutive pairs ``--fast`` trains its temporal loss on, spread over the range, held on
# the render's device (:class:`vidstyle.fast.Pair`: about 0.5 GB at 1080p).
FAST_PAIRS = 24

_NETWORK_FILE = "network.pt"


def _fast_network(
    state: RenderState,
    start: int,
    stop: int | None,
    expected: int | None,
    began: float,
    progress: Callable[[Progress], None] | None,
) -> fast.TransformNet:
    """``--fast``'s network: the one an interrupted run of the same render stored, else one
    trained now on the range (keyframes optimized as usual, then the network) and stored."""
    cfg, store, device = state.cfg, state.store, state.device
    # Drawn from the render's seed, not the process's random state: the same render trains
    # the same network.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = fast.TransformNet().to(device)
    kept = store.kept_file(_NETWORK_FILE)
    if kept is not None:
        try:
            net.load_state_dict(torch.load(io.BytesIO(kept), map_location=device,
                                           weights_only=True))
        except (RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            raise OutputError(f"the stored network in {store.folder} is unreadable ({exc}); "
                              "rerun with --overwrite to start over") from None
        return net.eval()
    size = state.stylizer.frame_size

    def report(phase: str, done: int, total: int | None, index: int, its: int, it: int,
               loss: float) -> None:
        if progress is not None:
            progress(Progress(done, total, index, it, its, loss, time.monotonic() - began,
                              False, 0, (size[1], size[0]), state.stylizer.tiles, phase))

    damage: list[DecodeError] = []
    count = expected
    if count is None:  # the container does not say: count the frames of the range
        count = sum(1 for _ in _until_damage(_range(state, start, stop), cfg.keep_partial,
                                             damage))
    pair_at = set(fast.sample_pairs(count, FAST_PAIRS))
    key_at = fast.sample_keyframes(count, cfg.fast.fast_keyframes)
    wanted = pair_at | {i + 1 for i in pair_at} | set(key_at)
    picked: dict[int, Frame] = {}
    for position, frame in enumerate(_until_damage(_range(state, start, stop),
                                                   cfg.keep_partial, damage)):
        if position in wanted:
            picked[position] = frame
    pairs = []
    for i in sorted(pair_at):
        if i + 1 not in picked or state.flows is None:
            continue
        a, b = picked[i], picked[i + 1]
        backward, forward = state.flows.pair(a.image, b.image, 1)
        earlier, later = to_tensor(a.pixels, device), to_tensor(b.pixels, device)
        # The mask the render itself would hold the later frame with (its painting aside).
        _, mask, _ = trust(later, Reference(painting=earlier, source=earlier, flow=backward,
                                            reverse=forward), state.policy)
        pairs.append(fast.Pair.of(earlier, later, backward, mask))
    keyframes = []
    budget = cfg.optim.first_iterations
    for k, position in enumerate(key_at):
        if position not in picked:
            continue
        frame = picked[position]
        content = to_tensor(frame.pixels, device)
        image, _, _ = _stylize_frame(
            state, content, [], budget, base=None, index=frame.index, debug=False,
            on_iteration=functools.partial(report, "keyframes", k, len(key_at), frame.index,
                                           budget),
        )
        keyframes.append(fast.Keyframe.of(content, to_tensor(image, device)))
    picked.clear()
    if damage and not pairs and not keyframes:
        raise damage[0]  # damaged before the first sample: nothing to train on
    steps = cfg.fast.fast_steps
    done = store.work_done
    fast.train(
        net, state.stylizer, pairs, keyframes,
        fast.Training(steps=steps, crop=cfg.fast.fast_crop, seed=cfg.seed),
        temporal_weight=cfg.fast.fast_temporal_weight if cfg.style.temporal_weight else 0.0,
        on_step=lambda s: report("training", done, expected, -1, s.steps, s.step, s.loss),
    )
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    store.keep_file(_NETWORK_FILE, buffer.getvalue())
    return net


def _until_damage(frames: Generator[Frame, None, None], keep_partial: bool,
                  damage: list[DecodeError]) -> Generator[Frame, None, None]:
    """``frames``, closed at the end; with ``keep_partial`` a :class:`DecodeError` ends them
    and is appended to ``damage`` instead of propagating: ``--fast`` trains on the frames
    before the damage, and its pass over the range stops at the same place and keeps the
    frames before it, as a normal render does."""
    with contextlib.closing(frames):
        try:
            yield from frames
        except DecodeError as exc:
            if not keep_partial:
                raise
            damage.append(exc)


def _range(state: RenderState, start: int, stop: int | None) -> Generator[Frame, None, None]:
    """The render's range of input frames, decoded anew."""
    cfg = state.cfg
    width, height = state.stylizer.frame_size[1], state.stylizer.frame_size[0]
    return iter_frames(cfg.input, size=(width, height), start_index=start, stop_index=stop,
                       start_time=cfg.start, end_time=cfg.end)


def _fast_pass(state: RenderState, frames: Iterator[Frame], net: fast.TransformNet, *,
               overlap: bool = True) -> int:
    """``--fast``: each frame painted by one pass of ``net``, then moved ``--fast-hold`` of
    the way towards the previous stylized frame warped onto it where the temporal model
    trusts the warp (:func:`vidstyle.temporal.hold`). Returns 0: no optimizer iterations.

    Only the previous frame holds it, not the ``--long-term`` references: each costs an
    optical flow per frame, which would cost more than the network itself.
    """
    cfg, store, device = state.cfg, state.store, state.device
    finished = {f.index for f in store.frames}
    # Without a hold the previous frame is not used: no flow for it.
    flow_of = state.flows if cfg.fast.fast_hold > 0 else None
    staged = _with_flows(frames, flow_of, (1,), finished)
    # (frame, its stylized frame as stored or None until needed, its input as a tensor or
    # None): the previous frame, which holds this one.
    previous: tuple[Frame, np.ndarray | None, Tensor | None] | None = None
    with contextlib.closing(ahead(staged, nice=15) if overlap else staged) as stream:
        for frame, flows in stream:
            if frame.index in finished:
                previous = (frame, None, None)
                continue
            content = to_tensor(frame.pixels, device)
            raw = fast.stylize(net, content)
            references = []
            if flow_of is not None and previous is not None:
                old, painted, source = previous
                if painted is None:
                    painted = store.load(old.index)
                if source is None:
                    source = to_tensor(old.pixels, device)
                backward, forward = flows[0] if flows else flow_of.pair(old.image,
                                                                       frame.image, 1)
                references.append(Reference(painting=to_tensor(painted, device),
                                            source=source, flow=backward, reverse=forward))
            held = hold(content, references, state.policy, base=raw, blend=cfg.fast.fast_hold)
            out = held.init.clamp(0, 1)
            if cfg.style.preserve_colors:
                out = keep_colors(out, content)
            image = to_image(out)
            store.add(frame.index, frame.time, image)
            previous = (frame, image, content)
            state.notify(frame.index, 1, 1, 0.0, finished=True)
    return 0
