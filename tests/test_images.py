"""vidstyle.io.images.load_image: any common still image becomes (1, 3, H, W) RGB in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidstyle.errors import InputError
from vidstyle.io.images import load_image

H, W = 24, 40


def gradient(mode_max: int = 255) -> np.ndarray:
    """A horizontal ramp ``(H, W)`` from 0 to ``mode_max``."""
    row = np.linspace(0, mode_max, W)
    return np.repeat(row[None], H, axis=0)


def check_rgb(x: torch.Tensor, height: int = H, width: int = W) -> None:
    assert x.shape == (1, 3, height, width)
    assert x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_rgb_jpeg(tmp_path: Path) -> None:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 230  # mostly red
    rgb[..., 2] = 20
    path = tmp_path / "red.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    x = load_image(path)
    check_rgb(x)
    red, green, blue = (float(c) for c in x[0].mean(dim=(1, 2)))
    assert red == pytest.approx(230 / 255, abs=0.03)
    assert blue == pytest.approx(20 / 255, abs=0.03)
    assert green < 0.05


def test_style_fixture_loads(styles: list[Path]) -> None:
    for path in styles:
        x = load_image(path)
        assert x.shape == (1, 3, 96, 128)  # long side 128, aspect 4:3
        assert 0.0 <= float(x.min()) < float(x.max()) <= 1.0


def test_accepts_str(styles: list[Path]) -> None:
    assert load_image(str(styles[0])).shape[1] == 3


def test_grayscale_png(tmp_path: Path) -> None:
    path = tmp_path / "gray.png"
    Image.fromarray(gradient().astype(np.uint8), mode="L").save(path)
    x = load_image(path)
    check_rgb(x)
    assert torch.equal(x[0, 0], x[0, 1]) and torch.equal(x[0, 1], x[0, 2])
    assert float(x[0, 0, 0, 0]) == 0.0
    assert float(x[0, 0, 0, -1]) == 1.0


def test_rgba_png_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = (0, 0, 0)  # black ...
    rgba[:, : W // 2, 3] = 255  # ... opaque on the left half
    rgba[:, W // 2 :, 3] = 0  # fully transparent on the right half
    rgba[0, 0] = (255, 0, 0, 128)  # half-transparent red
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    x = load_image(path)
    check_rgb(x)
    assert torch.all(x[0, :, 1:, : W // 2] == 0.0)  # opaque black stays black
    assert torch.all(x[0, :, :, W // 2 :] == 1.0)  # transparent pixels become white paper
    r, g, b = (float(c) for c in x[0, :, 0, 0])
    assert r == pytest.approx(1.0, abs=0.01)
    assert g == pytest.approx(127 / 255, abs=0.01) and b == pytest.approx(127 / 255, abs=0.01)


def test_gray_alpha_png(tmp_path: Path) -> None:
    la = np.zeros((H, W, 2), np.uint8)
    la[..., 1] = 0  # fully transparent black
    path = tmp_path / "la.png"
    Image.fromarray(la, mode="LA").save(path)
    x = load_image(path)
    check_rgb(x)
    assert torch.all(x == 1.0)


def test_16bit_grayscale_png(tmp_path: Path) -> None:
    values = gradient(65535).astype(np.uint16)
    values[0, 1] = 32768
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # really a 16-bit file, not silently 8-bit
    x = load_image(path)
    check_rgb(x)
    assert float(x.max()) == 1.0  # scaled, not clipped at 255/65535
    assert float(x[0, 0, 0, -1]) == 1.0
    assert float(x[0, 0, 0, 1]) == pytest.approx(0.5, abs=1e-3)
    assert float(x[0, 0, 0, 0]) == 0.0
    assert torch.equal(x[0, 0], x[0, 2])


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "print.jpg"
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 2] = 255  # pure blue
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    with Image.open(path) as im:
        assert im.mode == "CMYK"
    x = load_image(path)
    check_rgb(x)
    red, green, blue = (float(c) for c in x[0].mean(dim=(1, 2)))
    assert blue > 0.8 and red < 0.2 and green < 0.2


def test_palette_png(tmp_path: Path) -> None:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, : W // 2] = (255, 0, 0)
    rgb[:, W // 2 :] = (0, 255, 0)
    path = tmp_path / "palette.png"
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(path)
    with Image.open(path) as im:
        assert im.mode == "P"
    x = load_image(path)
    check_rgb(x)
    assert x[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert x[0, :, 0, -1].tolist() == [0.0, 1.0, 0.0]


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (W, H), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    im.paste(1, (0, 0, W // 2, H))
    path = tmp_path / "palette_alpha.png"
    im.save(path, transparency=0)  # index 0 (black) is transparent
    x = load_image(path)
    check_rgb(x)
    assert x[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert x[0, :, 0, -1].tolist() == [1.0, 1.0, 1.0]  # transparent -> white, not black


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "missing.jpg")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        load_image(tmp_path)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "fake.jpg"
    path.write_text("definitely not a JPEG\n" * 10)
    with pytest.raises(InputError, match="not an image or corrupt") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(InputError):
        load_image(path)


def test_truncated_jpeg(styles: list[Path], tmp_path: Path) -> None:
    data = styles[0].read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.jpg"):
        load_image(path)


def test_too_small(tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    Image.new("RGB", (4, 40)).save(path)
    with pytest.raises(InputError, match="too small"):
        load_image(path)
