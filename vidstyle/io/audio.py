"""The audio of a range: decoded, cut at sample precision and encoded again (PyAV).

An audio stream is a sequence of packets of about 1024 samples (21 ms at 48 kHz for AAC),
and a packet can only be copied whole. A range that starts inside a packet therefore either
loses the start of its sound (up to one packet of silence: a gap, and the player's jump from
silence to sound is a click) or starts early. :class:`AudioCut` decodes the stream, keeps the
samples from the range's first instant to its end and encodes them again, in the same codec
where this FFmpeg has its encoder (AAC otherwise). Whole videos keep their audio packets as
they are (:class:`vidstyle.io.encode.VideoWriter`): nothing to cut, nothing lost.

Why not re-encode only the packets at the cut, as video "smart cuts" do: a packet of AAC,
MP3 or Opus is decoded together with its neighbour (the transforms overlap), so a re-encoded
first packet followed by copied ones would not join without a click of its own.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, cast

import av
import numpy as np

# Lossless codecs keep their bits; the others get at least this bit rate when re-encoded.
_LOSSLESS = ("flac", "alac")
_MIN_BIT_RATE = 128_000
# Samples before the cut fed to a lossy encoder and marked to be skipped (negative times,
# which MP4 and MOV keep as an edit list; FFmpeg's Matroska muxer shifts them into view
# instead, so Matroska outputs start on the cut without them). An encoder that starts
# on the cut sees a step from silence to sound, and smears it over its first frames (an error
# of half the signal's amplitude in the first 15 ms of a tone, measured with FFmpeg's AAC);
# one that has heard the sound before the cut codes it like any other moment.
PREROLL = 2048


def encoder_for(codec: str) -> str:
    """The encoder that re-encodes ``codec`` (a canonical codec name, such as ``mp3``): its
    own where this FFmpeg has one, else AAC."""
    name = {"mp3": "libmp3lame", "opus": "libopus"}.get(codec, codec)
    try:
        av.codec.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):
        return "aac"
    return name


class AudioCut:
    """One audio stream of the source, cut to ``[start, end)`` seconds of the source's clock
    and encoded into ``container``; output time 0 is ``start``."""

    def __init__(
        self, source: av.audio.stream.AudioStream, container: av.container.OutputContainer,
        start: float,
        *,
        preroll: bool = True,
    ) -> None:
        ctx = source.codec_context
        self.source = source
        self.start = start
        self.rate = ctx.sample_rate
        name = encoder_for(ctx.codec.canonical_name)
        # The encoder is named at run time, so the stubs cannot pick the audio overload.
        self.stream = cast(av.audio.stream.AudioStream,
                           container.add_stream(name, rate=self.rate, layout=ctx.layout.name))
        if not (name in _LOSSLESS or name.startswith("pcm_")):
            self.stream.bit_rate = max(ctx.bit_rate or 0, _MIN_BIT_RATE)
        lossless = name in _LOSSLESS or name.startswith("pcm_")
        self.preroll = PREROLL if preroll and not lossless else 0
        self._next = -self.preroll  # the next output sample; 0 is the cut

    def packets(self, packet: av.Packet | None, end: float | None) -> list[av.Packet]:
        """The output packets that source ``packet`` gives (None: flush both codecs)."""
        frames = packet.decode() if packet is not None else self.source.codec_context.decode(None)
        out: list[av.Packet] = []
        for frame in frames:
            out.extend(self._cut(cast(av.AudioFrame, frame), end))
        if packet is None:
            out.extend(self.stream.encode(None))
        return out

    def _cut(self, frame: av.AudioFrame, end: float | None) -> list[av.Packet]:
        begins = self.start + self._next / self.rate if frame.time is None else frame.time
        n = frame.samples
        first = max(0, round((self.start - begins) * self.rate) - self.preroll)
        last = n if end is None else min(n, round((end - begins) * self.rate))
        if last <= first:
            return []
        data = frame.to_ndarray()
        # Planar formats hold (channels, samples); packed ones (1, samples * channels).
        width = 1 if frame.format.is_planar else len(frame.layout.channels)
        piece: Any = np.ascontiguousarray(data[:, first * width:last * width])
        cut = av.AudioFrame.from_ndarray(piece, format=frame.format.name,
                                         layout=frame.layout.name)
        cut.sample_rate = self.rate
        cut.time_base = Fraction(1, self.rate)
        cut.pts = max(round((begins - self.start) * self.rate) + first, self._next)
        self._next = cut.pts + last - first
        return list(self.stream.encode(cut))
