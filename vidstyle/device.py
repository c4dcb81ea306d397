"""Device and memory policy: which device a render runs on, and whether its frames fit there.

Resolved once per render and passed down (house style: devices are explicit); an explicit
``cuda`` that cannot work is an error, never a silent fallback that changes results.
"""

from __future__ import annotations

import torch

from vidstyle.errors import DeviceError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when usable, else CPU. An explicit ``cuda`` that cannot work is an error.

    The device is checked by allocating on it, so a broken driver fails here, not mid-render.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for but no CUDA GPU is usable here; "
                              "use --device cpu (slower) or --device auto")
        try:
            torch.zeros(1, device=device)
        except RuntimeError as exc:
            raise DeviceError(f"CUDA is present but unusable: {exc}") from exc
    return device


# Peak memory of one optimization step with one frame (float32): a fixed part (runtime and
# weights) plus bytes per frame pixel for activations and their gradients. Measured on the
# CPU (see benchmarks/RESULTS.md); rounded up.
_MEMORY_MODEL = {"efficientnet-lite0": (0.9e9, 2000.0), "vgg19": (1.0e9, 3000.0)}


def estimate_memory(backbone: str, width: int, height: int) -> float:
    """Estimated peak bytes to stylize ``width x height`` frames with ``backbone``."""
    fixed, per_pixel = _MEMORY_MODEL[backbone]
    return fixed + per_pixel * width * height


def available_memory(device: torch.device) -> float | None:
    """Bytes free for a render on ``device``; None when the system does not say."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(backbone: str, width: int, height: int, device: torch.device) -> None:
    """Refuse, before starting, frames that would not fit; suggest a ``--max-side`` that does."""
    free = available_memory(device)
    need = estimate_memory(backbone, width, height)
    if free is None or need <= free:
        return
    fixed, per_pixel = _MEMORY_MODEL[backbone]
    scale = ((free * 0.9 - fixed) / per_pixel / (width * height)) ** 0.5 if free > fixed else 0
    side = int(max(width, height) * scale) // 16 * 16
    hint = f"try --max-side {side}" if side >= 64 else "free some memory first"
    raise DeviceError(
        f"{width}x{height} frames need about {need / 1e9:.1f} GB on {device.type} but only "
        f"{free / 1e9:.1f} GB is free; {hint}"
    )
