"""Steadiness along the true motion: renders measured on scenes whose motion is known exactly.

    pip install -e ".[bench]"                # scikit-image: the photographs
    python benchmarks/truth.py --scenes all --style sample_videos/ink.jpg --out DIR
    python benchmarks/truth.py --scenes parallax,fixed_camera --style sample_videos/ink.jpg \\
        --style sample_videos/embers.jpg --modes all --frames 16 --keep --out DIR

Every other steadiness figure is measured along OpenCV DIS flow (the medium preset), the
family of estimator the render itself uses, so it cannot see all of the render's flow errors:
where the flow is wrong, the painting and the metric agree on the wrong place. Here the clips
are the five scenes of :mod:`vidstyle.scenes`, built from scikit-image's photographs (a pan
with roll and zoom; two cut-outs crossing a panning background fast; a strong zoom with
rotation; three layers in parallax; a still background with a moving card), 320x180 and 32
frames by default, and the warping error of Lai et al. (2018) is measured along their *true*
flow and non-occlusion mask:

    E = mean over pairs (t, s) of sum_i M_i |O_t(i) - W(O_s)(i)|^2 / sum_i M_i

(RGB in [0, 1]; W warps frame s onto frame t along the true backward flow t -> s; M is 1 where
the surface point is visible, as the same surface, in both frames and away from any
anti-aliased edge). Each figure is that error over the input's own error along the same flow
and mask: the flicker ratio for s = t - 1, the 10-frame ratio for s = t - 10.

Beside the renders (``--modes``, those of benchmarks/temporal.py: ``default``, the library's
defaults; ``per-frame``, ``--temporal-weight 0``; ``short-term``, ``--long-term 1``;
``multi-pass``; ``previous defaults``, before the tuning along the true motion) stands the
*ideal painting*:
each scene's photographs stylized once by the same optimizer (the first frame's settings, each
photo at the size it appears on screen) and re-rendered under the same motion, strokes glued to
the surfaces. It is the honest floor for a style: sharper strokes than the input's cost
interpolation error under sub-pixel motion, so no stylization scores 1.0. The ideal painting is
encoded like a render (the pipeline's H.264, CRF 18, yuv420p) so both are measured the same
way; the ``ideal, unencoded`` column measures its frames before encoding, which separates the
codec's share of the floor (the half-resolution chroma of yuv420p does not move with sharp,
colourful strokes under an odd-pixel shift) from the interpolation's. The last columns measure
the same videos along DIS medium flow (:func:`vidstyle.metrics.measure`), as every other
benchmark does, and the end-point error against the truth of the render's flow and of DIS
medium.

``--out DIR`` keeps each scene's video (``<scene>.mp4``, near-lossless), its true flows and masks
for consecutive pairs and pairs 10 apart (``<scene>.truth.npz``: ``pairs`` (P, 2) as (t, s),
``flows`` (P, 2, H, W) float32 pixels (dx, dy), ``masks`` (P, H, W) bool), the ideal paintings
(``<scene>.<style>.ideal.mp4``, and their painted textures ``<scene>.<style>.ideal.<layer>.png``)
and every figure (``results.json``); ``--keep`` keeps the renders there too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch
from temporal import MODES, _config

from vidstyle.config import FlowConfig, OptimConfig, StyleConfig
from vidstyle.features import load_backbone
from vidstyle.flow import flow_pair, make_flow
from vidstyle.io import VideoWriter, iter_frames
from vidstyle.io.encode import chroma_blocks
from vidstyle.io.images import load_image, to_image, to_tensor, write_png
from vidstyle.metrics import measure
from vidstyle.optimize import FrameStylizer
from vidstyle.pipeline import render
from vidstyle.scenes import SCENES, Scene, scene
from vidstyle.warp import warp

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "sample_videos" / "ink.jpg"

GAPS = (1, 10)
# The render's default flow, whose end-point error the table reports beside DIS medium's.
FLOW = FlowConfig().flow
UNENCODED = "ideal, unencoded"
RATE = Fraction(24)
# Grey photographs used as textures are tinted, so that every layer has colour to lose.
TINTS = {"grass": (0.55, 0.85, 0.4), "brick": (0.95, 0.55, 0.4)}
# Photographs per scene, farthest layer first, picked for detail at 320x180.
PHOTOS = {
    "slow_pan": ("coffee",),
    "fast_cutouts": ("rocket", "chelsea", "astronaut"),
    "strong_zoom": ("astronaut",),
    "parallax": ("rocket", "grass", "brick"),
    "fixed_camera": ("coffee", "chelsea"),
}


def photos(name: str) -> list[np.ndarray]:
    """The textures of scene ``name``, ``(h, w, 3)`` uint8, from ``skimage.data``."""
    from skimage import data

    out = []
    for photo in PHOTOS[name]:
        image = getattr(data, photo)()
        if image.ndim == 2:
            tint = np.array(TINTS.get(photo, (1.0, 1.0, 1.0)), np.float32)
            image = np.rint(image[..., None] * tint).astype(np.uint8)
        out.append(np.ascontiguousarray(image[..., :3]))
    return out


@dataclasses.dataclass(frozen=True)
class Truth:
    """True flows and masks of a scene's pairs ``(t, s)`` (see :mod:`vidstyle.scenes`)."""

    pairs: np.ndarray
    """``(P, 2)`` int: ``(t, s)``."""
    flows: np.ndarray
    """``(P, 2, H, W)`` float32: backward flow ``t -> s`` in pixels ``(dx, dy)``."""
    masks: np.ndarray
    """``(P, H, W)`` bool: the surface point is seen in both frames."""

    @classmethod
    def of(cls, sc: Scene, gaps: Sequence[int] = GAPS) -> Truth:
        pairs = [(t, t - g) for g in gaps for t in range(g, sc.frames)]
        return cls(
            pairs=np.array(pairs, np.int64).reshape(-1, 2),
            flows=np.stack([sc.flow(t, s) for t, s in pairs]) if pairs else np.zeros(0),
            masks=np.stack([sc.mask(t, s) for t, s in pairs]) if pairs else np.zeros(0),
        )

    def save(self, path: Path) -> None:
        np.savez_compressed(path, pairs=self.pairs, flows=self.flows, masks=self.masks)

    @classmethod
    def load(cls, path: Path) -> Truth:
        with np.load(path) as f:
            return cls(pairs=f["pairs"], flows=f["flows"], masks=f["masks"])

    def of_gap(self, gap: int) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """``(t, s, flow, mask)`` of each pair ``gap`` frames apart."""
        for (t, s), flow, mask in zip(self.pairs, self.flows, self.masks):
            if t - s == gap:
                yield int(t), int(s), flow, mask


def true_errors(frames: Sequence[np.ndarray], truth: Truth, gap: int) -> list[float]:
    """Lai et al.'s warping error of each pair ``gap`` apart, along the true flow and mask.

    ``frames``: the video, ``(H, W, 3)`` uint8 each, frame ``t`` of the scene at index ``t``.
    """
    errors = []
    if frames and frames[0].shape[:2] != truth.masks.shape[1:]:
        raise ValueError(f"frames are {frames[0].shape[1]}x{frames[0].shape[0]}, the truth "
                         f"{truth.masks.shape[2]}x{truth.masks.shape[1]}")
    with torch.no_grad():
        for t, s, flow, mask in truth.of_gap(gap):
            if t >= len(frames):
                continue
            now, then = (to_tensor(frames[i], torch.device("cpu")) for i in (t, s))
            diff = (warp(then, torch.from_numpy(flow)[None]) - now).square().sum(1)[0]
            m = torch.from_numpy(mask).float()
            errors.append(float((diff * m).sum() / m.sum().clamp_min(1.0)))
    return errors


def mean_errors(frames: Sequence[np.ndarray], truth: Truth) -> dict[int, float]:
    """``{gap: mean warping error over the pairs gap apart}`` along the true motion."""
    errors = {gap: true_errors(frames, truth, gap) for gap in GAPS}
    return {gap: float(np.mean(e)) for gap, e in errors.items() if e}


def ratios(output: dict[int, float], source: dict[int, float]) -> dict[int, float]:
    """``{gap: output error / source error}``: 1.0 is as steady as the input."""
    return {gap: output[gap] / max(source[gap], 1e-12) for gap in output if gap in source}


def read(path: Path) -> list[np.ndarray]:
    return [f.image for f in iter_frames(path)]


def write(path: Path, frames: Iterator[np.ndarray] | Sequence[np.ndarray], width: int,
          height: int, crf: int = 18) -> Path:
    with VideoWriter(path, width=width, height=height, rate=RATE, time_base=1 / RATE,
                     crf=crf) as writer:
        for i, image in enumerate(frames):
            writer.write(image, i / float(RATE))
    return path


def build(name: str, folder: Path, *, width: int, height: int, frames: int
          ) -> tuple[Scene, Path, Truth]:
    """Scene ``name`` from photographs, its video (near-lossless) and its truth, in ``folder``."""
    sc = scene(name, photos(name), width=width, height=height, frames=frames)
    # CRF 10: the render must see the scene, not the encoder's blocks.
    video = write(folder / f"{name}.mp4", (sc.frame(t) for t in range(frames)), width, height,
                  crf=10)
    truth = Truth.of(sc)
    truth.save(folder / f"{name}.truth.npz")
    return sc, video, truth


def paint(sc: Scene, style: Path, device: torch.device) -> list[np.ndarray]:
    """The textures of the ideal painting of ``sc``, ``(h, w, 3)`` uint8 each: every texture
    stylized once, as the render stylizes its first frame (default settings,
    ``first_iterations``, strokes sized for the frame), at the size it appears on screen."""
    style_cfg, optim_cfg = StyleConfig(), OptimConfig()
    backbone = load_backbone(style_cfg.backbone, device=device, weights_file=style_cfg.weights)
    # Built as vidstyle.pipeline.render builds it: the style's strokes sized for the frame.
    stylizer = FrameStylizer(backbone, [load_image(style).to(device)], style=style_cfg,
                             optim=optim_cfg, frame_size=(sc.height, sc.width),
                             blend=style_cfg.style_blend, chroma=chroma_blocks("h264"))
    painted = []
    for i, layer in enumerate(sc.layers):
        h, w = layer.shape
        scale = sc.scale(i)
        texture = cv2.resize(np.asarray(layer.texture), (max(16, round(w * scale)),
                             max(16, round(h * scale))), interpolation=cv2.INTER_AREA)
        content = to_tensor(texture, device)
        out, _ = stylizer.stylize(content, content, iterations=optim_cfg.first_iterations)
        painted.append(to_image(out))
    return painted


def flow_epe(source: Sequence[np.ndarray], truth: Truth, method: str) -> float:
    """Mean end-point error (px) of the flow ``method`` (as the render computes it, both
    directions) against the truth: consecutive pairs, pixels the true mask keeps."""
    estimator = make_flow(method)
    errors = []
    for t, s, flow, mask in truth.of_gap(1):
        est = flow_pair(estimator, source[s], source[t])[0][0].numpy()
        errors.append(float(np.linalg.norm(est - flow, axis=0)[mask].mean()))
    return float(np.mean(errors))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _cell(true: dict[int, float]) -> str:
    return " / ".join(f"{true[g]:.2f}" if g in true else "-" for g in GAPS)


def _along_dis(source: Path, video: Path, style: Path | None = None) -> dict:
    """The same video measured along DIS flow and Ruder's mask, as every other benchmark:
    ``{"ratio" | "error" | "input_error": {gap: value}}``, and with ``style`` its style loss
    ratio (``"style_loss_ratio"``, every 4th frame)."""
    report = measure(source, video, long_range=10, style=style, every=4)
    out: dict = {"ratio": {1: report.flicker_ratio}, "error": {1: report.warping_error_output},
                 "input_error": {1: report.warping_error_input}}
    if style is not None:
        out["style_loss_ratio"] = report.style_loss_ratio
    long, long_in = report.long_range_error_output, report.long_range_error_input
    if report.long_range_ratio is not None and long is not None and long_in is not None:
        out["ratio"][10], out["error"][10], out["input_error"][10] = (
            report.long_range_ratio, long, long_in)
    return out


def _measured(path: Path, video: Path, truth: Truth, input_error: dict[int, float],
              style: Path | None = None) -> dict:
    """Figures of the video at ``path`` (a rendering of the scene video ``video``; with
    ``style``, its style loss ratio too)."""
    errors = mean_errors(read(path), truth)
    return {"true": ratios(errors, input_error), "true_error": errors,
            "dis": _along_dis(video, path, style)}


def table(
    scenes: Sequence[str],
    styles: Sequence[Path],
    modes: dict[str, dict],
    *,
    frames: int = 32,
    width: int = 320,
    height: int = 180,
    size: int = 320,
    out: Path | None = None,
    keep: bool = False,
) -> list[dict]:
    """Render each scene in each mode with each style and print one row per scene and style:
    the true flicker / 10-frame ratios of each mode and of the ideal painting (encoded like a
    render, and before encoding), then the same videos measured along DIS flow, the flows'
    end-point errors, and each mode's style loss ratio and seconds per frame. Returns the
    rows (also written to ``out/results.json``)."""
    names = [*modes, "ideal painting"]
    print(f"| scene | style | {' | '.join(names)} | {UNENCODED} | "
          f"{' | '.join(f'{n} (DIS)' for n in names)} | EPE px: render's flow / DIS medium | "
          f"style loss ratio: {' / '.join(modes)} | s/frame: {' / '.join(modes)} |\n"
          f"|{'---|' * (6 + 2 * len(names))}", flush=True)
    rows: list[dict] = []
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) if out is None else out
        folder.mkdir(parents=True, exist_ok=True)
        built: dict[str, tuple[Scene, Path, Truth, list[np.ndarray], tuple[float, float]]] = {}
        for style in styles:
            for name in scenes:
                if name not in built:
                    sc, video, truth = build(name, folder, width=width, height=height,
                                             frames=frames)
                    source = read(video)
                    epes = (flow_epe(source, truth, FLOW), flow_epe(source, truth, "dis-medium"))
                    built[name] = (sc, video, truth, source, epes)
                sc, video, truth, source, epe = built[name]
                row: dict = {"scene": name, "style": style.name, "frames": frames,
                             "size": [width, height], "render_flow": FLOW,
                             "render_flow_epe_px": epe[0], "dis_medium_epe_px": epe[1],
                             "input_error": mean_errors(source, truth), "modes": {}}
                for mode, change in modes.items():
                    path = folder / f"{name}.{style.stem}.{mode}.mp4"
                    began = time.perf_counter()
                    render(_config(video, path, frames, size, change, style))
                    seconds = time.perf_counter() - began
                    row["modes"][mode] = {
                        **_measured(path, video, truth, row["input_error"], style),
                        "s_per_frame": seconds / frames}
                    if not keep:
                        path.unlink()
                painted = paint(sc, style, device)
                for i, texture in enumerate(painted):
                    write_png(folder / f"{name}.{style.stem}.ideal.{i}.png", texture)
                moved = sc.render_with(painted)
                raw = [moved.frame(t) for t in range(frames)]
                path = write(folder / f"{name}.{style.stem}.ideal.mp4", raw, width, height)
                row["modes"]["ideal painting"] = _measured(path, video, truth, row["input_error"])
                errors = mean_errors(raw, truth)
                row["modes"][UNENCODED] = {"true": ratios(errors, row["input_error"]),
                                           "true_error": errors}
                rows.append(row)
                results = row["modes"].values()
                rendered = [row["modes"][m] for m in modes]
                losses = " / ".join(_number(r["dis"].get("style_loss_ratio")) for r in rendered)
                times = " / ".join(f"{r['s_per_frame']:.2f}" for r in rendered)
                print(f"| {name} | {style.stem} | {' | '.join(_cell(r['true']) for r in results)} "
                      f"| {' | '.join(_cell(r['dis']['ratio']) for r in results if 'dis' in r)} "
                      f"| {epe[0]:.2f} / {epe[1]:.2f} "
                      f"| {losses} | {times} |", flush=True)
                if out is not None:
                    (out / "results.json").write_text(json.dumps(rows, indent=1))
    return rows


def _names(value: str, choices: Sequence[str], what: str) -> list[str]:
    names = list(choices) if value == "all" else value.split(",")
    unknown = [n for n in names if n not in choices]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown[0]!r}; choose from {', '.join(choices)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", default="all",
                        help=f"comma-separated, or all (default): {', '.join(SCENES)}")
    parser.add_argument("--style", type=Path, action="append", default=[],
                        help="a style image (repeatable; default sample_videos/ink.jpg)")
    parser.add_argument("--styles", default="", help="style images, comma-separated")
    parser.add_argument("--modes", default="default,per-frame",
                        help=f"comma-separated, or all: {', '.join(MODES)} (default: "
                        "default,per-frame)")
    parser.add_argument("--frames", type=int, default=32, help="frames per scene (default 32)")
    parser.add_argument("--width", type=int, default=320, help="scene width (default 320)")
    parser.add_argument("--height", type=int, default=180, help="scene height (default 180)")
    parser.add_argument("--size", type=int, default=320, help="--max-side (default 320)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="keep the scenes, truths, ideal paintings and results.json in DIR "
                        "(default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the renders in --out too")
    args = parser.parse_args(argv)
    if args.keep and args.out is None:
        parser.error("--keep needs --out DIR")
    styles = [*args.style, *(Path(p) for p in args.styles.split(",") if p)] or [STYLE]
    modes = {m: MODES[m] for m in _names(args.modes, tuple(MODES), "mode")}
    table(_names(args.scenes, SCENES, "scene"), styles, modes, frames=args.frames,
          width=args.width, height=args.height, size=args.size, out=args.out, keep=args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
