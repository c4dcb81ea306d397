"""Chunk planning: shot detection and where chunks begin (pure numpy; no Ray needed)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vidstyle.chunking import Chunk, frame_differences, plan_chunks, scan, shot_cuts
from vidstyle.config import RenderConfig
from vidstyle.io import VideoWriter
from vidstyle.samples import render_scene_frame

# -- pure functions ------------------------------------------------------------------


def test_frame_differences_are_zero_for_still_frames_and_large_at_a_change() -> None:
    grey = np.full((40, 60, 3), 100, np.uint8)
    white = np.full((40, 60, 3), 255, np.uint8)
    diffs = frame_differences([grey, grey, white, white])
    assert diffs[0] == 0 and diffs[2] == 0
    assert diffs[1] == pytest.approx(155 / 255, abs=1e-3)


def test_shot_cuts_far_above_the_median() -> None:
    diffs = [0.02, 0.03, 0.025, 0.4, 0.02, 0.03, 0.021, 0.02, 0.35, 0.03]
    assert shot_cuts(diffs) == [4, 9]
    # A still video: the median is 0, the floor keeps noise from being a cut.
    assert shot_cuts([0.0, 0.0, 0.01, 0.0]) == []
    assert shot_cuts([]) == []


def test_plan_even_chunks_with_preroll() -> None:
    plan = plan_chunks(48, 4, preroll=8)
    assert [(c.start, c.stop) for c in plan] == [(0, 12), (12, 24), (24, 36), (36, 48)]
    assert plan[0] == Chunk(0, 12, 0, seam=False)
    assert all(c.seam and c.render_from == c.start - 8 for c in plan[1:])
    assert sum(len(c) for c in plan) == 48


def test_plan_moves_boundaries_to_nearby_cuts() -> None:
    plan = plan_chunks(48, 2, cuts=[20], preroll=8)
    assert [(c.start, c.stop) for c in plan] == [(0, 20), (20, 48)]
    assert plan[1] == Chunk(20, 48, 20, seam=False), "no pre-roll or seam at a cut"
    plan = plan_chunks(48, 2, cuts=[4, 21], preroll=8)  # 4 is too far from 24
    assert [(c.start, c.stop) for c in plan] == [(0, 21), (21, 48)]
    plan = plan_chunks(48, 2, cuts=[20], preroll=8, min_length=30)
    assert len(plan) == 1
    plan = plan_chunks(60, 2, cuts=[26], preroll=8)  # 26 is within half a chunk of 30
    assert plan[1].start == 26
    plan = plan_chunks(60, 3, cuts=[35], preroll=8)
    assert [(c.start, c.render_from, c.seam) for c in plan] == [
        (0, 0, False), (20, 12, True), (35, 35, False)
    ]
    plan = plan_chunks(60, 3, cuts=[38], preroll=8)
    assert [(c.start, c.render_from) for c in plan] == [(0, 0), (20, 12), (38, 38)]


def test_plan_preroll_does_not_reach_into_the_previous_shot() -> None:
    plan = plan_chunks(100, 2, cuts=[22], preroll=8)  # too far from 50 to be a boundary
    assert plan[1] == Chunk(50, 100, 42, seam=True)
    plan = plan_chunks(100, 2, cuts=[45], preroll=8)  # near enough: the boundary
    assert plan[1] == Chunk(45, 100, 45, seam=False)
    plan = plan_chunks(100, 2, cuts=[24, 46], preroll=8)  # the nearest of two
    assert plan[1].start == 46
    # The cut at 45 would leave a first chunk shorter than 48 frames, so the boundary stays at
    # 50; its pre-roll starts at the cut, not in the shot before it.
    plan = plan_chunks(100, 2, cuts=[23, 45], preroll=8, min_length=48)
    assert plan[1] == Chunk(50, 100, 45, seam=True)


def test_plan_makes_fewer_chunks_for_short_ranges_and_checks_arguments() -> None:
    plan = plan_chunks(12, 8, min_length=5)
    assert len(plan) == 2 and all(len(c) >= 5 for c in plan)
    assert plan_chunks(3, 4, min_length=5) == [Chunk(0, 3, 0, seam=False)]
    for bad in ({"count": 0, "chunks": 2}, {"count": 10, "chunks": 0},
                {"count": 10, "chunks": 2, "preroll": -1}):
        with pytest.raises(ValueError):
            plan_chunks(**bad)  # type: ignore[arg-type]


# -- a real clip ---------------------------------------------------------------------------------


def _clip_with_cut(path: Path) -> Path:

    with VideoWriter(path, width=96, height=64, rate=Fraction(24),
                     time_base=Fraction(1, 24)) as writer:
        for i in range(16):
            seed = 0 if i < 9 else 5
            writer.write(render_scene_frame(i, width=96, height=64, seed=seed), i / 24)
    return path


def test_scan_finds_the_shot_cut_of_a_real_clip(tmp_path: Path, styles: list[Path]) -> None:
    clip = _clip_with_cut(tmp_path / "cut.mp4")
    indices, times, diffs = scan(RenderConfig(input=clip, styles=(styles[0],)))
    assert indices == list(range(16)) and times[1] == pytest.approx(1 / 24)
    cuts = shot_cuts(diffs)
    assert cuts == [9]
    plan = plan_chunks(16, 2, cuts=cuts, min_length=7)
    assert plan[1] == Chunk(9, 16, 9, seam=False)


def test_cli_defaults_are_the_librarys() -> None:
    import vidstyle.chunking
    import vidstyle.cli

    assert vidstyle.cli.DEFAULT_PREROLL == vidstyle.chunking.DEFAULT_PREROLL
    assert vidstyle.cli.DEFAULT_SEAM_WINDOW == vidstyle.chunking.DEFAULT_SEAM_WINDOW
