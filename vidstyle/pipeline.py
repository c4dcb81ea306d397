"""The pipeline: decode -> flow -> warp + mask -> stylize -> encode (+ audio remux).

:func:`render` is the library's entry point. It never prints: progress leaves through the
``progress`` callback as :class:`Progress` records, and failures as
:class:`vidstyle.errors.VidstyleError` subclasses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vidstyle import __version__
from vidstyle.config import RenderConfig
from vidstyle.errors import DecodeError, DeviceError, InputError, Interrupted, OutputError
from vidstyle.features import load_backbone
from vidstyle.flow import FlowEstimator, flow_pair, make_flow
from vidstyle.io import (
    Frame,
    VideoInfo,
    VideoWriter,
    check_output_path,
    iter_frames,
    probe,
    working_size,
)
from vidstyle.io.encode import disk_errors
from vidstyle.io.images import load_image, to_image, to_tensor, write_png
from vidstyle.io.store import FrameStore
from vidstyle.optimize import FrameStats, FrameStylizer, keep_colors
from vidstyle.overlap import ahead
from vidstyle.warp import (
    agreement_mask,
    consistency_mask,
    fill_unseen,
    long_term_target,
    warp,
)


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


# Peak memory of one optimization step, measured on CPU with one frame (float32): a fixed
# part (runtime and weights) plus bytes per frame pixel for activations and their gradients.
_MEMORY_MODEL = {"efficientnet-lite0": (0.9e9, 2000.0), "vgg19": (1.0e9, 3000.0)}


def estimate_memory(backbone: str, width: int, height: int) -> float:
    """Estimated peak bytes to stylize ``width x height`` frames with ``backbone``."""
    fixed, per_pixel = _MEMORY_MODEL[backbone]
    return fixed + per_pixel * width * height


def available_memory(device: torch.device) -> float | None:
    """Bytes free for a render on ``device``; None when the system does not say."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(backbone: str, width: int, height: int, device: torch.device) -> None:
    """Refuse, before starting, frames that would not fit; suggest a ``--max-side`` that does."""
    free = available_memory(device)
    need = estimate_memory(backbone, width, height)
    if free is None or need <= free:
        return
    fixed, per_pixel = _MEMORY_MODEL[backbone]
    scale = ((free * 0.9 - fixed) / per_pixel / (width * height)) ** 0.5 if free > fixed else 0
    side = int(max(width, height) * scale) // 16 * 16
    hint = f"try --max-side {side}" if side >= 64 else "free some memory first"
    raise DeviceError(
        f"{width}x{height} frames need about {need / 1e9:.1f} GB on {device.type} but only "
        f"{free / 1e9:.1f} GB is free; {hint}"
    )


def run_key(cfg: RenderConfig, device: torch.device) -> str:
    """Identifies what a render's frames depend on, so ``--resume`` never mixes two renders."""
    settings = dataclasses.asdict(cfg)
    # Inputs are identified below by resolved path, size and time; the rest cannot change
    # the frames.
    for name in ("output", "overwrite", "resume", "keep_partial", "debug_dir", "input", "styles"):
        settings.pop(name)
    if cfg.style.weights is not None:
        settings["style"]["weights"] = str(cfg.style.weights.resolve())
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
    start, stop, expected = frame_selection(info, cfg)
    device = resolve_device(cfg.device)
    width, height = working_size(info.width, info.height, cfg.max_side)
    check_memory(cfg.style.backbone, width, height, device)
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
    )
    flow = make_flow(cfg.flow.flow, device) if cfg.style.temporal_weight > 0 else None

    _open_store(store, cfg)
    resumed = store.work_done
    # With --passes every frame is stylized once per pass; progress counts them all.
    work = expected * cfg.optim.passes if expected is not None else None

    def notify(index: int, budget: int, it: int, loss: float, *, finished: bool = False) -> None:
        if progress is not None:
            elapsed = time.monotonic() - began
            done = store.work_done
            progress(Progress(done, work, index, it, budget, loss, elapsed, finished, resumed))

    frames = iter_frames(
        cfg.input,
        size=(width, height),
        start_index=start,
        stop_index=stop,
        start_time=cfg.start,
        end_time=cfg.end,
    )
    try:
        with contextlib.closing(frames):
            iterations = _stylize_all(cfg, store, frames, stylizer, flow, device, notify,
                                      overlap=overlap)
    except KeyboardInterrupt:
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
        _encode(store, output, info, cfg.input)
        store.remove()
        kept = len(store.frames)
        raise DecodeError(f"{exc}; kept the {kept} frames before it in {output}") from None
    if not store.frames:
        store.remove()
        raise InputError(f"the selected range of {cfg.input.name} contains no frames")
    dropped: list[str] = []
    if encode:
        dropped = _encode(store, output, info, cfg.input)
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


def _stylize_all(
    cfg: RenderConfig,
    store: FrameStore,
    frames: Iterator[Frame],
    stylizer: FrameStylizer,
    flow: FlowEstimator | None,
    device: torch.device,
    notify: Callable[..., None],
    *,
    overlap: bool = True,
) -> int:
    """Stylize every selected frame not already in ``store`` (all passes), adding each to
    ``store`` when finished. Returns the number of optimizer iterations run."""
    iterations = _first_pass(cfg, store, frames, stylizer, flow, device, notify, overlap=overlap)
    for pass_ in range(2, cfg.optim.passes + 1):
        assert flow is not None  # RenderConfig refuses passes without the temporal loss
        iterations += _later_pass(pass_, cfg, store, stylizer, flow, device, notify)
    return iterations


# What a frame is held to: earlier stylized frames with their input frames, closest first.
_Earlier = list[tuple[np.ndarray, Tensor]]
# (backward, forward) flows between a frame and each of its earlier frames, closest first.
_Flows = list[tuple[Tensor, Tensor]]


def _with_flows(
    frames: Iterator[Frame],
    flow: FlowEstimator | None,
    offsets: Sequence[int],
    skip: set[int],
) -> Generator[tuple[Frame, _Flows], None, None]:
    """Each frame with its flows to the frames ``offsets`` back in the stream (as many as
    came before it); none for frames in ``skip`` (already stylized) or without ``flow``.

    The flows need only input frames, so this whole stage can run ahead of the optimizer.
    ``frames`` is left open: :func:`render` closes it, after the worker has stopped.
    """
    recent: deque[Frame] = deque(maxlen=max(offsets))
    for frame in frames:
        pairs: _Flows = []
        if flow is not None and frame.index not in skip:
            for j in offsets:
                if j > len(recent):
                    break
                pairs.append(flow_pair(flow, recent[-j].image, frame.image))
        recent.append(frame)
        yield frame, pairs


def _first_pass(
    cfg: RenderConfig,
    store: FrameStore,
    frames: Iterator[Frame],
    stylizer: FrameStylizer,
    flow: FlowEstimator | None,
    device: torch.device,
    notify: Callable[..., None],
    *,
    overlap: bool = True,
) -> int:
    """The pass that streams the input: each frame starts from the frames before it."""
    finished = {f.index for f in store.frames}
    offsets = cfg.style.long_term
    staged = _with_flows(frames, flow, offsets, finished)
    # The worker gets a low priority: on a CPU the optimizer already keeps every core busy,
    # and decoding or flow must not slow it down (measured: at equal priority a 384x216
    # render took 4% longer with the overlap than without).
    with contextlib.closing(ahead(staged, nice=15) if overlap else staged) as stream:
        return _first_pass_of(cfg, store, stream, stylizer, flow, device, notify, finished)


def _first_pass_of(
    cfg: RenderConfig,
    store: FrameStore,
    stream: Iterator[tuple[Frame, _Flows]],
    stylizer: FrameStylizer,
    flow: FlowEstimator | None,
    device: torch.device,
    notify: Callable[..., None],
    finished: set[int],
) -> int:
    """:func:`_first_pass` over frames that come with their flows."""
    offsets = cfg.style.long_term
    # (input frame, its stylized frame or None until needed) for the last max(offsets) frames.
    history: deque[tuple[Frame, Tensor | None]] = deque(maxlen=max(offsets))
    iterations = 0
    for frame, flows in stream:
        if cfg.optim.passes > 1:
            store.keep_input(frame.index, frame.image)
        if frame.index in finished:
            history.append((frame, None))  # loaded from the store only if needed
            continue
        earlier: _Earlier = []
        if flow is not None:
            for j in offsets:
                if j > len(history):
                    break
                old, out = history[-j]
                if out is None:
                    out = to_tensor(store.load(old.index), device)
                    history[-j] = (old, out)
                earlier.append((old.image, out))
        content = to_tensor(frame.image, device)
        budget = cfg.optim.iterations if earlier else cfg.optim.first_iterations
        image, stats = _stylize_frame(
            cfg, stylizer, flow, frame.image, content, earlier, budget,
            base=None, index=frame.index, debug=True, flows=flows,
            on_iteration=functools.partial(notify, frame.index, budget),
        )
        store.add(frame.index, frame.time, image)
        iterations += stats.iterations
        # The chain continues from the stored 8-bit frame, exactly as a resumed run would.
        history.append((frame, to_tensor(image, device)))
        notify(frame.index, budget, stats.iterations, stats.loss, finished=True)
    return iterations


# How far a later pass moves a frame towards its warped neighbour before optimizing:
# Ruder et al.'s delta (section 3.4), their value.
_PASS_BLEND = 0.5
# Without --long-term, later passes still hold each frame to the frame this far back in the
# pass's direction (see pass_offsets).
_PASS_REACH = 10


def pass_offsets(long_term: tuple[int, ...]) -> tuple[int, ...]:
    """The earlier frames (in the pass's direction) that a later pass holds each frame to.

    Where we differ from the paper: without ``--long-term`` (``(1,)``), a later pass also
    looks ``_PASS_REACH`` frames back, as ``--long-term 1,10`` would. Every frame is painted
    by then, so the far frame costs one more optical flow and nothing else. Held to its
    neighbour alone, each pass follows the chain of consecutive flows and the sum of their
    errors in its own direction: measured with ``benchmarks/temporal.py`` (24 frames), two
    passes so lowered the flicker ratio on the hand-held clip from 0.77 to 0.26 but raised the
    long-range ratio from 1.88 to 2.06: the painting slid over the scene.
    """
    return long_term if len(long_term) > 1 else (1, _PASS_REACH)


def _later_pass(
    pass_: int,
    cfg: RenderConfig,
    store: FrameStore,
    stylizer: FrameStylizer,
    flow: FlowEstimator,
    device: torch.device,
    notify: Callable[..., None],
) -> int:
    """Multi-pass (Ruder et al. section 3.4): sweep the stored frames again, backward on even
    passes, each frame held to its neighbours earlier in this pass's direction.

    A frame starts from its previous pass's result blended towards the warped neighbour
    where the motion is reliable, so a look settled anywhere in the range spreads through it
    in both directions: the first frames, stylized before the chain had settled, end as
    steady as the rest.
    """
    order = store.frames[::-1] if pass_ % 2 == 0 else store.frames
    done = store.done_in_pass(pass_)
    offsets = pass_offsets(cfg.style.long_term)
    history: deque[tuple[int, np.ndarray | None, Tensor | None]] = deque(maxlen=max(offsets))
    iterations = 0
    budget = cfg.optim.iterations
    for stored in order:
        if stored.index in done:
            history.append((stored.index, None, None))
            continue
        earlier: _Earlier = []
        for j in offsets:
            if j > len(history):
                break
            index, image, out = history[-j]
            if image is None or out is None:
                image = store.load_input(index)
                out = to_tensor(store.load(index), device)
                history[-j] = (index, image, out)
            earlier.append((image, out))
        source = store.load_input(stored.index)
        content = to_tensor(source, device)
        base = to_tensor(store.load(stored.index), device)
        image, stats = _stylize_frame(
            cfg, stylizer, flow, source, content, earlier, budget, base=base,
            index=stored.index, debug=False,
            on_iteration=functools.partial(notify, stored.index, budget),
        )
        store.add(stored.index, stored.time, image, pass_=pass_)
        iterations += stats.iterations
        history.append((stored.index, source, to_tensor(image, device)))
        notify(stored.index, budget, stats.iterations, stats.loss, finished=True)
    return iterations


def _stylize_frame(
    cfg: RenderConfig,
    stylizer: FrameStylizer,
    flow: FlowEstimator | None,
    source: np.ndarray,
    content: Tensor,
    earlier: _Earlier,
    budget: int,
    *,
    base: Tensor | None,
    index: int,
    debug: bool,
    on_iteration: Callable[[int, float], None],
    flows: _Flows | None = None,
) -> tuple[np.ndarray, FrameStats]:
    """Optimize one frame; returns it as stored (8-bit RGB) and the optimizer's stats.

    ``base`` is the frame's result from the previous pass (None in the first pass);
    ``index`` the frame's index in the input; ``debug`` whether to write ``--debug-dir``
    pictures; ``flows`` the flows to ``earlier``'s input frames when already computed.
    """
    target = weight = None
    init = content if base is None else base
    if flow is not None and earlier:
        if not flows:
            flows = [flow_pair(flow, image, source) for image, _ in earlier]
        warped, masks = [], []
        for (image, out), (backward, forward) in zip(earlier, flows, strict=True):
            warped.append(warp(out, backward))
            seen = warp(to_tensor(image, content.device), backward)
            # Where we differ from the paper: no motion-boundary test. On camera footage
            # DIS flow has steep gradients all over still surfaces, not only at the edges
            # of moving things: the test alone rejected 4-6% of the pixels there (under 1%
            # on the generated clips). Each rejected pixel was painted afresh and changed
            # from frame to frame: a fifth of the remaining warping error on the traffic
            # clip of benchmarks/temporal.py. The colour check asks the images themselves
            # whether the warp holds, which is what the boundary test guessed at.
            masks.append(consistency_mask(backward, forward, boundaries=False)
                         * agreement_mask(content, seen))
        target, weight = long_term_target(warped, masks, anchor=cfg.style.long_term_anchor)
        if debug and cfg.debug_dir is not None:
            _write_debug(cfg.debug_dir, index, flows[0][0], weight, target)
        if base is not None:
            init = base + _PASS_BLEND * weight * (target - base)
        elif cfg.optim.init == "prev-warped":
            # Pixels seen in no earlier frame have no history: they start from the input's
            # colours in the painting's palette and are stylized afresh.
            init = fill_unseen(content, target, weight)
    if base is None and cfg.optim.init == "random":
        # Seeded per frame (so a resumed run draws the same noise), on the CPU (the same
        # numbers on every device).
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + index)
        init = torch.rand(content.shape, generator=generator).to(content.device)
    out, stats = stylizer.stylize(
        content, init, iterations=budget, warped=target, mask=weight, on_iteration=on_iteration
    )
    if cfg.style.preserve_colors:
        out = keep_colors(out, content)
    return to_image(out), stats


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


def _encode(store: FrameStore, output: Path, info: VideoInfo, source: Path) -> list[str]:
    """Encode the stored frames (and the source's audio for their range) into ``output``."""
    return encode_stored(output, info, source, [(f.index, f.time, store) for f in store.frames])


def encode_stored(
    output: Path,
    info: VideoInfo,
    source: Path,
    frames: Sequence[tuple[int, float, FrameStore]],
) -> list[str]:
    """Encode ``(input frame index, time, the store holding its picture)`` in order into
    ``output``, with ``source``'s audio for their range; returns the audio streams left out."""
    first = frames[0][2].load(frames[0][0])
    height, width = first.shape[:2]
    with VideoWriter(
        output,
        width=width,
        height=height,
        rate=info.rate,
        time_base=info.time_base,
        audio_source=source if info.audio_streams else None,
        start_time=frames[0][1],
    ) as writer:
        for index, when, store in frames:
            writer.write(store.load(index), when)
        # Audio runs to the end of the last frame's display time.
        writer.end_time = frames[-1][1] + 1.0 / float(info.rate)
    return writer.dropped_audio
