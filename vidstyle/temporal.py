"""The temporal model: which painted neighbours hold a frame, how strongly, and where it starts.

Every frame the optimizer paints goes through :func:`hold`: the first pass (held to the frames
before it), the later passes of ``--passes`` (held to the frames before it in the pass's
direction) and the frames after a seam of a chunked render (held to the earlier chunk's chain
behind it and the later chunk's chain ahead). Each painted neighbour is a :class:`Reference`;
:func:`hold` warps it onto the frame, decides per pixel whether to trust it (the masks of
:mod:`vidstyle.warp`, under a :class:`TemporalPolicy`), folds the references into the one
temporal target and weight of Ruder et al.'s loss, and picks the pixels the optimizer starts
from. The rule has one home so that no caller can follow an older, different one.

Conventions as in :mod:`vidstyle.warp`: images ``(1, 3, H, W)`` float in [0, 1], flows
``(1, 2, H, W)`` in pixels ``(dx, dy)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from vidstyle.config import RenderConfig
from vidstyle.warp import agreement_mask, consistency_mask, exposure_change, light_gain, warp

EARLIER = -1
"""A reference before the frame in the order it is painted (the previous frame, in a later
pass the previous frame in the pass's direction)."""
LATER = 1
"""A reference after the frame: the later chunk's chain, ahead of a seam frame."""


@dataclass(frozen=True, kw_only=True)
class TemporalPolicy:
    """How a frame is held to its painted neighbours. The defaults are the pipeline's rule."""

    boundaries: bool = False
    """Also apply Ruder et al.'s motion-boundary test. Off by default: on camera footage DIS
    flow is steep all over still surfaces, not only at the edges of moving things, and every
    pixel the test rejects is painted afresh and changes from frame to frame; the colour
    check (:attr:`agreement`) asks the images themselves whether the warp holds, which is
    what the boundary test guesses at (measured: see benchmarks/RESULTS.md)."""
    border: float = 0.5
    """How far (px) past the outermost pixel centres a pixel may land in the reference and
    still be trusted (:func:`vidstyle.warp.consistency_mask`). Ruder et al.'s 0 rejects the
    pixels a pan brings in from the edge wherever the flow lands them a hair outside, and
    each of them was painted afresh every frame; within half a pixel the warp reads the
    edge pixel, whose footprint that is (measured: benchmarks/RESULTS.md)."""
    agreement: float | None = 0.2
    """Largest RGB distance between the input frame and the neighbour's input warped onto it
    for a pixel to be trusted (:func:`vidstyle.warp.agreement_mask`); None switches the check
    off, leaving Ruder's flow checks alone."""
    follow_light: bool = True
    """Scale the neighbour's painting (and, for :attr:`agreement`, its input) by how much
    brighter the input got since (:func:`vidstyle.warp.light_gain`), so that a fade, an
    exposure step or a light coming on is followed by the held painting instead of failing
    the colour check and being painted afresh. Measured with a yardstick corrected for the
    known change of light, it is about three times steadier through a step and a fade than
    repainting, and no less steady on a clip without them (``benchmarks/light.py``, figures
    in benchmarks/RESULTS.md); without the correction the yardstick favoured repainting."""
    anchor: float = 0.25
    """How much each farther reference in which a pixel was also visible pulls on it, against
    1 for the closest (:func:`long_term_target`); 0 is Ruder et al.'s rule."""
    warm_start: bool = True
    """Start a frame that has no painting of its own yet from its neighbours' paintings
    warped onto it (``--init prev-warped``); False starts it from the input."""
    fill_unseen: bool = True
    """With :attr:`warm_start`, start the pixels no reference saw from the input's colours
    mapped into the painting's palette (:func:`fill_unseen`), not from the raw input."""
    paint_at_exposure: bool = True
    """Paint each frame at the exposure of the shot's start: the optimizer sees the input
    divided by the change of light accumulated along the chain (:func:`exposure`), and its
    result is multiplied back. The style loss compares Gram matrices, which depend on
    brightness, so through a fade it pulls a darkening frame's strokes back towards the
    style's own brightness, and the painting does not darken with the scene; at a constant
    exposure the same strokes simply darken (measured: benchmarks/RESULTS.md)."""
    revisit_blend: float = 0.5
    """A frame painted before (a later pass) starts this far from its previous painting
    towards the temporal target, where the target is trusted: Ruder et al.'s delta
    (section 3.4), their value."""

    def __post_init__(self) -> None:
        if self.agreement is not None and not self.agreement > 0:
            raise ValueError(f"agreement threshold must be > 0 or None, got {self.agreement}")
        if not self.border >= 0:
            raise ValueError(f"border must be >= 0, got {self.border}")
        if not self.anchor >= 0:
            raise ValueError(f"anchor must be >= 0, got {self.anchor}")
        if not 0 <= self.revisit_blend <= 1:
            raise ValueError(f"revisit blend must be in [0, 1], got {self.revisit_blend}")

    @classmethod
    def of(cls, cfg: RenderConfig) -> TemporalPolicy:
        """The policy of a render's settings."""
        return cls(anchor=cfg.style.long_term_anchor, warm_start=cfg.optim.init == "prev-warped")


@dataclass(frozen=True)
class Reference:
    """A painted neighbour of the frame being painted.

    ``flow`` maps each pixel of the frame to the neighbour (backward warping: it warps the
    neighbour onto the frame); ``reverse`` is the flow from the neighbour back to the frame,
    its partner in the consistency check. For a neighbour before the frame these are
    :func:`vidstyle.flow.flow_pair`'s ``(backward, forward)``.
    """

    painting: Tensor
    """``(1, 3, H, W)`` the neighbour as painted."""
    source: Tensor
    """``(1, 3, H, W)`` the neighbour's input frame."""
    flow: Tensor
    reverse: Tensor
    side: int = EARLIER
    """:data:`EARLIER` or :data:`LATER`. References on one side are listed closest first and
    fold into one term, each pixel held to the closest one that saw it."""
    weight: float = 1.0
    """The reference's share of the frame: its mask is scaled by it. A seam frame is held to
    the chain behind it with ``a`` and to the chain ahead with ``1 - a``."""


@dataclass(frozen=True)
class Hold:
    """What :func:`hold` decided for one frame."""

    init: Tensor
    """``(1, 3, H, W)`` the pixels the optimizer starts from."""
    target: Tensor | None
    """``(1, 3, H, W)`` the temporal loss's target, or None without references."""
    weight: Tensor | None
    """``(1, 1, H, W)`` in [0, 1], the temporal loss's per-pixel weight; 0 where no reference
    is trusted."""
    light: float | None = None
    """How much brighter the input is than its closest earlier neighbour's, over the whole
    frame (:func:`vidstyle.warp.exposure_change`), measured where
    ``policy.paint_at_exposure``; None without an earlier neighbour, or where too little of
    it can be followed (a cut)."""


def trust(content: Tensor, ref: Reference, policy: TemporalPolicy, *,
          measure: bool = False) -> tuple[Tensor, Tensor, float | None]:
    """``(warped, mask, light)``: ``ref``'s painting warped onto the frame ``content`` and
    where the warp can be trusted, ``(1, 3, H, W)`` and ``(1, 1, H, W)`` in {0, 1}; with
    ``measure``, how much brighter ``content`` is than ``ref``'s input over the whole frame
    (:func:`vidstyle.warp.exposure_change`, over the pixels the flow checks trust), else
    None."""
    warped = warp(ref.painting, ref.flow)
    mask = consistency_mask(ref.flow, ref.reverse, boundaries=policy.boundaries,
                            border=policy.border)
    if policy.agreement is None and not policy.follow_light and not measure:
        return warped, mask, None
    seen = warp(ref.source, ref.flow)
    light = exposure_change(content, seen, mask) if measure else None
    if policy.follow_light:
        gain = light_gain(content, seen, mask)
        warped, seen = (warped * gain).clamp(0, 1), (seen * gain).clamp(0, 1)
    if policy.agreement is not None:
        mask = mask * agreement_mask(content, seen, threshold=policy.agreement)
    return warped, mask, light


def exposure(before: float, light: float | None, *, limit: float = 16.0) -> float:
    """A frame's exposure against the shot's start: ``before`` (its closest earlier
    neighbour's) times ``light`` (:attr:`Hold.light`), or 1.0 where that is None (no
    neighbour, or a cut: the shot starts anew). Kept within ``[1 / limit, limit]``."""
    if light is None:
        return 1.0
    return min(max(before * light, 1 / limit), limit)


def hold(
    content: Tensor,
    references: Sequence[Reference],
    policy: TemporalPolicy,
    *,
    base: Tensor | None = None,
    blend: float | None = None,
) -> Hold:
    """Hold the frame ``content`` to ``references``: its starting pixels, target and weight.

    Args:
        content: the frame's input ``(1, 3, H, W)`` in [0, 1].
        references: its painted neighbours (any order across sides; closest first within one).
        policy: the masks and weights to apply.
        base: the frame's own earlier painting, when it has one (a later pass; a seam frame's
            painting by its own chunk).
        blend: how far ``base`` moves towards the target where trusted; default
            ``policy.revisit_blend``.

    Returns:
        A :class:`Hold`. Without references the frame starts from ``base`` or the input and
        has no temporal term. Otherwise each side's references fold into one target
        (:func:`long_term_target`), the sides are combined by their weights
        (:func:`combine`), and the start is ``base`` moved ``blend`` of the way to the target
        when there is a base, else the warped painting with unseen pixels filled
        (:func:`fill_unseen`) when ``policy.warm_start``, else the input.
    """
    if any(r.side not in (EARLIER, LATER) for r in references):
        raise ValueError("a reference's side must be EARLIER or LATER")
    if not references:
        return Hold(content if base is None else base, None, None)
    sides: list[tuple[Tensor, Tensor]] = []
    light = None
    for side in (EARLIER, LATER):
        refs = [r for r in references if r.side == side]
        if not refs:
            continue
        warped, masks = [], []
        for ref in refs:
            closest = policy.paint_at_exposure and side == EARLIER and ref is refs[0]
            image, mask, change = trust(content, ref, policy, measure=closest)
            if closest:
                light = change
            warped.append(image)
            masks.append(mask if ref.weight == 1.0 else ref.weight * mask)
        sides.append(long_term_target(warped, masks, anchor=policy.anchor))
    target, weight = combine(sides)
    if base is not None:
        share = policy.revisit_blend if blend is None else blend
        init = base + share * weight * (target - base)
    elif policy.warm_start:
        init = fill_unseen(content, target, weight) if policy.fill_unseen else (
            weight * target + (1 - weight) * content)
    else:
        init = content
    return Hold(init, target, weight, light)


def combine(terms: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """One ``(target, weight)`` with the gradient of the sum of several temporal terms.

    ``sum_k m_k (x - w_k)^2 = m (x - w)^2 + const`` with ``m = sum_k m_k`` and
    ``w = sum_k m_k w_k / m``: one term of :class:`~vidstyle.optimize.FrameStylizer`'s
    temporal loss pulls towards all of them at once. Where every ``m_k`` is 0 the target is
    the first term's (never used: its weight is 0). A single term is returned as it is.
    """
    if len(terms) == 1:
        return terms[0]
    weight = sum((m for _, m in terms[1:]), terms[0][1])
    weighted = sum((m * w for w, m in terms[1:]), terms[0][1] * terms[0][0])
    empty = weight <= 1e-8
    target = torch.where(empty, terms[0][0], weighted / weight.clamp(min=1e-8))
    return target, weight


def long_term_target(
    warped: Sequence[Tensor], masks: Sequence[Tensor], *, anchor: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Fold Ruder et al.'s long-term temporal terms (section 3.3) into one target and weight.

    Args:
        warped: earlier stylized frames warped onto the current one, closest first, each
            ``(B, 3, H, W)``.
        masks: their consistency masks, ``(B, 1, H, W)`` in [0, 1], in the same order.
        anchor: how much each farther frame in which a pixel was also visible pulls on it,
            against 1 for the closest one; 0 is the paper.

    Returns:
        ``(target, weight)``: ``(B, 3, H, W)`` and ``(B, 1, H, W)`` in [0, 1].

    Each term's weight is its mask minus the weights already given to closer frames, floored
    at 0, so a pixel is held to the closest frame in which it was visible (the paper's
    ``c_long``). Since ``sum_j c_j (x - w_j)^2 = C (x - W)^2 + const`` with ``C = sum_j c_j``
    and ``W = sum_j c_j w_j / C``, the sum of the terms has the same gradient as one
    temporal term towards ``W`` with weight ``C``: the optimizer sees a single term however
    many frames back it looks. Pixels seen in no earlier frame get weight 0 (and ``W`` = the
    closest warped frame there, which is never used).

    Where we differ from the paper (``anchor > 0``): the farther frames in which a pixel was
    visible too also pull it, each with ``anchor`` times its mask (``W`` becomes the mean of
    all of them, the closest counting 1), while the weight ``C`` stays the paper's. Held to
    the closest frame alone, a pixel follows a chain of consecutive flows and the sum of
    their errors, so the painting slides slowly over the scene, steady pair by pair: a
    direct flow ten frames back carries one error, not ten (measured with
    ``benchmarks/temporal.py --anchors``: see benchmarks/RESULTS.md).
    """
    if not warped or len(warped) != len(masks):
        raise ValueError(f"need one mask per warped frame, got {len(warped)} and {len(masks)}")
    if anchor < 0:
        raise ValueError(f"anchor must be >= 0, got {anchor}")
    total = torch.zeros_like(masks[0])
    shares = torch.zeros_like(masks[0])
    weighted = torch.zeros_like(warped[0])
    for image, mask in zip(warped, masks):
        c = (mask - total).clamp_(min=0)
        share = c + anchor * (mask - c)
        weighted = weighted + share * image
        shares = shares + share
        total = total + c
    target = torch.where(shares > 0, weighted / shares.clamp(min=1e-8), warped[0])
    return target, total


def fill_unseen(content: Tensor, target: Tensor, weight: Tensor, *, min_pixels: int = 64) -> Tensor:
    """Starting pixels for a frame: the warped painting where it was seen, and elsewhere the
    input's colours mapped into the painting's palette.

    Args:
        content: the input frame ``(B, 3, H, W)`` in [0, 1].
        target: the earlier painting warped onto it ``(B, 3, H, W)`` (:func:`long_term_target`).
        weight: where ``target`` can be trusted ``(B, 1, H, W)`` in [0, 1].
        min_pixels: fewer trusted pixels than this and the input is used as it is.

    Returns:
        ``(B, 3, H, W)`` in [0, 1]: ``weight * target + (1 - weight) * A(content)``, with
        ``A`` the affine colour map (3x3 plus offset) that best takes the input's colours
        to the painting's over the trusted pixels (least squares, held near the identity).

    Why: pixels that no earlier frame saw (behind a moving object, at the edge a pan brings
    in) are painted afresh in one frame's iterations. Starting from the raw input they end
    paler than the painting around them, a ring that trails a moving object. Filling them
    from painted neighbours instead drags the neighbours' strokes and the object's colours
    along as a smear. A map of colours alone depends on nothing but the pixel's own input
    colour, so it cannot smear, and it starts the pixel in the palette the style gave the
    rest of the frame (measured in ``benchmarks/RESULTS.md``).
    """
    for name, t, channels in (("content", content, 3), ("target", target, 3),
                              ("weight", weight, 1)):
        if t.ndim != 4 or t.shape[1] != channels:
            raise ValueError(f"{name} must be (B,{channels},H,W), got {tuple(t.shape)}")
    b, _, h, w = content.shape
    fills = []
    for i in range(b):
        x = content[i].reshape(3, -1).T.double()  # (N, 3)
        x = torch.cat((x, torch.ones_like(x[:, :1])), 1)  # (N, 4): colour and offset
        y = target[i].reshape(3, -1).T.double()
        trusted = weight[i].reshape(-1) > 0.5
        if int(trusted.sum()) < min_pixels:
            fills.append(content[i])
            continue
        xs, ys = x[trusted], y[trusted]
        # A ridge towards the identity keeps the map sane when the trusted colours span
        # little of colour space (a flat cartoon, a frame of sky); it is negligible otherwise.
        lam = 1e-3 * xs.shape[0]
        eye = torch.eye(4, 3, dtype=x.dtype, device=x.device)
        m = torch.linalg.solve(xs.T @ xs + lam * torch.eye(4, dtype=x.dtype, device=x.device),
                               xs.T @ ys + lam * eye)
        fills.append((x @ m).T.reshape(3, h, w).to(content.dtype).clamp(0, 1))
    mapped = torch.stack(fills)
    return weight * target + (1 - weight) * mapped


# Without --long-term, later passes still hold each frame to the frame this far back in the
# pass's direction (see pass_offsets).
_PASS_REACH = 10


def pass_offsets(long_term: tuple[int, ...]) -> tuple[int, ...]:
    """The earlier frames (in the pass's direction) that a later pass holds each frame to.

    Where we differ from the paper: without ``--long-term`` (``(1,)``), a later pass also
    looks ``_PASS_REACH`` frames back, as ``--long-term 1,10`` would. Every frame is painted
    by then, so the far frame costs one more optical flow and nothing else. Held to its
    neighbour alone, each pass follows the chain of consecutive flows and the sum of their
    errors in its own direction, and the painting slides over the scene (measured with
    ``benchmarks/temporal.py``: see benchmarks/RESULTS.md).
    """
    return long_term if len(long_term) > 1 else (1, _PASS_REACH)
