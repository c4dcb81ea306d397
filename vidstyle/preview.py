"""Preview: render a few frames and show them as a contact sheet before the long render.

:func:`preview` renders a short range with the normal pipeline (:func:`vidstyle.pipeline.render`)
into a temporary folder beside the sheet, then writes a PNG contact sheet (input frames on top,
stylized frames below) and, if asked, a side-by-side clip (input | stylized, with the source's
audio). The temporary render is always removed, also on errors and Ctrl-C.

Images are ``(H, W, 3)`` uint8 RGB throughout. Like the rest of the library, nothing here
prints; progress leaves through the ``progress`` callback of :func:`vidstyle.pipeline.render`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidstyle.config import RenderConfig
from vidstyle.errors import Interrupted, OutputError
from vidstyle.io import Frame, VideoWriter, check_output_path, iter_frames, probe
from vidstyle.io.images import write_png
from vidstyle.pipeline import Progress, frame_selection, render

DEFAULT_FRAMES = (0, 24)
"""The range previewed when the config names none: the first 24 frames (one second at 24 fps)."""
DEFAULT_COUNT = 6
"""Frames shown on a contact sheet by default."""

# Gaps between tiles: dark grey, so both bright and dark frames stand apart from it.
_GAP_COLOUR = 40
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class PreviewResult:
    sheet: Path
    video: Path | None
    """The side-by-side clip, when one was asked for."""
    frames: int
    """Frames rendered."""
    shown: int
    """Frames on the contact sheet."""
    size: tuple[int, int]
    """``(width, height)`` of the rendered frames (one tile)."""
    device: str
    seconds: float
    """Wall time of the whole preview: model loading, render, sheet and clip."""
    seconds_per_frame: float
    """``seconds / frames``: what this preview cost per rendered frame, start-up included."""
    dropped_audio: tuple[str, ...] = ()


def pick_evenly(n_total: int, count: int) -> list[int]:
    """``count`` positions in ``range(n_total)``, evenly spaced, first and last included.

    ``count >= n_total`` gives every position; ``count == 1`` gives ``[0]``.
    """
    if n_total < 0:
        raise ValueError(f"n_total must be >= 0, got {n_total}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if count >= n_total:
        return list(range(n_total))
    if count == 1:
        return [0]
    # Steps of (n_total - 1) / (count - 1) >= 1, so rounding never picks a position twice.
    return [round(i * (n_total - 1) / (count - 1)) for i in range(count)]


def label_tile(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``image`` with ``text`` in its top-left corner, readable on any background.

    Light text on a dark outline; the size follows the tile's height and shrinks to fit its
    width. An empty ``text`` returns an unchanged copy.
    """
    out = image.copy()
    if not text:
        return out
    h, w = image.shape[:2]
    margin = max(2, h // 40)
    scale = min(1.0, max(0.3, h / 300))
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
    if tw > w - 2 * margin:
        scale *= (w - 2 * margin) / tw
        (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
    thickness = 1 if scale < 0.8 else 2
    org = (margin + 1, margin + 1 + th)
    cv2.putText(out, text, org, _FONT, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(out, text, org, _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


def contact_sheet(
    inputs: Sequence[np.ndarray],
    outputs: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    gap: int = 4,
) -> np.ndarray:
    """Lay out ``inputs`` (top row) over ``outputs`` (bottom row), each tile labelled.

    All images must be ``(h, w, 3)`` uint8 of one shape. The sheet is
    ``(2 * h + gap, n * w + (n - 1) * gap, 3)`` uint8, with ``n = len(inputs)``.

    Raises:
        ValueError: no images, counts or shapes that do not match (expected vs actual), or a
            negative gap.
    """
    n = len(inputs)
    if n == 0:
        raise ValueError("contact_sheet needs at least one frame")
    if len(outputs) != n or len(labels) != n:
        raise ValueError(
            f"expected as many outputs and labels as inputs ({n}), "
            f"got {len(outputs)} outputs and {len(labels)} labels"
        )
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    first = inputs[0]
    if first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) images, got shape {first.shape}")
    for row, images in (("input", inputs), ("output", outputs)):
        for i, image in enumerate(images):
            if image.shape != first.shape or image.dtype != np.uint8:
                raise ValueError(
                    f"{row} {i}: expected a {first.shape} uint8 image, "
                    f"got {image.shape} {image.dtype}"
                )
    h, w = first.shape[:2]
    sheet = np.full((2 * h + gap, n * w + (n - 1) * gap, 3), _GAP_COLOUR, np.uint8)
    for i, (a, b, text) in enumerate(zip(inputs, outputs, labels)):
        x = i * (w + gap)
        sheet[:h, x:x + w] = label_tile(a, text)
        sheet[h + gap:, x:x + w] = label_tile(b, text)
    return sheet


def side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` left of ``b``: two ``(H, w, 3)`` images of the same height and dtype."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.dtype != b.dtype:
        raise ValueError(
            f"expected two (H, w, 3) images of one height and dtype, "
            f"got {a.shape} {a.dtype} and {b.shape} {b.dtype}"
        )
    return np.concatenate([a, b], axis=1)


def default_sheet(cfg: RenderConfig) -> Path:
    """``clip.ink.preview.png`` beside the input (styles joined with ``+``, as ``run`` does)."""
    return cfg.default_output().with_suffix(".preview.png")


def check_sheet_path(sheet: Path, *, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse a sheet path that cannot or must not be written, before any work is done."""
    check_output_path(sheet, overwrite=overwrite, inputs=inputs, suffixes=(".png",), what="sheet")


def _closing(stack: contextlib.ExitStack, frames: Iterator[Frame]) -> Iterator[Frame]:
    """Close the generator (and its decoder's container) when ``stack`` exits."""
    close = getattr(frames, "close", None)
    if close is not None:
        stack.callback(close)
    return frames


def preview(
    cfg: RenderConfig,
    *,
    sheet: Path,
    count: int = DEFAULT_COUNT,
    video: Path | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> PreviewResult:
    """Render ``cfg``'s frame range and write a contact sheet of ``count`` of its frames.

    ``cfg.output``, ``resume`` and ``keep_partial`` are ignored (the render goes to a temporary
    folder beside ``sheet`` that is always removed); ``cfg.overwrite`` applies to ``sheet``
    and ``video``. A config without ``frames``, ``start`` or ``end`` previews
    :data:`DEFAULT_FRAMES`. The sheet shows ``count`` frames evenly spaced over the rendered
    range (see :func:`contact_sheet`); ``video``, if given, gets the input and the stylized
    frames side by side, with the source's audio for the range.

    Raises:
        ValueError: ``count < 1``.
        InputError, DecodeError, OutputError, WeightsError, DeviceError: as :func:`render`.
        Interrupted: on Ctrl-C / SIGTERM; nothing is written.
    """
    began = time.monotonic()
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if cfg.frames is None and cfg.start is None and cfg.end is None:
        cfg = dataclasses.replace(cfg, frames=DEFAULT_FRAMES)
    info = probe(cfg.input)
    inputs = (cfg.input, *cfg.styles)
    check_sheet_path(sheet, overwrite=cfg.overwrite, inputs=inputs)
    if video is not None:
        check_output_path(video, overwrite=cfg.overwrite, inputs=inputs)
        if video.resolve() == sheet.resolve():
            raise OutputError(f"--video and the sheet are the same file: {video}")
    start, stop, _ = frame_selection(info, cfg)

    parent = sheet.parent if str(sheet.parent) else Path(".")
    workdir = Path(tempfile.mkdtemp(prefix=f".{sheet.stem}.", suffix=".vidstyle-preview",
                                    dir=parent))
    try:
        # A fresh folder: nothing to overwrite or resume, and the render's own work folder
        # (its finished frames) lands inside it, so one rmtree removes everything.
        rendered = workdir / "render.mp4"
        run_cfg = dataclasses.replace(
            cfg, output=rendered, overwrite=False, resume=False, keep_partial=False
        )
        try:
            result = render(run_cfg, progress=progress)
        except Interrupted:
            raise Interrupted("preview interrupted; nothing was written") from None
        picked = set(pick_evenly(result.frames, count))
        tops: list[np.ndarray] = []
        bottoms: list[np.ndarray] = []
        labels: list[str] = []
        width, height = result.size
        dropped = list(result.dropped_audio)
        with contextlib.ExitStack() as stack:
            # The decoders' containers are released at once, also on errors.
            source = _closing(stack, iter_frames(
                cfg.input,
                size=result.size,
                start_index=start,
                stop_index=stop,
                start_time=cfg.start,
                end_time=cfg.end,
            ))
            stylized = _closing(stack, iter_frames(rendered))
            pairs = zip(source, stylized)
            first = next(pairs, None)
            if first is None:
                raise OutputError("the preview render could not be read back")
            writer: VideoWriter | None = None
            if video is not None:
                writer = stack.enter_context(
                    VideoWriter(
                        video,
                        width=2 * width,
                        height=height,
                        rate=info.rate,
                        time_base=info.time_base,
                        audio_source=cfg.input if info.audio_streams else None,
                        start_time=first[0].time,
                    )
                )
            n = 0
            last_time = first[0].time
            for n, (frame, out) in enumerate(itertools.chain([first], pairs), start=1):
                if writer is not None:
                    writer.write(side_by_side(frame.image, out.image), frame.time)
                if n - 1 in picked:
                    tops.append(frame.image)
                    bottoms.append(out.image)
                    labels.append(f"frame {frame.index}")
                last_time = frame.time
            if n != result.frames:
                raise OutputError(
                    f"read back {n} frames of the preview render, expected {result.frames}"
                )
            if writer is not None:
                # Audio runs to the end of the last frame's display time, as in a render.
                writer.end_time = last_time + 1.0 / float(info.rate)
        if writer is not None:
            dropped += writer.dropped_audio
        write_png(sheet, contact_sheet(tops, bottoms, labels))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - began
    return PreviewResult(
        sheet=sheet,
        video=video,
        frames=result.frames,
        shown=len(tops),
        size=result.size,
        device=result.device,
        seconds=seconds,
        seconds_per_frame=seconds / result.frames,
        dropped_audio=tuple(dict.fromkeys(dropped)),
    )
