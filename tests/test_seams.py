"""Seams of a chunked render: the window's weights, its settings and its frames (no Ray)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from vidstyle.config import OptimConfig
from vidstyle.flow import DISFlow, ReferenceFlows
from vidstyle.seams import reconcile_seam, seam_optim, seam_position, seam_weight


def test_seam_frames_run_every_iteration_at_half_the_step() -> None:
    optim = OptimConfig(lr=0.04, iterations=30, early_stop=1e-3)
    seam = seam_optim(optim)
    assert seam.lr == 0.02 and seam.early_stop == 0 and seam.iterations == 30


@pytest.mark.parametrize("window", [1, 2, 6])
def test_held_to_the_previous_frame_alone_the_gap_shrinks_by_equal_steps(window: int) -> None:
    left = 1.0
    gaps = []
    for k in range(window):
        behind = [seam_position(9 + k, 10, window)]  # the window starts at input frame 10
        a = seam_weight(seam_position(10 + k, 10, window), behind, anchor=0.25)
        np.testing.assert_allclose(a, (window - k) / (window + 1 - k))
        left *= a
        gaps.append(left)
    steps = np.diff([1.0, *gaps, 0.0])
    np.testing.assert_allclose(steps, -1 / (window + 1))


def test_far_references_into_the_earlier_chunk_take_less_weight() -> None:
    # Frame 3 of a 4-frame window, held to frame 2 of the window and to the earlier chunk's
    # frame 5 back: the earlier chain pulls harder, so the side behind must weigh less.
    near = seam_weight(seam_position(13, 10, 4), [seam_position(12, 10, 4)], anchor=0.25)
    both = seam_weight(seam_position(13, 10, 4), [seam_position(12, 10, 4),
                                                   seam_position(8, 10, 4)], anchor=0.25)
    assert both < near
    folded = (3 / 5 + 0.25 * 0) / 1.25
    np.testing.assert_allclose(both * folded + (1 - both), 4 / 5)


class _Start:
    """A stylizer that keeps the pixels it starts from: the seam's rule laid bare."""

    def stylize(self, content: torch.Tensor, init: torch.Tensor, **_: Any) -> tuple[Any, None]:
        return init, None


@pytest.mark.parametrize("offsets", [(1,), (1, 2, 5)])
def test_a_seam_window_passes_from_the_earlier_chain_to_the_later_one_evenly(
        offsets: tuple[int, ...]) -> None:
    # With offsets 2 and 5 as well, most of the window is held to the earlier chunk's frames
    # too: the weights must still take it from 40 to 200 in equal steps, ending a step short.
    rng = np.random.default_rng(0)
    scene = (rng.random((32, 48, 3)) * 255).astype(np.uint8)  # a still scene
    window, start, reach = 4, 10, max(offsets)
    inputs = {i: scene for i in range(start - reach, start + window + reach + 1)}
    dark, light = np.full_like(scene, 40), np.full_like(scene, 200)
    frames = reconcile_seam(
        _Start(), ReferenceFlows(DISFlow()), torch.device("cpu"),  # type: ignore[arg-type]
        start=start, window=window, inputs=inputs,
        behind={i: dark for i in range(start - reach, start)},
        ahead={i: light for i in range(start, start + window + reach + 1)},
        offsets=offsets, iterations=1,
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
