"""Synthetic scenes with known motion: the true flow and mask agree with the rendered frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vidstyle.scenes import NEEDS, SCENES, Layer, Scene, scene
from vidstyle.warp import warp

W, H, N = 96, 54, 12


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth random colours (few cells): bilinear interpolation error stays small."""
    rng = np.random.default_rng(seed)
    cells = rng.random((5, 7, 3)).astype(np.float32)
    return np.rint(cv2.resize(cells, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255
                   ).astype(np.uint8)


def _textures(name: str) -> list[np.ndarray]:
    return [_texture(120 + 10 * i, 160 - 10 * i, i) for i in range(NEEDS[name])]


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def _translation(dx: float, dy: float) -> Layer:
    def motion(t: int) -> np.ndarray:
        return np.array([[1.0, 0, -20 + dx * t], [0, 1.0, -20 + dy * t], [0, 0, 1.0]])

    return Layer(texture=_texture(H + 60, W + 60, 9), motion=motion)


@pytest.fixture(scope="module", params=SCENES)
def each(request: pytest.FixtureRequest) -> Scene:
    return scene(request.param, _textures(request.param), width=W, height=H, frames=N)


def test_shapes_and_dtypes(each: Scene) -> None:
    view = each.view(3)
    assert view.image.shape == (H, W, 3) and view.image.dtype == np.uint8
    assert view.layer.shape == (H, W) and view.layer.dtype == np.int16
    assert view.coords.shape == (H, W, 2) and view.coords.dtype == np.float32
    assert view.clean.shape == (H, W) and view.clean.dtype == np.bool_
    assert np.array_equal(each.frame(3), view.image)
    flow, mask = each.flow(3, 2), each.mask(3, 2)
    assert flow.shape == (2, H, W) and flow.dtype == np.float32
    assert mask.shape == (H, W) and mask.dtype == np.bool_
    assert (view.layer >= 0).all()  # backgrounds cover every frame


@pytest.mark.parametrize("gap", [1, 5])
def test_true_flow_warps_frame_s_onto_frame_t(each: Scene, gap: int) -> None:
    for t in (gap, N - 1):
        s = t - gap
        mask = torch.from_numpy(each.mask(t, s))
        assert mask.float().mean() > 0.5
        frame_t, frame_s = _tensor(each.frame(t)), _tensor(each.frame(s))
        warped = warp(frame_s, torch.from_numpy(each.flow(t, s))[None])
        err = (warped - frame_t).abs().amax(1)[0][mask]
        still = (frame_s - frame_t).abs().amax(1)[0][mask]
        assert err.mean() < 0.01 and err.max() < 0.15
        assert still.mean() > 3 * err.mean()  # the motion is real and the flow follows it


def test_static_scene_has_zero_flow_and_full_mask() -> None:
    still = Scene([_translation(0.0, 0.0)], width=W, height=H, frames=4)
    for t, s in [(1, 0), (3, 1), (2, 2)]:
        assert np.array_equal(still.flow(t, s), np.zeros((2, H, W), np.float32))
        assert still.mask(t, s).all()


def test_flow_of_a_translation_is_that_translation() -> None:
    moving = Scene([_translation(2.5, -1.25)], width=W, height=H, frames=6)
    for t, s in [(1, 0), (5, 2), (0, 4)]:
        flow = moving.flow(t, s)
        np.testing.assert_allclose(flow[0], 2.5 * (s - t), atol=1e-5)
        np.testing.assert_allclose(flow[1], -1.25 * (s - t), atol=1e-5)
    mask = moving.mask(1, 0)  # flow (-2.5, +1.25): the first columns and last row come from outside
    assert not mask[:, :2].any() and not mask[-1].any()
    assert mask[:-2, 3:].all()
    coords = moving.view(2).coords  # texture point = frame point - offset
    ys, xs = np.mgrid[0:H, 0:W]
    np.testing.assert_allclose(coords[..., 0], xs + 20 - 5.0, atol=1e-4)
    np.testing.assert_allclose(coords[..., 1], ys + 20 + 2.5, atol=1e-4)


def test_pixels_hidden_by_the_card_are_masked() -> None:
    sc = scene("fixed_camera", _textures("fixed_camera"), width=W, height=H, frames=N)
    t, s = 8, 4
    now, then = sc.view(t), sc.view(s)
    mask = sc.mask(t, s)
    behind = (now.layer == 0) & (then.layer == 1)  # background now, card over it then
    assert behind.sum() > 20
    assert not mask[behind].any()
    both = (now.layer == 0) & (then.layer == 0) & now.clean & then.clean
    # Still background seen in both frames: kept, except beside a card edge in frame s.
    assert mask[both].mean() > 0.95
    assert not sc.flow(t, s)[:, now.layer == 0].any()  # the background is still
    assert not mask[~now.clean].any()  # anti-aliased edges are never trusted


def test_render_with_keeps_motion_and_occlusion() -> None:
    sc = scene("fast_cutouts", _textures("fast_cutouts"), width=W, height=H, frames=N)
    flat = [np.full((30 + 7 * i, 40, 3), 60 * (i + 1), np.uint8) for i in range(3)]
    other = sc.render_with(flat)
    assert np.array_equal(other.mask(6, 5), sc.mask(6, 5))
    assert np.array_equal(other.flow(6, 5), sc.flow(6, 5))
    view = other.view(6)
    for i in range(3):
        inner = (view.layer == i) & view.clean
        assert inner.any() and (view.image[inner] == 60 * (i + 1)).all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="did you mean 'parallax'"):
        scene("paralax", _textures("parallax"))
    with pytest.raises(ValueError, match="takes 3 textures"):
        scene("parallax", _textures("slow_pan"))
    with pytest.raises(ValueError, match="outside"):
        Scene([_translation(1, 1)], width=W, height=H, frames=3).frame(3)
    with pytest.raises(ValueError, match="odd"):
        Scene([_translation(1, 1)], width=W, height=H, frames=3, supersample=2)
