"""Optical flow between consecutive *input* frames, both directions.

Flows are returned as ``(1, 2, H, W)`` float32 tensors in pixels, ``(dx, dy)``:
``flow(a, b)[p]`` points from pixel ``p`` of ``a`` to where it is in ``b``, so that
``warp(b, flow(a, b)) ~= a`` (see :mod:`vidstyle.warp`).
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidstyle.config import FLOW_METHODS, check_choice
from vidstyle.hub import load_into


class FlowEstimator(Protocol):
    def __call__(self, a: np.ndarray, b: np.ndarray) -> Tensor:
        """Flow from ``a`` to ``b``, both ``(H, W, 3)`` uint8 RGB; returns ``(1, 2, H, W)``."""
        ...


class DISFlow:
    """OpenCV's DIS optical flow on the CPU (medium preset).

    The medium preset is OpenCV's documented balance of accuracy and speed; its cost per pair
    is small next to one frame's optimization (measured: see "Stage overlap" in
    benchmarks/RESULTS.md).
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        # The cv2 stubs lack the module-level factory (it exists at run time).
        self._dis = cv2.DISOpticalFlow_create(  # type: ignore[attr-defined]
            cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
        )

    def __call__(self, a: np.ndarray, b: np.ndarray) -> Tensor:
        ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        flow = self._dis.calc(ga, gb, None)  # (H, W, 2) float32
        return torch.from_numpy(flow).permute(2, 0, 1)[None].to(self.device)


class RaftFlow:
    """torchvision's RAFT-small (``Raft_Small_Weights.DEFAULT``), meant for a GPU.

    The weights come from the torch cache (see :mod:`vidstyle.hub`); ``weights_file`` reads
    them from a file instead.
    """

    def __init__(self, device: torch.device | str = "cpu", weights_file: str | None = None) -> None:
        from torchvision.models.optical_flow import Raft_Small_Weights, raft_small

        self.device = torch.device(device)
        weights = Raft_Small_Weights.DEFAULT
        model = raft_small(weights=None)
        # No option to name: the flow weights come from the torch cache only.
        load_into(model, weights, weights_file=weights_file, option=None,
                  expected="a torchvision RAFT-small state dict")
        self.model = model.eval().requires_grad_(False).to(self.device)

    @torch.inference_mode()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> Tensor:
        h, w = a.shape[:2]
        ta, tb = (
            torch.from_numpy(x).permute(2, 0, 1)[None].to(self.device).float() / 127.5 - 1.0
            for x in (a, b)
        )
        # RAFT needs sides divisible by 8 and at least 128 (its correlation pyramid): pad by
        # replication, then crop the flow back.
        ph, pw = (max(128, h + (-h) % 8) - h, max(128, w + (-w) % 8) - w)
        if ph or pw:
            ta = F.pad(ta, (0, pw, 0, ph), mode="replicate")
            tb = F.pad(tb, (0, pw, 0, ph), mode="replicate")
        flow = self.model(ta, tb, num_flow_updates=12)[-1]
        return flow[..., :h, :w].float().contiguous()


def make_flow(method: str, device: torch.device | str = "cpu") -> FlowEstimator:
    """The estimator for ``method`` (``"dis"`` or ``"raft"``)."""
    check_choice("flow method", method, FLOW_METHODS)
    if method == "raft":
        return RaftFlow(device)
    return DISFlow(device)


def flow_pair(estimator: FlowEstimator, prev: np.ndarray, cur: np.ndarray) -> tuple[Tensor, Tensor]:
    """``(backward, forward)`` flows: ``cur -> prev`` and ``prev -> cur``.

    The backward flow warps the previous stylized frame onto the current one; the forward
    flow is its partner in the consistency check.
    """
    return estimator(cur, prev), estimator(prev, cur)
