"""Seams of a chunked render: the window's weights, its settings and its frames (no Ray)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from vidstyle.config import OptimConfig
from vidstyle.flow import DISFlow, ReferenceFlows
from vidstyle.seams import reconcile_seam, seam_optim, seam_weight


def test_seam_frames_run_every_iteration_at_half_the_step() -> None:
    optim = OptimConfig(lr=0.04, iterations=30, early_stop=1e-3)
    seam = seam_optim(optim)
    assert seam.lr == 0.02 and seam.early_stop == 0 and seam.iterations == 30


@pytest.mark.parametrize("window", [1, 2, 6])
def test_seam_weights_shrink_the_gap_by_equal_steps(window: int) -> None:
    left = 1.0
    gaps = []
    for k in range(window):
        left *= seam_weight(k, window)
        gaps.append(left)
    steps = np.diff([1.0, *gaps, 0.0])
    np.testing.assert_allclose(steps, -1 / (window + 1))


class _Start:
    """A stylizer that keeps the pixels it starts from: the seam's rule laid bare."""

    def stylize(self, content: torch.Tensor, init: torch.Tensor, **_: Any) -> tuple[Any, None]:
        return init, None


def test_a_seam_window_passes_from_the_earlier_chain_to_the_later_one() -> None:
    rng = np.random.default_rng(0)
    scene = (rng.random((32, 48, 3)) * 255).astype(np.uint8)  # a still scene
    window, start = 4, 10
    inputs = {i: scene for i in range(start - 1, start + window + 1)}
    dark, light = np.full_like(scene, 40), np.full_like(scene, 200)
    frames = reconcile_seam(
        _Start(), ReferenceFlows(DISFlow()), torch.device("cpu"),  # type: ignore[arg-type]
        start=start, window=window, inputs=inputs,
        behind={start - 1: dark}, ahead={i: light for i in range(start, start + window + 1)},
        iterations=1,
    )
    means = [float(f.mean()) for f in frames]
    # From 40 to 200 in window + 1 equal steps of 32: 72, 104, 136, 168.
    np.testing.assert_allclose(means, [72, 104, 136, 168], atol=1.0)


def test_a_seam_window_needs_its_frames() -> None:
    scene = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="needs the input frames"):
        reconcile_seam(_Start(), ReferenceFlows(DISFlow()), torch.device("cpu"), start=5, window=2,  # type: ignore[arg-type]
                       inputs={4: scene, 5: scene}, behind={4: scene}, ahead={5: scene},
                       iterations=1)
