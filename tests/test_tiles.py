"""Tiles: the plan, its weights, and a frame optimized a tile at a time."""

from __future__ import annotations

import pytest
import torch

from vidstyle.config import OptimConfig, StyleConfig
from vidstyle.features import Backbone
from vidstyle.io.images import load_image
from vidstyle.optimize import FrameStylizer
from vidstyle.tiles import MIN_TILE, grid_for, plan, spans


@pytest.mark.parametrize(("length", "count", "overlap"), [(100, 1, 10), (1000, 3, 128),
                                                          (3840, 5, 128), (7, 2, 3)])
def test_spans_cover_the_length_in_equal_overlapping_pieces(length: int, count: int,
                                                            overlap: int) -> None:
    pieces = spans(length, count, overlap)
    assert len(pieces) == count and pieces[0][0] == 0 and pieces[-1][1] == length
    assert len({stop - start for start, stop in pieces}) == 1
    for (_, stop), (start, _) in zip(pieces, pieces[1:]):
        assert stop - start >= overlap


def test_tile_weights_sum_to_one_and_fade_towards_inner_edges() -> None:
    tiles = plan(300, 500, 2, 3, overlap=40)
    total = torch.zeros(300, 500)
    for tile in tiles:
        assert tile.weight.shape == (1, 1, tile.bottom - tile.top, tile.right - tile.left)
        assert tile.weight.min() > 0 and tile.weight.max() <= 1
        total[tile.top:tile.bottom, tile.left:tile.right] += tile.weight[0, 0]
    torch.testing.assert_close(total, torch.ones(300, 500))
    first = tiles[0].weight[0, 0]  # top left: full weight at the frame's corner, faded inside
    assert first[0, 0] == 1 and first[-1, -1] < 0.05 and first[0, -1] < 0.05


def test_one_tile_is_the_whole_frame() -> None:
    (tile,) = plan(90, 160, 1, 1)
    assert (tile.top, tile.bottom, tile.left, tile.right) == (0, 90, 0, 160)
    assert torch.equal(tile.weight, torch.ones(1, 1, 90, 160))


def test_the_grid_is_the_fewest_tiles_that_fit() -> None:
    assert grid_for(1080, 1920, 1080 * 1920) == (1, 1)
    rows, columns = grid_for(2160, 3840, 1.7e6)
    (top, bottom), (left, right) = spans(2160, rows, 128)[0], spans(3840, columns, 128)[0]
    assert (bottom - top) * (right - left) <= 1.7e6
    assert rows * columns == 6  # five would not fit: 3840 / 5 + overlap is too wide at 2160
    with pytest.raises(ValueError, match="more memory"):
        grid_for(2160, 3840, MIN_TILE * MIN_TILE - 1)


def _stylizer(lite0: Backbone, styles, tiles: tuple[int, int], **style: float) -> FrameStylizer:
    return FrameStylizer(lite0, [load_image(styles[0])], style=StyleConfig(**style),
                         optim=OptimConfig(early_stop=0, lr_decay=1.0), frame_size=(96, 160),
                         tiles=tiles)


def test_a_per_pixel_loss_has_the_same_gradient_tiled_and_whole(lite0: Backbone, styles) -> None:
    # With only the temporal term (the style's weight negligible), each pixel's gradient is
    # its own: tiles and their weights must add up to exactly the whole frame's.
    torch.manual_seed(0)
    x, warped = torch.rand(1, 3, 96, 160), torch.rand(1, 3, 96, 160)
    mask = (torch.rand(1, 1, 96, 160) > 0.3).float()
    grads = []
    for tiles in ((1, 1), (2, 3)):
        stylizer = _stylizer(lite0, styles, tiles, content_weight=0.0, tv_weight=0.0,
                             style_weight=1e-30, temporal_weight=1.0)
        leaf = x.clone().requires_grad_(True)
        make = stylizer._whole if tiles == (1, 1) else stylizer._tiled
        loss = make(leaf, x, warped, mask)()
        grads.append((float(loss.detach()), leaf.grad))
    (whole_loss, whole), (tiled_loss, tiled) = grads
    assert whole is not None and tiled is not None
    torch.testing.assert_close(tiled, whole, rtol=1e-4, atol=1e-10)
    assert tiled_loss == pytest.approx(whole_loss, rel=0.05)  # the tiles' mean, near the frame's


def test_a_tiled_frame_is_stylized_without_edges(lite0: Backbone, styles) -> None:
    from vidstyle.samples import render_scene_frame

    frame = torch.from_numpy(render_scene_frame(0, width=160, height=96))
    content = frame.permute(2, 0, 1)[None].float() / 255
    tiled = _stylizer(lite0, styles, (1, 2))
    out, stats = tiled.stylize(content, content, iterations=10)
    assert stats.iterations == 10 and out.shape == content.shape
    assert out.min() >= 0 and out.max() <= 1
    whole, _ = _stylizer(lite0, styles, (1, 1)).stylize(content, content, iterations=10)
    # Both moved the picture about as far from the input, the tiled one everywhere ...
    moved = (out - content).abs().mean(dim=(0, 1))  # (H, W)
    assert 0.5 < float(moved.mean()) / float((whole - content).abs().mean()) < 2
    (left, _), (_, right) = spans(160, 2, 128)
    # ... and no column of the shared part moved much more or less than the rest.
    columns = moved.mean(dim=0)
    assert float(columns[left:right].max()) < 3 * float(columns.mean())
    assert float(columns[left:right].min()) > float(columns.mean()) / 3


def test_the_budget_decides_the_tiles_and_neighbours_count() -> None:
    from vidstyle.device import plan_tiles
    from vidstyle.errors import DeviceError

    cpu = torch.device("cpu")
    assert plan_tiles("efficientnet-lite0", 1920, 1080, cpu, max_memory=20) == (1, 1)
    still = plan_tiles("efficientnet-lite0", 3840, 2160, cpu, max_memory=6, references=0)
    one = plan_tiles("efficientnet-lite0", 3840, 2160, cpu, max_memory=6, references=1)
    assert still != (1, 1) and one[0] * one[1] > still[0] * still[1]  # less room per tile
    # Four neighbours at full 4K size take most of 6 GB themselves: refused, with a size that
    # fits whole frames.
    with pytest.raises(DeviceError, match=r"even in tiles; try --max-side \d+"):
        plan_tiles("efficientnet-lite0", 3840, 2160, cpu, max_memory=6, references=4)
