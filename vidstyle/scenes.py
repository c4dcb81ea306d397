"""Synthetic scenes whose motion is known exactly: a yardstick for steadiness.

A steadiness figure measured along an estimated optical flow shares that flow's errors: where
the flow is wrong, the render and the metric agree on the wrong place. The scenes here are
textures (photographs in the benchmark) composited back to front under known per-frame
homographies, with exact occlusion, so for any two frames the true flow and the true
non-occlusion mask follow from the geometry alone (``benchmarks/truth.py`` measures renders
along them).

Conventions, as in :mod:`vidstyle.warp`: pixel centres lie at integer coordinates; frames are
``(H, W, 3)`` uint8 RGB; a flow is ``(2, H, W)`` float32 in pixels, ``(dx, dy)``. The *backward*
flow ``t -> s`` maps pixel ``p`` of frame ``t`` to ``p + flow(p)`` in frame ``s``, so
``vidstyle.warp.warp(frame_s, flow)`` gives frame ``t``'s view of frame ``s`` (``s = t - 1``
for the temporal loss). A layer's homography maps its texture coordinates (the pixels of its
original texture) to frame coordinates.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["NEEDS", "SCENES", "Layer", "Scene", "View", "scene"]

Motion = Callable[[int], np.ndarray]
"""Frame index -> ``(3, 3)`` homography from texture coordinates to frame coordinates."""
Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)``."""


@dataclass(frozen=True)
class Layer:
    """One surface of a scene: a texture, the shape cut out of it, and how it moves.

    Attributes:
        texture: ``(h, w, 3)`` or ``(h, w)`` uint8, or float in [0, 1]. It is stretched over
            the layer's rectangle whatever its size, so a repainted copy of another size
            (:meth:`Scene.render_with`) covers the same surface.
        motion: frame index -> ``(3, 3)`` homography, layer coordinates -> frame coordinates.
        alpha: ``(h, w)`` bool, the visible shape in layer coordinates; None: the whole
            rectangle (a background or a card).
        size: ``(h, w)`` of the layer coordinates; None: the alpha's, else the texture's.
    """

    texture: np.ndarray
    motion: Motion
    alpha: np.ndarray | None = None
    size: tuple[int, int] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        if self.alpha is not None:
            return (int(self.alpha.shape[0]), int(self.alpha.shape[1]))
        return (int(self.texture.shape[0]), int(self.texture.shape[1]))


@dataclass(frozen=True)
class View:
    """What frame ``t`` shows, per pixel.

    Attributes:
        image: ``(H, W, 3)`` uint8, the rendered frame.
        layer: ``(H, W)`` int16, the index of the layer seen at the pixel centre; -1 for none.
        coords: ``(H, W, 2)`` float32, ``(x, y)`` texture coordinates of that point of the
            layer; NaN where no layer is seen.
        clean: ``(H, W)`` bool, True where the pixel shows its layer alone: no edge of any
            layer crosses its footprint, so its colour is that surface's and nothing else's.
    """

    image: np.ndarray
    layer: np.ndarray
    coords: np.ndarray
    clean: np.ndarray


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def _rotate_scale(degrees: float, scale: float = 1.0) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)) * scale, math.sin(math.radians(degrees)) * scale
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _project(h: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 2)`` points through homography ``h``: ``((N, 2) points, (N,) homogeneous w)``."""
    w = h[2, 0] * xy[:, 0] + h[2, 1] * xy[:, 1] + h[2, 2]
    x = (h[0, 0] * xy[:, 0] + h[0, 1] * xy[:, 1] + h[0, 2]) / w
    y = (h[1, 0] * xy[:, 0] + h[1, 1] * xy[:, 1] + h[1, 2]) / w
    return np.stack((x, y), 1), w


def _stretch(texture: tuple[int, int], layer: tuple[int, int]) -> np.ndarray:
    """Texture pixel coordinates -> layer coordinates, for a texture of another size."""
    sy, sx = layer[0] / texture[0], layer[1] / texture[1]
    # Pixel edges (-0.5 and n - 0.5) meet, not pixel centres.
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def _as_float(texture: np.ndarray) -> np.ndarray:
    if texture.ndim == 2:
        texture = np.repeat(texture[..., None], 3, axis=2)
    if texture.ndim != 3 or texture.shape[2] != 3:
        raise ValueError(f"a texture must be (h, w, 3) or (h, w), got {texture.shape}")
    if texture.dtype == np.uint8:
        return texture.astype(np.float32) / 255.0
    return np.clip(texture.astype(np.float32), 0.0, 1.0)


class Scene:
    """Layers composited back to front (the first is the farthest) over ``frames`` frames.

    Each frame is rendered ``supersample`` times larger in each direction with hard alpha
    edges and bilinear textures, then box-filtered down: edges are anti-aliased, and a pixel
    is *clean* when all its subpixels see the same layer. ``supersample`` must be odd, so
    that one subpixel sits on the pixel centre and names the layer seen there.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        *,
        width: int,
        height: int,
        frames: int,
        supersample: int = 3,
    ) -> None:
        if width < 2 or height < 2 or frames < 1:
            raise ValueError(f"need width, height >= 2 and frames >= 1, got "
                             f"{width}x{height}, {frames} frames")
        if supersample < 1 or supersample % 2 == 0:
            raise ValueError(f"supersample must be an odd number >= 1, got {supersample}")
        if not layers:
            raise ValueError("a scene needs at least one layer")
        self.layers = tuple(layers)
        self.width, self.height, self.frames = width, height, frames
        self.supersample = supersample
        self._alphas: list[np.ndarray] = []
        for i, layer in enumerate(self.layers):
            shape = layer.shape
            alpha = np.ones(shape, bool) if layer.alpha is None else layer.alpha
            if alpha.shape != shape:
                raise ValueError(f"layer {i}: alpha is {alpha.shape}, expected {shape}")
            self._alphas.append(alpha.astype(np.uint8))
        self._textures = [self._prefilter(i) for i in range(len(self.layers))]
        self._labels: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def homography(self, index: int, t: int) -> np.ndarray:
        """Layer ``index``'s ``(3, 3)`` float64 homography at frame ``t``."""
        h = np.asarray(self.layers[index].motion(t), np.float64)
        if h.shape != (3, 3):
            raise ValueError(f"layer {index}'s motion gave {h.shape} at frame {t}, expected (3, 3)")
        return h

    def scale(self, index: int) -> float:
        """Median over the frames of layer ``index``'s size on screen: frame pixels per
        texture pixel at its centre (the size at which to repaint its texture)."""
        return float(np.median([self._local_scale(index, t) for t in range(self.frames)]))

    def _local_scale(self, index: int, t: int) -> float:
        h, w = self.layers[index].shape
        c = np.array([[(w - 1) / 2, (h - 1) / 2]])
        pts, _ = _project(self.homography(index, t), np.concatenate((c, c + [1, 0], c + [0, 1])))
        jac = np.stack((pts[1] - pts[0], pts[2] - pts[0]))
        return math.sqrt(abs(float(np.linalg.det(jac))))

    def _prefilter(self, index: int) -> np.ndarray:
        """The texture, shrunk (area filter) where even the supersampled frame shows it smaller
        than it is, so bilinear sampling does not alias."""
        texture = _as_float(self.layers[index].texture)
        largest = max(self._local_scale(index, t) for t in range(self.frames))
        # Texture pixels per layer pixel at the largest size on the supersampled canvas.
        th, tw = texture.shape[:2]
        lh, lw = self.layers[index].shape
        shrink = largest * self.supersample * max(lh / th, lw / tw) * 1.5
        if shrink >= 1:
            return texture
        size = (max(2, round(tw * shrink)), max(2, round(th * shrink)))
        return cv2.resize(texture, size, interpolation=cv2.INTER_AREA)

    def _render(self, t: int, colours: bool) -> tuple[np.ndarray | None, np.ndarray]:
        """``(supersampled RGB float32 or None, supersampled layer labels int16)``."""
        if not 0 <= t < self.frames:
            raise ValueError(f"frame {t} is outside 0..{self.frames - 1}")
        k = self.supersample
        # Frame coordinate x is supersampled coordinate k x + (k - 1) / 2 (pixel centres).
        up = np.array([[k, 0.0, (k - 1) / 2], [0.0, k, (k - 1) / 2], [0.0, 0.0, 1.0]])
        size = (self.width * k, self.height * k)
        labels = np.full(size[::-1], -1, np.int16)
        canvas = np.zeros((*size[::-1], 3), np.float32) if colours else None
        for i, layer in enumerate(self.layers):
            h = up @ self.homography(i, t)
            cover = cv2.warpPerspective(self._alphas[i], h, size, flags=cv2.INTER_NEAREST,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
            labels[cover] = i
            if canvas is not None:
                texture = self._textures[i]
                colour = cv2.warpPerspective(
                    texture, h @ _stretch(texture.shape[:2], layer.shape), size,
                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
                )
                canvas[cover] = colour[cover]
        return canvas, labels

    def _visibility(
        self, t: int, labels: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(layer (H, W) int16, clean (H, W) bool)`` of frame ``t``, cached."""
        if t not in self._labels:
            if labels is None:
                labels = self._render(t, colours=False)[1]
            k = self.supersample
            centre = labels[k // 2::k, k // 2::k]
            blocks = labels.reshape(self.height, k, self.width, k)
            clean = (blocks == centre[:, None, :, None]).all(axis=(1, 3)) & (centre >= 0)
            self._labels[t] = (np.ascontiguousarray(centre), clean)
        return self._labels[t]

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as ``(H, W, 3)`` uint8 RGB."""
        return self.view(t).image

    def view(self, t: int) -> View:
        """Frame ``t`` with, per pixel, the layer seen and its texture coordinates."""
        canvas, labels = self._render(t, colours=True)
        assert canvas is not None
        image = cv2.resize(canvas, (self.width, self.height), interpolation=cv2.INTER_AREA)
        image = np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
        layer, clean = self._visibility(t, labels)
        coords = np.full((self.height, self.width, 2), np.nan, np.float32)
        points = self._points()
        for i in np.unique(layer[layer >= 0]):
            sel = layer.ravel() == i
            xy, _ = _project(np.linalg.inv(self.homography(int(i), t)), points[sel])
            coords.reshape(-1, 2)[sel] = xy
        return View(image=image, layer=layer, coords=coords, clean=clean)

    def _points(self) -> np.ndarray:
        ys, xs = np.mgrid[0:self.height, 0:self.width]
        return np.stack((xs.ravel(), ys.ravel()), 1).astype(np.float64)

    def _targets(self, t: int, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Where each pixel's surface point of frame ``t`` lies in frame ``s``:
        ``((H*W, 2) float64 positions, (H*W,) bool valid)``."""
        layer = self._visibility(t)[0].ravel()
        self._visibility(s)  # checks s
        points = self._points()
        target = points.copy()
        valid = layer >= 0
        for i in np.unique(layer[valid]):
            sel = layer == i
            h_t, h_s = self.homography(int(i), t), self.homography(int(i), s)
            if np.array_equal(h_t, h_s):
                continue  # exactly still: exactly zero flow
            xy, w = _project(h_s @ np.linalg.inv(h_t), points[sel])
            target[sel] = np.where((w > 0)[:, None], xy, points[sel])
            valid[np.flatnonzero(sel)[w <= 0]] = False  # behind the camera: no image in s
        return target, valid

    def flow(self, t: int, s: int) -> np.ndarray:
        """The true backward flow ``t -> s``, ``(2, H, W)`` float32 pixels ``(dx, dy)``: pixel
        ``p`` of frame ``t`` shows the surface point that frame ``s`` shows at
        ``p + flow(p)`` (if visible there). 0 where frame ``t`` shows no layer."""
        target, valid = self._targets(t, s)
        flow = np.where(valid[:, None], target - self._points(), 0.0)
        return flow.T.reshape(2, self.height, self.width).astype(np.float32)

    def mask(self, t: int, s: int) -> np.ndarray:
        """The true non-occlusion mask of the pair, ``(H, W)`` bool: True where pixel ``p`` of
        frame ``t`` is clean and its surface point is seen in frame ``s`` as the same layer,
        inside the frame, with all four pixels that bilinear sampling at ``p + flow(p)`` reads
        clean and of that layer (so an anti-aliased edge never counts as visible)."""
        target, valid = self._targets(t, s)
        layer_t, clean_t = self._visibility(t)
        layer_s, clean_s = self._visibility(s)
        x, y = target[:, 0], target[:, 1]
        ok = valid & clean_t.ravel()
        ok &= (x >= 0) & (x <= self.width - 1) & (y >= 0) & (y <= self.height - 1)
        x0 = np.floor(np.where(ok, x, 0)).astype(np.int64)
        y0 = np.floor(np.where(ok, y, 0)).astype(np.int64)
        want = layer_t.ravel()
        for dy in (0, 1):
            for dx in (0, 1):
                xi = np.minimum(x0 + dx, self.width - 1)
                yi = np.minimum(y0 + dy, self.height - 1)
                ok &= (layer_s[yi, xi] == want) & clean_s[yi, xi]
        return ok.reshape(self.height, self.width)

    def render_with(self, textures: Sequence[np.ndarray]) -> Scene:
        """The same scene (motion, shapes, occlusion) with other textures, one per layer, of
        any size: each is stretched over its layer's rectangle. Flows and masks are shared."""
        if len(textures) != len(self.layers):
            raise ValueError(
                f"need {len(self.layers)} textures, one per layer, got {len(textures)}"
            )
        layers = [Layer(texture=tex, motion=old.motion, alpha=old.alpha, size=old.shape)
                  for tex, old in zip(textures, self.layers)]
        other = Scene(layers, width=self.width, height=self.height, frames=self.frames,
                      supersample=self.supersample)
        other._labels = self._labels  # same shapes under the same motion: same visibility
        return other


# -- the five scenes ----------------------------------------------------------------------------
# Speeds are per frame and scale with the width (given for 320 px), so a longer clip moves
# farther, not faster.

SCENES = ("slow_pan", "fast_cutouts", "strong_zoom", "parallax", "fixed_camera")
NEEDS = {"slow_pan": 1, "fast_cutouts": 3, "strong_zoom": 1, "parallax": 3, "fixed_camera": 2}
"""Textures each scene takes, farthest layer first."""


def _camera(width: int, height: int, pan: tuple[float, float], roll: float,
            zoom: float) -> np.ndarray:
    """Frame -> world homography of a camera turned by ``roll`` degrees and zoomed in by
    ``zoom`` about the frame centre, then moved by ``pan`` (world = frame 0's coordinates)."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    return (_translate(cx + pan[0], cy + pan[1]) @ _rotate_scale(roll, 1 / zoom)
            @ _translate(-cx, -cy))


def _fit(box: Box, shape: tuple[int, int]) -> np.ndarray:
    """Layer -> world homography that scales the layer (aspect kept) to cover ``box``
    ``(x0, y0, x1, y1)``, centred on it."""
    x0, y0, x1, y1 = box
    h, w = shape
    s = max((x1 - x0) / w, (y1 - y0) / h) * 1.02
    return _translate((x0 + x1) / 2, (y0 + y1) / 2) @ _rotate_scale(0, s) @ _translate(
        -(w - 1) / 2, -(h - 1) / 2)


def _footprint(cameras: Sequence[np.ndarray], width: int, height: int) -> Box:
    """Bounding box in world coordinates of every frame, with a pixel of margin."""
    corners = np.array([[-1.5, -1.5], [width + 0.5, -1.5], [-1.5, height + 0.5],
                        [width + 0.5, height + 0.5]])
    pts = np.concatenate([_project(c, corners)[0] for c in cameras])
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    return (float(x0), float(y0), float(x1), float(y1))


def _moving(cameras: Sequence[np.ndarray], place: np.ndarray) -> Motion:
    """The motion of a surface fixed in the world at ``place``, seen by ``cameras``."""
    return lambda t: np.linalg.inv(cameras[t]) @ place


def _background(texture: np.ndarray, cameras: Sequence[np.ndarray], width: int,
                height: int) -> Layer:
    place = _fit(_footprint(cameras, width, height), texture.shape[:2])
    return Layer(texture=texture, motion=_moving(cameras, place))


def _blob(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """An irregular star-shaped cut-out filling most of a ``shape`` rectangle (bool)."""
    h, w = shape
    theta = np.linspace(0, 2 * math.pi, 256, endpoint=False)
    rho = np.ones_like(theta)
    for k in range(2, 7):
        rho += rng.uniform(0.03, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    rho *= 0.47 / rho.max()
    poly = np.stack(((w - 1) / 2 + w * rho * np.cos(theta),
                     (h - 1) / 2 + h * rho * np.sin(theta)), 1)
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.rint(poly).astype(np.int32)], 1)
    return mask > 0


def _band(shape: tuple[int, int], place: np.ndarray, top: float, bumps: float, wavelength: float,
          rng: np.random.Generator) -> np.ndarray:
    """The part of a layer below an irregular skyline at world height ``top`` +- ``bumps``."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    world, _ = _project(place, np.stack((xs.ravel(), ys.ravel()), 1).astype(np.float64))
    x = world[:, 0]
    edge = np.full_like(x, top)
    for octave in range(3):
        phase = rng.uniform(0, 2 * math.pi)
        edge += bumps * 0.55**octave * np.sin(2 * math.pi * x * 2**octave / wavelength + phase)
    return (world[:, 1] >= edge).reshape(h, w)


def _object(texture: np.ndarray, size: float, pose: Callable[[int], np.ndarray],
            alpha: np.ndarray | None = None) -> Layer:
    """A layer ``size`` frame pixels across its longer side, placed by ``pose(t)`` (its
    centre at the origin)."""
    h, w = texture.shape[:2]
    place = _rotate_scale(0, size / max(h, w)) @ _translate(-(w - 1) / 2, -(h - 1) / 2)
    return Layer(texture=texture, motion=lambda t: pose(t) @ place, alpha=alpha)


def scene(
    name: str,
    textures: Sequence[np.ndarray],
    *,
    width: int = 320,
    height: int = 180,
    frames: int = 32,
    seed: int = 0,
) -> Scene:
    """One of :data:`SCENES`, built from ``textures`` (:data:`NEEDS` of them, farthest first):

    * ``slow_pan``: a camera panning about 1.5 px per frame with a slight roll and zoom;
    * ``fast_cutouts``: two irregular cut-outs crossing a panning background fast (5-7 px
      per frame, turning), passing over each other;
    * ``strong_zoom``: zooming in 2.5 % per frame while rotating 0.8 degrees per frame;
    * ``parallax``: three layers (far, middle, near, the last two with irregular skylines)
      moving at about 0.8, 2.5 and 5 px per frame, with a vertical bob growing with nearness;
    * ``fixed_camera``: a still background and one card moving, turning and tilting in depth.

    ``seed`` draws the cut-out shapes and skylines. Frames are ``(height, width, 3)``.
    """
    if name not in NEEDS:
        close = difflib.get_close_matches(name, SCENES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown scene {name!r}{hint} (choose from {', '.join(SCENES)})")
    if len(textures) != NEEDS[name]:
        raise ValueError(f"scene {name!r} takes {NEEDS[name]} textures (farthest first), "
                         f"got {len(textures)}")
    rng = np.random.default_rng(seed)
    u = width / 320
    n, w, h = frames, width, height
    layers: list[Layer]
    if name == "slow_pan":
        cams = [_camera(w, h, (1.5 * u * t, 0.3 * u * t), 1.5 * math.sin(2 * math.pi * t / 48),
                        1 + 0.004 * t) for t in range(n)]
        layers = [_background(textures[0], cams, w, h)]
    elif name == "strong_zoom":
        cams = [_camera(w, h, (0.5 * u * t, -0.2 * u * t), 0.8 * t, 1.025**t) for t in range(n)]
        layers = [_background(textures[0], cams, w, h)]
    elif name == "fast_cutouts":
        cams = [_camera(w, h, (3 * u * t, 0.0), 0.0, 1.0) for t in range(n)]
        mid = (n - 1) / 2

        def cutout_a(t: int) -> np.ndarray:
            x, y = w / 2 + 7 * u * (t - mid), h * (0.55 + 0.1 * math.sin(t / 5))
            return _translate(x, y) @ _rotate_scale(1.2 * t)

        def cutout_b(t: int) -> np.ndarray:
            x, y = w / 2 - 5 * u * (t - mid), h * 0.45 + 1.5 * u * (t - mid)
            return _translate(x, y) @ _rotate_scale(-0.8 * t + 20)

        layers = [_background(textures[0], cams, w, h),
                  _object(textures[1], 0.55 * h, cutout_a, _blob(textures[1].shape[:2], rng)),
                  _object(textures[2], 0.5 * h, cutout_b, _blob(textures[2].shape[:2], rng))]
    elif name == "parallax":
        layers = []
        for depth, (speed, bob, top, bumps, wave) in enumerate(
            ((0.8, 0.3, 0.0, 0.0, 1.0), (2.5, 1.0, 0.4, 0.12, 0.9), (5.0, 2.0, 0.72, 0.08, 0.4))
        ):
            cams = [_camera(w, h, (speed * u * t, bob * 2 * u * math.sin(2 * math.pi * t / 16)),
                            0.0, 1.0) for t in range(n)]
            x0, y0, x1, y1 = _footprint(cams, w, h)
            shape = textures[depth].shape[:2]
            if depth == 0:
                layers.append(_background(textures[0], cams, w, h))
                continue
            place = _fit((x0, top * h - 2 * bumps * h, x1, y1), shape)
            alpha = _band(shape, place, top * h, bumps * h, wave * w, rng)
            layers.append(Layer(texture=textures[depth], alpha=alpha,
                                motion=_moving(cams, place)))
    else:  # fixed_camera
        still = [np.eye(3)] * n

        def card(t: int) -> np.ndarray:
            x, y = w * 0.3 + 3 * u * t, h * (0.5 + 0.15 * math.sin(2 * math.pi * t / 32))
            # A turn in depth: the projective row tilts the card about its vertical axis.
            tilt = np.eye(3)
            tilt[2, 0] = 0.0015 / u * math.sin(2 * math.pi * t / 24)
            return _translate(x, y) @ _rotate_scale(0.5 * t - 8) @ tilt

        layers = [_background(textures[0], still, w, h), _object(textures[1], 0.4 * w, card)]
    return Scene(layers, width=width, height=height, frames=frames)
