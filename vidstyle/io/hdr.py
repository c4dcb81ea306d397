"""HDR to SDR: PQ and HLG video (BT.2100, BT.2020 primaries) tone-mapped to SDR BT.709.

The render paints SDR frames, so an HDR source is converted once, as it is decoded:

1. Y'CbCr to non-linear R'G'B' by the BT.2020 matrix, in floating point
   (:func:`vidstyle.io.colour.yuv_to_rgb`).
2. To display light in cd/m2: PQ by its EOTF (SMPTE ST 2084); HLG by its inverse OETF and
   the BT.2100 OOTF for a 1000 cd/m2 display (system gamma 1.2).
3. BT.2020 primaries to BT.709 (ITU-R BT.2087), in linear light; colours outside BT.709 are
   clipped at the end.
4. The tone curve: ITU-R BT.2390's EETF, from the source's peak (:data:`SOURCE_PEAK`) down to
   :data:`SDR_WHITE`, on each pixel's largest channel with the others scaled alike, so hues
   stay and no channel is pushed past white. Why it, over FFmpeg's ``tonemap`` operators
   (Hable, Reinhard, Mobius): below about half of SDR white it changes nothing, so faces and
   mid-tones keep the source's exposure, and above that it bends highlights smoothly up to
   the peak instead of clipping them, though the brightest ones share few code values.
   203 cd/m2 is HDR reference white (ITU-R BT.2408); it lands at about 92% of SDR white.
5. Encoded for a BT.1886 display (gamma 2.4).

Sources without mastering metadata are taken to peak at 1000 cd/m2 (HLG's reference display;
most phone PQ clips are mastered at 1000 too).
"""

from __future__ import annotations

import numpy as np

SDR_WHITE = 203.0
"""cd/m2 that SDR white stands for (HDR reference white, ITU-R BT.2408)."""
SOURCE_PEAK = 1000.0
"""cd/m2 an HDR source is taken to reach."""

# SMPTE ST 2084 (PQ).
_M1, _M2 = 2610 / 16384, 2523 / 4096 * 128
_C1, _C2, _C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
# ARIB STD-B67 (HLG).
_A = 0.17883277
_B = 1 - 4 * _A
_C = 0.5 - _A * np.log(4 * _A)
# BT.2020 -> BT.709 primaries, linear light (ITU-R BT.2087).
_TO_709 = np.array([[1.660491, -0.587641, -0.072850],
                    [-0.124550, 1.132900, -0.008349],
                    [-0.018151, -0.100579, 1.118730]], np.float32)
_Y2020 = np.array([0.2627, 0.6780, 0.0593], np.float32)


def pq_to_nits(signal: np.ndarray) -> np.ndarray:
    """PQ signal in [0, 1] -> cd/m2 (the ST 2084 EOTF)."""
    p = np.power(np.clip(signal, 0, 1), 1 / _M2)
    return 10000 * np.power(np.maximum(p - _C1, 0) / (_C2 - _C3 * p), 1 / _M1)


def nits_to_pq(nits: np.ndarray) -> np.ndarray:
    """cd/m2 -> PQ signal in [0, 1] (the ST 2084 inverse EOTF)."""
    y = np.power(np.clip(nits / 10000, 0, 1), _M1)
    return np.power((_C1 + _C2 * y) / (1 + _C3 * y), _M2)


def hlg_to_nits(signal: np.ndarray, peak: float = SOURCE_PEAK) -> np.ndarray:
    """HLG R'G'B' ``(..., 3)`` in [0, 1] -> display light in cd/m2 (inverse OETF, then the
    BT.2100 OOTF for a display of ``peak``, gamma 1.2 at 1000 cd/m2)."""
    e = np.clip(signal, 0, 1)
    scene = np.where(e <= 0.5, e * e / 3, (np.exp((e - _C) / _A) + _B) / 12)
    gamma = 1.2 + 0.42 * np.log10(peak / 1000)
    luma = np.maximum(scene @ _Y2020, 1e-12)[..., None]
    return peak * np.power(luma, gamma - 1) * scene


def eetf(nits: np.ndarray, peak: float = SOURCE_PEAK, target: float = SDR_WHITE) -> np.ndarray:
    """ITU-R BT.2390's EETF: display light from a source reaching ``peak`` to a display
    reaching ``target`` (cd/m2 in, cd/m2 out; black stays black)."""
    top = nits_to_pq(np.asarray(peak))
    e1 = nits_to_pq(nits) / top
    most = nits_to_pq(np.asarray(target)) / top
    knee = 1.5 * most - 0.5
    t = np.clip((e1 - knee) / (1 - knee), 0, 1)
    spline = ((2 * t**3 - 3 * t**2 + 1) * knee + (t**3 - 2 * t**2 + t) * (1 - knee)
              + (-2 * t**3 + 3 * t**2) * most)
    e2 = np.where(e1 < knee, e1, spline)
    return pq_to_nits(np.clip(e2, 0, 1) * top)


def tone_map(rgb2020: np.ndarray, *, hlg: bool) -> np.ndarray:
    """Non-linear BT.2020 R'G'B' ``(H, W, 3)`` float in [0, 1] (PQ, or HLG if ``hlg``) ->
    SDR BT.709 ``(H, W, 3)`` float32 in [0, 1] for a BT.1886 display."""
    rgb = rgb2020.astype(np.float32)
    light = hlg_to_nits(rgb) if hlg else pq_to_nits(rgb)
    light = np.maximum(light @ _TO_709.T, 0)
    top = light.max(axis=-1, keepdims=True)
    mapped = eetf(top)
    scale = np.where(top > 1e-6, mapped / np.maximum(top, 1e-6), 0)
    sdr = np.clip(light * scale / SDR_WHITE, 0, 1)
    return np.power(sdr, 1 / 2.4).astype(np.float32)

