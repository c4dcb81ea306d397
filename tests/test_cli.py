"""vidstyle.cli: flags, one-line errors with distinct exit codes, and short real renders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
import torch

from vidstyle.cli import main
from vidstyle.config import OptimConfig

# Settings that keep a real render around a second on a CPU.
TINY = ["--first-iterations", "3", "--iterations", "2", "--max-side", "64", "-q"]

CONTRACT_FLAGS = [
    "--style", "-o", "--frames", "--start", "--end", "--max-side", "--first-iterations",
    "--iterations", "--backbone", "--content-weight", "--style-weight", "--tv-weight",
    "--temporal-weight", "--flow", "--device", "--seed", "--overwrite",
]  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(*folders: Path) -> dict[Path, list[tuple[str, int, int]]]:
    """Names, sizes and mtimes of everything in ``folders`` (hidden files included)."""
    result = {}
    for folder in folders:
        entries = []
        for name in sorted(os.listdir(folder)):
            st = (folder / name).stat()
            entries.append((name, st.st_size, st.st_mtime_ns))
        result[folder] = entries
    return result


@pytest.fixture
def unchanged(
    tmp_path: Path, media_dir: Path, tiny_clip: Path, styles: list[Path]
) -> Iterator[None]:
    """Fails the test when any file appears in, or changes in, the folders involved."""
    before = snapshot(tmp_path, media_dir)
    yield
    assert snapshot(tmp_path, media_dir) == before


def assert_one_error_line(err: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("vidstyle: error: ")
    assert "Traceback" not in err


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# -- help --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_help() -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    return buffer.getvalue()


@pytest.mark.parametrize("flag", CONTRACT_FLAGS)
def test_run_help_mentions_flag(run_help: str, flag: str) -> None:
    assert f"{flag} " in run_help or f"{flag}," in run_help or f"{flag}\n" in run_help


def test_run_help_shows_defaults_and_exit_codes(run_help: str) -> None:
    # Defaults are taken from the dataclasses, not repeated in the parser.
    assert f"(default: {OptimConfig().iterations})" in run_help
    assert "exit codes:" in run_help


def test_top_level_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "run" in out and "batch" in out


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code == 2
    assert "usage: vidstyle" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == "vidstyle 0.1.0"


# -- bad arguments: exit 2, one line -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--iterations", "0"], "iterations must be an integer >= 1, got 0"),
        (["--iterations", "-3"], "iterations must be an integer >= 1, got -3"),
        (["--first-iterations", "0"], "first-iterations must be an integer >= 1"),
        (["--style-weight", "-1"], "style-weight must be >= 0"),
        (["--tv-weight", "nan"], "tv-weight must be >= 0"),
        (["--backbone", "vgg"], "did you mean 'vgg19'"),
        (["--flow", "farneback"], "unknown flow method 'farneback'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--frames", "9:3"], "empty or reversed"),
        (["--frames", "abc"], "frame range must look like A:B"),
        (["--frames", "0:4", "--start", "1"], "not both"),
        (["--start", "2", "--end", "1"], "must be after --start"),
        (["--max-side", "16"], "at least 32 pixels"),
        (["--optimizer", "sgd"], "unknown optimizer 'sgd'"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_bad_values_exit_2(
    capsys: pytest.CaptureFixture[str],
    tiny_clip: Path,
    styles: list[Path],
    tmp_path: Path,
    unchanged: None,
    args: list[str],
    message: str,
) -> None:
    code, out, err = run(capsys, "run", tiny_clip, "--style", styles[0],
                         "-o", tmp_path / "out.mp4", *args)
    assert code == 2
    assert_one_error_line(err)
    assert message in err
    assert out == ""


def test_unparsable_number_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tiny_clip: Path, styles: list[Path], unchanged: None
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny_clip), "--style", str(styles[0]), "--iterations", "abc"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid int value: 'abc'" in err
    assert "Traceback" not in err


def test_style_is_required(capsys: pytest.CaptureFixture[str], tiny_clip: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny_clip)])
    assert info.value.code == 2
    assert "--style" in capsys.readouterr().err


# -- bad input and output: exits 3 and 4 -------------------------------------------------------


def test_missing_input_exit_3(
    capsys: pytest.CaptureFixture[str], styles: list[Path], tmp_path: Path, unchanged: None
) -> None:
    missing = tmp_path / "missing.mp4"
    code, out, err = run(capsys, "run", missing, "--style", styles[0])
    assert code == 3
    assert_one_error_line(err)
    assert "input not found" in err and str(missing) in err


def test_missing_style_exit_3(
    capsys: pytest.CaptureFixture[str], tiny_clip: Path, tmp_path: Path, unchanged: None
) -> None:
    missing = tmp_path / "nope.jpg"
    code, out, err = run(capsys, "run", tiny_clip, "--style", missing, "-o", tmp_path / "o.mp4")
    assert code == 3
    assert_one_error_line(err)
    assert "style image not found" in err and str(missing) in err


def test_undecodable_input_exit_3(
    capsys: pytest.CaptureFixture[str], styles: list[Path], tmp_path: Path
) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    before = snapshot(tmp_path)
    code, _, err = run(capsys, "run", fake, "--style", styles[0])
    assert code == 3
    assert_one_error_line(err)
    assert snapshot(tmp_path) == before


def test_output_exists_exit_4_and_untouched(
    capsys: pytest.CaptureFixture[str], tiny_clip: Path, styles: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier render")
    before = snapshot(tmp_path)
    code, _, err = run(capsys, "run", tiny_clip, "--style", styles[0], "-o", out, *TINY)
    assert code == 4
    assert_one_error_line(err)
    assert "--overwrite" in err
    assert out.read_bytes() == b"an earlier render"
    assert snapshot(tmp_path) == before


def test_output_directory_missing_exit_4(
    capsys: pytest.CaptureFixture[str],
    tiny_clip: Path,
    styles: list[Path],
    tmp_path: Path,
    unchanged: None,
) -> None:
    out = tmp_path / "no" / "such" / "dir" / "out.mp4"
    code, _, err = run(capsys, "run", tiny_clip, "--style", styles[0], "-o", out)
    assert code == 4
    assert_one_error_line(err)
    assert "does not exist" in err
    assert not (tmp_path / "no").exists()


def test_output_same_as_input_exit_4(
    capsys: pytest.CaptureFixture[str], tiny_clip: Path, styles: list[Path], unchanged: None
) -> None:
    code, _, err = run(capsys, "run", tiny_clip, "--style", styles[0], "-o", tiny_clip,
                       "--overwrite")
    assert code == 4
    assert_one_error_line(err)


def test_bad_output_suffix_exit_4(
    capsys: pytest.CaptureFixture[str],
    tiny_clip: Path,
    styles: list[Path],
    tmp_path: Path,
    unchanged: None,
) -> None:
    code, _, err = run(capsys, "run", tiny_clip, "--style", styles[0], "-o", tmp_path / "o.gif")
    assert code == 4
    assert_one_error_line(err)
    assert "unsupported output type '.gif'" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_gpu_exit_6(
    capsys: pytest.CaptureFixture[str],
    tiny_clip: Path,
    styles: list[Path],
    tmp_path: Path,
    unchanged: None,
) -> None:
    code, _, err = run(capsys, "run", tiny_clip, "--style", styles[0],
                       "-o", tmp_path / "out.mp4", "--device", "cuda", *TINY)
    assert code == 6
    assert_one_error_line(err)
    assert "--device cpu" in err


def test_real_stderr_is_one_line(styles: list[Path], tmp_path: Path) -> None:
    """As a user sees it: a separate process, real stderr, no traceback."""
    missing = tmp_path / "missing.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "vidstyle", "run", str(missing), "--style", str(styles[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3
    assert proc.stderr.count("\n") <= 1
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("vidstyle: error: input not found")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert os.listdir(tmp_path) == []


# -- real renders ------------------------------------------------------------------------------


def test_short_render(
    capsys: pytest.CaptureFixture[str], tiny_clip: Path, styles: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    argv = ["run", tiny_clip, "--style", styles[0], "--frames", "0:3", "-o", out, *TINY]
    argv.remove("-q")  # exercise the progress bar too
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    assert out.is_file()
    assert frame_count(out) == 3
    lines = stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"wrote {out}: 3 frames at 64x42")
    assert "Traceback" not in err
    assert "3/3" in err  # the progress bar reached the end
    assert os.listdir(tmp_path) == ["out.mp4"]  # no temporary file left over


def test_default_output_name(
    capsys: pytest.CaptureFixture[str], tiny_clip: Path, styles: list[Path], tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    shutil.copy(tiny_clip, clip)
    argv = ["run", clip, "--style", styles[0], "--frames", "0:2", *TINY]
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    expected = tmp_path / "clip.ink.mp4"
    assert expected.is_file()
    assert frame_count(expected) == 2
    assert stdout.startswith(f"wrote {expected}:")

    before = snapshot(tmp_path)
    code, stdout, err = run(capsys, *argv)
    assert code == 4
    assert_one_error_line(err)
    assert snapshot(tmp_path) == before


def test_zero_style_weight_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from vidstyle.cli import main

    assert main(["run", "x.mp4", "--style", "s.jpg", "--style-weight", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidstyle: error: style-weight must be > 0") and "Traceback" not in err
