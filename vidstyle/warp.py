"""Warp and mask: move the previous stylized frame along the motion, and say where to trust it.

Conventions: images ``(B, C, H, W)`` float; flow ``(B, 2, H, W)`` in pixels as ``(dx, dy)``.
*Backward* flow ``t -> t-1`` maps each pixel ``p`` of frame ``t`` to ``p + flow(p)`` in frame
``t-1``; warping frame ``t-1`` with it gives frame ``t``'s view of it (backward warping).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(name: str, t: Tensor, channels: int | None = None) -> None:
    if t.ndim != 4 or (channels is not None and t.shape[1] != channels):
        want = f"(B,{channels},H,W)" if channels is not None else "(B,C,H,W)"
        raise ValueError(f"{name} must be {want}, got {tuple(t.shape)}")


def _base_grid(h: int, w: int, like: Tensor) -> Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(h, device=like.device, dtype=like.dtype),
        torch.arange(w, device=like.device, dtype=like.dtype),
        indexing="ij",
    )
    return torch.stack((xs, ys))  # (2, H, W) as (x, y)


def warp(image: Tensor, flow: Tensor, *, mode: str = "bilinear") -> Tensor:
    """Backward-warp ``image`` by ``flow``: ``out(p) = image(p + flow(p))``.

    Args:
        image: ``(B, C, H, W)``.
        flow: ``(B, 2, H, W)`` pixels, ``(dx, dy)``.
        mode: ``"bilinear"`` or ``"nearest"`` (as :func:`torch.nn.functional.grid_sample`).

    Returns:
        ``(B, C, H, W)``. Samples that fall outside the image take the nearest border value;
        the consistency mask is what marks them as untrusted.
    """
    _check("image", image)
    _check("flow", flow, 2)
    if image.shape[0] != flow.shape[0] or image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(
            f"image {tuple(image.shape)} and flow {tuple(flow.shape)} differ in batch or size"
        )
    b, _, h, w = image.shape
    pos = _base_grid(h, w, flow) + flow  # (B, 2, H, W) absolute sample positions
    # align_corners=True: -1 and 1 are the centres of the corner pixels, so integer flows
    # sample pixel centres exactly and a zero flow is the identity.
    gx = 2.0 * pos[:, 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * pos[:, 1] / max(h - 1, 1) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)


def consistency_mask(flow: Tensor, reverse_flow: Tensor, *, boundaries: bool = True) -> Tensor:
    """Ruder et al.'s per-pixel weight: 1 where ``flow`` can be trusted, 0 elsewhere.

    ``flow`` is the flow out of the current frame (``t -> t-1`` for the temporal loss) and
    ``reverse_flow`` the flow back (``t-1 -> t``). A pixel gets 0 when

    * forward and backward disagree (disocclusion):
      ``|w + w~|^2 > 0.01 (|w|^2 + |w~|^2) + 0.5``, with ``w~`` the reverse flow sampled at
      the displaced point ``p + w(p)``;
    * it lies on a motion boundary: ``|grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002``
      (only with ``boundaries``);
    * it maps outside the other frame (content entering at the edges has no history).

    Args:
        flow, reverse_flow: ``(B, 2, H, W)`` pixels.
        boundaries: apply the motion-boundary test. The warping-error metric keeps both of
            Ruder's tests, as Lai et al. do; the pipeline leaves this one to
            :func:`agreement_mask`, which checks the warp against the images themselves.

    Returns:
        ``(B, 1, H, W)`` float in {0, 1}. Unlike the original code we do not blur the mask:
        a soft edge lets a little of a smeared boundary into the loss, and the hard mask is
        the one the warping-error metric uses, so loss and measurement agree.
    """
    _check("flow", flow, 2)
    _check("reverse_flow", reverse_flow, 2)
    back = warp(reverse_flow, flow)
    sum_sq = (flow + back).square().sum(1, keepdim=True)
    mag_sq = flow.square().sum(1, keepdim=True) + back.square().sum(1, keepdim=True)
    occluded = sum_sq > 0.01 * mag_sq + 0.5

    _, _, h, w = flow.shape
    pos = _base_grid(h, w, flow) + flow
    outside = (
        (pos[:, :1] < 0) | (pos[:, :1] > w - 1) | (pos[:, 1:] < 0) | (pos[:, 1:] > h - 1)
    )
    if not boundaries:
        return (~(occluded | outside)).to(flow.dtype)

    # Central differences of u and v (left at 0 on the outermost rows and columns).
    dx = torch.zeros_like(flow)
    dy = torch.zeros_like(flow)
    dx[..., 1:-1] = (flow[..., 2:] - flow[..., :-2]) / 2
    dy[..., 1:-1, :] = (flow[..., 2:, :] - flow[..., :-2, :]) / 2
    grad_sq = (dx.square() + dy.square()).sum(1, keepdim=True)
    boundary = grad_sq > 0.01 * flow.square().sum(1, keepdim=True) + 0.002
    return (~(occluded | boundary | outside)).to(flow.dtype)


def agreement_mask(image: Tensor, warped: Tensor, *, threshold: float = 0.2) -> Tensor:
    """1 where an input frame agrees with an earlier input frame warped onto it, 0 elsewhere.

    Args:
        image: the current input frame ``(B, 3, H, W)`` in [0, 1].
        warped: the earlier input frame warped onto it with the same flow as the painting,
            ``(B, 3, H, W)``.
        threshold: the largest RGB distance (Euclidean, in [0, 1] units) still taken as the
            same surface.

    Returns:
        ``(B, 1, H, W)`` float in {0, 1}: 0 where ``image`` is farther than ``threshold``
        from every pixel of ``warped`` in the 3x3 neighbourhood.

    Where we differ from the paper: Ruder et al.'s check (:func:`consistency_mask`) trusts
    any pixel whose forward and backward flows agree, and they can agree and both be wrong.
    A small object moving fast is the common case: the flow gives it the background's
    motion both ways, so the object's pixels were held to the background painted there a
    frame earlier, and the object faded out of the painting (measured on the hand-held
    clip: 93% of the ball's pixels passed Ruder's check while the warped input there differed
    from the input by 0.62 on average). Where the inputs themselves disagree, the painting
    must not be carried over. The nearest of 3x3 neighbours, not the pixel itself, so that a
    sharp edge warped a fraction of a pixel off is not taken for a change: every rejected
    pixel is painted afresh and changes from frame to frame. Measured on one frame pair:
    0.2 rejects 87% of those ball pixels, and 0.04% of the pixels Ruder's check trusts on
    the pan (0.19% comparing pixel with pixel at the same threshold, 0.49% at 0.15).
    """
    _check("image", image, 3)
    _check("warped", warped, 3)
    h, w = image.shape[-2:]
    padded = F.pad(warped, (1, 1, 1, 1), mode="replicate")
    nearest = torch.full_like(image[:, :1], math.inf)
    for dy in range(3):
        for dx in range(3):
            shifted = padded[..., dy:dy + h, dx:dx + w]
            nearest = torch.minimum(nearest, (image - shifted).square().sum(1, keepdim=True))
    return (nearest <= threshold**2).to(image.dtype)


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
    direct flow ten frames back carries one error, not ten. Measured with
    ``benchmarks/temporal.py --anchors`` (24 frames, ``--long-term 1,2,5,10``): anchor 0.25
    lowers the long-range ratio from 1.78 to 1.42 on the hand-held clip (flicker ratio 0.76
    against 0.73) and from 1.44 to 0.69 on the pan (flicker ratio 1.14 against 1.06); 0.5
    lowers it a little more (1.25, 0.57) for more flicker (0.85, 1.32).
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
    _check("content", content, 3)
    _check("target", target, 3)
    _check("weight", weight, 1)
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
