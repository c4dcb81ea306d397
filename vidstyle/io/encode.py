"""Encode: write frames as H.264 and copy the source audio for the same time range (PyAV).

:class:`VideoWriter` is a context manager. It writes into a hidden temporary file beside the
output and renames it into place only when the block exits without an exception, so an
interrupted or failed render never leaves a half-written video under the output's name.
:func:`encode_stored` encodes finished frames kept in frame stores (:mod:`vidstyle.io.store`),
of one render or of the chunks of several.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, cast

import av
import numpy as np

from vidstyle.errors import OutputError
from vidstyle.io.audio import AudioCut, encoder_for
from vidstyle.io.colour import Colour, from_rgb, output_colour, tag

if TYPE_CHECKING:
    from vidstyle.io.decode import VideoInfo
    from vidstyle.io.store import FrameStore

# Container formats we write, by suffix. All hold H.264 and the common audio codecs.
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Audio codecs the MP4 family stores as they are; others are left out rather than risking an
# unplayable file (the result's ``dropped_audio`` says so).
_MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}


def _holds_audio(container: str, codec: str) -> bool:
    """Whether a ``container`` file (FFmpeg's format name) can store ``codec`` as it is."""
    if container == "matroska":
        return True
    # MOV also holds uncompressed PCM (camera and editor files); MP4 does not.
    return codec in _MP4_AUDIO or (container == "mov" and codec.startswith("pcm_"))


def h264_encoder() -> str:
    """Name of an available H.264 encoder (libx264 in PyAV's wheels)."""
    for name in ("libx264", "libopenh264", "h264"):
        try:
            av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):
            continue
        return name
    raise OutputError("this FFmpeg build has no H.264 encoder; reinstall PyAV from its wheels")


@dataclass(frozen=True)
class Codec:
    """A video codec vidstyle writes: its FFmpeg encoder, pixel format and containers."""

    encoder: str
    pix_fmt: str
    suffixes: tuple[str, ...]
    """Output types that hold it."""
    tag: str | None = None
    """The sample entry to write in MP4/MOV (``hvc1``: the one Apple's players accept)."""


# H.264 plays everywhere; H.265 is half the size for the same look; ProRes 422 HQ (10-bit
# 4:2:2, near-lossless, large) is what editors import without re-encoding.
CODECS = {
    "h264": Codec("libx264", "yuv420p", (".mp4", ".m4v", ".mov", ".mkv")),
    "h265": Codec("libx265", "yuv420p", (".mp4", ".m4v", ".mov", ".mkv"), tag="hvc1"),
    "prores": Codec("prores_ks", "yuv422p10le", (".mov", ".mkv")),
}


def check_codec(output: Path, codec: str) -> None:
    """Refuse a codec the output's container cannot hold, or this FFmpeg cannot write."""
    spec = CODECS[codec]
    if output.suffix.lower() not in spec.suffixes:
        raise OutputError(f"{codec} cannot be stored in {output.suffix or 'a file without type'}:"
                          f" use {' or '.join(spec.suffixes[-2:])} (for example "
                          f"{output.with_suffix(spec.suffixes[-2]).name})")
    if codec != "h264":  # h264_encoder() says what to do when H.264 is missing
        try:
            av.codec.Codec(spec.encoder, "w")
        except (av.error.FFmpegError, ValueError):
            raise OutputError(f"this FFmpeg build has no {spec.encoder} encoder for {codec}; "
                              "reinstall PyAV from its wheels") from None


def check_output_path(
    output: Path,
    *,
    overwrite: bool,
    inputs: tuple[Path, ...] = (),
    suffixes: tuple[str, ...] = tuple(sorted(_FORMATS)),
    what: str = "output",
) -> None:
    """Refuse a file to write (an output video, or ``what`` else) that cannot or must not be
    written, before any work is done."""
    if output.suffix.lower() not in suffixes:
        raise OutputError(
            f"unsupported {what} type {output.suffix or '(none)'!r}: use one of "
            f"{', '.join(suffixes)} (for example {output.with_suffix(suffixes[0]).name})"
        )
    for src in inputs:
        if src.exists() and output.exists() and output.resolve() == src.resolve():
            raise OutputError(f"{what} is the same file as an input: {output}")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{what} directory does not exist: {parent} (create it first)")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{what} directory is not writable: {parent}")
    if output.is_dir():
        raise OutputError(f"{what} is a directory: {output}")
    if output.exists() and not overwrite:
        raise OutputError(f"{what} exists: {output} (pass --overwrite to replace it)")


class VideoWriter:
    """Encode RGB frames to ``path`` and remux the audio of ``audio_source``.

    Frames are written with :meth:`write` in presentation order together with their source
    time in seconds; the output's timeline starts at ``start_time`` (the first rendered
    frame), so timestamps and any variable frame rate of the source are kept. Audio packets
    of ``audio_source`` between ``start_time`` and ``end_time`` are copied (not re-encoded)
    and interleaved with the video as it is written.

    Args:
        path: final output path; written only when the ``with`` block succeeds.
        width, height: frame size; both must be even (yuv420p).
        rate: nominal frame rate, for players and the encoder's rate control.
        time_base: time base of the output video stream (use the source's).
        crf: constant rate factor of H.264 and H.265; 18 is visually lossless for painted
            frames.
        codec: a :data:`CODECS` name.
        colour: the matrix, range and tags to write (:func:`vidstyle.io.colour.output_colour`
            of the source); None: BT.709 for HD sizes and BT.601 for SD, as players read
            an untagged stream, tagged as such.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        rate: Fraction,
        time_base: Fraction,
        audio_source: Path | None = None,
        start_time: float = 0.0,
        end_time: float | None = None,
        crf: int = 18,
        colour: Colour | None = None,
        codec: str = "h264",
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"frame size must be even for yuv420p, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height = width, height
        self.rate, self.time_base = Fraction(rate), Fraction(time_base)
        self.audio_source = audio_source
        self.start_time, self.end_time = start_time, end_time
        self.crf = crf
        self.codec = CODECS[codec]
        self.colour = output_colour(None, width, height) if colour is None else colour
        self.frames_written = 0
        self.dropped_audio: list[str] = []
        self._tmp: Path | None = None
        self._container: av.container.OutputContainer | None = None
        self._audio_in: av.container.InputContainer | None = None
        self._audio_packets: Iterator[av.Packet] | None = None
        self._audio_map: dict[int, av.stream.Stream] = {}
        self._cuts: dict[int, AudioCut] = {}
        self._pending: av.Packet | None = None
        self._last_dts: dict[int, int] = {}
        self._last_pts = -1

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        fmt = _FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise OutputError(f"unsupported output type {self.path.suffix!r}")
        with disk_errors(self.path):
            fd, tmp = tempfile.mkstemp(
                dir=self.path.parent,
                prefix=f".{self.path.stem}.",
                suffix=".partial" + self.path.suffix,
            )
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            # mkstemp makes a private 0600 file; the output gets the usual umask-based mode.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            self._open(fmt)
        except BaseException:
            self._abort()
            raise
        return self

    def _open(self, fmt: str) -> None:
        assert self._tmp is not None
        options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        container = av.open(str(self._tmp), "w", format=fmt, options=options)
        self._container = container
        # The encoder name is only known at run time, so the stubs cannot pick the video
        # overload of add_stream; an H.264 encoder always gives a video stream.
        encoder = h264_encoder() if self.codec.encoder == "libx264" else self.codec.encoder
        stream = cast(av.VideoStream, container.add_stream(encoder, rate=self.rate))
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = self.codec.pix_fmt
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        tag(stream.codec_context, self.colour)
        if self.codec.tag is not None and fmt in ("mp4", "mov"):
            stream.codec_context.codec_tag = self.codec.tag
        if encoder == "libx264":
            stream.options = {"crf": str(self.crf), "preset": "medium"}
        elif encoder == "libx265":
            stream.options = {"crf": str(self.crf), "preset": "medium",
                              "x265-params": "log-level=error"}
        elif encoder == "prores_ks":
            stream.options = {"profile": "3"}  # 422 HQ
        self._video = stream
        if self.audio_source is not None:
            self._open_audio(container)

    def _open_audio(self, container: av.container.OutputContainer) -> None:
        src = av.open(str(self.audio_source), metadata_errors="replace")
        self._audio_in = src
        streams = []
        for in_stream in src.streams.audio:
            ctx = in_stream.codec_context
            if ctx is None:  # unknown codec or a damaged header: no parameters to copy
                self.dropped_audio.append(f"audio stream {in_stream.index} is unreadable")
                continue
            # A range that starts later than the audio is cut at its first sample; the
            # packets of a whole video are copied as they are (vidstyle.io.audio).
            cut = self.start_time > 1e-6
            # Canonical names: the decoder of MP3 is called mp3float, the stream is mp3.
            codec = ctx.codec.canonical_name
            if cut and encoder_for(codec) == "aac":
                codec = "aac"
            if not _holds_audio(container.format.name, codec):
                self.dropped_audio.append(
                    f"audio stream {in_stream.index} ({ctx.name}) cannot be stored in "
                    f"{self.path.suffix}"
                )
                continue
            try:
                if cut:
                    self._cuts[in_stream.index] = AudioCut(
                        in_stream, container, self.start_time,
                        preroll=container.format.name in ("mp4", "mov"))
                else:
                    self._audio_map[in_stream.index] = container.add_stream_from_template(
                        in_stream)
            except (av.error.FFmpegError, ValueError) as exc:
                self.dropped_audio.append(f"audio stream {in_stream.index}: {exc}")
                continue
            streams.append(in_stream)
        if streams:
            self._audio_packets = src.demux(*streams)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self._finish()
        except BaseException:
            self._abort()
            raise

    def _finish(self) -> None:
        assert self._container is not None and self._tmp is not None
        if self.frames_written == 0:
            raise OutputError("no frames were rendered, so no video was written")
        with disk_errors(self.path):
            self._mux_video(self._video.encode(None))
            self._mux_audio_until(None)
            for index in list(self._cuts):
                self._mux_cut(index, None)
            self._container.close()
        self._close_audio()
        with disk_errors(self.path):
            os.replace(self._tmp, self.path)
        self._tmp = None

    def _abort(self) -> None:
        if self._container is not None:
            # Closing a broken file may fail too; the first error is the one to report.
            with contextlib.suppress(Exception):
                self._container.close()
        self._close_audio()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def _close_audio(self) -> None:
        if self._audio_in is not None:
            self._audio_in.close()
            self._audio_in = None

    # -- writing -----------------------------------------------------------------------------
    def write(self, image: np.ndarray, time: float) -> None:
        """Encode one ``(H, W, 3)`` uint8 RGB frame shown at ``time`` seconds (source clock)."""
        if self._container is None:
            raise RuntimeError("VideoWriter.write outside its with block")
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"expected a ({self.height}, {self.width}, 3) uint8 frame, "
                f"got {image.shape} {image.dtype}"
            )
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame = from_rgb(rgb, self.colour, self.codec.pix_fmt)
        pts = round((time - self.start_time) / self.time_base)
        # Timestamps must increase strictly; a source with duplicate pts gets nudged by a tick.
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = self.time_base
        with disk_errors(self.path):
            self._mux_audio_until(time - self.start_time)
            self._mux_video(self._video.encode(frame))
        self.frames_written += 1

    def _mux_video(self, packets: list[av.Packet]) -> None:
        assert self._container is not None
        for packet in packets:
            self._container.mux(packet)

    def _mux_audio_until(self, until: float | None) -> None:
        """Copy source audio packets up to ``until`` seconds of output time (None: to the end)."""
        if self._audio_packets is None or self._container is None:
            return
        while True:
            packet = self._pending if self._pending is not None else self._next_audio_packet()
            self._pending = None
            if packet is None:
                self._audio_packets = None
                return
            if packet.size == 0 or packet.pts is None:  # flush packets carry no data
                continue
            t = float(packet.pts * packet.time_base)
            if self.end_time is not None and t >= self.end_time - 1e-6:
                self._audio_packets = None  # past the rendered range: done with audio
                return
            cut = self._cuts.get(packet.stream.index)
            if cut is None and (t < self.start_time - 1e-6
                                or packet.stream.index not in self._audio_map):
                continue  # before the range, or a cut stream given up on damage
            if until is not None and t - self.start_time > until:
                self._pending = packet  # belongs after the next video frame
                return
            if cut is not None:  # decoded from the first packet on: the decoder warms up
                self._mux_cut(packet.stream.index, packet)
                continue
            shift = round(self.start_time / packet.time_base)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
                # Damaged sources can repeat timestamps; the muxer refuses those packets.
                last = self._last_dts.get(packet.stream.index)
                if last is not None and packet.dts <= last:
                    continue
                self._last_dts[packet.stream.index] = packet.dts
            packet.stream = self._audio_map[packet.stream.index]
            self._container.mux(packet)

    def _mux_cut(self, index: int, packet: av.Packet | None) -> None:
        """Mux what cut stream ``index`` makes of source ``packet`` (None: its last packets)."""
        assert self._container is not None
        cut = self._cuts.get(index)
        if cut is None:
            return
        try:
            for out in cut.packets(packet, self.end_time):
                self._container.mux(out)
        except av.error.FFmpegError as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise
            # Damaged audio must not cost the finished video: keep what was cut so far.
            self.dropped_audio.append(f"audio stream {index} after a damaged packet "
                                      f"({exc.strerror})")
            del self._cuts[index]

    def _next_audio_packet(self) -> av.Packet | None:
        assert self._audio_packets is not None
        try:
            return next(self._audio_packets, None)
        except av.error.FFmpegError as exc:
            # Damaged audio must not cost the finished video: keep what was copied so far.
            self.dropped_audio.append(f"audio after a damaged packet ({exc.strerror})")
            return None


@contextlib.contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """Turn OS errors while writing (disk full, permissions) into :class:`OutputError`."""
    try:
        yield
    except OSError as exc:
        if getattr(exc, "errno", None) == errno.ENOSPC:
            raise OutputError(
                f"disk full while writing {path}; free some space, then rerun the same command "
                "with --resume (finished frames are kept)"
            ) from exc
        raise OutputError(f"cannot write {path}: {exc}") from exc


def encode_stored(
    output: Path,
    info: VideoInfo,
    source: Path,
    frames: Sequence[tuple[int, float, FrameStore]],
    *,
    crf: int = 18,
    codec: str = "h264",
) -> list[str]:
    """Encode ``(input frame index, time, the store holding its picture)`` in order into
    ``output``, with ``source``'s audio for their range, in the source's colour
    (:func:`vidstyle.io.colour.output_colour`); returns the audio streams left out."""
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
        crf=crf,
        codec=codec,
        colour=output_colour(info.colour, width, height),
    ) as writer:
        for index, when, store in frames:
            writer.write(store.load(index), when)
        # Audio runs to the end of the last frame's display time.
        writer.end_time = frames[-1][1] + 1.0 / float(info.rate)
    return writer.dropped_audio


def chroma_blocks(codec: str) -> tuple[int, int]:
    """``(rows, columns)`` of pixels that share one chroma sample in ``codec``'s output."""
    fmt = CODECS[codec].pix_fmt
    if fmt.startswith("yuv420"):
        return (2, 2)
    if fmt.startswith("yuv422"):
        return (1, 2)
    return (1, 1)
