"""vidstyle.distributed: batch outputs and chunks of one video on a local Ray instance (2 CPUs)."""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vidstyle.cli import main
from vidstyle.distributed import (
    Chunk,
    blend_targets,
    check_shared_storage,
    frame_differences,
    plan_chunks,
    render_chunked,
    require_ray,
    seam_optim,
    shot_cuts,
)
from vidstyle.errors import InputError, MissingExtraError, OutputError
from vidstyle.samples import render_scene_frame

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'vidstyle[ray]')")

# A real render of a few frames in about a second per frame on a CPU.
TINY = ["--first-iterations", "3", "--iterations", "2", "--max-side", "64", "-q"]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance with 2 CPUs for the module; vidstyle uses it as it finds it."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


# -- planning: pure functions ------------------------------------------------------------------


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


def test_seam_frames_run_every_iteration_at_half_the_step() -> None:
    from vidstyle.config import OptimConfig

    optim = OptimConfig(lr=0.04, iterations=30, early_stop=1e-3)
    seam = seam_optim(optim)
    assert seam.lr == 0.02 and seam.early_stop == 0 and seam.iterations == 30


def test_blend_targets_pull_like_two_temporal_terms() -> None:
    g = torch.Generator().manual_seed(1)
    w1, w2, x = (torch.rand(1, 3, 5, 7, generator=g, dtype=torch.float64) for _ in range(3))
    m1 = (torch.rand(1, 1, 5, 7, generator=g) > 0.3).double()
    m2 = (torch.rand(1, 1, 5, 7, generator=g) > 0.3).double()
    a = 0.7
    x.requires_grad_(True)
    two = (a * m1 * (x - w1) ** 2 + (1 - a) * m2 * (x - w2) ** 2).sum()
    (grad_two,) = torch.autograd.grad(two, x)
    target, mask = blend_targets(w1, m1, w2, m2, a)
    one = (mask * (x - target) ** 2).sum()
    (grad_one,) = torch.autograd.grad(one, x)
    assert torch.allclose(grad_one, grad_two)
    assert mask.max() <= 1 and mask.min() >= 0


# -- shared storage and errors -----------------------------------------------------------------


def test_storage_check_names_what_a_worker_cannot_see(local_ray: None, tmp_path: Path) -> None:
    readable = tmp_path / "ok.txt"
    readable.write_text("x")
    check_shared_storage([readable], [tmp_path])
    with pytest.raises(InputError, match="cannot read .*missing.mp4.*storage every Ray worker"):
        check_shared_storage([tmp_path / "missing.mp4"])
    with pytest.raises(OutputError, match="cannot write in .*ok.txt"):
        check_shared_storage([], [readable])  # a file, not a folder
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".vidstyle-check")]


def test_without_ray_the_flag_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tiny_clip: Path,
    styles: list[Path], tmp_path: Path,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(MissingExtraError, match=r"pip install 'vidstyle\[ray\]'"):
        require_ray()
    code = main(["run", str(tiny_clip), "--style", str(styles[0]), "-o",
                 str(tmp_path / "o.mp4"), "--chunks", "2", "--ray", *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        "vidstyle: error: --ray needs Ray, which is not installed: pip install 'vidstyle[ray]'"
    )


def test_chunks_need_ray(capsys: pytest.CaptureFixture[str], tiny_clip: Path,
                         styles: list[Path], tmp_path: Path) -> None:
    code = main(["run", str(tiny_clip), "--style", str(styles[0]), "-o",
                 str(tmp_path / "o.mp4"), "--chunks", "2", *TINY])
    assert code == 2
    assert "add --ray" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_an_interrupted_chunked_render_is_not_discarded(tiny_clip: Path, styles: list[Path],
                                                        tmp_path: Path) -> None:
    from vidstyle.config import RenderConfig

    out = tmp_path / "o.mp4"
    (tmp_path / ".o.mp4.chunks").mkdir()
    cfg = RenderConfig(input=tiny_clip, styles=(styles[0],), output=out)
    with pytest.raises(OutputError, match="--resume"):
        render_chunked(cfg, chunks=2)


# -- real renders on the local Ray instance --------------------------------------------------


def _clip_with_cut(path: Path) -> Path:
    from vidstyle.io import VideoWriter

    with VideoWriter(path, width=96, height=64, rate=Fraction(24),
                     time_base=Fraction(1, 24)) as writer:
        for i in range(16):
            seed = 0 if i < 9 else 5
            writer.write(render_scene_frame(i, width=96, height=64, seed=seed), i / 24)
    return path


def test_scan_finds_the_shot_cut_of_a_real_clip(tmp_path: Path, styles: list[Path]) -> None:
    from vidstyle.config import RenderConfig
    from vidstyle.distributed import _scan

    clip = _clip_with_cut(tmp_path / "cut.mp4")
    indices, times, diffs = _scan(RenderConfig(input=clip, styles=(styles[0],)))
    assert indices == list(range(16)) and times[1] == pytest.approx(1 / 24)
    cuts = shot_cuts(diffs)
    assert cuts == [9]
    plan = plan_chunks(16, 2, cuts=cuts)
    assert plan[1] == Chunk(9, 16, 9, seam=False)


def _stream_facts(path: Path) -> dict[str, object]:
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        pts = [f.pts for f in c.decode(video)]
    with av.open(str(path)) as c:
        audio = [(p.pts, p.size) for p in c.demux(c.streams.audio[0]) if p.size]
        return {"frames": len(pts), "pts": pts, "audio": audio,
                "size": (c.streams.video[0].width, c.streams.video[0].height)}


def test_two_chunks_give_the_frames_timestamps_and_audio_of_one_render(
    local_ray: None, tiny_clip: Path, styles: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plain, chunked = tmp_path / "plain.mp4", tmp_path / "chunked.mp4"
    base = ["run", str(tiny_clip), "--style", str(styles[0]), *TINY]
    assert main([*base, "-o", str(plain)]) == 0
    capsys.readouterr()
    assert main([*base, "-o", str(chunked), "--chunks", "2", "--ray", "--preroll", "3",
                 "--seam-window", "4"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {chunked}: 12 frames at 64x42" in out
    assert "2 chunks on Ray (2 workers), 1 seam reconciled, 0 at shot cuts" in out
    assert _stream_facts(chunked) == _stream_facts(plain)
    assert _stream_facts(chunked)["frames"] == 12
    # Only the two videos are left: the chunks' work folder is gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunked.mp4", "plain.mp4"]


def test_a_frame_range_in_chunks(local_ray: None, tiny_clip: Path, styles: list[Path],
                                 tmp_path: Path) -> None:
    from vidstyle.config import OptimConfig, RenderConfig

    cfg = RenderConfig(input=tiny_clip, styles=(styles[0],), output=tmp_path / "r.mp4",
                       frames=(2, 11), max_side=64,
                       optim=OptimConfig(first_iterations=2, iterations=2))
    result = render_chunked(cfg, chunks=3, preroll=2, seam_window=2)
    assert result.first_index == 2 and result.frames == 9
    assert [(c.start, c.stop, c.render_from) for c in result.chunks] == [
        (0, 3, 0), (3, 6, 1), (6, 9, 4)
    ]
    facts = _stream_facts(result.output)
    pts = facts["pts"]
    assert isinstance(pts, list) and len(pts) == 9
    assert pts[0] == 0 and len(set(np.diff(pts))) == 1, "evenly spaced from the range's start"


BATCH = """\
inputs = ["../clips/*.mp4"]
styles = ["../art/ink.jpg"]
max_side = 64
frames = "0:2"

[optim]
first_iterations = 2
iterations = 2
"""


def test_batch_on_ray_reports_the_bad_output_and_renders_the_others(
    local_ray: None, tmp_path: Path, tiny_clip: Path, styles: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("clips", "art", "recipes"):
        (tmp_path / name).mkdir()
    for name in ("a", "b"):
        shutil.copy(tiny_clip, tmp_path / "clips" / f"{name}.mp4")
    (tmp_path / "clips" / "c.mp4").write_text("a text file, not a video\n")  # the bad one
    shutil.copy(styles[0], tmp_path / "art" / "ink.jpg")
    recipe = tmp_path / "recipes" / "tiny.toml"
    recipe.write_text(textwrap.dedent(BATCH))
    out_dir = tmp_path / "renders"

    code = main(["batch", str(recipe), "--out-dir", str(out_dir), "--ray", "-q"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.tiny.mp4", "b.tiny.mp4"]
    for name in ("a", "b"):
        [line] = [x for x in lines if str(out_dir / f"{name}.tiny.mp4") in x]
        assert line.startswith("rendered") and "2 frames" in line
    [bad] = [x for x in lines if str(out_dir / "c.tiny.mp4") in x]
    assert bad.startswith("FAILED") and "not a video file" in bad
    assert bad.endswith("(after 2 attempts)"), "a failed task is retried once"
    assert lines[-1] == "2 of 3 outputs ok, 1 failed"

    code = main(["batch", str(recipe), "--out-dir", str(out_dir), "--ray", "-q"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert sum(line.startswith("up to date") for line in lines) == 2
    assert any(line.startswith("FAILED") for line in lines)


def test_cli_defaults_are_the_librarys() -> None:
    import vidstyle.cli
    import vidstyle.distributed

    assert vidstyle.cli.DEFAULT_PREROLL == vidstyle.distributed.DEFAULT_PREROLL
    assert vidstyle.cli.DEFAULT_SEAM_WINDOW == vidstyle.distributed.DEFAULT_SEAM_WINDOW
