"""Device and memory policy: which device a render runs on, and whether its frames fit there.

Resolved once per render and passed down (house style: devices are explicit); an explicit
``cuda`` that cannot work is an error, never a silent fallback that changes results.
"""

from __future__ import annotations

import contextlib

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
# Bytes per pixel of one tile's activations and their gradients, efficientnet-lite0 (vgg19
# in proportion to the whole-frame figures above): about 1,270 measured with tiles at 4K.
_TILE_BYTES = {"efficientnet-lite0": 1300.0, "vgg19": 1950.0}
# What a tiled render still holds for the whole frame, bytes per pixel: a part for the pixels,
# their gradient and Adam's moments, the input and the temporal target, and a part per painted
# neighbour (its painting, input, two flows and their warps; the flows of the next frame
# computed meanwhile). Measured: about 310 with one neighbour (4K), 850-870 with four (1080p,
# --long-term 1,2,5,10); see benchmarks/RESULTS.md. Rounded up.
_FRAME_BYTES = (150.0, 180.0)
# Of the free memory, the share a render plans to use: the rest is slack for what the
# model does not count (the decoder, the encoder, allocator fragmentation).
_USABLE = 0.9


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


def memory_budget(device: torch.device, max_memory: float = 0.0) -> float | None:
    """Bytes a render may plan to use on ``device``: ``max_memory`` GB when given (> 0), else
    what the device has free; None when neither says."""
    return max_memory * 1e9 if max_memory > 0 else available_memory(device)


def plan_tiles(backbone: str, width: int, height: int, device: torch.device,
               max_memory: float = 0.0, references: int = 1) -> tuple[int, int]:
    """``(rows, columns)`` of tiles to optimize ``width x height`` frames in so that they fit
    the memory budget (:func:`memory_budget`): ``(1, 1)`` when whole frames fit. Each frame is
    held to at most ``references`` painted neighbours.

    Raises:
        DeviceError: when not even tiles would fit, suggesting a ``--max-side`` that would
            fit whole frames.
    """
    from vidstyle.tiles import grid_for

    budget = memory_budget(device, max_memory)
    need = estimate_memory(backbone, width, height)
    if budget is None or need <= budget:
        return 1, 1
    fixed, per_pixel = _MEMORY_MODEL[backbone]
    base, per_reference = _FRAME_BYTES
    frame = (base + per_reference * references) * width * height
    left = budget * _USABLE - fixed - frame
    if left > 0:
        with contextlib.suppress(ValueError):  # not even the smallest tiles fit
            return grid_for(height, width, left / _TILE_BYTES[backbone])
    scale = ((budget * _USABLE - fixed) / per_pixel / (width * height)) ** 0.5 \
        if budget * _USABLE > fixed else 0
    side = int(max(width, height) * scale) // 16 * 16
    hint = f"try --max-side {side}" if side >= 64 else "free some memory first"
    where = (f"the {max_memory:g} GB of --max-memory" if max_memory > 0
             else f"the {budget / 1e9:.1f} GB free on {device.type}")
    raise DeviceError(
        f"{width}x{height} frames need about {need / 1e9:.1f} GB, and do not fit {where} even "
        f"in tiles; {hint}"
    )
