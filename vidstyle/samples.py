"""Procedural sample media: a short test clip and two style images.

Everything is drawn with numpy/cv2 from a fixed seed, so the bundled samples are reproducible
and nothing has to be downloaded. Run ``python -m vidstyle.samples [FOLDER]`` to write them.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np

from vidstyle.io.encode import h264_encoder

# pan: the bundled clip. static, shift: test clips with known motion. handheld, cartoon:
# held-out clips for the steadiness benchmark (a fast shaky camera; flat-colour animation),
# drawn from another seed so settings are never tuned on them.
MOTIONS = ("pan", "static", "shift", "handheld", "cartoon")
AUDIO_RATE = 48000
# Root notes (Hz) of the soft chord that changes every half second.
CHORD_ROOTS = (220.0, 174.61, 261.63, 196.0)


def _rgb(r: float, g: float, b: float) -> np.ndarray:
    return np.array([r, g, b], np.float32)


def _noise(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
    """Value noise in [0, 1], periodic along x so the scene canvas wraps without a seam."""
    gh, gw = cells
    lattice = rng.random((gh + 1, gw), dtype=np.float32)
    y = np.linspace(0.0, gh, h, endpoint=False, dtype=np.float32)
    x = np.arange(w, dtype=np.float32) * (gw / w)
    y0, x0 = y.astype(np.int64), x.astype(np.int64)
    ty, tx = (y - y0)[:, None], (x - x0)[None, :]
    ty, tx = ty * ty * (3 - 2 * ty), tx * tx * (3 - 2 * tx)  # smoothstep hides the lattice
    x1 = (x0 + 1) % gw
    top = lattice[y0][:, x0] * (1 - tx) + lattice[y0][:, x1] * tx
    bottom = lattice[y0 + 1][:, x0] * (1 - tx) + lattice[y0 + 1][:, x1] * tx
    return top * (1 - ty) + bottom * ty


def _fractal(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int],
             octaves: int = 4) -> np.ndarray:
    """Multi-octave value noise normalised to [0, 1]."""
    total = np.zeros((h, w), np.float32)
    for o in range(octaves):
        total += _noise(rng, h, w, (cells[0] << o, cells[1] << o)) * 0.5**o
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


@functools.lru_cache(maxsize=8)
def _scene_canvas(width: int, height: int, seed: int) -> np.ndarray:
    """A horizontally periodic landscape 4 frames wide, float32 RGB in [0, 1] (read-only)."""
    rng = np.random.default_rng(seed)
    cw, ch = 4 * width, round(height * 1.25)
    k = width / 320
    rows = np.linspace(0.0, 1.0, ch, dtype=np.float32)[:, None, None]
    # Sky: zenith blue to a warm horizon, with soft clouds.
    sky = (1 - rows) * _rgb(0.25, 0.45, 0.8) + rows * _rgb(0.95, 0.8, 0.6)
    clouds = np.clip(_fractal(rng, ch, cw, (3, 12)) * 1.6 - 0.7, 0, 1)[..., None]
    img = sky * (1 - clouds) + clouds * _rgb(0.97, 0.96, 0.95)
    yy = np.arange(ch, dtype=np.float32)[:, None]

    def hills(img: np.ndarray, base: float, amp: float, cells: int,
              colour: np.ndarray, tex_cells: tuple[int, int]) -> np.ndarray:
        ridge = base + amp * (_fractal(rng, 1, cw, (1, cells), 3)[0] - 0.5)
        mask = np.clip(yy - ridge[None, :] * ch + 0.5, 0, 1)[..., None]
        tex = 0.65 + 0.7 * _fractal(rng, ch, cw, tex_cells)[..., None]
        return np.ascontiguousarray(img * (1 - mask) + mask * colour * tex)

    img = hills(img, 0.45, 0.3, 6, _rgb(0.45, 0.5, 0.62), (8, 32))
    line = max(round(k), 1)
    # Buildings with lit windows give straight edges and corners for flow to lock on.
    step = max(round(6 * k), 2)
    for _ in range(14):
        bw, bh = int(rng.integers(18, 46) * k), int(rng.integers(30, 80) * k)
        bx, by = int(rng.integers(0, cw)), round(ch * 0.66) - bh
        shade = float(rng.uniform(0.3, 0.6))
        lit = rng.random((bh // step, bw // step)) < 0.45
        for x in (bx - cw, bx, bx + cw):  # drawing at +-canvas width keeps the wrap seamless
            cv2.rectangle(img, (x, by), (x + bw, by + bh), (shade, shade * 0.9, shade * 0.85), -1)
            cv2.rectangle(img, (x, by), (x + bw, by + bh), (0.1, 0.1, 0.12), line)
            for (r, c), on in np.ndenumerate(lit):
                wx, wy = x + c * step + step // 3, by + r * step + step // 3
                colour = (1.0, 0.85, 0.4) if on else (0.15, 0.17, 0.22)
                cv2.rectangle(img, (wx, wy), (wx + step // 3, wy + step // 3), colour, -1)
    img = hills(img, 0.72, 0.15, 5, _rgb(0.3, 0.55, 0.22), (16, 64))
    for _ in range(40):  # trees: dark outlined crowns with a lit side
        tx, ty = int(rng.integers(0, cw)), int(ch * rng.uniform(0.72, 0.95))
        r = int(rng.integers(7, 16) * k)
        green = (0.08, float(rng.uniform(0.25, 0.45)), 0.1)
        for x in (tx - cw, tx, tx + cw):
            cv2.rectangle(img, (x - r // 5, ty), (x + r // 5, ty + 2 * r), (0.3, 0.2, 0.1), -1)
            cv2.circle(img, (x, ty), r, green, -1, cv2.LINE_AA)
            cv2.circle(img, (x - r // 3, ty - r // 3), r // 2, (0.3, 0.6, 0.25), -1, cv2.LINE_AA)
            cv2.circle(img, (x, ty), r, (0.03, 0.12, 0.04), line, cv2.LINE_AA)
    grain = 0.9 + 0.2 * _noise(rng, ch, cw, (ch // 3, cw // 3))[..., None]
    canvas = np.clip(img * grain, 0, 1).astype(np.float32)
    canvas.setflags(write=False)  # shared through the cache, so callers must not mutate it
    return canvas


def _draw_ball(frame: np.ndarray, index: int, width: int, height: int) -> None:
    """Paint a rotating striped ball that moves against the pan (occluding the background)."""
    k = width / 320
    # Max speed about 3 px/frame at 320 wide; the sine path keeps long clips in frame.
    cx = width * (0.5 + 0.38 * math.sin(2 * math.pi * index / 240 - 0.95))
    cy = height * (0.72 - 0.3 * abs(math.sin(math.pi * index / 20)))
    r = 22 * k
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    alpha = np.clip(r - np.sqrt(dx * dx + dy * dy) + 0.5, 0, 1)[..., None]
    angle = 0.12 * index
    u = (dx * math.cos(angle) + dy * math.sin(angle)) / r
    stripes = (np.sin(u * 9.0) > 0)[..., None]
    shade = np.clip(1.0 - 0.5 * ((dx + 0.4 * r) ** 2 + (dy + 0.4 * r) ** 2) / (r * r), 0.3, 1)
    colour = np.where(stripes, _rgb(0.9, 0.15, 0.1), _rgb(0.98, 0.9, 0.3))
    frame[:] = frame * (1 - alpha) + alpha * colour * shade[..., None]


def _handheld(canvas: np.ndarray, index: int, width: int, height: int) -> np.ndarray:
    """A fast, shaky hand-held pan: about 9 px/frame at 320 wide, with jitter and roll."""
    ch = canvas.shape[0]
    k = width / 320
    rng = np.random.default_rng(1000 + index)  # the shake of each frame is fixed
    jx, jy = rng.normal(0.0, 2.0 * k, 2)
    cx = width / 2 + 9.0 * k * index + jx
    cy = ch / 2 + 0.06 * height * math.sin(2 * math.pi * index / 30) + jy
    roll = math.radians(2.5 * math.sin(2 * math.pi * index / 40))
    zoom = 1.1
    c, s = math.cos(roll) / zoom, math.sin(roll) / zoom
    m = np.array([[c, -s, cx - c * width / 2 + s * height / 2],
                  [s, c, cy - s * width / 2 - c * height / 2]], np.float32)
    return cv2.warpAffine(canvas, m, (width, height), flags=cv2.INTER_LINEAR
                          | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_WRAP)


def _cartoon(canvas: np.ndarray, index: int, width: int, height: int) -> np.ndarray:
    """Flat-colour animation: a posterized, outlined background panning slowly, and two
    flat sprites moving across it on their own paths."""
    ch, cw = canvas.shape[:2]
    top = (ch - height) // 2
    cols = (np.arange(width) + 2 * index) % cw
    view = canvas[top:top + height][:, cols]
    k = width / 320
    smooth = cv2.GaussianBlur(view, (0, 0), 2.5 * k)  # flat areas, not speckled grain
    flat = np.floor(smooth * 4) / 4 + 0.125
    grey = cv2.cvtColor(smooth, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny((grey * 255).astype(np.uint8), 60, 140) > 0
    frame = np.where(edges[..., None], 0.05, flat).astype(np.float32)
    line = max(round(2 * k), 1)
    # A bouncing red square and a sliding green triangle, cel-shaded with black outlines.
    sx = int(width * (0.2 + 0.6 * (0.5 - 0.5 * math.cos(2 * math.pi * index / 60))))
    sy = int(height * (0.35 + 0.25 * abs(math.sin(math.pi * index / 12))))
    half = int(18 * k)
    cv2.rectangle(frame, (sx - half, sy - half), (sx + half, sy + half), (0.85, 0.2, 0.15), -1)
    cv2.rectangle(frame, (sx - half, sy - half), (sx + half, sy + half), (0, 0, 0), line)
    tx = int(width * (1.0 - (index * 4 * k / width) % 1.2))
    ty = int(height * 0.8)
    tri = np.array([[tx, ty - int(26 * k)], [tx - int(22 * k), ty + int(12 * k)],
                    [tx + int(22 * k), ty + int(12 * k)]], np.int32)
    cv2.fillPoly(frame, [tri], (0.2, 0.75, 0.3))
    cv2.polylines(frame, [tri], True, (0, 0, 0), line)
    return frame


def _check_motion(motion: str) -> None:
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")


def render_scene_frame(index: int, *, width: int, height: int, motion: str = "pan",
                       seed: int = 0) -> np.ndarray:
    """Return frame ``index`` of the sample clip as an RGB uint8 array of shape (H, W, 3)."""
    _check_motion(motion)
    canvas = _scene_canvas(width, height, seed)
    ch, cw = canvas.shape[:2]
    top = (ch - height) // 2
    if motion == "static":
        frame = canvas[top:top + height, :width].copy()
    elif motion == "shift":
        # Content moves right by exactly 2 px/frame: the window slides left, wrapping.
        cols = (np.arange(width) - 2 * index) % cw
        frame = canvas[top:top + height][:, cols]
    elif motion == "handheld":
        frame = _handheld(canvas, index, width, height)
        _draw_ball(frame, index * 3, width, height)
    elif motion == "cartoon":
        frame = _cartoon(canvas, index, width, height)
    else:
        zoom = 1.0 + 0.08 * (0.5 - 0.5 * math.cos(2 * math.pi * index / 96))
        cx = width / 2 + 3.0 * (width / 320) * index
        cy = ch / 2 + 0.04 * height * math.sin(2 * math.pi * index / 64)
        m = np.array([[1 / zoom, 0, cx - width / (2 * zoom)],
                      [0, 1 / zoom, cy - height / (2 * zoom)]], np.float32)
        frame = cv2.warpAffine(canvas, m, (width, height), flags=cv2.INTER_LINEAR
                               | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_WRAP)
        _draw_ball(frame, index, width, height)
    return (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)


def _audio_frames(seconds: float, frame_size: int) -> list[tuple[float, av.AudioFrame]]:
    """A quiet chord changing every half second, as encoder-sized mono frames with start times."""
    t = np.arange(round(seconds * AUDIO_RATE), dtype=np.float32) / AUDIO_RATE
    root = np.array(CHORD_ROOTS, np.float32)[(t // 0.5).astype(np.int64) % len(CHORD_ROOTS)]
    wave = sum(np.sin(2 * np.pi * root * ratio * t) for ratio in (1.0, 1.25, 1.5))
    # Fade each half-second segment in and out so chord changes do not click.
    envelope = np.minimum(1.0, np.minimum(t % 0.5, 0.5 - t % 0.5) / 0.02)
    samples = (0.08 * wave * envelope).astype(np.float32)
    step = frame_size or 1024  # 0 means the encoder accepts any size
    out = []
    for start in range(0, len(samples), step):
        frame = av.AudioFrame.from_ndarray(samples[None, start:start + step], format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
        out.append((start / AUDIO_RATE, frame))
    return out


def make_clip(path: str | os.PathLike[str], *, width: int = 320, height: int = 180,
              frames: int = 48, fps: int = 24, motion: str = "pan", audio: bool = True,
              seed: int = 0) -> Path:
    """Write a procedural H.264 MP4 (with an AAC chord track if ``audio``) and return its path."""
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"width and height must be positive and even for yuv420p, "
                         f"got {width}x{height}")
    _check_motion(motion)
    if frames < 1 or fps < 1:
        raise ValueError(f"frames and fps must be >= 1, got frames={frames}, fps={fps}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix}")
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            encoder = h264_encoder()
            video = cast(av.VideoStream, container.add_stream(encoder, rate=fps))
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.time_base = Fraction(1, fps)
            if encoder == "libx264":
                video.options = {"crf": "23", "preset": "medium"}
            sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
            pending = _audio_frames(frames / fps, sound.codec_context.frame_size) if sound else []

            def feed(until: float) -> None:
                # Audio starting before `until` seconds goes first, so packets stay interleaved.
                while sound is not None and pending and pending[0][0] < until:
                    container.mux(sound.encode(pending.pop(0)[1]))

            for i in range(frames):
                feed((i + 1) / fps)
                rgb = render_scene_frame(i, width=width, height=height, motion=motion, seed=seed)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = i
                container.mux(video.encode(frame))
            container.mux(video.encode(None))
            if sound is not None:
                feed(math.inf)
                container.mux(sound.encode(None))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _ink(size: int, rng: np.random.Generator) -> np.ndarray:
    """Ink-wash look: tapered dark brush strokes and soft wash blots on fibrous warm paper."""
    w, h = size, round(size * 0.75)
    k = size / 384
    paper = _rgb(0.93, 0.9, 0.83) * (0.94 + 0.06 * _fractal(rng, h, w, (4, 5)))[..., None]
    fibres = np.zeros((h, w), np.float32)
    for _ in range(int(900 * k * k)):
        x, y, a = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, np.pi)
        d = rng.uniform(3, 12) * k
        p0, p1 = (int(x), int(y)), (int(x + d * math.cos(a)), int(y + d * math.sin(a)))
        cv2.line(fibres, p0, p1, float(rng.uniform(0.03, 0.08)), 1, cv2.LINE_AA)
    ink = np.zeros((h, w), np.float32)
    for _ in range(7):  # wash blots: large, faint, soft-edged
        blot = np.zeros_like(ink)
        axes = (int(rng.uniform(25, 80) * k), int(rng.uniform(15, 50) * k))
        centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        cv2.ellipse(blot, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        blot = cv2.GaussianBlur(blot, (0, 0), 12 * k) * rng.uniform(0.2, 0.45)
        ink = np.maximum(ink, blot)
    for _ in range(int(rng.integers(45, 60))):  # brush strokes along smooth random curves
        n = int(rng.integers(25, 60))
        turn = cv2.GaussianBlur(rng.normal(0, 0.25, (n, 1)), (1, 0), 3)[:, 0]
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(turn)
        step = rng.uniform(3, 6) * k
        pts = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * step, 0)
        pts += (rng.uniform(0, w), rng.uniform(0, h))
        darkness = float(rng.uniform(0.55, 1.0))
        width0 = rng.uniform(2, 14) * k
        stroke = np.zeros_like(ink)
        for j in range(n - 1):
            # Thick and dark where the brush lands, thinner and paler as it runs dry and lifts.
            taper = (1 - j / n) ** 0.8
            thick = max(int(width0 * taper), 1)
            p0, p1 = tuple(pts[j].astype(int)), tuple(pts[j + 1].astype(int))
            cv2.line(stroke, p0, p1, darkness * (0.6 + 0.4 * taper), thick, cv2.LINE_AA)
        ink = np.maximum(ink, stroke)
    # Dry-brush breakup: the paper grain shows through the ink a little.
    ink *= 0.85 + 0.15 * _noise(rng, h, w, (h // 2, w // 2))
    ink = np.maximum(ink, fibres)[..., None]
    return paper * (1 - ink) + ink * _rgb(0.05, 0.05, 0.06)


def _embers(size: int, rng: np.random.Generator) -> np.ndarray:
    """Impasto swirls: short thick strokes following a smooth vector field on a dark ground."""
    w, h = size, round(size * 0.75)
    k = size / 384
    ground = 0.4 + 0.6 * _fractal(rng, h, w, (3, 4))[..., None]
    img = (_rgb(0.05, 0.05, 0.12) * ground).astype(np.float32)
    field = _fractal(rng, h, w, (2, 3), 3) * 4 * np.pi  # flow angle: smooth swirls
    hue = _fractal(rng, h, w, (2, 3), 3)  # palette region, so colours form patches
    palette = np.array([[0.1, 0.15, 0.55], [0.15, 0.3, 0.75], [0.85, 0.12, 0.08],
                        [0.98, 0.45, 0.05], [1.0, 0.75, 0.15], [1.0, 0.95, 0.5]], np.float32)
    for _ in range(int(2200 * k * k)):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        idx = int(np.clip(hue[int(y), int(x)] * 6 + rng.normal(0, 0.7), 0, 5))
        colour = palette[idx] * rng.uniform(0.75, 1.1)
        pts = [(x, y)]
        for _ in range(int(rng.integers(4, 9))):  # walk along the field for a curved stroke
            a = field[int(np.clip(y, 0, h - 1)), int(np.clip(x, 0, w - 1))]
            x, y = x + 4 * k * math.cos(a), y + 4 * k * math.sin(a)
            pts.append((x, y))
        line = np.array(pts, np.int32).reshape(-1, 1, 2)
        thick = int(rng.integers(3, 8) * k) or 1
        cv2.polylines(img, [line], False, tuple(map(float, colour * 0.6)), thick + 2, cv2.LINE_AA)
        cv2.polylines(img, [line], False, tuple(map(float, colour)), thick, cv2.LINE_AA)
        # A thin highlight on one edge fakes the ridge of thick paint.
        cv2.polylines(img, [line - 1], False, tuple(map(float, np.minimum(colour * 1.3 + 0.1, 1))),
                      max(thick // 3, 1), cv2.LINE_AA)
    return img


def make_style_images(folder: str | os.PathLike[str], *, size: int = 384,
                      seed: int = 0) -> list[Path]:
    """Write ``ink.jpg`` and ``embers.jpg`` (long side ``size``) into ``folder``; return paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for offset, (name, painter) in enumerate((("ink.jpg", _ink), ("embers.jpg", _embers))):
        rgb = painter(size, np.random.default_rng(seed + offset))
        bgr = cv2.cvtColor((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
        path = out / name
        if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise OSError(f"could not write {path}")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: write the sample clip and style images into a folder."""
    parser = argparse.ArgumentParser(prog="python -m vidstyle.samples", description=__doc__)
    parser.add_argument("folder", nargs="?", default="sample_videos", help="output folder")
    folder = Path(parser.parse_args(argv).folder)
    written = [make_clip(folder / "pan.mp4"), *make_style_images(folder)]
    for path in written:
        print(f"{path} ({path.stat().st_size / 1024:.1f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
