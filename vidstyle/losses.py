"""Losses: pure functions over tensors.

Every loss is a *mean* (not a sum as in the papers), so its size does not depend on the frame
size or the number of channels, and one set of weights works at any resolution and on either
backbone. The weights in :class:`vidstyle.config.StyleConfig` are relative to these means.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrix of feature maps, normalised by the number of feature values.

    Args:
        features: ``(B, C, H, W)``.

    Returns:
        ``(B, C, C)``: ``G = F F^T / (C H W)``. Gatys et al. use the plain sum; dividing by
        ``H * W`` makes the target independent of the frame size (a style image at another
        resolution than the frame gives comparable statistics), and by ``C`` keeps wide deep
        layers from dominating the style loss, as most implementations do.
    """
    if features.ndim != 4:
        raise ValueError(f"features must be (B,C,H,W), got {tuple(features.shape)}")
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference of feature maps ``(B, C, H, W)`` (Gatys et al., eq. 1)."""
    return torch.mean((features - target) ** 2)


def style_loss(
    features: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    layer_weights: Mapping[str, float] | None = None,
) -> Tensor:
    """Sum over layers of the mean squared difference of Gram matrices (Gatys et al., eq. 5).

    Args:
        features: ``{layer: (B, C, H, W)}``.
        targets: ``{layer: (B or 1, C, C)}`` Gram matrices of the style.
        layer_weights: per-layer weights; equal (1 / number of layers) when omitted.
    """
    if not targets:
        raise ValueError("style_loss needs at least one target layer")
    total = features[next(iter(targets))].new_zeros(())
    for layer, target in targets.items():
        weight = 1.0 / len(targets) if layer_weights is None else layer_weights[layer]
        total = total + weight * torch.mean((gram_matrix(features[layer]) - target) ** 2)
    return total


def tv_loss(image: Tensor) -> Tensor:
    """Total variation: mean squared difference of horizontal and vertical neighbours.

    Args:
        image: ``(B, C, H, W)``.
    """
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.square().mean() + dy.square().mean()


def temporal_loss(image: Tensor, warped: Tensor, mask: Tensor) -> Tensor:
    """Ruder et al.'s short-term temporal loss (eq. 7): ``(1/D) sum c * (x - w)^2``.

    Args:
        image: ``(B, 3, H, W)`` the frame being optimized.
        warped: ``(B, 3, H, W)`` the previous stylized frame warped onto this one.
        mask: ``(B, 1, H, W)`` per-pixel weights ``c`` in [0, 1].

    ``D = 3 H W`` as in the paper, so masked-out pixels still count in the denominator and the
    loss shrinks, rather than grows, as less of the frame is trusted.
    """
    if image.shape != warped.shape:
        raise ValueError(f"image {tuple(image.shape)} and warped {tuple(warped.shape)} differ")
    return torch.mean(mask * (image - warped) ** 2)
