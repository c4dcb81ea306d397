"""Stylize: optimize one frame's pixels against content, style, smoothness and temporal losses.

:class:`FrameStylizer` holds what is fixed for a whole run (the frozen backbone and the
style's Gram targets, computed once) and optimizes frames one at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vidstyle.config import OptimConfig, StyleConfig
from vidstyle.features import Backbone
from vidstyle.losses import content_loss, gram_matrix, style_loss, temporal_loss, tv_loss
from vidstyle.tiles import accumulate, plan


@dataclass(frozen=True)
class FrameStats:
    """What one frame's optimization did."""

    iterations: int
    loss: float
    stopped_early: bool


def resize_long_side(image: Tensor, long_side: int) -> Tensor:
    """Resize ``(B, 3, H, W)`` so that ``max(H, W) == long_side``, keeping the aspect ratio."""
    h, w = image.shape[-2:]
    scale = long_side / max(h, w)
    size = (max(8, round(h * scale)), max(8, round(w * scale)))
    if size == (h, w):
        return image
    return F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)


class FrameStylizer:
    """Per-frame pixel optimizer with style targets computed once per run.

    Args:
        backbone: frozen feature network.
        styles: style images ``(1, 3, h, w)`` in [0, 1] on the backbone's device.
        frame_size: ``(H, W)`` of the frames; each style image is resized so its long side is
            ``style_scale`` times the frame's, which keeps the brush strokes the same size
            relative to the frame whatever the style image's resolution.
        blend: weight of each style's Gram matrices (normalised to sum to 1); equal if None.
        tiles: ``(rows, columns)`` of overlapping tiles to optimize each frame in, one tile's
            activations in memory at a time (:mod:`vidstyle.tiles`); ``(1, 1)``: whole.
    """

    def __init__(
        self,
        backbone: Backbone,
        styles: Sequence[Tensor],
        *,
        style: StyleConfig,
        optim: OptimConfig,
        frame_size: tuple[int, int],
        blend: Sequence[float] | None = None,
        tiles: tuple[int, int] = (1, 1),
        chroma: tuple[int, int] = (1, 1),
    ) -> None:
        if not styles:
            raise ValueError("at least one style image is needed")
        weights = [1.0] * len(styles) if blend is None else list(blend)
        if len(weights) != len(styles) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"need one non-negative blend weight per style, got {weights}")
        if min(tiles) < 1:
            raise ValueError(f"need at least one tile each way, got {tiles}")
        self.backbone = backbone
        self.frame_size = frame_size
        self.chroma = seen_chroma(optim, chroma)
        self.tiles = tiles
        self.style_cfg, self.optim_cfg = style, optim
        self.content_layers = backbone.content_layers
        self.style_layers = backbone.style_layers
        self.taps = tuple(dict.fromkeys(self.content_layers + self.style_layers))
        long_side = max(8, round(max(frame_size) * style.style_scale))
        self.device = styles[0].device
        self.read_lag = 1 if self.device.type == "cuda" else 0
        """Steps queued before a loss is read on the host (see :meth:`stylize`)."""
        self.precision = resolve_precision(optim.precision, self.device)
        # torch.compile traces the network once per frame size and set of taps.
        self._forward = torch.compile(backbone, dynamic=False) if optim.compile else backbone
        self.targets: dict[str, Tensor] = {}
        with torch.no_grad():
            for image, weight in zip(styles, weights):
                feats = self.features(resize_long_side(image, long_side), self.style_layers)
                for layer in self.style_layers:
                    gram = gram_matrix(feats[layer]) * (weight / sum(weights))
                    self.targets[layer] = self.targets.get(layer, 0) + gram

    def features(self, x: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        """The backbone's ``taps`` of ``x`` ``(B, 3, H, W)``, in float32 whatever the
        arithmetic inside (``--precision``), so Gram matrices and losses are accumulated in
        float32: bfloat16's 8-bit mantissa is enough for a convolution's products but not for
        a sum over every pixel of a frame."""
        with _arithmetic(self.precision, self.device):
            feats = self._forward(x, taps)
        return {name: f.float() for name, f in feats.items()}

    def loss(
        self,
        x: Tensor,
        content_targets: dict[str, Tensor],
        warped: Tensor | None,
        mask: Tensor | None,
    ) -> Tensor:
        """The total weighted loss of pixels ``x`` ``(B, 3, H, W)`` (a frame, or a batch of
        crops the fast mode's network painted), each term a mean over the batch."""
        cfg = self.style_cfg
        feats = self.features(seen_as_delivered(x, chroma=self.chroma), self.taps)
        total = cfg.style_weight * style_loss(feats, self.targets)
        for layer in self.content_layers:
            total = total + cfg.content_weight * content_loss(feats[layer], content_targets[layer])
        if cfg.tv_weight:
            total = total + cfg.tv_weight * tv_loss(x)
        if warped is not None and mask is not None and cfg.temporal_weight:
            total = total + cfg.temporal_weight * temporal_loss(x, warped, mask)
        return total

    def stylize(
        self,
        content: Tensor,
        init: Tensor,
        *,
        iterations: int,
        warped: Tensor | None = None,
        mask: Tensor | None = None,
        on_iteration: Callable[[int, float], None] | None = None,
    ) -> tuple[Tensor, FrameStats]:
        """Optimize a frame.

        Args:
            content: ``(1, 3, H, W)`` input frame in [0, 1].
            init: ``(1, 3, H, W)`` starting pixels (the warped previous output, or the input).
            iterations: the most iterations to run; early stopping may use fewer.
            warped, mask: the previous stylized frame warped onto this one ``(1, 3, H, W)``
                and its consistency mask ``(1, 1, H, W)``; None for the first frame.
            on_iteration: called as ``(iteration, loss)`` after each step.

        Returns:
            The stylized frame ``(1, 3, H, W)`` in [0, 1] (detached) and its stats.
        """
        if content.shape != init.shape or content.ndim != 4 or content.shape[:2] != (1, 3):
            raise ValueError(
                f"content and init must both be (1,3,H,W), got {tuple(content.shape)} "
                f"and {tuple(init.shape)}"
            )
        x = init.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1)
        x.requires_grad_(True)
        cfg = self.optim_cfg
        history: list[float] = []
        stopped_early = False
        closure = (self._whole(x, content, warped, mask) if self.tiles == (1, 1)
                   else self._tiled(x, content, warped, mask))

        opt: torch.optim.Optimizer
        if cfg.optimizer == "lbfgs":
            opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=20)
        else:
            opt = torch.optim.Adam([x], lr=cfg.lr)
        # Reading a loss on the host waits for the device. On a GPU the loss of each step is
        # read only after the next step has been queued, so the GPU always has work while
        # the host waits (early stopping then acts one step late); on a CPU every step is
        # synchronous anyway.
        lag = self.read_lag
        pending: list[Tensor] = []
        steps = 0

        def read() -> bool:
            """Take the oldest pending loss into the history; True to stop."""
            nonlocal stopped_early
            loss = float(pending.pop(0))
            history.append(loss)
            if on_iteration is not None:
                on_iteration(len(history), loss)
            # Not in the first half: a frame that starts on its warped target sees Adam's
            # first full-size steps raise the temporal term about as fast as they lower the
            # others, so its loss is flat long before anything has settled; stopping there
            # kept those steps' noise, which shows as flicker (measured: see "Early stopping
            # only in the second half of a frame" in benchmarks/RESULTS.md).
            if len(history) >= iterations // 2 and _converged(
                history, cfg.early_stop, cfg.patience
            ):
                stopped_early = steps < iterations
                return True
            return False

        def step() -> Tensor:
            opt.zero_grad(set_to_none=False)
            return closure()

        for it in range(iterations):
            if cfg.optimizer == "adam" and cfg.lr_decay < 1:
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * _cosine(it, iterations, cfg.lr_decay)
            pending.append(opt.step(step).detach())
            steps += 1
            with torch.no_grad():
                x.clamp_(0, 1)
            if len(pending) > lag and read():
                break
        while pending:  # the last step's loss (or, stopped early, the step after the rule's)
            if read():
                pending.clear()
        return x.detach(), FrameStats(steps, history[-1], stopped_early)

    def _whole(self, x: Tensor, content: Tensor, warped: Tensor | None, mask: Tensor | None
               ) -> Callable[[], Tensor]:
        """The loss of the whole frame ``x``, its gradient left in ``x.grad``."""
        with torch.no_grad():
            content_targets = self.features(content, self.content_layers)

        def closure() -> Tensor:
            loss = self.loss(x, content_targets, warped, mask)
            loss.backward()
            return loss

        return closure

    def _tiled(self, x: Tensor, content: Tensor, warped: Tensor | None, mask: Tensor | None
               ) -> Callable[[], Tensor]:
        """As :meth:`_whole`, a tile at a time (:mod:`vidstyle.tiles`): each tile's loss on its
        own pixels, its gradient added into ``x.grad`` through the tile's fading weight and
        scaled by its share of the frame's pixels (each loss is a mean over its tile), so the
        gradient is that of the whole frame's mean loss wherever a tile alone sees a pixel."""
        height, width = x.shape[-2:]
        # Each tile's weight on the frame's device once, not copied there every iteration.
        tiles = [dataclasses.replace(t, weight=t.weight.to(x.device))
                 for t in plan(height, width, *self.tiles)]
        shares = [t.pixels / (height * width) for t in tiles]
        # The loss reported (for early stopping and progress) is the tiles' mean loss, each
        # by its size: overlaps make the shares sum to more than 1.
        covered = sum(shares)
        with torch.no_grad():
            content_targets = [self.features(t.of(content), self.content_layers) for t in tiles]

        def closure() -> Tensor:
            if x.grad is None:
                x.grad = torch.zeros_like(x)
            total = x.new_zeros(())
            for tile, targets, share in zip(tiles, content_targets, shares):
                piece = tile.of(x).detach().requires_grad_(True)
                loss = self.loss(piece, targets, None if warped is None else tile.of(warped),
                                 None if mask is None else tile.of(mask))
                loss.backward()
                assert piece.grad is not None
                accumulate(x.grad, tile, piece.grad, share)
                total = total + loss.detach() * share
            return total / covered

        return closure


def seen_chroma(optim: OptimConfig, blocks: tuple[int, int]) -> tuple[int, int]:
    """The chroma blocks the losses see, given the codec's ``blocks``
    (:func:`vidstyle.io.encode.chroma_blocks`): those with ``optim.view == "delivered"``,
    none (``(1, 1)``) with ``"pixels"``."""
    return blocks if optim.view == "delivered" else (1, 1)


def seen_as_delivered(x: Tensor, *, chroma: tuple[int, int] = (1, 1)) -> Tensor:
    """``x`` ``(B, 3, H, W)`` as the losses see it: its chroma averaged over ``chroma``
    ``(rows, columns)`` blocks and interpolated back, what a 4:2:0 or 4:2:2 codec keeps of it
    (BT.601 weights; clamped to [0, 1] as a player clamps). ``(1, 1)``: ``x`` itself.

    Why: a pixel optimizer matches the style's Gram matrices partly with colour patterns down
    to single pixels, and a 4:2:0 codec keeps one colour per 2x2 block. Measured on one frame
    (benchmarks/RESULTS.md, 2026-12-03): its style loss rose from 0.014 of the input's to
    0.16 once encoded as H.264 yuv420p, and to 0.06 when the loss had looked at it through
    this view; on the true-motion scenes the whole video's style loss ratio fell by about
    half at the same steadiness. The luma, where the strokes are, is left alone.
    """
    if chroma == (1, 1):
        return x
    import kornia

    ycc = kornia.color.rgb_to_ycbcr(x)
    h, w = x.shape[-2:]
    cc = F.avg_pool2d(ycc[:, 1:], chroma, ceil_mode=True)
    cc = F.interpolate(cc, size=(h, w), mode="bilinear", align_corners=False)
    # A block's mean chroma on a pixel's own luma can leave the RGB cube.
    return kornia.color.ycbcr_to_rgb(torch.cat((ycc[:, :1], cc), 1)).clamp(0, 1)


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` -> ``tf32`` on CUDA, ``float32`` elsewhere; ``tf32`` means float32 off CUDA
    (CPUs have no TensorFloat-32 units)."""
    if name == "auto":
        return "tf32" if device.type == "cuda" else "float32"
    if name == "tf32" and device.type != "cuda":
        return "float32"
    return name


def _arithmetic(precision: str, device: torch.device) -> contextlib.ExitStack:
    """The context for one forward pass at ``precision`` on ``device``."""
    stack = contextlib.ExitStack()
    if device.type == "cuda":
        # cuDNN's TF32 switch is on by default in PyTorch: float32 must turn it off to be
        # float32. benchmark=True: every iteration has the same shapes, so the fastest
        # convolution algorithm is searched once and reused.
        stack.enter_context(
            torch.backends.cudnn.flags(
                enabled=True, benchmark=True, deterministic=False,
                allow_tf32=precision != "float32",
            )
        )
    if precision == "bf16":
        stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
    return stack


def keep_colors(stylized: Tensor, content: Tensor) -> Tensor:
    """Combine the luminance of ``stylized`` with the chroma of ``content`` (YCbCr).

    Args:
        stylized, content: ``(B, 3, H, W)`` in [0, 1].

    Gatys et al. (2016) offer two ways to keep the input's colours: transfer on luminance
    only, or match the colours of the result. We take the luminance of the stylized frame
    and the chroma of the input after optimization: the strokes, texture and light/dark
    pattern come from the style, the hues from the input, at no cost per iteration, and the
    temporal chain continues from the recoloured frame.
    """
    import kornia

    y = kornia.color.rgb_to_ycbcr(stylized)[:, :1]
    cbcr = kornia.color.rgb_to_ycbcr(content)[:, 1:]
    return kornia.color.ycbcr_to_rgb(torch.cat((y, cbcr), dim=1)).clamp(0, 1)


def _cosine(it: int, iterations: int, final: float) -> float:
    """Cosine schedule from 1 at the first of ``iterations`` steps to ``final`` at the last.

    Adam moves every pixel by about its step size whatever the gradient's size, so with a
    constant step even pixels that already sit at the optimum keep moving by about ``lr``
    at each iteration, differently in every frame: visible as flicker. Shrinking the step
    lets them settle.
    """
    if iterations <= 1:
        return 1.0
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * it / (iterations - 1)))


def _converged(history: Sequence[float], tolerance: float, patience: int) -> bool:
    """True when the loss improved by less than ``tolerance`` (relative) over ``patience`` steps."""
    if tolerance <= 0 or len(history) <= patience:
        return False
    before, now = history[-1 - patience], history[-1]
    return before - now < tolerance * abs(before)
