"""vidstyle.preview and `vidstyle preview`: contact sheet layout, labels, the side-by-side clip,
refusals, and no temporary files left behind."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import av
import cv2
import numpy as np
import pytest

from vidstyle.cli import main
from vidstyle.config import OptimConfig, RenderConfig
from vidstyle.errors import Interrupted
from vidstyle.io import iter_frames, probe
from vidstyle.pipeline import Progress, render
from vidstyle.preview import contact_sheet, pick_evenly, preview, side_by_side

# A real render of 4 frames in a second or two on a CPU.
# A large step size, so that even 2 iterations move the frames well away from the input.
FAST = ["--max-side", "64", "--first-iterations", "2", "--iterations", "1", "--early-stop", "0",
        "--lr", "0.1", "--frames", "0:4", "--device", "cpu", "-q"]  # fmt: skip
TILE_W, TILE_H = 64, 42  # working_size(96, 64, 64)
GAP = 4
LABEL_ROWS = 16  # labels sit in the top-left corner, well within the first 16 rows


def listing(*folders: Path) -> dict[Path, list[str]]:
    """Every name in ``folders``, hidden ones included."""
    return {folder: sorted(os.listdir(folder)) for folder in folders}


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def tiles(sheet: np.ndarray, row: int, count: int) -> list[np.ndarray]:
    y = row * (TILE_H + GAP)
    return [sheet[y:y + TILE_H, i * (TILE_W + GAP):i * (TILE_W + GAP) + TILE_W]
            for i in range(count)]


def decoded(path: Path, **kwargs: object) -> list[np.ndarray]:
    return [f.image for f in iter_frames(path, **kwargs)]  # type: ignore[arg-type]


def assert_labelled_copy(tile: np.ndarray, raw: np.ndarray) -> None:
    """``tile`` is ``raw`` exactly, except for a label drawn in its top rows."""
    assert tile.shape == raw.shape
    np.testing.assert_array_equal(tile[LABEL_ROWS:], raw[LABEL_ROWS:])
    assert (tile[:LABEL_ROWS] != raw[:LABEL_ROWS]).any(), "no label drawn"


# -- pure functions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_total", "count", "expected"),
    [
        (24, 6, [0, 5, 9, 14, 18, 23]),
        (4, 3, [0, 2, 3]),
        (10, 2, [0, 9]),
        (5, 1, [0]),
        (1, 1, [0]),
        (3, 6, [0, 1, 2]),  # count > total: all of them
        (6, 6, [0, 1, 2, 3, 4, 5]),
        (0, 3, []),
    ],
)
def test_pick_evenly(n_total: int, count: int, expected: list[int]) -> None:
    assert pick_evenly(n_total, count) == expected


def test_pick_evenly_is_distinct_sorted_and_spans_the_range() -> None:
    for n in range(1, 40):
        for c in range(2, n + 1):
            picked = pick_evenly(n, c)
            assert len(picked) == c
            assert picked == sorted(set(picked))
            assert picked[0] == 0 and picked[-1] == n - 1


@pytest.mark.parametrize(("n_total", "count"), [(5, 0), (5, -1), (-1, 2)])
def test_pick_evenly_rejects_bad_arguments(n_total: int, count: int) -> None:
    with pytest.raises(ValueError):
        pick_evenly(n_total, count)


def _images(n: int, h: int = 10, w: int = 12, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_contact_sheet_layout() -> None:
    ins, outs = _images(5, seed=1), _images(5, seed=2)
    sheet = contact_sheet(ins, outs, [""] * 5, gap=3)
    assert sheet.shape == (2 * 10 + 3, 5 * 12 + 4 * 3, 3)
    assert sheet.dtype == np.uint8
    for i in range(5):
        x = i * (12 + 3)
        np.testing.assert_array_equal(sheet[:10, x:x + 12], ins[i])
        np.testing.assert_array_equal(sheet[13:, x:x + 12], outs[i])
    # The gaps are one flat colour, different from the frames around them.
    assert len(np.unique(sheet[10:13].reshape(-1, 3), axis=0)) == 1
    assert len(np.unique(sheet[:, 12:15].reshape(-1, 3), axis=0)) == 1
    assert contact_sheet(ins, outs, [""] * 5, gap=0).shape == (20, 60, 3)


def test_contact_sheet_labels_every_tile() -> None:
    ins, outs = _images(2, 42, 64, seed=3), _images(2, 42, 64, seed=4)
    sheet = contact_sheet(ins, outs, ["frame 0", "frame 7"], gap=GAP)
    for row, raws in ((0, ins), (1, outs)):
        for tile, raw in zip(tiles(sheet, row, 2), raws):
            assert_labelled_copy(tile, raw)
    # Light text on a dark outline: both appear, whatever the background.
    label = tiles(contact_sheet(ins, outs, ["frame 0", "frame 7"]), 0, 1)[0][:LABEL_ROWS]
    assert (label.min(axis=2) > 230).any() and (label.max(axis=2) < 25).any()


def test_contact_sheet_errors_say_expected_and_actual() -> None:
    ins = _images(3)
    with pytest.raises(ValueError, match=r"\(3\).*got 2 outputs and 3 labels"):
        contact_sheet(ins, ins[:2], ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"got 3 outputs and 1 labels"):
        contact_sheet(ins, ins, ["a"])
    bad = [*ins[:2], np.zeros((10, 13, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"output 2: expected a \(10, 12, 3\) uint8 image, "
                                         r"got \(10, 13, 3\) uint8"):
        contact_sheet(ins, bad, ["a", "b", "c"])
    floats = [i.astype(np.float32) for i in ins]
    with pytest.raises(ValueError, match=r"input 0: .* got \(10, 12, 3\) float32"):
        contact_sheet(floats, ins, ["a", "b", "c"])
    with pytest.raises(ValueError, match="at least one"):
        contact_sheet([], [], [])
    with pytest.raises(ValueError, match="gap"):
        contact_sheet(ins, ins, ["a", "b", "c"], gap=-1)


def test_side_by_side() -> None:
    a, b = _images(2, 6, 4)
    both = side_by_side(a, b)
    assert both.shape == (6, 8, 3)
    np.testing.assert_array_equal(both[:, :4], a)
    np.testing.assert_array_equal(both[:, 4:], b)
    with pytest.raises(ValueError, match=r"\(6, 4, 3\) uint8 and \(5, 4, 3\) uint8"):
        side_by_side(a, b[:5])


# -- the command line --------------------------------------------------------------------------


def run(*argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@dataclass(frozen=True)
class Previewed:
    folder: Path
    clip: Path
    sheet: Path
    video: Path
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def previewed(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip: Path, styles: list[Path]
) -> Previewed:
    """One real preview: frames 0:4 of the tiny clip, 3 on the sheet (default name), a clip."""
    folder = tmp_path_factory.mktemp("preview")
    clip = folder / "clip.mp4"
    shutil.copy(tiny_clip, clip)
    video = folder / "side.mp4"
    code, stdout, stderr = run("preview", clip, "--style", styles[0], "--count", 3,
                               "--video", video, *FAST)
    return Previewed(folder, clip, folder / "clip.ink.preview.png", video, code, stdout, stderr)


def test_cli_preview_writes_the_sheet(previewed: Previewed) -> None:
    assert previewed.code == 0, previewed.stderr
    assert "Traceback" not in previewed.stderr
    sheet = read_png(previewed.sheet)
    assert sheet.shape == (2 * TILE_H + GAP, 3 * TILE_W + 2 * GAP, 3)
    assert re.fullmatch(
        rf"wrote {re.escape(str(previewed.sheet))} and {re.escape(str(previewed.video))}: "
        r"3 of 4 frames at 64x42 in 0:\d\d \(\d+\.\d s/frame on cpu\)\n",
        previewed.stdout,
    ), previewed.stdout
    # Nothing else: the temporary render and its work folder are gone.
    assert listing(previewed.folder)[previewed.folder] == [
        "clip.ink.preview.png", "clip.mp4", "side.mp4"
    ]


def test_sheet_top_row_is_the_input_frames(previewed: Previewed) -> None:
    sheet = read_png(previewed.sheet)
    inputs = decoded(previewed.clip, size=(TILE_W, TILE_H), stop_index=4)
    for tile, index in zip(tiles(sheet, 0, 3), [0, 2, 3]):
        assert_labelled_copy(tile, inputs[index])


def test_sheet_bottom_row_is_the_render(
    previewed: Previewed, styles: list[Path], tmp_path: Path
) -> None:
    # The same settings through the normal pipeline: the sheet must show the frames `vidstyle
    # run` would write, in the picked positions. Renders are usually bit-identical, but
    # multi-threaded CPU runs can round differently, so allow a level or two.
    cfg = RenderConfig(
        input=previewed.clip, styles=(styles[0],), output=tmp_path / "run.mp4",
        frames=(0, 4), max_side=64, device="cpu",
        optim=OptimConfig(first_iterations=2, iterations=1, early_stop=0, lr=0.1),
    )
    rendered = decoded(render(cfg).output)
    assert len(rendered) == 4
    sheet = read_png(previewed.sheet)
    inputs = decoded(previewed.clip, size=(TILE_W, TILE_H), stop_index=4)
    for tile, index in zip(tiles(sheet, 1, 3), [0, 2, 3]):
        body = np.abs(tile[LABEL_ROWS:].astype(int) - rendered[index][LABEL_ROWS:])
        assert body.mean() < 2.0, body.mean()
        assert (tile[:LABEL_ROWS] != rendered[index][:LABEL_ROWS]).any(), "no label drawn"
        assert np.abs(tile[LABEL_ROWS:].astype(int) - inputs[index][LABEL_ROWS:]).mean() > 10


def test_video_is_input_beside_render(previewed: Previewed, styles: list[Path]) -> None:
    assert previewed.code == 0, previewed.stderr
    info = probe(previewed.video)
    assert (info.width, info.height) == (2 * TILE_W, TILE_H)
    assert info.audio_streams == 1
    with av.open(str(previewed.video)) as container:
        audio = sum(float(p.duration * p.time_base) for p in container.demux(audio=0)
                    if p.size and p.duration)
    assert 4 / 24 - 0.05 <= audio <= 4 / 24 + 0.06  # the range's audio, not the whole clip's
    frames = decoded(previewed.video)
    assert len(frames) == 4
    inputs = decoded(previewed.clip, size=(TILE_W, TILE_H), stop_index=4)
    sheet = read_png(previewed.sheet)
    # H.264 is lossy, so compare with a tolerance far below the input/style difference.
    for frame, index, tile in zip([frames[i] for i in (0, 2, 3)], [0, 2, 3],
                                  tiles(sheet, 1, 3)):
        left, right = frame[:, :TILE_W].astype(int), frame[:, TILE_W:].astype(int)
        assert np.abs(left - inputs[index]).mean() < 6
        # The painted side is full of fine strokes, where H.264's error concentrates: compare
        # it after a light blur, which keeps what the frame shows and drops the codec's noise.
        painted, shown = (cv2.GaussianBlur(x[LABEL_ROWS:].astype(np.float32), (0, 0), 1.0)
                          for x in (right, tile))
        assert np.abs(painted - shown).mean() < 6
        assert np.abs(right - inputs[index]).mean() > 10


def test_existing_sheet_exit_4_untouched(
    tiny_clip: Path, styles: list[Path], tmp_path: Path, media_dir: Path
) -> None:
    sheet = tmp_path / "sheet.png"
    sheet.write_bytes(b"an earlier sheet")
    before = listing(tmp_path, media_dir)
    code, out, err = run("preview", tiny_clip, "--style", styles[0], "-o", sheet, *FAST)
    assert code == 4
    assert err.startswith("vidstyle: error: sheet exists") and "--overwrite" in err
    assert out == ""
    assert sheet.read_bytes() == b"an earlier sheet"
    assert listing(tmp_path, media_dir) == before


def test_render_failure_leaves_nothing(
    tiny_clip: Path, styles: list[Path], tmp_path: Path, media_dir: Path
) -> None:
    # The style is checked inside the render, after the temporary folder exists.
    before = listing(tmp_path, media_dir)
    missing = tmp_path / "nope.jpg"
    code, out, err = run("preview", tiny_clip, "--style", missing, "-o", tmp_path / "s.png",
                         "--video", tmp_path / "v.mp4", *FAST)
    assert code == 3
    assert err.startswith("vidstyle: error: style image not found") and len(err.splitlines()) == 1
    assert listing(tmp_path, media_dir) == before


def test_interrupt_leaves_nothing(tiny_clip: Path, styles: list[Path], tmp_path: Path) -> None:
    cfg = RenderConfig(input=tiny_clip, styles=(styles[0],), frames=(0, 4), max_side=64,
                       device="cpu", optim=OptimConfig(first_iterations=2, iterations=1))

    def stop(p: Progress) -> None:
        if p.frame_done:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="nothing was written"):
        preview(cfg, sheet=tmp_path / "s.png", count=3, video=tmp_path / "v.mp4", progress=stop)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["-o", "{tmp}/sheet.jpg"], 4, "use one of .png"),
        (["--count", "0"], 2, "--count must be >= 1"),
        (["--resume"], 2, "--resume does not apply to preview"),
        (["--video", "{tmp}/side.gif"], 4, "unsupported output type '.gif'"),
        (["-o", "{tmp}/no/such/s.png"], 4, "does not exist"),
    ],
)
def test_refusals_before_any_work(
    tiny_clip: Path, styles: list[Path], tmp_path: Path, media_dir: Path,
    extra: list[str], code: int, message: str,
) -> None:
    before = listing(tmp_path, media_dir)
    argv = [a.format(tmp=tmp_path) for a in extra]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "s.png")]
    got, out, err = run("preview", tiny_clip, "--style", styles[0], *FAST, *argv)
    assert got == code, err
    assert message in err and len(err.splitlines()) == 1
    assert listing(tmp_path, media_dir) == before


@pytest.fixture(scope="module")
def preview_help() -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit) as info:
        main(["preview", "--help"])
    assert info.value.code == 0
    return buffer.getvalue()


def test_help_points_to_the_measured_speed_and_states_defaults(preview_help: str) -> None:
    # Timings live in benchmarks/RESULTS.md, not in the help.
    assert "benchmarks/RESULTS.md" in preview_help
    assert not re.search(r"\d+(\.\d+)? s per frame", preview_help)
    assert "(default: 256 for preview)" in preview_help
    assert "0:24" in preview_help
    # Every option of `run` that a preview can use is here, with run's defaults.
    for flag in ("--style-weight", "--temporal-weight", "--first-iterations", "--flow",
                 "--backbone", "--device", "--seed", "--overwrite", "--count", "--video"):
        assert flag in preview_help
    assert "--resume" not in preview_help


def test_default_range_is_first_24_frames(
    monkeypatch: pytest.MonkeyPatch, tiny_clip: Path, styles: list[Path], tmp_path: Path
) -> None:
    seen: list[RenderConfig] = []

    def fake_preview(cfg: RenderConfig, **kwargs: object) -> NoReturn:
        seen.append(cfg)
        raise Interrupted("stop here")

    monkeypatch.setattr("vidstyle.preview.preview", fake_preview)
    code, _, _ = run("preview", tiny_clip, "--style", styles[0], "-o", tmp_path / "s.png", "-q")
    assert code == 130
    assert seen[0].frames == (0, 24) and seen[0].max_side == 256
    assert seen[0].optim == OptimConfig()
