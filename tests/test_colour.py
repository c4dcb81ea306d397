"""Colour: decoding follows a stream's matrix and range, outputs are written in the source's
colour and tagged. The references are computed here from the standards' formulas, not by
FFmpeg, so they check FFmpeg's conversions as vidstyle asks for them."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vidstyle.cli import main
from vidstyle.io import VideoWriter, iter_frames, probe
from vidstyle.io.colour import (
    BT709,
    BT2020_NCL,
    SMPTE170M,
    Colour,
    output_colour,
    to_rgb,
    yuv_to_rgb,
)
from vidstyle.io.images import to_tensor

# (Kr, Kb) of each matrix, by its AVColorSpace code.
_K = {SMPTE170M: (0.299, 0.114), BT709: (0.2126, 0.0722)}
_BARS = [(235, 235, 235), (235, 235, 16), (16, 235, 235), (16, 235, 16), (235, 16, 235),
         (235, 16, 16), (16, 16, 235), (128, 64, 200), (30, 30, 30), (250, 180, 120)]
_BAR = 16  # pixels per bar; each bar's middle half is compared, away from chroma edges


def _chart(width: int, height: int) -> np.ndarray:
    """Colour bars, ``(height, width, 3)`` uint8 RGB."""
    chart = np.zeros((height, width, 3), np.uint8)
    for i in range(width // _BAR):
        chart[:, i * _BAR:(i + 1) * _BAR] = _BARS[i % len(_BARS)]
    return chart


def _middles(image: np.ndarray) -> np.ndarray:
    keep = np.zeros(image.shape[1], bool)
    for i in range(image.shape[1] // _BAR):
        keep[i * _BAR + _BAR // 4:(i + 1) * _BAR - _BAR // 4] = True
    return image[:, keep].astype(np.float64)


def _to_yuv(rgb: np.ndarray, matrix: int, full: bool, bits: int) -> list[np.ndarray]:
    """The Y, Cb, Cr planes (4:2:0) of ``rgb`` by the matrix's formula."""
    kr, kb = _K[matrix]
    x = rgb.astype(np.float64) / 255
    y = kr * x[..., 0] + (1 - kr - kb) * x[..., 1] + kb * x[..., 2]
    cb, cr = (x[..., 2] - y) / (2 * (1 - kb)), (x[..., 0] - y) / (2 * (1 - kr))
    top, scale = 2**bits - 1, 2 ** (bits - 8)
    if full:
        planes = [y * top, cb * top + 128 * scale, cr * top + 128 * scale]
    else:
        planes = [(16 + 219 * y) * scale, (128 + 224 * cb) * scale, (128 + 224 * cr) * scale]
    h, w = y.shape
    planes[1:] = [p.reshape(h // 2, 2, w // 2, 2).mean((1, 3)) for p in planes[1:]]
    dtype = np.uint16 if bits > 8 else np.uint8
    return [np.round(p).astype(dtype) for p in planes]


def _from_yuv(planes: list[np.ndarray], matrix: int, full: bool, bits: int) -> np.ndarray:
    """RGB in [0, 255] (float) from 4:2:0 planes by the matrix's formula."""
    kr, kb = _K[matrix]
    top, scale = 2**bits - 1, 2 ** (bits - 8)
    yp, cbp, crp = (p.astype(np.float64) for p in planes)
    cbp, crp = (np.repeat(np.repeat(p, 2, 0), 2, 1) for p in (cbp, crp))
    if full:
        y, cb, cr = yp / top, (cbp - 128 * scale) / top, (crp - 128 * scale) / top
    else:
        y, cb, cr = (yp / scale - 16) / 219, (cbp / scale - 128) / 224, (crp / scale - 128) / 224
    r = y + 2 * (1 - kr) * cr
    b = y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.stack([r, g, b], -1) * 255, 0, 255)


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    bits = frame.format.components[0].bits
    dtype = np.uint16 if bits > 8 else np.uint8
    out = []
    for i, plane in enumerate(frame.planes):
        h, w = (frame.height, frame.width) if i == 0 else (frame.height // 2, frame.width // 2)
        rows = np.frombuffer(plane, dtype).reshape(-1, plane.line_size // dtype().itemsize)
        out.append(rows[:h, :w].copy())
    return out


def _write_yuv(path: Path, planes: list[np.ndarray], *, bits: int, matrix: int | None,
               full: bool, frames: int = 2) -> None:
    """A lossless H.264 clip of ``planes``; tagged with ``matrix`` and the range unless None."""
    height, width = planes[0].shape
    fmt = "yuv420p10le" if bits > 8 else "yuv420p"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, fmt
        stream.options = {"qp": "0"}
        if matrix is not None:
            stream.codec_context.colorspace = matrix
            stream.codec_context.color_range = 2 if full else 1
        for t in range(frames):
            frame = av.VideoFrame(width, height, fmt)
            for plane, values in zip(frame.planes, planes):
                rows = np.frombuffer(plane, values.dtype).reshape(
                    -1, plane.line_size // values.itemsize)
                rows[:values.shape[0], :values.shape[1]] = values
            if matrix is not None:
                frame.colorspace, frame.color_range = matrix, 2 if full else 1
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _plane(value: float, dtype: type[np.integer], shape: tuple[int, int] = (2, 2)) -> np.ndarray:
    return np.full(shape, value, dtype)


@pytest.mark.parametrize(("bits", "full", "black", "white", "mid"),
                         [(8, False, 16, 235, 128), (10, False, 64, 940, 512),
                          (8, True, 0, 255, 128), (10, True, 0, 1023, 512)])
def test_yuv_to_rgb_maps_the_standards_codes(
    bits: int, full: bool, black: int, white: int, mid: int
) -> None:
    dtype = np.uint16 if bits > 8 else np.uint8
    for luma, expected in ((black, 0.0), (white, 1.0)):
        planes = [_plane(luma, dtype), _plane(mid, dtype, (1, 1)), _plane(mid, dtype, (1, 1))]
        rgb = yuv_to_rgb(planes, matrix=BT709, full_range=full, bits=bits)
        assert rgb.shape == (2, 2, 3) and rgb.dtype == np.float32
        np.testing.assert_allclose(rgb, expected, atol=1e-6)


@pytest.mark.parametrize("matrix", [SMPTE170M, BT709, BT2020_NCL])
def test_yuv_to_rgb_inverts_each_matrix(matrix: int) -> None:
    kr, kb = {SMPTE170M: (0.299, 0.114), BT709: (0.2126, 0.0722),
              BT2020_NCL: (0.2627, 0.0593)}[matrix]
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.25, 0.5, 0.75]])
    for rgb in colours:
        y = kr * rgb[0] + (1 - kr - kb) * rgb[1] + kb * rgb[2]
        cb, cr = (rgb[2] - y) / (2 * (1 - kb)), (rgb[0] - y) / (2 * (1 - kr))
        # 16-bit codes, so that the rounding of the codes is far below the tolerance.
        step = 2**8
        planes = [_plane((16 + 219 * y) * step, np.uint16),
                  _plane((128 + 224 * cb) * step, np.uint16, (1, 1)),
                  _plane((128 + 224 * cr) * step, np.uint16, (1, 1))]
        got = yuv_to_rgb(planes, matrix=matrix, full_range=False, bits=16)
        np.testing.assert_allclose(got[0, 0], rgb, atol=1e-4)


def test_chroma_is_placed_where_mpeg_puts_it() -> None:
    """4:2:0 chroma sits on the even luma columns, midway between two luma rows."""
    luma = _plane(126, np.uint8, (4, 4))
    # Cr of 128 (no red) in chroma column 0 and 240 (full red) in column 1; rows alike.
    cr = np.array([[128, 240], [128, 240]], np.uint8)
    cb = _plane(128, np.uint8, (2, 2))
    red = yuv_to_rgb([luma, cb, cr], matrix=BT709, full_range=False, bits=8)[..., 0]
    grey = (126 - 16) / 219
    full_red = grey + 2 * (1 - 0.2126) * 0.5
    # Column 0 is chroma 0's own; column 1 lies midway to chroma 1; columns 2 and 3 are
    # chroma 1's (the last column repeats the edge).
    np.testing.assert_allclose(red[:, 0], grey, atol=1e-5)
    np.testing.assert_allclose(red[:, 1], min(1.0, (grey + full_red) / 2), atol=1e-5)
    np.testing.assert_allclose(red[:, 2:], 1.0, atol=1e-5)
    # Rows: chroma row 0 (128 everywhere) against row 1 (240 everywhere) in Cb this time.
    cb = np.array([[128, 128], [240, 240]], np.uint8)
    blue = yuv_to_rgb([luma, cb, _plane(128, np.uint8, (2, 2))], matrix=BT709,
                      full_range=False, bits=8)[..., 2]
    step = 2 * (1 - 0.0722) * 0.5
    # Luma rows 0..3 lie at chroma rows -0.25, 0.25, 0.75, 1.25 (edges clamp).
    expected = [grey, grey + 0.25 * step, grey + 0.75 * step, grey + step]
    np.testing.assert_allclose(blue[:, 0], np.clip(expected, 0, 1), atol=1e-5)


def test_semi_planar_frames_read_as_their_planar_twins() -> None:
    rng = np.random.default_rng(0)
    frame = av.VideoFrame(32, 16, "yuv420p")
    for plane in frame.planes:
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        rows[:plane.height, :plane.width] = rng.integers(16, 236, (plane.height, plane.width))
    frame.colorspace, frame.color_range = BT709, 1
    nv12 = frame.reformat(format="nv12")
    nv12.colorspace, nv12.color_range = BT709, 1
    np.testing.assert_allclose(to_rgb(nv12), to_rgb(frame), atol=1e-6)


def test_a_ten_bit_ramp_keeps_its_steps(tmp_path: Path) -> None:
    """Every 10-bit luma code of a grey ramp reaches the render's tensor as its own value."""
    width = 880
    luma = np.tile(np.arange(64, 64 + width, dtype=np.uint16), (16, 1))
    chroma = np.full((8, width // 2), 512, np.uint16)
    clip = tmp_path / "ramp.mp4"
    _write_yuv(clip, [luma, chroma, chroma], bits=10, matrix=BT709, full=False, frames=1)
    frame = next(iter_frames(clip))
    assert frame.deep is not None and frame.pixels is frame.deep
    levels = to_tensor(frame.pixels, torch.device("cpu"))[0, 1, 0]
    # Codes 64 (black) to 940 (white) are 877 levels; those past 940 are white too.
    assert len(torch.unique(levels)) == 940 - 64 + 1
    assert len(np.unique(frame.image[0, :, 1])) == 256
    np.testing.assert_allclose(levels[:877].numpy(), np.arange(877) / 876, atol=1e-4)


@pytest.mark.parametrize("bits", [8, 10])
@pytest.mark.parametrize("full", [False, True], ids=["limited", "full"])
@pytest.mark.parametrize("matrix", [SMPTE170M, BT709], ids=["bt601", "bt709"])
def test_decoding_follows_the_streams_matrix_and_range(
    tmp_path: Path, matrix: int, full: bool, bits: int
) -> None:
    chart = _chart(160, 32)
    clip = tmp_path / "chart.mp4"
    _write_yuv(clip, _to_yuv(chart, matrix, full, bits), bits=bits, matrix=matrix, full=full)
    info = probe(clip)
    assert info.colour is not None and info.colour.matrix == matrix
    assert info.colour.full_range == full and info.colour.tagged
    frame = next(iter_frames(clip))
    error = np.abs(_middles(frame.image) - _middles(chart))
    assert error.max() <= 2, error.max()
    if bits > 8:
        # The 10-bit codes reach the render unrounded: 4 steps per 8-bit one.
        assert frame.deep is not None and frame.deep.dtype == np.uint16
        deep = np.abs(_middles(frame.deep) / 257 - _middles(chart))
        assert deep.max() <= 1, deep.max()
    else:
        assert frame.deep is None


@pytest.mark.parametrize(("width", "height", "matrix"),
                         [(320, 240, SMPTE170M), (1280, 720, BT709)], ids=["sd", "hd"])
def test_an_untagged_stream_is_read_as_players_read_it(
    tmp_path: Path, width: int, height: int, matrix: int
) -> None:
    chart = _chart(width, height)
    clip = tmp_path / "untagged.mp4"
    _write_yuv(clip, _to_yuv(chart, matrix, False, 8), bits=8, matrix=None, full=False,
               frames=1)
    info = probe(clip)
    assert info.colour is not None and info.colour.matrix == matrix and not info.colour.tagged
    error = np.abs(_middles(next(iter_frames(clip)).image) - _middles(chart))
    assert error.max() <= 2, error.max()


def _decode_by_tags(path: Path) -> tuple[np.ndarray, Colour]:
    """The first frame of ``path`` as RGB by its own tags, with the formulas above."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        colour = Colour(frame.colorspace, frame.color_range == 2, frame.color_primaries,
                        frame.color_trc)
        bits = frame.format.components[0].bits
        return _from_yuv(_planes(frame), colour.matrix, colour.full_range, bits), colour


@pytest.mark.parametrize(("full", "bits"), [(False, 8), (True, 10)])
@pytest.mark.parametrize(("width", "matrix"), [(320, SMPTE170M), (1280, BT709)],
                         ids=["sd-bt601", "hd-bt709"])
def test_a_render_that_keeps_its_input_gives_it_back_tagged(
    tmp_path: Path, styles: list[Path], width: int, matrix: int, full: bool, bits: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    height = 96 if width < 1280 else 720
    chart = _chart(width, height)
    clip = tmp_path / "chart.mp4"
    _write_yuv(clip, _to_yuv(chart, matrix, full, bits), bits=bits, matrix=matrix, full=full)
    out = tmp_path / "out.mp4"
    # Steps of 1e-9 leave every pixel where it started: the render is the identity.
    code = main(["run", str(clip), "--style", str(styles[0]), "-o", str(out), "-q",
                 "--max-side", "0", "--crf", "0", "--temporal-weight", "0",
                 "--style-weight", "1e-9", "--tv-weight", "0", "--lr", "1e-9",
                 "--init", "content", "--first-iterations", "1", "--iterations", "1"])
    assert code == 0, capsys.readouterr().err
    image, colour = _decode_by_tags(out)
    # The source's matrix, limited range (what H.264 players expect) and its standard's tags.
    assert colour == Colour(matrix, False, 6 if matrix == SMPTE170M else 1,
                            6 if matrix == SMPTE170M else 1)
    error = np.abs(_middles(image) - _middles(chart))
    assert error.max() <= 3, error.max()


def test_outputs_without_a_source_follow_their_size() -> None:
    assert output_colour(None, 320, 180).matrix == SMPTE170M
    assert output_colour(None, 1920, 1080).matrix == BT709
    hdr = Colour(9, False, 9, 18)
    assert output_colour(hdr, 320, 180) == Colour(BT709, False, 1, 1)


def test_the_writer_tags_what_it_writes(tmp_path: Path) -> None:
    chart = _chart(1280, 720)
    out = tmp_path / "hd.mp4"
    with VideoWriter(out, width=1280, height=720, rate=Fraction(24), time_base=Fraction(1, 24),
                     crf=0) as writer:
        writer.write(chart, 0.0)
    image, colour = _decode_by_tags(out)
    assert colour == Colour(BT709, False, 1, 1)
    assert np.abs(_middles(image) - _middles(chart)).max() <= 2


@pytest.mark.parametrize(("codec", "suffix", "name", "tag"),
                         [("h265", ".mp4", "hevc", "hvc1"), ("prores", ".mov", "prores", None)])
def test_other_codecs_are_written_tagged(
    tmp_path: Path, codec: str, suffix: str, name: str, tag: str | None
) -> None:
    chart = _chart(320, 96)
    out = tmp_path / f"out{suffix}"
    with VideoWriter(out, width=320, height=96, rate=Fraction(24), time_base=Fraction(1, 24),
                     codec=codec) as writer:
        for t in range(3):
            writer.write(chart, t / 24)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == name
        if tag is not None:
            assert stream.codec_context.codec_tag == tag
        frame = next(container.decode(stream))
        assert (frame.colorspace, frame.color_range) == (SMPTE170M, 1)
        assert frame.color_primaries == frame.color_trc == 6
    got = next(iter_frames(out)).image
    assert np.abs(_middles(got) - _middles(chart)).max() <= 4


def test_a_codec_its_container_cannot_hold_is_refused_up_front(
    tmp_path: Path, tiny_clip: Path, styles: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mp4"
    code = main(["run", str(tiny_clip), "--style", str(styles[0]), "-o", str(out), "-q",
                 "--codec", "prores"])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1, err
    assert "prores cannot be stored in .mp4: use .mov or .mkv" in err
    assert not out.exists()
