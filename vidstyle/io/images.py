"""Style images: any common still image, converted to RGB."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from vidstyle.errors import InputError, OutputError


def load_image(path: str | os.PathLike[str]) -> Tensor:
    """Load an image as ``(1, 3, H, W)`` float32 in [0, 1].

    Grayscale, palette, alpha, 16-bit and CMYK images are converted to 8-bit RGB (alpha is
    composited over white, as a painting on paper would show it).

    Raises:
        InputError: missing, unreadable or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"style image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit grayscale: PIL's convert("RGB") clips instead of scaling. Scale by
                # the 16-bit range (or the data's range, for 32-bit values beyond it).
                arr = np.asarray(im, dtype=np.float32)
                arr = arr / max(float(arr.max()), 65535.0)
                rgb = np.repeat(arr[..., None], 3, axis=2)
            else:
                # convert() gives a plain Image, not the ImageFile that open() returned.
                flat: Image.Image = im
                has_alpha = im.mode in ("RGBA", "LA", "PA")
                if has_alpha or (im.mode == "P" and "transparency" in im.info):
                    flat = im.convert("RGBA")
                    background = Image.new("RGBA", flat.size, (255, 255, 255, 255))
                    flat = Image.alpha_composite(background, flat)
                rgb = np.asarray(flat.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(
            f"cannot read style image {path}: not an image or corrupt ({exc})"
        ) from exc
    if min(rgb.shape[:2]) < 8:
        raise InputError(f"style image {path} is too small ({rgb.shape[1]}x{rgb.shape[0]})")
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]


def to_tensor(image: np.ndarray, device: torch.device) -> Tensor:
    """``(H, W, 3)`` uint8 (or uint16, 0..65535) -> ``(1, 3, H, W)`` float32 in [0, 1] on
    ``device``."""
    if image.dtype == np.uint16:
        # torch has no uint16 arithmetic on every device; int32 holds it exactly.
        return (torch.from_numpy(image.astype(np.int32)).to(device).permute(2, 0, 1)[None]
                .float().div_(65535))
    return torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float().div_(255)


def to_image(x: Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` in [0, 1] -> ``(H, W, 3)`` uint8 on the host."""
    return x[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place.

    A reader never sees half a file; with ``durable`` the data is on disk (fsync) before the
    rename, so it survives a power cut. The file gets the usual umask-based mode (the
    temporary file starts private).

    Raises:
        OutputError: disk full or not writable.
    """
    from vidstyle.io.encode import disk_errors

    parent = path.parent if str(path.parent) else Path(".")
    with disk_errors(path):
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def write_png(path: Path, image: np.ndarray, *, durable: bool = False) -> None:
    """Write ``(H, W, 3)`` uint8 RGB as a PNG (lossless), atomically (see :func:`write_atomic`)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"cannot encode {path.name} as PNG")
    write_atomic(path, data.tobytes(), durable=durable)
