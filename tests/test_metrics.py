from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vidstyle.cli import main
from vidstyle.errors import DecodeError, InputError
from vidstyle.io import VideoWriter, iter_frames, probe
from vidstyle.metrics import clip_warping_error, format_report, measure, warping_error
from vidstyle.samples import make_clip, render_scene_frame


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


# -- measure(): the full report ---------------------------------------------------------------

# The steps (in 2 px units) of a 'shift' clip whose speed changes every frame, so comparing an
# output against the wrong input frames gives a flow that does not match its motion.
JERKY_STEPS = (0, 3, 0, 4, 1, 0, 5, 2, 0, 3, 4, 0, 1, 5, 0, 2)
KEYS = {
    "frames", "pairs", "warping_error_output", "warping_error_input", "flicker_ratio",
    "long_range_k", "long_range_error_output", "long_range_error_input", "long_range_ratio",
    "style_loss_ratio", "content_loss", "per_pair",
}  # fmt: skip


def _write(path: Path, images: list[np.ndarray], fps: int = 24) -> Path:
    h, w = images[0].shape[:2]
    with VideoWriter(path, width=w, height=h, rate=Fraction(fps),
                     time_base=Fraction(1, fps)) as writer:
        for i, image in enumerate(images):
            writer.write(image, i / fps)
    return path


@pytest.fixture(scope="module")
def jerky_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 frames of 96x64 whose content jumps right by 0 to 10 px per frame."""
    positions = np.cumsum(JERKY_STEPS)
    images = [render_scene_frame(int(p), width=96, height=64, motion="shift") for p in positions]
    return _write(tmp_path_factory.mktemp("jerky") / "jerky.mp4", images)


def test_output_equal_to_input_scores_one_short_and_long(tiny_clip: Path) -> None:
    report = measure(tiny_clip, tiny_clip, long_range=4)
    assert (report.frames, report.pairs) == (12, 11)
    assert report.size == (96, 64)
    assert report.flicker_ratio == pytest.approx(1.0)
    assert report.long_range_ratio == pytest.approx(1.0)
    assert len(report.long_range_output) == 12 - 4
    assert report.per_pair_output == report.per_pair_input
    # Frames further apart are harder to warp onto each other: the long-range floor is higher.
    assert report.long_range_error_input > report.warping_error_input > 0
    assert report.style_loss_ratio is None and report.content_loss is None
    # The old entry point agrees with the new one.
    old = clip_warping_error(tiny_clip, tiny_clip)
    assert old.output == pytest.approx(report.warping_error_output)


def test_colour_jitter_scores_far_worse(tiny_clip: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)

    def jitter(i: int, image: np.ndarray) -> np.ndarray:
        shift = rng.integers(-40, 41, size=3)
        return np.clip(image.astype(int) + shift, 0, 255).astype(np.uint8)

    report = measure(tiny_clip, _copy_with(tiny_clip, tmp_path / "j.mp4", jitter), long_range=4)
    assert report.flicker_ratio > 5
    assert report.long_range_ratio is not None and report.long_range_ratio > 2
    # Every pair flickers, not just a few.
    assert all(o > i for o, i in zip(report.per_pair_output, report.per_pair_input))


def test_a_known_change_of_light_is_corrected_for(tiny_clip: Path, tmp_path: Path) -> None:
    """Under a fade, a painting that follows it must not score worse than one that ignores
    it; told the light, the yardstick scores them the other way round."""
    gains = [1.0 - 0.05 * i for i in range(12)]

    def darker(i: int, image: np.ndarray) -> np.ndarray:
        return np.rint(image * gains[i]).astype(np.uint8)

    lit = _copy_with(tiny_clip, tmp_path / "lit.mp4", darker)
    # "follows": the output is the lit input itself; "ignores": it keeps the steady light.
    follows, ignores = lit, tiny_clip
    plain = [measure(lit, out, long_range=4).flicker_ratio for out in (follows, ignores)]
    told = [measure(lit, out, long_range=4, light=gains) for out in (follows, ignores)]
    assert plain[1] < plain[0]  # the bias the correction removes
    assert told[0].flicker_ratio == pytest.approx(1.0)
    assert told[1].flicker_ratio > 2 * told[0].flicker_ratio
    assert told[1].long_range_ratio is not None and told[1].long_range_ratio > 2
    with pytest.raises(ValueError, match="positive"):
        measure(lit, lit, light=[0.0] * 12)
    with pytest.raises(ValueError, match="light has 3 values"):
        measure(lit, lit, light=[1.0] * 3)


def test_start_index_aligns_a_render_of_a_frame_range(jerky_clip: Path, tmp_path: Path) -> None:
    tail = _write(tmp_path / "tail.mp4", [f.image for f in iter_frames(jerky_clip, start_index=3)])
    right = measure(jerky_clip, tail, start_index=3, long_range=4)
    assert right.frames == 13
    assert right.flicker_ratio == pytest.approx(1.0, abs=0.2)  # re-encoding adds a little noise
    assert right.long_range_ratio == pytest.approx(1.0, abs=0.15)
    wrong = measure(jerky_clip, tail, start_index=0, long_range=4)
    assert wrong.flicker_ratio > 3 * right.flicker_ratio


def test_output_smaller_than_input_is_measured_at_its_size(
    tiny_clip: Path, tmp_path: Path
) -> None:
    half = [cv2.resize(f.image, (48, 32), interpolation=cv2.INTER_AREA)
            for f in iter_frames(tiny_clip)]
    report = measure(tiny_clip, _write(tmp_path / "half.mp4", half), long_range=4)
    assert report.size == (48, 32)
    assert report.flicker_ratio == pytest.approx(1.0, abs=0.25)


def test_long_range_is_unavailable_for_a_clip_of_k_frames(tiny_clip: Path) -> None:
    report = measure(tiny_clip, tiny_clip, long_range=12)
    assert report.long_range_k == 12
    assert report.long_range_error_output is None and report.long_range_ratio is None
    data = json.loads(json.dumps(report.to_dict()))
    assert data["long_range_ratio"] is None and data["per_pair_long_range"]["output"] == []
    assert "n/a" in format_report(report)
    assert measure(tiny_clip, tiny_clip, long_range=0).long_range_k is None


def test_unstylized_output_has_style_loss_ratio_one(tiny_clip: Path, styles: list[Path]) -> None:
    report = measure(tiny_clip, tiny_clip, long_range=None, style=styles[0], every=5)
    assert report.backbone == "efficientnet-lite0"
    assert report.style_frames == (0, 5, 10)
    assert report.style_loss_ratio == pytest.approx(1.0)
    assert report.style_loss_output is not None and report.style_loss_output > 0
    assert report.content_loss == pytest.approx(0.0, abs=1e-12)
    assert "style loss" in format_report(report)


def test_bad_clips_and_arguments(tiny_clip: Path, tmp_path: Path) -> None:
    one = make_clip(tmp_path / "one.mp4", width=96, height=64, frames=1, audio=False)
    with pytest.raises(InputError, match="only 1 frame.*at least 2"):
        measure(tiny_clip, one)
    with pytest.raises(InputError, match="more frames than"):
        measure(tiny_clip, tiny_clip, start_index=5)
    with pytest.raises(InputError, match="no frame 40"):
        measure(tiny_clip, tiny_clip, start_index=40)
    with pytest.raises(ValueError, match="every"):
        measure(tiny_clip, tiny_clip, every=0)
    with pytest.raises(ValueError, match="did you mean 'vgg19'"):
        measure(tiny_clip, tiny_clip, backbone="vgg")
    with pytest.raises(InputError, match="not found"):
        measure(tmp_path / "missing.mp4", tiny_clip)
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(DecodeError):
        measure(tiny_clip, tmp_path / "junk.mp4")


# -- the command line -----------------------------------------------------------------------


def test_cli_json_has_the_stable_keys_and_plot_keeps_stdout_json(
    tiny_clip: Path, styles: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "curves.png"
    code = main(["metrics", str(tiny_clip), str(tiny_clip), "--json", "--long-range", "4",
                 "--style", str(styles[0]), "--every", "6", "--plot", str(plot), "-q"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert set(data) >= KEYS
    assert data["frames"] == 12 and data["pairs"] == 11 and data["long_range_k"] == 4
    assert data["flicker_ratio"] == pytest.approx(1.0)
    assert data["style_loss_ratio"] == pytest.approx(1.0)
    assert len(data["per_pair"]["output"]) == len(data["per_pair"]["input"]) == 11
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_table_and_plot(
    tiny_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "curves.png"
    code = main(["metrics", str(tiny_clip), str(tiny_clip), "--long-range", "4",
                 "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0
    assert "flicker ratio" in out and "frames t and t+4" in out
    assert "style loss" not in out  # no --style, no stylization numbers
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_measures_along_the_flow_it_is_given(
    tiny_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--flow`` picks the estimator: the errors differ between estimators, an identical output
    still scores 1.0 along any of them, and an unknown name is a usage error."""
    rng = np.random.default_rng(3)
    shaky = tmp_path / "shaky.mp4"
    info = probe(tiny_clip)
    with VideoWriter(shaky, width=96, height=64, rate=info.rate,
                     time_base=info.time_base) as writer:
        for frame in iter_frames(tiny_clip):
            noisy = frame.image.astype(np.int16) + rng.integers(-20, 21, frame.image.shape)
            writer.write(np.clip(noisy, 0, 255).astype(np.uint8), frame.time)
    errors = {}
    for flow in ("dis-medium", "deepflow"):
        assert main(["metrics", str(tiny_clip), str(tiny_clip), "--json", "--flow", flow,
                     "-q"]) == 0
        assert json.loads(capsys.readouterr().out)["flicker_ratio"] == pytest.approx(1.0)
        assert main(["metrics", str(tiny_clip), str(shaky), "--json", "--flow", flow,
                     "-q"]) == 0
        errors[flow] = json.loads(capsys.readouterr().out)["warping_error_input"]
    assert errors["dis-medium"] != errors["deepflow"]
    with pytest.raises(SystemExit) as info_exit:
        main(["metrics", str(tiny_clip), str(tiny_clip), "--flow", "dis-fast"])
    assert info_exit.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cli_errors_have_exit_codes(
    tiny_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["metrics", str(tmp_path / "missing.mp4"), str(tiny_clip)])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith("vidstyle: error: ") and len(err.splitlines()) == 1
    one = make_clip(tmp_path / "one.mp4", width=96, height=64, frames=1, audio=False)
    assert main(["metrics", str(tiny_clip), str(one)]) == 3
    assert "at least 2" in capsys.readouterr().err
    assert main(["metrics", str(tiny_clip), str(tiny_clip),
                 "--plot", str(tmp_path / "no" / "dir.png")]) == 4


def test_report_names_stay_importable_from_metrics() -> None:
    """Presenting lives in vidstyle.report; callers of vidstyle.metrics see the same objects."""
    import vidstyle.metrics as metrics
    import vidstyle.report as report

    for name in ("format_report", "plot_report", "check_plot_path"):
        assert getattr(metrics, name) is getattr(report, name)
    for name in ("measure", "warping_error", "clip_warping_error", "MetricsReport"):
        assert hasattr(metrics, name)
