"""Fast mode: a small image-to-image network trained on the video itself, then run once per frame.

Optimizing every frame costs tens of iterations per frame however steady each one starts. The
feed-forward peers (Johnson et al. 2016; ReCoNet, Gao et al. 2018; Huang et al. 2017) run a
network once per frame, but train it for hours per style on a large data set. Here the
network is small and trained during the render on *this* video with *this* style, with the
optimizer's own losses:

* content and Gram style on the same backbone and style targets as the optimizer
  (:class:`vidstyle.optimize.FrameStylizer`), plus total variation;
* the temporal loss between consecutive frames along the render's own flow and consistency
  mask, as ReCoNet and Huang et al. train, for a network that paints a surface the same
  way in consecutive frames;
* an anchor to a few keyframes optimized by the normal pipeline, so ``--fast`` and the
  default look alike: the keyframes say exactly what the optimizer's look is (how strongly
  they pull: :attr:`Training.anchor_weight`).

It trains on square crops at the render's size, not on frames scaled down: a convolutional
network paints strokes of a fixed size in pixels, so crops at full size give strokes the size
the optimizer paints at that size. Each crop is also a sample of the frame's statistics,
which the Gram targets of the whole frame still describe well.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidstyle.losses import temporal_loss
from vidstyle.optimize import FrameStylizer
from vidstyle.warp import warp


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True), nn.ReLU(),
            _conv(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Module:
    # Reflection padding, as Johnson et al.'s later code: zero padding darkens the borders.
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2),
                         nn.Conv2d(c_in, c_out, kernel, stride=stride))


def _up(c_in: int, c_out: int) -> nn.Module:
    # Nearest upsampling then a convolution, not a transposed convolution: the latter's
    # uneven overlap paints a checkerboard (Odena et al. 2016).
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(c_in, c_out, 3),
                         nn.InstanceNorm2d(c_out, affine=True), nn.ReLU())


WIDTH = 16
"""Channels of :class:`TransformNet`'s first layer by default (Johnson et al.: 32)."""
BLOCKS = 5
"""Residual blocks of :class:`TransformNet` by default."""


class TransformNet(nn.Module):
    """Johnson et al.'s image transformation network, narrower: two stride-2 convolutions
    down, ``blocks`` residual blocks, two upsamplings back, instance normalisation.

    Input and output ``(B, 3, H, W)`` in [0, 1], any ``H`` and ``W`` (padded to a multiple
    of 4 inside by repeating the edge); a sigmoid gives the output. Not the input plus a
    learned change: started from the identity, the network kept the input's colours (style
    loss ratio 0.28 against 0.19 after 150 steps on the bundled clip, benchmarks/RESULTS.md).
    """

    def __init__(self, width: int = WIDTH, blocks: int = BLOCKS) -> None:
        super().__init__()
        self.width, self.blocks = width, blocks
        w = width
        self.body = nn.Sequential(
            _conv(3, w, 9), nn.InstanceNorm2d(w, affine=True), nn.ReLU(),
            _conv(w, 2 * w, 3, 2), nn.InstanceNorm2d(2 * w, affine=True), nn.ReLU(),
            _conv(2 * w, 4 * w, 3, 2), nn.InstanceNorm2d(4 * w, affine=True), nn.ReLU(),
            *[_Residual(4 * w) for _ in range(blocks)],
            _up(4 * w, 2 * w), _up(2 * w, w),
            # 3x3, not Johnson's 9x9: at full resolution a 9x9 layer's gradients took a
            # fifth of a training step on the CPU, and the blocks already see far.
            _conv(w, 3, 3),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"input must be (B,3,H,W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % 4, (-w) % 4
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
        return torch.sigmoid(self.body(padded))[..., :h, :w]


@dataclass(frozen=True)
class Pair:
    """Two consecutive input frames for the temporal loss, at the render's size, kept compact
    (8-bit frames and mask, 16-bit flow: under a third of float32); :meth:`crop` gives
    a piece of them back in float32.

    ``flow`` is the backward flow from ``later`` to ``earlier`` (it warps ``earlier`` onto
    ``later``) and ``mask`` the render's trust in it, as :func:`vidstyle.temporal.trust`
    gives it.
    """

    earlier: Tensor
    """``(1, 3, H, W)`` uint8."""
    later: Tensor
    flow: Tensor
    """``(1, 2, H, W)`` float16, pixels."""
    mask: Tensor
    """``(1, 1, H, W)`` uint8, 1 where trusted."""

    @classmethod
    def of(cls, earlier: Tensor, later: Tensor, flow: Tensor, mask: Tensor) -> Pair:
        """From float tensors: frames ``(1, 3, H, W)`` in [0, 1], flow ``(1, 2, H, W)``, mask
        ``(1, 1, H, W)`` in {0, 1}."""
        return cls(_bytes(earlier), _bytes(later), flow.half(), (mask > 0.5).to(torch.uint8))

    def crop(self, box: tuple[int, int, int, int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(earlier, later, flow, mask)`` within ``box`` ``(top, left, h, w)``, float32; the
        mask is 0 also where the flow leaves the box (a crop's warp cannot see outside it)."""
        flow = _cut(self.flow, box).float()
        mask = _cut(self.mask, box).float() * _inside(flow)
        return _cut(self.earlier, box).float() / 255, _cut(self.later, box).float() / 255, \
            flow, mask


@dataclass(frozen=True)
class Keyframe:
    """A frame optimized by the normal pipeline: its input and its painting ``(1, 3, H, W)``,
    uint8 (:meth:`of` takes float tensors in [0, 1])."""

    content: Tensor
    painting: Tensor

    @classmethod
    def of(cls, content: Tensor, painting: Tensor) -> Keyframe:
        return cls(_bytes(content), _bytes(painting))


def _bytes(image: Tensor) -> Tensor:
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


@dataclass(frozen=True, kw_only=True)
class Training:
    """How the network is trained; the weights of the losses are the optimizer's own."""

    steps: int
    crop: int
    batch: int = 2
    """Pairs of consecutive crops per step (and as many keyframe crops)."""
    lr: float = 2e-3
    anchor_weight: float = 1e4
    """Weight of the keyframes' mean squared pixel difference, on pixels like the temporal
    weight and a tenth as strong. The anchor pulls the network towards the keyframes'
    strokes, which it cannot reproduce exactly on other frames, so a strong one makes it
    paint their average: a blur. On real footage of six shots (benchmarks/RESULTS.md) ten
    times this weight kept the network's frames far less stylized, and a third of it or none
    painted a look of its own, far from the keyframes'."""
    seed: int = 0


@dataclass(frozen=True)
class TrainingStep:
    step: int
    steps: int
    loss: float


def _crop_box(shape: Sequence[int], size: int, generator: torch.Generator
              ) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of a random crop of at most ``size`` each way of an image whose
    shape ends in ``(height, width)``."""
    height, width = shape[-2], shape[-1]
    h, w = min(size, height), min(size, width)
    top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
    return top, left, h, w


def _cut(t: Tensor, box: tuple[int, int, int, int]) -> Tensor:
    top, left, h, w = box
    return t[..., top:top + h, left:left + w]


def _inside(flow: Tensor) -> Tensor:
    """``(B, 1, H, W)``: 1 where ``flow`` ``(B, 2, H, W)`` lands inside its own crop (a crop's
    warp cannot reach what lies outside it)."""
    h, w = flow.shape[-2:]
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w) + flow[:, 0]
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1) + flow[:, 1]
    ok = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    return ok.unsqueeze(1).to(flow.dtype)


def pair_loss(earlier: Tensor, later: Tensor, flow: Tensor, mask: Tensor) -> Tensor:
    """The temporal loss between the network's outputs for two consecutive frames: ``earlier``
    warped onto ``later`` along ``flow`` (the backward flow, from ``later`` to ``earlier``),
    compared where ``mask`` trusts it (:func:`vidstyle.losses.temporal_loss`).

    Shapes: ``earlier``, ``later`` ``(1, 3, H, W)``; ``flow`` ``(1, 2, H, W)`` in pixels;
    ``mask`` ``(1, 1, H, W)``.
    """
    return temporal_loss(later, warp(earlier, flow), mask)


def train(
    net: TransformNet,
    stylizer: FrameStylizer,
    pairs: Sequence[Pair],
    keyframes: Sequence[Keyframe],
    training: Training,
    *,
    temporal_weight: float,
    on_step: Callable[[TrainingStep], None] | None = None,
) -> list[float]:
    """Train ``net`` in place on crops of ``pairs`` and ``keyframes``; returns each step's loss.

    Each step takes ``training.batch`` pairs at random, one random crop of each (the same
    place in both frames, the flow and the mask), and as many random keyframe crops. The loss
    is the optimizer's: ``stylizer``'s content, style and total-variation terms with its
    weights on every network output, ``temporal_weight`` times the temporal loss between
    the pair's two outputs (the earlier warped onto the later, where the mask trusts it and
    the warp stays inside the crop), and :attr:`Training.anchor_weight` times the mean
    squared difference between the network's keyframe outputs and their paintings.
    """
    if not pairs and not keyframes:
        raise ValueError("training needs at least one pair of frames or one keyframe")
    generator = torch.Generator().manual_seed(training.seed)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=training.lr)
    net.train()
    losses: list[float] = []
    for step in range(training.steps):
        # Cosine decay to a tenth: late steps refine instead of jumping between batches.
        for group in opt.param_groups:
            group["lr"] = training.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step
                                                                      / training.steps)))
        inputs: list[Tensor] = []
        flows: list[Tensor] = []
        masks: list[Tensor] = []
        for _ in range(training.batch if pairs else 0):
            pair = pairs[int(torch.randint(0, len(pairs), (1,), generator=generator))]
            earlier, later, flow, mask = pair.crop(
                _crop_box(pair.later.shape, training.crop, generator))
            inputs += [earlier, later]
            flows.append(flow)
            masks.append(mask)
        targets: list[Tensor] = []
        for _ in range(training.batch if keyframes else 0):
            key = keyframes[int(torch.randint(0, len(keyframes), (1,), generator=generator))]
            box = _crop_box(key.content.shape, training.crop, generator)
            inputs.append(_cut(key.content, box).float() / 255)
            targets.append(_cut(key.painting, box).float() / 255)
        # Every frame of a render has one size, so every crop has one size too.
        x = torch.cat(inputs)
        out = net(x)
        with torch.no_grad():
            wanted = stylizer.features(x, stylizer.content_layers)
        # The optimizer's own content, style and smoothness terms; the temporal one is
        # between the crops of each pair, below.
        loss = stylizer.loss(out, wanted, None, None)
        flat = out.split(1)
        if temporal_weight and flows:
            for i, (flow, mask) in enumerate(zip(flows, masks)):
                loss = loss + temporal_weight * pair_loss(
                    flat[2 * i], flat[2 * i + 1], flow, mask) / len(flows)
        for out, target in zip(flat[2 * len(flows):], targets):
            loss = loss + training.anchor_weight * F.mse_loss(out, target) / len(targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(TrainingStep(step + 1, training.steps, losses[-1]))
    net.eval()
    return losses


def sample_pairs(count: int, pairs: int) -> list[int]:
    """Indices ``i`` (each pair is frames ``i`` and ``i + 1``) of ``pairs`` pairs spread evenly
    over ``count`` frames; fewer when the range has fewer."""
    if count < 2 or pairs < 1:
        return []
    if pairs >= count - 1:
        return list(range(count - 1))
    step = (count - 1) / pairs
    return sorted({min(count - 2, int(step * k + step / 2)) for k in range(pairs)})


def sample_keyframes(count: int, keyframes: int) -> list[int]:
    """Positions of ``keyframes`` frames spread evenly over ``count``, each in the middle of
    its share of the range; fewer when the range has fewer frames."""
    keyframes = min(keyframes, count)
    return sorted({int(count * (k + 0.5) / keyframes) for k in range(keyframes)})


def stylize(net: TransformNet, content: Tensor) -> Tensor:
    """One forward pass of the trained ``net`` over a whole frame ``(1, 3, H, W)``."""
    with torch.no_grad():
        return net(content)
