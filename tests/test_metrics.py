from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidstyle.io import VideoWriter, iter_frames, probe
from vidstyle.metrics import clip_warping_error, warping_error


def test_known_shift_has_zero_error_once_warped() -> None:
    frame = torch.rand(1, 3, 24, 32)
    nxt = torch.roll(frame, shifts=3, dims=-1)  # content moves 3 px right
    flow = torch.zeros(1, 2, 24, 32)
    flow[:, 0] = 3.0  # t -> t+1
    error = warping_error(frame, nxt, flow, -flow)
    assert error.item() == pytest.approx(0.0, abs=1e-10)
    assert warping_error(frame, nxt, torch.zeros_like(flow), torch.zeros_like(flow)) > 0.05


def _copy_with(src: Path, dst: Path, change) -> Path:
    info = probe(src)
    frames = list(iter_frames(src))
    with VideoWriter(dst, width=info.width, height=info.height, rate=info.rate,
                     time_base=info.time_base, start_time=frames[0].time) as writer:
        for i, f in enumerate(frames):
            writer.write(change(i, f.image), f.time)
    return dst


def test_output_equal_to_input_scores_one_and_jitter_scores_worse(
    tiny_clip: Path, tmp_path: Path
) -> None:
    same = clip_warping_error(tiny_clip, tiny_clip)
    assert same.flicker_ratio == pytest.approx(1.0)
    rng = np.random.default_rng(0)

    def jitter(i: int, image: np.ndarray) -> np.ndarray:
        shift = rng.integers(-40, 41, size=3)
        return np.clip(image.astype(int) + shift, 0, 255).astype(np.uint8)

    jittered = clip_warping_error(tiny_clip, _copy_with(tiny_clip, tmp_path / "j.mp4", jitter))
    assert jittered.flicker_ratio > 5 * same.flicker_ratio
