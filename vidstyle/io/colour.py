"""Colour: how a stream's YUV samples map to RGB, read from its tags, and how outputs are
written and tagged.

A video stores luma and chroma (Y'CbCr); which matrix (BT.601, BT.709, BT.2020) and which
range (limited: luma 16-235 of 255; full: 0-255) turn them into RGB is in the stream's tags.
Decoding follows the tags; an untagged stream is read as FFmpeg-based players read it: SD as
BT.601 and HD as BT.709, limited range unless its pixel format is a full-range (``yuvj``) one.
Outputs keep an SDR source's colour (so nothing shifts), untagged HD ones are written as
BT.709, and every output is tagged: an untagged output is guessed at by each player, and HD
players guess BT.709, which is off by about 20/255 for a BT.601 encode.

Decoding converts here, in floating point by the standards' formulas, from the planes as the
decoder gives them: 10-bit sources keep their precision into the render, and nothing is
rounded to 8 bits, or dithered, on the way. swscale's conversions were left for decoding:
its fast one is off by up to 3/255 on a colour chart and raised a test scene's own
frame-to-frame error along its true motion 1.8x; its exact 8-bit one dithers
(benchmarks/RESULTS.md). Encoding is swscale's, with accurate rounding, asked for explicitly
rather than left to PyAV's defaults, which have changed between its releases.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Interpolation

from vidstyle.io.hdr import tone_map

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
# (Kr, Kb), the luma weights of red and blue, of each matrix. BT.2020's constant-luminance
# variant is read as the non-constant one, as swscale and players do; it is all but unused.
_WEIGHTS = {BT709: (0.2126, 0.0722), FCC: (0.30, 0.11), BT470BG: (0.299, 0.114),
            SMPTE170M: (0.299, 0.114), SMPTE240M: (0.212, 0.087),
            BT2020_NCL: (0.2627, 0.0593), BT2020_CL: (0.2627, 0.0593)}
# Semi-planar formats, repacked to their planar twins (no conversion) before reading.
_PLANAR = {"nv12": "yuv420p", "nv21": "yuv420p", "p010le": "yuv420p10le",
           "nv16": "yuv422p", "p210le": "yuv422p10le"}
# RGB -> YUV with accurate rounding (encoding). No scaling happens here: the interpolation
# itself is unused.
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


def bit_depth(frame: av.VideoFrame) -> int:
    """Bits per sample of ``frame``'s first component (8, 10, 12 ...)."""
    return int(frame.format.components[0].bits)


def yuv_to_rgb(planes: list[np.ndarray], *, matrix: int, full_range: bool,
               bits: int) -> np.ndarray:
    """Y'CbCr planes -> non-linear R'G'B' ``(H, W, 3)`` float32 in [0, 1].

    Args:
        planes: Y ``(H, W)``, then Cb and Cr at full size or subsampled (4:2:2, 4:2:0), as
            integer code values of ``bits`` bits.
        matrix: an ``AVColorSpace`` code (BT.601, BT.709, BT.2020 ...).
        full_range: codes span 0..2^bits-1, not BT.601/709's limited range (luma 16-235 and
            chroma 16-240, scaled by 2^(bits-8)).
    """
    luma = planes[0].astype(np.float32)
    height, width = luma.shape
    ycc = cv2.merge([luma, *(_upsample(c, height, width) for c in planes[1:])])
    rgb: np.ndarray = cv2.transform(ycc, _affine(matrix, full_range, bits))
    return np.clip(rgb, 0, 1, out=rgb)


def _affine(matrix: int, full_range: bool, bits: int) -> np.ndarray:
    """The ``(3, 4)`` affine map from Y'CbCr codes to R'G'B' in [0, 1]."""
    kr, kb = _WEIGHTS[matrix]
    kg = 1 - kr - kb
    # Y' in [0, 1] and Cb, Cr in [-0.5, 0.5] -> R'G'B' (BT.601/709/2020, the same form).
    mix = np.array([[1, 0, 2 * (1 - kr)],
                    [1, -2 * (1 - kb) * kb / kg, -2 * (1 - kr) * kr / kg],
                    [1, 2 * (1 - kb), 0]])
    if full_range:
        top, mid = 2**bits - 1, 2 ** (bits - 1)
        scale = np.full(3, 1 / top)
        offset = np.array([0, -mid / top, -mid / top])
    else:
        step = 2 ** (bits - 8)
        scale = np.array([1 / (219 * step), 1 / (224 * step), 1 / (224 * step)])
        offset = np.array([-16 / 219, -128 / 224, -128 / 224])
    return np.hstack([mix * scale, (mix @ offset)[:, None]]).astype(np.float32)


def _upsample(chroma: np.ndarray, height: int, width: int) -> np.ndarray:
    """A chroma plane at the luma's ``height x width``, bilinearly, where MPEG-2, H.264 and
    HEVC put chroma by default: on the even luma columns and midway between two rows."""
    out: np.ndarray = chroma.astype(np.float32)
    if out.shape[1] < width:
        after = np.concatenate([out[:, 1:], out[:, -1:]], axis=1)
        wide = np.empty((out.shape[0], 2 * out.shape[1]), np.float32)
        wide[:, 0::2], wide[:, 1::2] = out, (out + after) * 0.5
        out = wide[:, :width]
    if out.shape[0] < height:
        # OpenCV's half-pixel centres put each chroma row midway between its two luma rows.
        out = cv2.resize(out, (out.shape[1], 2 * out.shape[0]),
                         interpolation=cv2.INTER_LINEAR)[:height]
    return out


def _planes(frame: av.VideoFrame) -> list[np.ndarray] | None:
    """The Y, Cb, Cr planes of a planar YUV ``frame`` as arrays, or None for a format read
    otherwise (packed or big-endian ones)."""
    name = frame.format.name
    if name in _PLANAR:
        frame = frame.reformat(format=_PLANAR[name])
        name = frame.format.name
    if not name.startswith("yuv") or name.endswith("be") or len(frame.planes) < 3:
        return None
    dtype = np.dtype(np.uint16 if bit_depth(frame) > 8 else np.uint8)
    # A fourth plane is alpha, which a video render has no use for.
    return [np.frombuffer(memoryview(p), dtype).reshape(-1, p.line_size // dtype.itemsize)[
        :p.height, :p.width] for p in frame.planes[:3]]


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """``frame`` as ``(H, W, 3)`` float32 RGB in [0, 1] by its :func:`source_colour`, at the
    source's precision; an HDR frame tone-mapped to SDR BT.709 (:mod:`vidstyle.io.hdr`)."""
    planes = None if frame.format.is_rgb else _planes(frame)
    if planes is None:
        # RGB, grey and the rare packed YUV formats: swscale's conversion, at 16 bits.
        if frame.format.is_rgb or frame.format.name.startswith("gray"):
            rgb = frame.reformat(format="rgb48le", interpolation=PLAIN).to_ndarray()
        else:
            colour = source_colour(frame)
            rgb = frame.reformat(
                format="rgb48le", src_colorspace=_SWS[colour.matrix],
                src_color_range=ColorRange.JPEG if colour.full_range else ColorRange.MPEG,
                dst_color_range=ColorRange.JPEG, interpolation=PLAIN,
            ).to_ndarray()
        return rgb.astype(np.float32) / 65535
    colour = source_colour(frame)
    # HDR is BT.2100's, whose matrix is BT.2020's whatever the frame's tag says.
    image = yuv_to_rgb(planes, matrix=BT2020_NCL if colour.hdr else colour.matrix,
                       full_range=colour.full_range, bits=bit_depth(frame))
    if colour.hdr:
        return tone_map(image, hlg=colour.transfer == HLG)
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
