from __future__ import annotations

import pytest
import torch

from vidstyle.warp import (
    agreement_mask,
    consistency_mask,
    exposure_change,
    light_gain,
    occlusion_mask,
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


def test_occlusion_mask_is_the_forward_backward_test_alone() -> None:
    h = w = 40
    backward = torch.zeros(1, 2, h, w)
    forward = torch.zeros(1, 2, h, w)
    backward[:, 0, 15:25, 20:30] = -5.0
    forward[:, 0, 15:25, 15:25] = 5.0
    mask = occlusion_mask(backward, forward)[0, 0]
    assert mask[15:25, 16:19].max() == 0, "the disoccluded strip"
    assert mask[17:23, 22:28].min() == 1 and mask[2:10, 2:10].min() == 1
    # Neither the motion-boundary test nor the frame's edge: a pure shift passes everywhere.
    shift = torch.zeros(1, 2, h, w)
    shift[:, 0] = 2.0
    assert occlusion_mask(shift, -shift).min() == 1


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



def test_light_gain_measures_an_exposure_step_and_a_local_light() -> None:
    seen = torch.rand(1, 3, 64, 96) * 0.6 + 0.2
    mask = torch.ones(1, 1, 64, 96)
    gain = light_gain(seen * 0.5, seen, mask)
    torch.testing.assert_close(gain, torch.full_like(gain, 0.5), atol=0.01, rtol=0)
    lit = seen.clone()
    lit[..., 48:] = (lit[..., 48:] * 1.5).clamp(max=1)  # a light on the right half
    gain = light_gain(lit, seen, mask)
    assert gain[..., :40].sub(1).abs().max() < 0.01  # the left is as it was
    assert gain[..., 56:].min() > 1.3  # the right got brighter


def test_light_gain_ignores_untrusted_pixels() -> None:
    seen = torch.full((1, 3, 32, 32), 0.5)
    image = seen.clone()
    image[..., :16, :] = 1.0  # an object arrived in the top half: the flow checks reject it
    mask = torch.ones(1, 1, 32, 32)
    mask[..., :16, :] = 0
    gain = light_gain(image, seen, mask)
    torch.testing.assert_close(gain, torch.ones_like(gain), atol=1e-6, rtol=0)


def test_exposure_change_measures_the_whole_frame() -> None:
    seen = torch.rand(1, 3, 24, 32) * 0.6 + 0.3
    trusted = torch.ones(1, 1, 24, 32)
    assert exposure_change(seen * 0.5, seen, trusted) == pytest.approx(0.5, abs=0.01)
    assert exposure_change(seen, seen, trusted) == 1.0
    # A steady shot's noise is no change, or it would add up frame after frame.
    assert exposure_change(seen * 1.005, seen, trusted) == 1.0
    # A moving object in a fifth of the frame does not move the median.
    image = seen * 0.8
    image[..., :6] = 1.0
    assert exposure_change(image, seen, trusted) == pytest.approx(0.8, abs=0.01)
    # Too little to follow (a cut): no measurement.
    few = torch.zeros(1, 1, 24, 32)
    few[..., :2, :] = 1
    assert exposure_change(seen * 0.5, seen, few) is None


def test_consistency_border_lets_the_outermost_pixels_own_footprint_in() -> None:
    # Every pixel lands 0.3 px to the right of where it is: the last column lands past the
    # last pixel centre, inside that pixel's footprint. 0.7 px would be outside it.
    for shift, kept_at_border in ((0.3, True), (0.7, False)):
        flow = torch.zeros(1, 2, 8, 8)
        flow[:, 0] = shift
        ruder = consistency_mask(flow, -flow, boundaries=False)
        footprint = consistency_mask(flow, -flow, boundaries=False, border=0.5)
        assert ruder[0, 0, :, -1].eq(0).all()
        assert footprint[0, 0, :, -1].eq(1 if kept_at_border else 0).all()
        assert ruder[0, 0, :, :-1].eq(1).all() and footprint[0, 0, :, :-1].eq(1).all()
