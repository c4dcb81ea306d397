from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vidstyle.errors import UsageError, WeightsError
from vidstyle.flow import (
    DeepFlow,
    DISFlow,
    RaftFlow,
    ReferenceFlows,
    fill_rejected,
    finest_scale,
    flow_pair,
    make_flow,
    reference_flows,
    sharpen_edges,
)
from vidstyle.samples import render_scene_frame
from vidstyle.warp import occlusion_mask, warp


def _shift_pair() -> tuple[np.ndarray, np.ndarray]:
    # The "shift" scene moves exactly 2 px to the right per frame.
    prev = render_scene_frame(0, width=128, height=96, motion="shift")
    cur = render_scene_frame(1, width=128, height=96, motion="shift")
    return prev, cur


def test_dis_recovers_known_shift() -> None:
    prev, cur = _shift_pair()
    backward, forward = flow_pair(DISFlow(), prev, cur)
    assert backward.shape == forward.shape == (1, 2, 96, 128)
    inner = (..., slice(8, -8), slice(8, -8))
    assert backward[:, 0][inner].median().item() == pytest.approx(-2.0, abs=0.2)
    assert forward[:, 0][inner].median().item() == pytest.approx(2.0, abs=0.2)
    assert backward[:, 1][inner].abs().median().item() < 0.2


def test_warping_prev_by_backward_flow_gives_current() -> None:
    prev, cur = _shift_pair()
    backward, _ = flow_pair(DISFlow(), prev, cur)
    to = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    warped = warp(to(prev), backward)
    err_warped = (warped - to(cur))[..., 8:-8, 8:-8].abs().mean()
    err_plain = (to(prev) - to(cur))[..., 8:-8, 8:-8].abs().mean()
    assert err_warped < 0.25 * err_plain


@pytest.mark.parametrize("method", ["dis", "dis-coarse", "dis-medium", "deepflow"])
def test_every_cpu_estimator_recovers_known_shift(method: str) -> None:
    prev, cur = _shift_pair()
    backward, forward = flow_pair(make_flow(method), prev, cur)
    inner = (..., slice(8, -8), slice(8, -8))
    assert backward[:, 0][inner].median().item() == pytest.approx(-2.0, abs=0.2)
    assert forward[:, 0][inner].median().item() == pytest.approx(2.0, abs=0.2)


def test_make_flow_names_its_estimators() -> None:
    assert isinstance(make_flow("deepflow"), DeepFlow)
    assert make_flow("dis").preset == "fine"  # type: ignore[attr-defined]
    assert make_flow("dis-medium").preset == "medium"  # type: ignore[attr-defined]
    assert make_flow("dis-coarse").preset == "coarse"  # type: ignore[attr-defined]


def test_finest_scale_is_full_resolution_up_to_640_then_one_level_per_doubling() -> None:
    assert finest_scale(180, 320) == 0
    assert finest_scale(360, 640) == 0
    assert finest_scale(720, 1280) == 1
    assert finest_scale(1080, 1920) == 2
    assert finest_scale(2160, 3840) == 3


def _card_flows() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """A grey card (rows and columns 10..29) on a black frame moving 4 px right, with the
    card's motion spread 3 px into the background on its left in the backward flow, as DIS
    does, while the forward flow has the background still there."""
    h = w = 40
    guide = np.zeros((h, w, 3), np.uint8)
    guide[10:30, 14:34] = 160  # the current frame: the card at columns 14..33
    backward = torch.zeros(1, 2, h, w)
    forward = torch.zeros(1, 2, h, w)
    backward[:, 0, 10:30, 14:34] = -4.0  # the card, right
    backward[:, 0, 10:30, 11:14] = -4.0  # and the background beside it dragged along (wrong)
    forward[:, 0, 10:30, 10:30] = 4.0  # the previous frame: the card at columns 10..29
    return backward, forward, guide


def test_fill_replaces_only_the_pixels_that_fail_the_check() -> None:
    backward, forward, guide = _card_flows()
    keep = occlusion_mask(backward, forward)[0, 0].bool()
    assert not keep[12:28, 11:14].any(), "the dragged background fails the check"
    filled = fill_rejected(backward, forward, guide)
    assert torch.equal(filled[0][:, keep], backward[0][:, keep])
    # The rejected background takes the still background's motion, not the card's: the fill
    # does not cross the card's edge in the image.
    assert filled[0, 0, 12:28, 11:14].abs().max() < 0.5
    assert filled[0, 0, 12:28, 16:32].max() == pytest.approx(-4.0)


def test_fill_leaves_a_consistent_pair_alone() -> None:
    flow = torch.full((1, 2, 16, 16), 0.0)
    guide = np.zeros((16, 16, 3), np.uint8)
    assert fill_rejected(flow, -flow, guide) is flow


def _card_scene(card_step: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(previous, current, true backward flow)``: a textured background moving 1 px right
    per frame and a textured card over it moving ``card_step`` px right; 96x128 uint8."""
    rng = np.random.default_rng(3)
    # Smooth grey textures (noise blurred, so that the warp is well posed at the pixel
    # scale), tinted: the flow sees luma.
    def texture(h: int, w: int, tint: tuple[float, float, float]) -> np.ndarray:
        noise = cv2.GaussianBlur(rng.integers(0, 256, (h, w), dtype=np.uint8), (0, 0), 1.5)
        stretched = cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.float32)
        return np.rint(stretched[..., None] * np.array(tint, np.float32)).astype(np.uint8)

    background = texture(96, 160, (0.9, 1.0, 0.8))
    card = texture(40, 40, (1.0, 0.7, 0.5))

    def frame(t: int) -> np.ndarray:
        out = background[:, 16 - t:16 - t + 128].copy()
        x = 30 + card_step * t
        out[28:68, x:x + 40] = card
        return out

    flow = np.zeros((2, 96, 128), np.float32)
    flow[0] = -1.0  # backward: each pixel of the current frame was 1 px to the left
    flow[0, 28:68, 30 + card_step:70 + card_step] = -card_step
    return frame(0), frame(1), flow


def _tensor_image(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def test_sharpen_gives_the_pixels_beside_an_edge_their_own_side_s_motion() -> None:
    prev, cur, true = _card_scene()
    # A blurred flow, as a variational flow is across an edge: the true flow averaged over a
    # 9-px-wide window along x.
    blurred = torch.from_numpy(cv2.blur(true.transpose(1, 2, 0), (9, 1)).transpose(2, 0, 1))[None]
    sharp = sharpen_edges(blurred, _tensor_image(cur), _tensor_image(prev))
    # Beside the card's edges (it spans columns 36..75 now): inside its left edge, and on
    # both sides of its right edge. Left of the card lies what it uncovered (columns 31..35,
    # hidden in the previous frame), where no flow is right.
    edge = np.zeros((96, 128), bool)
    edge[30:66, 37:46] = edge[30:66, 66:86] = True
    before = np.abs(blurred[0, 0].numpy() - true[0])[edge].mean()
    after = np.abs(sharp[0, 0].numpy() - true[0])[edge].mean()
    assert after < 0.3 * before, (before, after)
    # Far from any change of motion nothing moves.
    assert torch.equal(sharp[..., :, 100:], blurred[..., :, 100:])


def test_sharpen_leaves_a_smooth_motion_alone() -> None:
    # A zoom: the flow changes by 0.02 px from one pixel to the next, no edge anywhere.
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    flow = (0.02 * torch.stack((xs - 32, ys - 32)))[None]
    image = torch.rand(1, 3, 64, 64)
    assert sharpen_edges(flow, image, image) is flow


def test_dis_sharpened_edges_beat_the_fill_alone() -> None:
    # Summed over several speeds of the card: DIS's error beside an edge depends on how the
    # card's motion falls on its pyramid, and a single speed can go either way by a little.
    errors = {"fill": 0.0, "sharpen": 0.0}
    for step in (4, 5, 7, 8, 10):
        prev, cur, true = _card_scene(step)
        # A few pixels on both sides of the card's edges (it spans columns left..right-1
        # now), leaving out what it uncovered (columns 31..left-1, hidden before).
        left, right = 30 + step, 70 + step
        near = np.zeros((96, 128), bool)
        near[30:66, 22:30] = near[30:66, left + 1:left + 8] = True
        near[30:66, right - 8:right + 8] = True
        for edges in errors:
            backward, _ = flow_pair(DISFlow(edges=edges), prev, cur)
            errors[edges] += np.linalg.norm(backward[0].numpy() - true, axis=0)[near].mean()
    assert errors["sharpen"] < 0.85 * errors["fill"], errors


def test_dis_rejects_unknown_edges() -> None:
    with pytest.raises(UsageError, match="did you mean 'fill'"):
        DISFlow(edges="fil")


def test_far_references_get_their_own_estimator() -> None:
    calls: list[str] = []

    def named(name: str):  # type: ignore[no-untyped-def]
        def estimate(a: np.ndarray, b: np.ndarray) -> torch.Tensor:
            calls.append(name)
            return torch.zeros(1, 2, *a.shape[:2])
        return estimate

    flows = ReferenceFlows(named("near"), named("far"))
    prev, cur = _shift_pair()
    flows.pair(prev, cur)
    flows.pair(prev, cur, 1)
    flows.pair(prev, cur, -1)  # a later neighbour, as a seam or a backward pass has
    assert calls == ["near"] * 6
    calls.clear()
    flows.pair(prev, cur, 2)
    flows.pair(prev, cur, -10)
    assert calls == ["far"] * 4


def test_reference_flows_names_both_estimators() -> None:
    mixed = reference_flows("dis", "dis-medium")
    assert mixed.near.preset == "fine" and mixed.far.preset == "medium"  # type: ignore[attr-defined]
    for far in ("same", "dis"):
        same = reference_flows("dis", far)
        assert same.far is same.near
    with pytest.raises(ValueError, match="unknown flow method"):
        reference_flows("dis", "rafts")


def test_make_flow_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match="did you mean 'raft'"):
        make_flow("rafts")


def _raft_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from torchvision.models.optical_flow import Raft_Small_Weights

    from vidstyle.hub import cache_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return cache_path(Raft_Small_Weights.DEFAULT)


def test_raft_offline_error_names_cache_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.error

    from torchvision.models.optical_flow import Raft_Small_Weights

    target = _raft_cache(tmp_path, monkeypatch)

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError, match=str(target.name)) as info:
        RaftFlow()
    message = str(info.value)
    assert str(target) in message
    assert Raft_Small_Weights.DEFAULT.url in message
    assert "--weights" not in message  # the flow has no option to offer


def test_raft_wrong_file_in_cache_is_a_weights_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _raft_cache(tmp_path, monkeypatch)
    target.parent.mkdir(parents=True)
    torch.save({"x": torch.zeros(2)}, target)
    with pytest.raises(WeightsError, match="not a torchvision RAFT-small state dict") as info:
        RaftFlow()
    message = str(info.value)
    assert str(target) in message and "unexpected 'x'" in message
    assert "\n" not in message


def test_raft_from_cache_pads_odd_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models.optical_flow import raft_small

    target = _raft_cache(tmp_path, monkeypatch)
    target.parent.mkdir(parents=True)
    torch.save(raft_small(weights=None).state_dict(), target)  # random weights: shapes only
    prev, cur = _shift_pair()
    flow = RaftFlow()(prev[:60, :90], cur[:60, :90])
    assert flow.shape == (1, 2, 60, 90)
    assert torch.isfinite(flow).all()
