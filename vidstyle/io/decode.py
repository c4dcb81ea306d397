"""Decode: stream a video's frames one at a time with their timestamps (PyAV).

The video is never held in memory: :func:`iter_frames` is a generator, and the pipeline keeps
only the current and the previous frame.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import cv2
import numpy as np

from vidstyle.errors import DecodeError, InputError
from vidstyle.io.colour import Colour, bit_depth, source_colour, to_rgb


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns from the container without decoding the whole stream."""

    path: Path
    width: int
    height: int
    rate: Fraction
    """Average frame rate (frames per second)."""
    time_base: Fraction
    """Time base of the video stream: ``pts * time_base`` is seconds."""
    frame_count: int | None
    """Frames in the stream as the container states it (may be missing or approximate)."""
    duration: float | None
    """Seconds, as the container states it."""
    audio_streams: int
    rotation: int = 0
    """Degrees the frames are turned counter-clockwise for display (phone videos); ``width``
    and ``height`` are those of the upright picture."""
    colour: Colour | None = None
    """The first frame's colour (:func:`vidstyle.io.colour.source_colour`)."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame, resized to the working size."""

    index: int
    """Position in the input stream, counted from 0 in presentation order."""
    pts: int | None
    time: float
    """Presentation time in seconds."""
    image: np.ndarray
    """``(H, W, 3)`` uint8 RGB: what the optical flow, previews and metrics read."""
    deep: np.ndarray | None = None
    """``(H, W, 3)`` uint16 RGB (0..65535) of a source with more than 8 bits per sample
    (10-bit phone video, HDR), for what the render paints from; None for an 8-bit source."""

    @property
    def pixels(self) -> np.ndarray:
        """The finest RGB there is: :attr:`deep`, else :attr:`image`."""
        return self.image if self.deep is None else self.deep


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a directory, not a video: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"input is not readable (check its permissions): {path}")
    if path.stat().st_size == 0:
        raise DecodeError(f"input is empty (0 bytes): {path}")
    try:
        # Damaged or foreign metadata must not stop a render: undecodable bytes are replaced.
        return av.open(str(path), metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise DecodeError(f"not a video file FFmpeg can read: {path} ({exc.strerror})") from exc


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.VideoStream:
    if not container.streams.video:
        raise DecodeError(f"no video stream in {path} (is it an audio-only file?)")
    stream = container.streams.video[0]
    # One decoding thread. FFmpeg's worker threads report damaged data through PyAV's log
    # callback, which needs the GIL, while closing a decoder mid-stream waits for them with
    # the GIL held: a deadlock, seen on damaged files and on ranges that end before the file
    # does. Decoding costs little next to the optimizer (measured: see "Stage overlap" in
    # benchmarks/RESULTS.md).
    if stream.codec_context is not None:  # None: no decoder, reported when decoding
        stream.codec_context.thread_count = 1
    return stream


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read the video stream's size, rate and time base.

    Raises:
        InputError: missing or unreadable file.
        DecodeError: not a media file, or no video stream.
    """
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        if ctx is None:
            raise DecodeError(
                f"the video stream of {path} has no decoder: an unknown codec or a damaged header"
            )
        if not ctx.width or not ctx.height:
            raise DecodeError(f"the video stream of {path} has no frame size (corrupt header?)")
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        first = _first_frame(container, stream)
        rotation = upright_turns(first.rotation) * 90
        width, height = (ctx.height, ctx.width) if rotation % 180 else (ctx.width, ctx.height)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            rate=Fraction(rate),
            time_base=Fraction(stream.time_base or Fraction(1, 90000)),
            frame_count=stream.frames or None,
            duration=duration,
            audio_streams=len(container.streams.audio),
            rotation=rotation,
            colour=source_colour(first),
        )


def _first_frame(
    container: av.container.InputContainer, stream: av.video.VideoStream
) -> av.VideoFrame:
    """The first frame, for what only frames carry: the display rotation (in each frame's
    display matrix) and the colour tags. A stream that cannot produce one is reported as
    such here rather than later.
    """
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise DecodeError(
            f"cannot decode the first frame of {container.name}: {exc.strerror}"
        ) from exc
    raise DecodeError(f"the video stream of {container.name} has no frames")


def upright_turns(rotation: float | None) -> int:
    """Quarter turns counter-clockwise that show a frame upright (0..3)."""
    return round((rotation or 0) / 90) % 4


def working_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The ``(width, height)`` frames are processed and encoded at.

    Scales so the longer side is at most ``max_side`` (0: no limit), keeping the aspect ratio,
    then rounds both sides down to even numbers because H.264 in yuv420p needs them.
    """
    scale = 1.0 if max_side <= 0 else min(1.0, max_side / max(width, height))
    w = max(2, int(math.floor(width * scale / 2)) * 2)
    h = max(2, int(math.floor(height * scale / 2)) * 2)
    return w, h


def iter_frames(
    path: str | os.PathLike[str],
    *,
    size: tuple[int, int] | None = None,
    start_index: int = 0,
    stop_index: int | None = None,
    start_time: float | None = None,
    end_time: float | None = None,
) -> Generator[Frame, None, None]:
    """Yield the selected frames of ``path`` one at a time.

    Args:
        size: ``(width, height)`` to resize to (area interpolation); None keeps the source size.
        start_index, stop_index: input frame indices, end exclusive.
        start_time, end_time: seconds from the video's first frame, end exclusive; combined
            with the indices by AND. ``Frame.time`` stays on the stream's own clock, which the
            audio shares.

    Raises:
        DecodeError: when the stream cannot be decoded; the message names the frame.
    """
    path = Path(path)
    container = _open(path)
    messages: list[tuple[int, str, str]] = []
    try:
        stream = _video_stream(container, path)
        index = -1
        # --start/--end count from the video's first frame; some streams (MPEG-TS, cut
        # recordings) start their clock later than 0.
        origin = 0.0
        if stream.start_time and stream.time_base is not None:
            origin = float(stream.start_time * stream.time_base)
        frames = container.decode(stream)
        while True:
            try:
                with _ffmpeg_errors(messages):
                    frame = next(frames)
            except StopIteration:
                # FFmpeg often ends a file cut short (a copy or download that stopped)
                # quietly, as if it were complete; only its log says so.
                if _cut_short(messages):
                    raise DecodeError(_truncated(path, index)) from None
                return
            except av.error.FFmpegError as exc:
                if _cut_short(messages):
                    raise DecodeError(_truncated(path, index)) from exc
                raise DecodeError(
                    f"decoding {path.name} failed after frame {index} ({exc.strerror}); "
                    "the file looks truncated or corrupt"
                ) from exc
            index += 1
            time = float(frame.time) if frame.time is not None else index / float(
                stream.average_rate or 25
            )
            if stop_index is not None and index >= stop_index:
                return
            if end_time is not None and time - origin >= end_time - 1e-6:
                return
            if index < start_index or (
                start_time is not None and time - origin < start_time - 1e-6
            ):
                continue
            image = to_rgb(frame)
            turns = upright_turns(frame.rotation)
            if turns:
                # Phone videos store the sensor's orientation and a display rotation; apply
                # it, so the stylized output (written without rotation) is upright.
                image = np.ascontiguousarray(np.rot90(image, k=turns))
            if size is not None and (image.shape[1], image.shape[0]) != size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            deep = _quantize(image, 65535, np.uint16) if bit_depth(frame) > 8 else None
            yield Frame(index=index, pts=frame.pts, time=time,
                        image=_quantize(image, 255, np.uint8), deep=deep)
    finally:
        container.close()


def _quantize(image: np.ndarray, top: int, dtype: type[np.integer]) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 1] -> integers 0..``top``, rounded to nearest."""
    return np.rint(image * top).astype(dtype)


def _cut_short(messages: list[tuple[int, str, str]]) -> bool:
    """Whether FFmpeg's log shows the data ending before the container says it does.

    MP4/MOV report a read that ends early as a "partial file" or, for the packet read
    short, as a corrupt packet; which one depends on where the cut falls.
    """
    return any(
        "partial file" in message or (name.startswith("mov") and "Packet corrupt" in message)
        for _, name, message in messages
    )


def _truncated(path: Path, index: int) -> str:
    return (
        f"decoding {path.name} failed after frame {index}: the file is truncated "
        "(it ends in the middle of its data)"
    )


@contextlib.contextmanager
def _ffmpeg_errors(into: list[tuple[int, str, str]]) -> Iterator[None]:
    """Collect FFmpeg's messages that show a file cut short into ``into``; never print any.

    Scoped to one decoding call, never across a ``yield``, so two videos decoded side by
    side (``vidstyle metrics``) keep their messages apart and the log level is restored.
    """
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture(local=False) as messages:
            try:
                yield
            finally:
                # Only what is acted on is kept: a long damaged file can log without end.
                into.extend(m for m in messages if _cut_short([m]))
    finally:
        av.logging.set_level(previous)
