"""The temporal model as pure functions: no video, no network."""

from __future__ import annotations

import pytest
import torch

from vidstyle.temporal import (
    EARLIER,
    LATER,
    Reference,
    TemporalPolicy,
    combine,
    exposure,
    fill_unseen,
    hold,
    long_term_target,
    pass_offsets,
)


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


# -- hold: the rule every painted frame follows ---------------------------------------------


def _ref(painting: torch.Tensor, *, shift: float = 0.0, side: int = EARLIER,
         weight: float = 1.0, source: torch.Tensor | None = None) -> Reference:
    """A neighbour related to the frame by a uniform horizontal shift of ``shift`` pixels."""
    flow = torch.zeros(1, 2, *painting.shape[-2:])
    flow[:, 0] = shift
    return Reference(painting=painting, source=painting if source is None else source,
                     flow=flow, reverse=-flow, side=side, weight=weight)


def test_a_frame_without_references_starts_from_its_input_or_its_own_painting() -> None:
    content = torch.rand(1, 3, 8, 8)
    held = hold(content, [], TemporalPolicy())
    assert held.target is None and held.weight is None and held.init is content
    base = torch.rand(1, 3, 8, 8)
    assert hold(content, [], TemporalPolicy(), base=base).init is base


def test_a_seam_with_weights_0_and_1_is_holding_to_one_neighbour() -> None:
    content = torch.rand(1, 3, 12, 16)
    behind, ahead = torch.rand(1, 3, 12, 16), torch.rand(1, 3, 12, 16)
    policy = TemporalPolicy(agreement=None, follow_light=False)
    for a, kept in ((1.0, behind), (0.0, ahead)):
        seam = hold(content, [_ref(behind, weight=a), _ref(ahead, side=LATER, weight=1 - a)],
                    policy)
        alone = hold(content, [_ref(kept, side=EARLIER if a else LATER)], policy)
        assert seam.target is not None and alone.target is not None
        torch.testing.assert_close(seam.target, alone.target)
        torch.testing.assert_close(seam.weight, alone.weight)
        torch.testing.assert_close(seam.init, alone.init)


def test_a_seam_pulls_like_two_weighted_temporal_terms() -> None:
    content = torch.rand(1, 3, 6, 7)
    behind, ahead = torch.rand(1, 3, 6, 7), torch.rand(1, 3, 6, 7)
    a = 0.7
    held = hold(content, [_ref(behind, weight=a), _ref(ahead, side=LATER, weight=1 - a)],
                TemporalPolicy(agreement=None, follow_light=False))
    assert held.target is not None and held.weight is not None
    x = torch.rand(1, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    (a * (x - behind.double()).square() + (1 - a) * (x - ahead.double()).square()).sum().backward()
    two = x.grad.clone()
    x.grad = None
    (held.weight.double() * (x - held.target.double()).square()).sum().backward()
    torch.testing.assert_close(x.grad, two, rtol=1e-5, atol=1e-6)  # the target is float32


def test_a_pixel_seen_by_neither_reference_has_weight_0_and_keeps_its_start() -> None:
    h, w = 8, 20
    content = torch.full((1, 3, h, w), 0.5)
    own = torch.rand(1, 3, h, w)
    # Behind: its input (black) disagrees with the frame's everywhere; ahead: its input
    # agrees on the 10 rightmost columns only.
    ahead_source = content.clone()
    ahead_source[..., :10] = 0.0
    refs = [_ref(torch.rand(1, 3, h, w), shift=-4.0, weight=0.5, source=torch.zeros(1, 3, h, w)),
            _ref(torch.rand(1, 3, h, w), side=LATER, weight=0.5, source=ahead_source)]
    held = hold(content, refs, TemporalPolicy(agreement=0.2), base=own, blend=1.0)
    assert held.weight is not None
    assert held.weight[..., :8].max() == 0
    torch.testing.assert_close(held.init[..., :8], own[..., :8])
    torch.testing.assert_close(held.weight[..., 11:], torch.full((1, 1, h, w - 11), 0.5))


def test_the_agreement_check_rejects_a_reference_whose_input_differs() -> None:
    content = torch.full((1, 3, 8, 8), 0.5)
    other = torch.zeros(1, 3, 8, 8)  # far from the input at every pixel
    on = hold(content, [_ref(torch.rand(1, 3, 8, 8), source=other)], TemporalPolicy())
    off = hold(content, [_ref(torch.rand(1, 3, 8, 8), source=other)],
               TemporalPolicy(agreement=None))
    assert on.weight is not None and off.weight is not None
    assert on.weight.max() == 0 and off.weight.min() == 1


def test_a_change_of_light_is_followed_not_painted_afresh() -> None:
    before = torch.rand(1, 3, 32, 48) * 0.5 + 0.4
    painting = torch.rand(1, 3, 32, 48)
    content = before * 0.6  # an exposure step: the same scene, darker
    follows = hold(content, [_ref(painting, source=before)], TemporalPolicy())  # the default
    assert follows.weight is not None and follows.target is not None
    assert follows.weight.min() == 1  # every pixel is still held
    torch.testing.assert_close(follows.target, painting * 0.6, atol=0.01, rtol=0)
    fixed = hold(content, [_ref(painting, source=before)], TemporalPolicy(follow_light=False))
    assert fixed.weight is not None and fixed.weight.mean() < 0.5  # repainted: flicker


def test_the_boundary_test_is_the_policy_s_choice() -> None:
    content = torch.full((1, 3, 16, 16), 0.5)
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0, :, 8:] = 0.2  # a small step in the flow: a motion boundary, images agree
    ref = Reference(painting=content, source=content, flow=flow, reverse=-flow)
    with_test = hold(content, [ref], TemporalPolicy(boundaries=True)).weight
    without = hold(content, [ref], TemporalPolicy()).weight
    assert with_test is not None and without is not None
    assert with_test[..., 7:9].max() == 0 and without[..., 7:9].min() == 1


def test_a_first_pass_frame_starts_from_the_warped_painting_filled_in_its_palette() -> None:
    content = torch.rand(1, 3, 16, 16)
    painting = (content * 0.5 + 0.2).clamp(0, 1)
    refs = [_ref(painting, source=content)]
    held = hold(content, refs, TemporalPolicy())
    assert held.target is not None and held.weight is not None
    torch.testing.assert_close(held.init, fill_unseen(content, held.target, held.weight))
    cold = hold(content, refs, TemporalPolicy(warm_start=False))
    assert cold.init is content


def test_a_revisited_frame_moves_half_way_to_its_target() -> None:
    content = torch.rand(1, 3, 8, 8)
    painting, base = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    held = hold(content, [_ref(painting, source=content)], TemporalPolicy(), base=base)
    torch.testing.assert_close(held.init, base + 0.5 * (painting - base))


def test_combine_of_one_term_is_that_term() -> None:
    term = (torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4))
    assert combine([term]) is term


def test_policy_and_references_are_checked() -> None:
    with pytest.raises(ValueError, match="agreement"):
        TemporalPolicy(agreement=0)
    with pytest.raises(ValueError, match="anchor"):
        TemporalPolicy(anchor=-1)
    with pytest.raises(ValueError, match="border"):
        TemporalPolicy(border=-0.5)
    with pytest.raises(ValueError, match="side"):
        hold(torch.rand(1, 3, 4, 4), [_ref(torch.rand(1, 3, 4, 4), side=0)], TemporalPolicy())


def test_later_passes_also_look_ten_frames_back_without_long_term() -> None:
    assert pass_offsets((1,)) == (1, 10)
    assert pass_offsets((1, 2, 5)) == (1, 2, 5)  # --long-term given: those


def test_the_exposure_is_carried_along_the_chain() -> None:
    before = torch.rand(1, 3, 16, 24) * 0.5 + 0.4
    ref = _ref(torch.rand(1, 3, 16, 24), source=before)
    light = hold(before * 0.5, [ref], TemporalPolicy()).light
    assert light == pytest.approx(0.5, abs=0.01)
    assert exposure(0.7, None) == 1.0  # no neighbour: the shot starts
    assert exposure(0.7, light) == pytest.approx(0.35, abs=0.01)
    assert exposure(0.01, light) == pytest.approx(1 / 16)  # kept in range
    cut = _ref(torch.rand(1, 3, 16, 24), source=before, shift=40.0)  # nothing follows
    assert hold(before * 0.5, [cut], TemporalPolicy()).light is None
    assert exposure(0.7, hold(before * 0.5, [cut], TemporalPolicy()).light) == 1.0
    # Measured only where the policy paints at the exposure, and only from the earlier side.
    assert hold(before * 0.5, [ref], TemporalPolicy(paint_at_exposure=False)).light is None
    later = _ref(torch.rand(1, 3, 16, 24), source=before, side=LATER)
    assert hold(before * 0.5, [later], TemporalPolicy()).light is None
