from __future__ import annotations

import pytest
import torch

from vidstyle.warp import (
    agreement_mask,
    consistency_mask,
    fill_unseen,
    long_term_target,
    warp,
)


def test_zero_flow_is_identity() -> None:
    image = torch.rand(2, 3, 17, 23)
    out = warp(image, torch.zeros(2, 2, 17, 23))
    torch.testing.assert_close(out, image)


@pytest.mark.parametrize(("dx", "dy"), [(3, 0), (0, 2), (-4, 1)])
def test_integer_shift_moves_pixels(dx: int, dy: int) -> None:
    image = torch.rand(1, 3, 20, 30)
    flow = torch.zeros(1, 2, 20, 30)
    flow[:, 0], flow[:, 1] = dx, dy
    out = warp(image, flow)
    # out(y, x) = image(y + dy, x + dx) wherever that is inside the image.
    ys = slice(max(0, -dy), 20 - max(0, dy))
    xs = slice(max(0, -dx), 30 - max(0, dx))
    src = image[..., ys.start + dy : ys.stop + dy, xs.start + dx : xs.stop + dx]
    torch.testing.assert_close(out[..., ys, xs], src)


def test_half_pixel_shift_is_bilinear() -> None:
    image = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 4, 8).contiguous()
    flow = torch.zeros(1, 2, 4, 8)
    flow[:, 0] = 0.5
    out = warp(image, flow)
    torch.testing.assert_close(out[0, 0, 0, :-1], torch.arange(7.0) + 0.5)


def test_warp_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(B,2,H,W\)"):
        warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="differ"):
        warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 9))


def test_warp_gradcheck() -> None:
    image = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    flow = (torch.rand(1, 2, 5, 6, dtype=torch.float64) - 0.5).mul(0.6)
    assert torch.autograd.gradcheck(lambda x: warp(x, flow), (image,))


def test_mask_is_one_for_consistent_translation() -> None:
    flow = torch.zeros(1, 2, 32, 32)
    flow[:, 0] = 2.0  # everything moves 2 px: backward (+2) and forward (-2) agree
    mask = consistency_mask(flow, -flow)
    assert mask.shape == (1, 1, 32, 32)
    # The last two columns map outside the other frame: content entering at the edge.
    assert mask[..., :, :30].min() == 1
    assert mask[..., :, 30:].max() == 0


def test_mask_is_zero_on_synthetic_occlusion() -> None:
    # A 10x10 square moves 5 px right over a static background. In the current frame, the
    # strip it just uncovered (left of its new position) has no counterpart in the previous
    # frame: the backward flow there is 0, but the forward flow found at that point belongs
    # to the square (+5), so the two disagree.
    h = w = 40
    backward = torch.zeros(1, 2, h, w)  # current -> previous
    forward = torch.zeros(1, 2, h, w)  # previous -> current
    backward[:, 0, 15:25, 20:30] = -5.0  # square now at x 20..29, was at 15..24
    forward[:, 0, 15:25, 15:25] = 5.0
    mask = consistency_mask(backward, forward)[0, 0]
    assert mask[15:25, 16:19].max() == 0, "disoccluded strip must be masked out"
    assert mask[17:23, 22:28].min() == 1, "the square's interior is consistent"
    assert mask[2:10, 2:10].min() == 1, "static background is consistent"


def test_mask_is_zero_on_motion_boundary() -> None:
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0, :, 8:] = 3.0
    mask = consistency_mask(flow, -flow)[0, 0]
    assert mask[:, 7:9].max() == 0


def test_mask_without_boundary_test_keeps_the_boundary_and_the_other_tests() -> None:
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0, :, 8:] = 3.0
    mask = consistency_mask(flow, -flow, boundaries=False)[0, 0]
    assert mask[:, :13].min() == 1, "the boundary columns 7 and 8 are kept"
    assert mask[:, 13:].max() == 0, "columns mapping outside the other frame are not"
    # The occlusion test still applies: the disoccluded strip of the moving square.
    backward = torch.zeros(1, 2, 40, 40)
    forward = torch.zeros(1, 2, 40, 40)
    backward[:, 0, 15:25, 20:30] = -5.0
    forward[:, 0, 15:25, 15:25] = 5.0
    assert consistency_mask(backward, forward, boundaries=False)[0, 0, 15:25, 16:19].max() == 0


def test_long_term_single_frame_is_the_short_term_term() -> None:
    warped = torch.rand(1, 3, 8, 9)
    mask = (torch.rand(1, 1, 8, 9) > 0.5).float()
    target, weight = long_term_target([warped], [mask])
    torch.testing.assert_close(weight, mask)
    torch.testing.assert_close(target, warped)


def test_long_term_holds_each_pixel_to_the_closest_visible_frame() -> None:
    near, far = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    near_mask = torch.zeros(1, 1, 4, 4)
    near_mask[..., :2, :] = 1  # the top half was visible in the previous frame
    far_mask = torch.ones(1, 1, 4, 4)  # everything was visible 5 frames back
    target, weight = long_term_target([near, far], [near_mask, far_mask])
    assert torch.equal(weight, torch.ones(1, 1, 4, 4))
    assert torch.equal(target[..., :2, :], near[..., :2, :])  # closest frame wins
    assert torch.equal(target[..., 2:, :], far[..., 2:, :])  # hidden in the previous one


def test_long_term_pixel_seen_nowhere_has_zero_weight() -> None:
    masks = [torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3)]
    _, weight = long_term_target([torch.rand(1, 3, 3, 3), torch.rand(1, 3, 3, 3)], masks)
    assert torch.equal(weight, torch.zeros(1, 1, 3, 3))


def test_long_term_target_has_the_gradient_of_the_sum_of_terms() -> None:
    """Soft masks overlap; the folded term must still pull exactly as the paper's sum does."""
    warped = [torch.rand(1, 3, 5, 6, dtype=torch.float64) for _ in range(3)]
    masks = [torch.rand(1, 1, 5, 6, dtype=torch.float64) for _ in range(3)]
    x = torch.rand(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    taken = torch.zeros_like(masks[0])
    paper = x.new_zeros(())
    for w, c in zip(warped, masks):
        c_long = (c - taken).clamp(min=0)  # Ruder et al., section 3.3
        paper = paper + torch.mean(c_long * (x - w) ** 2)
        taken = taken + c_long
    (grad_paper,) = torch.autograd.grad(paper, x)
    target, weight = long_term_target(warped, masks)
    (grad_folded,) = torch.autograd.grad(torch.mean(weight * (x - target) ** 2), x)
    torch.testing.assert_close(grad_folded, grad_paper)


def test_long_term_anchor_lets_farther_visible_frames_pull_too() -> None:
    near, far = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    near_mask = torch.zeros(1, 1, 4, 4)
    near_mask[..., :2, :] = 1
    far_mask = torch.ones(1, 1, 4, 4)
    target, weight = long_term_target([near, far], [near_mask, far_mask], anchor=0.25)
    assert torch.equal(weight, torch.ones(1, 1, 4, 4))  # the weight stays the paper's
    # Seen in both: the mean of the two, the closest counting 1 and the farther 0.25.
    torch.testing.assert_close(target[..., :2, :], torch.full((1, 3, 2, 4), 0.25 / 1.25))
    assert torch.equal(target[..., 2:, :], far[..., 2:, :])  # seen only far back


def test_long_term_anchor_target_has_the_gradient_of_its_terms() -> None:
    """With an anchor the folded term pulls as the sum of one term per visible frame (the
    closest at weight 1, the others at ``anchor``), scaled to the paper's total weight."""
    anchor = 0.3
    warped = [torch.rand(1, 3, 5, 6, dtype=torch.float64) for _ in range(3)]
    masks = [torch.rand(1, 1, 5, 6, dtype=torch.float64) for _ in range(3)]
    x = torch.rand(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    taken = torch.zeros_like(masks[0])
    shares, terms = [], []
    for w, c in zip(warped, masks):
        c_long = (c - taken).clamp(min=0)
        shares.append(c_long + anchor * (c - c_long))
        terms.append((x - w) ** 2)
        taken = taken + c_long
    scale = taken / sum(shares)
    expected = torch.mean(sum(scale * s * t for s, t in zip(shares, terms)))
    (grad_expected,) = torch.autograd.grad(expected, x)
    target, weight = long_term_target(warped, masks, anchor=anchor)
    torch.testing.assert_close(weight, taken)
    (grad_folded,) = torch.autograd.grad(torch.mean(weight * (x - target) ** 2), x)
    torch.testing.assert_close(grad_folded, grad_expected)


def test_long_term_anchor_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="anchor must be >= 0"):
        long_term_target([torch.rand(1, 3, 2, 2)], [torch.ones(1, 1, 2, 2)], anchor=-0.1)


def test_long_term_rejects_mismatched_lists() -> None:
    with pytest.raises(ValueError, match="one mask per warped frame"):
        long_term_target([torch.rand(1, 3, 2, 2)], [])


def test_fill_unseen_keeps_seen_pixels_and_maps_unseen_ones_into_the_palette() -> None:
    torch.manual_seed(0)
    content = torch.rand(1, 3, 16, 16)
    a = torch.tensor([[0.5, 0.1, 0.0], [0.0, 0.4, 0.2], [0.1, 0.0, 0.3]])
    painted = torch.einsum("ij,bjhw->bihw", a, content) + torch.tensor([0.2, 0.1, 0.3]).view(
        1, 3, 1, 1
    )
    weight = torch.ones(1, 1, 16, 16)
    weight[..., 4:9, 5:12] = 0  # a hole no earlier frame saw
    target = torch.where(weight > 0, painted, torch.zeros_like(painted))  # nothing there
    init = fill_unseen(content, target, weight)
    assert torch.equal(init[..., weight[0, 0] > 0], target[..., weight[0, 0] > 0])
    # The hole gets the painting's colour map of its own input colours (within the small
    # pull of the ridge towards the identity), not the input's colours.
    hole = (..., slice(4, 9), slice(5, 12))
    assert (content[hole] - painted[hole]).abs().mean() > 0.1
    torch.testing.assert_close(init[hole], painted[hole], atol=1e-2, rtol=0)


def test_fill_unseen_depends_only_on_the_pixel_s_own_input_colour() -> None:
    """No smearing: two unseen pixels of the same input colour start the same, wherever
    they are and whatever is painted around them."""
    content = torch.rand(1, 3, 12, 12)
    content[..., 2, 2] = content[..., 9, 10] = torch.tensor([0.3, 0.6, 0.2])
    target = torch.rand(1, 3, 12, 12)
    weight = torch.ones(1, 1, 12, 12)
    weight[..., 2, 2] = weight[..., 9, 10] = 0
    init = fill_unseen(content, target, weight)
    torch.testing.assert_close(init[..., 2, 2], init[..., 9, 10])


def test_fill_unseen_uses_the_input_when_too_little_was_seen() -> None:
    content, target = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    weight = torch.zeros(1, 1, 8, 8)
    weight[..., 0, :3] = 1  # 3 trusted pixels: no colour map can be fitted on those
    init = fill_unseen(content, target, weight)
    torch.testing.assert_close(init, weight * target + (1 - weight) * content)


def test_agreement_mask_rejects_pixels_whose_inputs_disagree() -> None:
    image = torch.full((1, 3, 8, 8), 0.5)
    warped = image.clone()
    warped[..., 2:6, 2:6] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)  # a ball, not sky
    warped[..., 0, 7] += 0.05  # the same surface, interpolated a little differently
    mask = agreement_mask(image, warped)
    assert mask.shape == (1, 1, 8, 8)
    # The ball's inside is rejected; its rim has a neighbour that matches (see below).
    assert mask[0, 0, 3:5, 3:5].sum() == 0
    assert mask[0, 0].sum() == 64 - 4
    assert torch.equal(agreement_mask(image, image), torch.ones(1, 1, 8, 8))


def test_agreement_mask_forgives_an_edge_a_pixel_off() -> None:
    """Warping puts sharp edges a fraction of a pixel off; that is not a change of surface."""
    image = torch.zeros(1, 3, 6, 10)
    image[..., 5:] = 1.0  # a hard vertical edge
    shifted = torch.zeros(1, 3, 6, 10)
    shifted[..., 6:] = 1.0  # the same edge one pixel to the right
    assert torch.equal(agreement_mask(image, shifted), torch.ones(1, 1, 6, 10))
