"""Warp and mask: move a painted frame along the motion, and say where to trust it.

Pure functions, shared by the temporal model (:mod:`vidstyle.temporal`) and the steadiness
metric (:mod:`vidstyle.metrics`).

Conventions: images ``(B, C, H, W)`` float; flow ``(B, 2, H, W)`` in pixels as ``(dx, dy)``.
*Backward* flow ``t -> t-1`` maps each pixel ``p`` of frame ``t`` to ``p + flow(p)`` in frame
``t-1``; warping frame ``t-1`` with it gives frame ``t``'s view of it (backward warping).
"""

from __future__ import annotations

import math

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


def occlusion_mask(flow: Tensor, reverse_flow: Tensor) -> Tensor:
    """Ruder et al.'s forward-backward check alone: 1 where ``flow`` and ``reverse_flow`` agree,
    ``|w + w~|^2 <= 0.01 (|w|^2 + |w~|^2) + 0.5`` with ``w~`` the reverse flow sampled at the
    displaced point ``p + w(p)``; 0 where they disagree (an occlusion, or a wrong flow).

    Args:
        flow, reverse_flow: ``(B, 2, H, W)`` pixels.

    Returns:
        ``(B, 1, H, W)`` float in {0, 1}.
    """
    _check("flow", flow, 2)
    _check("reverse_flow", reverse_flow, 2)
    back = warp(reverse_flow, flow)
    sum_sq = (flow + back).square().sum(1, keepdim=True)
    mag_sq = flow.square().sum(1, keepdim=True) + back.square().sum(1, keepdim=True)
    return (sum_sq <= 0.01 * mag_sq + 0.5).to(flow.dtype)


def consistency_mask(flow: Tensor, reverse_flow: Tensor, *, boundaries: bool = True,
                     border: float = 0.0) -> Tensor:
    """Ruder et al.'s per-pixel weight: 1 where ``flow`` can be trusted, 0 elsewhere.

    ``flow`` is the flow out of the current frame (``t -> t-1`` for the temporal loss) and
    ``reverse_flow`` the flow back (``t-1 -> t``). A pixel gets 0 when

    * forward and backward disagree (disocclusion):
      ``|w + w~|^2 > 0.01 (|w|^2 + |w~|^2) + 0.5``, with ``w~`` the reverse flow sampled at
      the displaced point ``p + w(p)``;
    * it lies on a motion boundary: ``|grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002``
      (only with ``boundaries``);
    * it maps outside the other frame by more than ``border`` px (content entering at the
      edges has no history).

    Args:
        flow, reverse_flow: ``(B, 2, H, W)`` pixels.
        boundaries: apply the motion-boundary test. The warping-error metric keeps both of
            Ruder's tests, as Lai et al. do; the pipeline leaves this one to
            :func:`agreement_mask`, which checks the warp against the images themselves.
        border: how far beyond the outermost pixel centres a pixel may land and still count
            as inside. 0 (Ruder's rule, the metric's) rejects a pixel that lands a hundredth
            of a pixel past the last column; the temporal model uses half a pixel, the
            outermost pixels' own footprint, where the warp reads the edge pixel itself.

    Returns:
        ``(B, 1, H, W)`` float in {0, 1}. Unlike the original code we do not blur the mask:
        a soft edge lets a little of a smeared boundary into the loss, and the hard mask is
        the one the warping-error metric uses, so loss and measurement agree.
    """
    occluded = occlusion_mask(flow, reverse_flow) == 0

    _, _, h, w = flow.shape
    pos = _base_grid(h, w, flow) + flow
    outside = (
        (pos[:, :1] < -border) | (pos[:, :1] > w - 1 + border)
        | (pos[:, 1:] < -border) | (pos[:, 1:] > h - 1 + border)
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


# Rec. 601 luma weights: only the ratio of two lumas is used, so the matrix hardly matters.
_LUMA = (0.299, 0.587, 0.114)


def light_gain(
    image: Tensor, seen: Tensor, mask: Tensor, *, cells: int = 8, floor: float = 0.005,
    limit: float = 4.0,
) -> Tensor:
    """How much brighter ``image`` is than ``seen``, smoothly over the frame.

    Args:
        image: the current input frame ``(B, 3, H, W)`` in [0, 1].
        seen: an earlier input frame warped onto it, ``(B, 3, H, W)``.
        mask: ``(B, 1, H, W)`` where the warp is trusted by the flow checks; only those
            pixels are compared.
        cells: the gain is measured in square blocks about ``1 / cells`` of the shorter side
            (at least 8 pixels) and interpolated between their centres: it follows a fade, an
            exposure step or a light coming on over part of the frame, not the detail.
        floor: added to both lumas (about one 8-bit step), so that dark pixels do not give
            wild ratios.
        limit: the gain is kept within ``[1 / limit, limit]``.

    Returns:
        ``(B, 1, H, W)``: per block, the median ratio of the two frames' luma over its trusted
        pixels, 1 in blocks with none. The median, so that an object the flow checks missed
        (it covers part of a block, in one frame only) does not count as a change of light.
    """
    _check("image", image, 3)
    _check("seen", seen, 3)
    _check("mask", mask, 1)
    ratio = torch.where(mask > 0.5, _luma_ratio(image, seen, floor), torch.nan)
    b, _, h, w = ratio.shape
    size = max(8, min(h, w) // cells)
    rows, cols = -(-h // size), -(-w // size)
    ratio = F.pad(ratio, (0, cols * size - w, 0, rows * size - h), value=math.nan)
    blocks = ratio.view(b, 1, rows, size, cols, size).permute(0, 1, 2, 4, 3, 5)
    gain = blocks.reshape(b, 1, rows, cols, size * size).nanmedian(-1).values
    gain = torch.nan_to_num(gain, nan=1.0).clamp(1 / limit, limit)
    return F.interpolate(gain, size=(h, w), mode="bilinear", align_corners=False)


def _luma_ratio(image: Tensor, seen: Tensor, floor: float) -> Tensor:
    """``(B, 1, H, W)``: ``image``'s luma over ``seen``'s, each raised by ``floor``."""
    weights = torch.tensor(_LUMA, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    return ((image * weights).sum(1, keepdim=True) + floor) / (
        (seen * weights).sum(1, keepdim=True) + floor)


def exposure_change(
    image: Tensor, seen: Tensor, mask: Tensor, *, floor: float = 0.005, least: float = 0.2,
    still: float = 0.01,
) -> float | None:
    """How much brighter ``image`` is than ``seen`` over the whole frame: a fade, an exposure
    step, where :func:`light_gain` measures it block by block.

    Args:
        image, seen, mask: as in :func:`light_gain`.
        floor: as in :func:`light_gain`.
        least: the smallest share of trusted pixels to measure from; fewer (a cut, a
            frame the flow cannot follow) give None.
        still: changes smaller than this are taken as none (1.0), so that a steady shot's
            noise does not add up frame after frame.

    Returns:
        The median luma ratio over the trusted pixels, or None.
    """
    _check("image", image, 3)
    _check("seen", seen, 3)
    _check("mask", mask, 1)
    trusted = mask[:, 0] > 0.5
    if float(trusted.float().mean()) < least:
        return None
    gain = float(_luma_ratio(image, seen, floor)[:, 0][trusted].median())
    return 1.0 if abs(gain - 1) < still else gain


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
    frame earlier, and the object faded out of the painting. Where the inputs themselves
    disagree, the painting must not be carried over. The nearest of 3x3 neighbours, not the
    pixel itself, so that a sharp edge warped a fraction of a pixel off is not taken for a
    change: every rejected pixel is painted afresh and changes from frame to frame. The
    threshold was chosen on measured frame pairs (see benchmarks/RESULTS.md).
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
