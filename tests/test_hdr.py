"""HDR sources: 10-bit HEVC in PQ and HLG, made here from known display light, come out as
tagged SDR BT.709 along the documented tone curve, neither washed out nor clipped."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from vidstyle.cli import main
from vidstyle.io import iter_frames, probe
from vidstyle.io.colour import BT709, HLG, PQ, colour_note
from vidstyle.io.hdr import SDR_WHITE, SOURCE_PEAK, eetf, nits_to_pq

# Grey patches, in cd/m2 of display light; then BT.709's pure red at 100 cd/m2.
GREYS = [0.0, 1.0, 10.0, 50.0, 100.0, 203.0, 500.0, 1000.0]
PATCH = 16
# BT.709 -> BT.2020 primaries, linear light (ITU-R BT.2087).
_TO_2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114],
                     [0.0164, 0.0880, 0.8956]])
_K2020 = (0.2627, 0.0593)


def _light() -> np.ndarray:
    """Display light of the test chart in BT.2020 primaries, ``(PATCH, 9 * PATCH, 3)``."""
    patches = [np.full(3, g) for g in GREYS] + [_TO_2020 @ np.array([100.0, 0.0, 0.0])]
    return np.concatenate([np.broadcast_to(p, (PATCH, PATCH, 3)) for p in patches], axis=1)


def _hlg_signal(light: np.ndarray) -> np.ndarray:
    """HLG R'G'B' of display light, the inverse of the BT.2100 OOTF (1000 cd/m2, gamma 1.2)
    and OETF."""
    luma = np.maximum(light @ np.array([0.2627, 0.6780, 0.0593]) / SOURCE_PEAK, 1e-12)
    scene_luma = luma ** (1 / 1.2)
    scene = light / (SOURCE_PEAK * scene_luma[..., None] ** 0.2)
    a = 0.17883277
    b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
    scene = np.clip(scene, 0, 1)
    return np.where(scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b,
                                                                                 1e-12)) + c)


def _write_hevc(path: Path, signal: np.ndarray, transfer: int) -> None:
    """Lossless 10-bit HEVC of non-linear BT.2020 R'G'B' ``signal``, limited range, tagged."""
    kr, kb = _K2020
    y = kr * signal[..., 0] + (1 - kr - kb) * signal[..., 1] + kb * signal[..., 2]
    cb, cr = (signal[..., 2] - y) / (2 * (1 - kb)), (signal[..., 0] - y) / (2 * (1 - kr))
    h, w = y.shape
    planes = [64 + 876 * y, 512 + 896 * cb, 512 + 896 * cr]
    planes[1:] = [p.reshape(h // 2, 2, w // 2, 2).mean((1, 3)) for p in planes[1:]]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx265", rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p10le"
        stream.options = {"x265-params": "lossless=1:bframes=0:log-level=error"}
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range = 9, 9, transfer, 1
        for t in range(2):
            frame = av.VideoFrame(w, h, "yuv420p10le")
            for plane, values in zip(frame.planes, planes):
                rows = np.frombuffer(plane, np.uint16).reshape(-1, plane.line_size // 2)
                rows[:values.shape[0], :values.shape[1]] = np.round(values).astype(np.uint16)
            frame.colorspace, frame.color_range = 9, 1
            frame.color_primaries, frame.color_trc = 9, transfer
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _expected() -> np.ndarray:
    """The chart's SDR patches along the documented curve: BT.2390's EETF on the largest
    channel, in BT.709 primaries, for a BT.1886 display. ``(9, 3)`` float in [0, 255]."""
    light = np.concatenate([np.repeat(np.array(GREYS)[:, None], 3, 1), [[100.0, 0.0, 0.0]]])
    top = light.max(1, keepdims=True)
    mapped = light * np.where(top > 0, eetf(top) / np.maximum(top, 1e-9), 0)
    return np.clip(mapped / SDR_WHITE, 0, 1) ** (1 / 2.4) * 255


def _patches(image: np.ndarray) -> np.ndarray:
    mid = slice(PATCH // 4, PATCH - PATCH // 4)
    return np.stack([image[mid, i * PATCH:(i + 1) * PATCH][:, mid].reshape(-1, 3).mean(0)
                     for i in range(image.shape[1] // PATCH)])


def test_the_tone_curve_keeps_mid_tones_and_brings_the_peak_to_white() -> None:
    low = np.array([0.0, 1.0, 10.0, 50.0])
    np.testing.assert_allclose(eetf(low), low, rtol=1e-6, atol=1e-9)  # below the knee: kept
    assert eetf(np.array(SOURCE_PEAK)) == pytest.approx(SDR_WHITE, rel=1e-6)
    ramp = eetf(np.linspace(0, SOURCE_PEAK, 500))
    assert np.all(np.diff(ramp) > 0)  # strictly increasing: no highlight is flattened
    assert nits_to_pq(np.array(10000.0)) == pytest.approx(1.0)


@pytest.mark.parametrize("transfer", [PQ, HLG], ids=["pq", "hlg"])
def test_an_hdr_clip_is_tone_mapped_to_sdr(tmp_path: Path, transfer: int) -> None:
    light = _light()
    signal = nits_to_pq(light) if transfer == PQ else _hlg_signal(light)
    clip = tmp_path / "hdr.mp4"
    _write_hevc(clip, signal, transfer)
    info = probe(clip)
    assert info.colour is not None and info.colour.hdr
    assert "tone-mapped to SDR BT.709" in (colour_note(info.colour) or "")
    got = _patches(next(iter_frames(clip)).image)
    want = _expected()
    assert np.abs(got[: len(GREYS)] - want[: len(GREYS)]).max() <= 3, np.round(got - want, 1)
    # Mean luminance of the greys within 10% of the curve's.
    luminance = (got[: len(GREYS), 1] / 255) ** 2.4
    reference = (want[: len(GREYS), 1] / 255) ** 2.4
    assert abs(luminance.mean() / reference.mean() - 1) < 0.10
    greys = got[: len(GREYS)].mean(1)
    assert greys[0] <= 2, "black stays black (not washed out)"
    assert np.all(np.diff(greys) > 0), "every step of light stays a step"
    assert greys[-2] < 255, "highlights below the peak are not clipped to white"
    red = (got[len(GREYS)] / 255) ** 2.4  # linear light: the dark end of 2.4 is steep
    assert abs(got[len(GREYS), 0] - want[len(GREYS), 0]) <= 3
    assert red[1:].max() < 0.01 * red[0], "BT.709 red stays pure red"


def test_an_hdr_render_says_so_and_writes_bt709(
    tmp_path: Path, styles: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "hlg.mp4"
    _write_hevc(clip, _hlg_signal(_light()), HLG)
    out = tmp_path / "out.mp4"
    code = main(["run", str(clip), "--style", str(styles[0]), "-o", str(out), "-q",
                 "--first-iterations", "1", "--iterations", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("\n") == 1 and "HDR (HLG, BT.2020)" in err
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
        assert (frame.colorspace, frame.color_primaries, frame.color_trc) == (BT709,) * 3
