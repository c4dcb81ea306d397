"""Model weights: torchvision's weights API with a clear answer when offline.

Weights are downloaded once into the torch cache (``$TORCH_HOME/hub/checkpoints``, by
default ``~/.cache/torch/hub/checkpoints``) with a progress bar on stderr, and loaded from
there afterwards without any network.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path
from typing import Any

import torch
from torchvision.models import WeightsEnum

from vidstyle.errors import WeightsError


def cache_path(weights: WeightsEnum) -> Path:
    """Where torchvision keeps (or would keep) the file of ``weights``."""
    name = weights.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def load_state_dict(
    weights: WeightsEnum, *, weights_file: str | os.PathLike[str] | None = None,
    option: str | None = "--weights",
) -> dict[str, Any]:
    """The state dict of ``weights``: from ``weights_file`` if given, else the torch cache.

    Raises:
        WeightsError: the file is missing or unreadable, or the download failed; the message
            names the URL, the cache file to place by hand, and ``option``.
    """
    if weights_file is not None:
        path = Path(weights_file)
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
            raise WeightsError(f"cannot read weights file {path}: {exc}") from exc
        if not isinstance(state, dict):
            raise WeightsError(f"{path} does not hold a state dict")
        return state
    try:
        return weights.get_state_dict(progress=True, check_hash=False)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        target = cache_path(weights)
        alternative = f" or pass {option} FILE" if option else ""
        raise WeightsError(
            f"cannot download {weights} ({exc}); offline, place {weights.url} at {target}"
            f"{alternative}"
        ) from exc
