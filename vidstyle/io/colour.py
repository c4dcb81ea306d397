"""Colour: how a stream's YUV samples map to RGB, read from its tags, and how outputs are
written and tagged.

A video stores luma and chroma (Y'CbCr); which matrix (BT.601, BT.709, BT.2020) and which
range (limited: luma 16-235 of 255; full: 0-255) turn them into RGB is in the stream's tags.
Decoding follows the tags; an untagged stream is read as FFmpeg-based players read it: SD as
BT.601 and HD as BT.709, limited range unless its pixel format is a full-range (``yuvj``) one.
Outputs keep an SDR source's colour (so nothing shifts), untagged HD ones are written as
BT.709, and every output is tagged: an untagged output is guessed at by each player, and HD
players guess BT.709, which is off by about 20/255 for a BT.601 encode.

The conversions themselves are FFmpeg's (swscale through PyAV), asked for explicitly rather
than left to PyAV's defaults, which have changed between its releases. Decoding uses
swscale's plain conversion, within 3/255 of a colour chart (``tests/test_colour.py``). Its
more exact modes were measured and left out: accurate rounding with full chroma
interpolation (1/255 on the chart) dithers, a noise fixed to the screen that moving content
crosses, and 16-bit RGB with accurate rounding (2/255); both made renders flicker more along
the true motion (benchmarks/RESULTS.md). Encoding rounds accurately, which changed nothing
there.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import ColorRange, Interpolation

from vidstyle.io.hdr import to_sdr

# AVColorSpace codes, as frames and codec contexts carry them.
BT709, FCC, BT470BG, SMPTE170M, SMPTE240M, BT2020_NCL, BT2020_CL = 1, 4, 5, 6, 7, 9, 10
# AVColorTransferCharacteristic codes of the two HDR transfers.
PQ, HLG = 16, 18
# The swscale matrix for each AVColorSpace (swscale has one BT.601 for both of FFmpeg's).
_SWS = {BT709: 1, FCC: 4, BT470BG: 5, SMPTE170M: 5, SMPTE240M: 7, BT2020_NCL: 9, BT2020_CL: 9}
# Primaries and transfer written beside each matrix when the source does not say.
_DEFAULT_PRIMARIES = {BT709: 1, BT470BG: 5, SMPTE170M: 6, SMPTE240M: 7, BT2020_NCL: 9,
                      BT2020_CL: 9, FCC: 4}
_DEFAULT_TRANSFER = {BT709: 1, BT470BG: 6, SMPTE170M: 6, SMPTE240M: 7, BT2020_NCL: 1,
                     BT2020_CL: 1, FCC: 6}
# RGB -> YUV with accurate rounding; YUV -> RGB plain (see above). No scaling happens here:
# the interpolation itself is unused.
EXACT = Interpolation.BILINEAR | Interpolation.ACCURATE_RND
PLAIN = Interpolation.BILINEAR


@dataclass(frozen=True)
class Colour:
    """A stream's colour description, as FFmpeg's codes (``AVColorSpace``, ...)."""

    matrix: int
    """``AVColorSpace``: 1 BT.709, 5/6 BT.601, 9 BT.2020, ..."""
    full_range: bool
    primaries: int
    """``AVColorPrimaries``; 2 is unspecified."""
    transfer: int
    """``AVColorTransferCharacteristic``; 16 PQ and 18 HLG are HDR."""
    tagged: bool = True
    """Whether the matrix came from the stream, not from its size."""

    @property
    def hdr(self) -> bool:
        return self.transfer in (PQ, HLG)


def is_hd(width: int, height: int) -> bool:
    """Whether an untagged stream of this size is read as BT.709 (as mpv and FFmpeg-based
    players do), not BT.601."""
    return width >= 1280 or height > 576


def source_colour(frame: av.VideoFrame) -> Colour:
    """The colour of a decoded frame: its tags, or the players' reading of an untagged one."""
    tagged = frame.colorspace in _SWS
    matrix = frame.colorspace if tagged else (
        BT709 if is_hd(frame.width, frame.height) else SMPTE170M)
    if frame.color_range in (ColorRange.MPEG, ColorRange.JPEG):
        full = frame.color_range == ColorRange.JPEG
    else:
        full = frame.format.name.startswith("yuvj")
    primaries = frame.color_primaries if frame.color_primaries not in (0, 2) else (
        _DEFAULT_PRIMARIES[matrix])
    transfer = frame.color_trc if frame.color_trc not in (0, 2) else _DEFAULT_TRANSFER[matrix]
    return Colour(matrix, full, primaries, transfer, tagged)


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """``frame`` as ``(H, W, 3)`` uint8 RGB by its :func:`source_colour`; an HDR frame
    tone-mapped to SDR BT.709 (:mod:`vidstyle.io.hdr`)."""
    if frame.format.is_rgb or not frame.format.name.startswith(("yuv", "nv", "p0", "p2")):
        return frame.reformat(format="rgb24", interpolation=PLAIN).to_ndarray()
    colour = source_colour(frame)
    if colour.hdr:
        return to_sdr(frame, full_range=colour.full_range, hlg=colour.transfer == HLG)
    image: np.ndarray = frame.reformat(
        format="rgb24", src_colorspace=_SWS[colour.matrix],
        src_color_range=ColorRange.JPEG if colour.full_range else ColorRange.MPEG,
        dst_color_range=ColorRange.JPEG, interpolation=PLAIN,
    ).to_ndarray()
    return image


def colour_note(colour: Colour | None) -> str | None:
    """One line for the user when the source's colour is converted, not kept: HDR."""
    if colour is None or not colour.hdr:
        return None
    kind = "HLG" if colour.transfer == HLG else "PQ"
    return (f"the input is HDR ({kind}, BT.2020): it is tone-mapped to SDR BT.709 "
            "(ITU-R BT.2390's curve, reference white at SDR white)")


def output_colour(source: Colour | None, width: int, height: int) -> Colour:
    """How an output of ``width x height`` is written: in an SDR source's own colour (an
    untagged one's as players read it), BT.709 for an HDR source, and by the output's own
    size without a source; always limited range, the range every player expects of H.264."""
    if source is None or source.hdr:
        matrix = BT709 if source is not None or is_hd(width, height) else SMPTE170M
        return Colour(matrix, False, _DEFAULT_PRIMARIES[matrix], _DEFAULT_TRANSFER[matrix])
    return Colour(source.matrix, False, source.primaries, source.transfer)


def from_rgb(frame: av.VideoFrame, colour: Colour, pix_fmt: str) -> av.VideoFrame:
    """An ``rgb24`` frame as ``pix_fmt`` by ``colour``, tagged with it."""
    out = frame.reformat(
        format=pix_fmt, src_color_range=ColorRange.JPEG, dst_colorspace=_SWS[colour.matrix],
        dst_color_range=ColorRange.JPEG if colour.full_range else ColorRange.MPEG,
        dst_color_trc=colour.transfer, dst_color_primaries=colour.primaries,
        interpolation=EXACT,
    )
    out.colorspace = colour.matrix
    return out


def tag(context: av.video.codeccontext.VideoCodecContext, colour: Colour) -> None:
    """Write ``colour`` into an encoder's context, so the stream says what it holds."""
    context.colorspace = colour.matrix
    context.color_range = ColorRange.JPEG if colour.full_range else ColorRange.MPEG
    context.color_primaries = colour.primaries
    context.color_trc = colour.transfer
