"""vidstyle.cli: flags, one-line errors with distinct exit codes, progress, short real renders."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import av
import pytest
import torch

import vidstyle.cli
from vidstyle import errors
from vidstyle.cli import main
from vidstyle.cli_progress import BatchBar, ChunkBar, FrameBar, showing
from vidstyle.config import OptimConfig
from vidstyle.pipeline import Progress

# Settings that keep a real render short on a CPU: few iterations on small frames.
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
    codes = " ".join(run_help.split("exit codes:")[1].split())
    assert "1 some outputs of a batch failed" in codes and "70 a bug in vidstyle" in codes


def help_of(*argv: str) -> str:
    buffer = io.StringIO()
    with pytest.raises(SystemExit), contextlib.redirect_stdout(buffer):
        main([*argv, "--help"])
    return buffer.getvalue()


@pytest.mark.parametrize("command", [[], ["run"], ["preview"], ["batch"], ["metrics"]],
                         ids=lambda c: " ".join(c) or "vidstyle")
def test_help_quotes_no_measured_timings(command: list[str]) -> None:
    """Figures go stale: the help says what an option does and points to the measurements."""
    text = " ".join(help_of(*command).split())
    assert not re.search(r"\d+(\.\d+)? ?(s|ms|seconds?|minutes?)\b(?! ?=)", text), text
    assert not re.search(r"\d-core", text)
    if command in ([], ["run"], ["preview"]):
        assert "benchmarks/RESULTS.md" in text


def test_exit_codes_are_distinct() -> None:
    """Each error class has its own code, never 1 (a batch's failed outputs) or 70 (a bug);
    every code is in the module's table."""
    def subclasses(cls: type) -> list[type]:
        return [c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))]

    table = vidstyle.cli.__doc__ or ""
    for cls in subclasses(errors.VidstyleError):
        if cls.__module__ != errors.__name__:
            continue
        code = cls.exit_code  # type: ignore[attr-defined]
        assert code not in (vidstyle.cli.EXIT_BUG, 1), cls
        assert re.search(rf"^{code} ", table, re.MULTILINE), cls
    assert re.search(r"^70 .*bug", table, re.MULTILINE)
    assert re.search(r"^1 .*batch", table, re.MULTILINE)


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
        (["--long-term", "5,2"], "long-term offsets must be increasing"),
        (["--style-blend", "0.5,0.5"], "--style-blend has 2 weights for 1 style images"),
        (["--chunks", "2"], "add --ray"),
        (["--chunks", "0", "--ray"], "--chunks must be >= 1, got 0"),
        (["--ray", "--keep-partial"], "--keep-partial does not apply to a chunked render"),
        (["--ray", "--fast"], "--fast trains one network over the whole range"),
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


def test_unparsable_list_names_the_format(
    capsys: pytest.CaptureFixture[str], tiny_clip: Path, styles: list[Path], unchanged: None
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny_clip), "--style", str(styles[0]), "--long-term", "1,x"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --long-term: expected whole numbers separated by commas" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--start", "-1"], "--start must be >= 0, got -1"),
        (["--long-range", "-2"], "--long-range must be >= 0, got -2"),
        (["--every", "0"], "--every must be >= 1, got 0"),
    ],
)
def test_bad_metrics_values_exit_2(
    capsys: pytest.CaptureFixture[str], tiny_clip: Path, argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "metrics", tiny_clip, tiny_clip, *argv)
    assert code == 2
    assert_one_error_line(err)
    assert message in err and out == ""


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
    progress = err.splitlines()
    assert "3/3" in progress[-1]  # the progress bar reached the end
    assert len(progress) <= 4  # off a terminal: the start and each frame, not each iteration
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


# -- bugs: exit 70, one line that says so ------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad value"), RuntimeError("CUDA said no"), TypeError("wrong type"),
     KeyError("missing")],
    ids=lambda e: type(e).__name__,
)
def test_unexpected_exception_is_a_bug_exit_70(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tiny_clip: Path,
    styles: list[Path], tmp_path: Path, exc: Exception,
) -> None:
    import vidstyle.pipeline

    def broken(cfg: object, progress: object = None) -> None:
        raise exc

    monkeypatch.setattr(vidstyle.pipeline, "render", broken)
    code, out, err = run(capsys, "run", tiny_clip, "--style", styles[0], "-o",
                         tmp_path / "o.mp4", "-q")
    assert code == vidstyle.cli.EXIT_BUG == 70
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"vidstyle: bug: {type(exc).__name__}: {str(exc)}")
    assert "this is a bug in vidstyle, not in your input" in err and "--debug" in err
    assert "error:" not in err and "usage" not in err.lower() and "Traceback" not in err
    assert out == ""


def test_a_bug_with_a_long_message_is_still_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tiny_clip: Path,
    styles: list[Path],
) -> None:
    def broken(cfg: object, **kwargs: object) -> None:
        raise RuntimeError("first line\nsecond line\nthird line")

    monkeypatch.setattr("vidstyle.preview.preview", broken)
    code, _, err = run(capsys, "preview", tiny_clip, "--style", styles[0], "-q")
    assert code == 70
    assert err.count("\n") == 1 and "RuntimeError: first line ..." in err


def test_debug_raises_a_bug_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, tiny_clip: Path, styles: list[Path], tmp_path: Path
) -> None:
    import vidstyle.pipeline

    def broken(cfg: object, progress: object = None) -> None:
        raise ValueError("bad value")

    monkeypatch.setattr(vidstyle.pipeline, "render", broken)
    with pytest.raises(ValueError, match="bad value"):
        main(["run", str(tiny_clip), "--style", str(styles[0]), "-o", str(tmp_path / "o.mp4"),
              "-q", "--debug"])


def test_a_usage_error_inside_a_command_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tiny_clip: Path,
    styles: list[Path], tmp_path: Path,
) -> None:
    import vidstyle.pipeline

    def refuses(cfg: object, progress: object = None) -> None:
        raise errors.UsageError("that setting cannot work")

    monkeypatch.setattr(vidstyle.pipeline, "render", refuses)
    code, _, err = run(capsys, "run", tiny_clip, "--style", styles[0], "-o", tmp_path / "o.mp4")
    assert code == 2
    assert_one_error_line(err)
    assert "that setting cannot work" in err
    with pytest.raises(errors.UsageError):
        main(["run", str(tiny_clip), "--style", str(styles[0]), "-o", str(tmp_path / "o.mp4"),
              "--debug"])


def test_usage_errors_are_value_errors() -> None:
    """Library callers that catch ValueError keep working."""
    from vidstyle.config import StyleConfig

    with pytest.raises(errors.UsageError) as info:
        StyleConfig(style_weight=-1.0)
    assert isinstance(info.value, ValueError) and info.value.exit_code == 2


# -- progress ----------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    """Stands in for tqdm's clock: seconds advance only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("tqdm.std.time", fake)
    return fake


def frames(bar: FrameBar, clock: Clock, *, total: int | None, resumed: int = 0, count: int,
           iterations: int = 5, seconds: float = 10.0) -> None:
    """Report ``count`` frames of ``iterations`` each, ``seconds`` apiece, after ``resumed``."""
    for f in range(resumed, resumed + count):
        for it in range(1, iterations + 1):
            bar(Progress(f, total, f, it, iterations, 1.0, 0.0, False, resumed))
            clock.now += seconds / iterations
        bar(Progress(f + 1, total, f, iterations, iterations, 1.0, 0.0, True, resumed))


def test_off_a_terminal_one_line_per_finished_frame(clock: Clock) -> None:
    stream = io.StringIO()
    with showing(FrameBar("clip.mp4", stream)) as bar:
        frames(bar, clock, total=3, count=3)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4, lines  # the start, then one per frame: none per iteration
    assert "\r" not in stream.getvalue()
    assert all(line.startswith("clip.mp4: ") for line in lines)
    assert "0/3" in lines[0] and "iter 1/5" in lines[0]
    assert "3/3" in lines[-1] and "iter 5/5" in lines[-1]
    assert "10.00s/frame" in lines[-1]


def test_rate_and_eta_count_new_frames_only(clock: Clock) -> None:
    """Resumed frames are done, but took no time in this run; the clock starts at the first
    report, after the start-up."""
    stream = io.StringIO()
    with showing(FrameBar("clip.mp4", stream)) as bar:
        clock.now += 500  # model loading before the first report: not per-frame
        frames(bar, clock, total=10, resumed=4, count=2)
    last = stream.getvalue().splitlines()[-1]
    assert "6/10" in last
    assert "10.00s/frame" in last  # 20 s for the 2 new frames, not 20 s for 6
    assert "00:20<00:40" in last  # elapsed since the first report < 4 frames left x 10 s


def test_unknown_total_counts_frames(clock: Clock) -> None:
    stream = io.StringIO()
    with showing(FrameBar("clip.mp4", stream)) as bar:
        frames(bar, clock, total=None, count=2)
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith("clip.mp4: 2 frames") and "10.00s/frame" in last


def test_on_a_terminal_the_bar_is_redrawn_in_place(clock: Clock) -> None:
    stream = Terminal()
    with showing(FrameBar("clip.mp4", stream)) as bar:
        frames(bar, clock, total=2, count=2, iterations=20, seconds=1.0)
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1  # one line, left in place at the end
    draws = [d for d in text.split("\r") if d.strip()]
    # Every 0.2 s at most between frames (each iteration here takes 0.05 s), and at once when a
    # frame is done: far fewer draws than the 42 reports.
    assert 6 <= len(draws) <= 16, draws
    assert any(re.search(r"iter ([2-9]|1[0-9])/20", d) for d in draws)  # mid-frame
    assert "2/2" in draws[-1]


def test_a_render_says_once_what_it_will_cost(clock: Clock) -> None:
    """A few iterations into the first frame: the measured seconds per iteration, what a later
    frame and the rest of the range cost at that rate, and the peak memory so far."""
    stream = io.StringIO()
    with showing(FrameBar("clip.mp4", stream, iterations=50)) as bar:
        for f, budget in ((0, 150), (1, 50)):
            for it in range(1, budget + 1):
                # 30 s of set-up before the first report, then 2 s per iteration.
                elapsed = 30.0 + 2.0 * (it - 1) + 300.0 * f
                bar(Progress(f, 10, f, it, budget, 1.0, elapsed, False, 0, (1920, 1080)))
            bar(Progress(f + 1, 10, f, budget, budget, 1.0, elapsed, True, 0, (1920, 1080)))
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("estimate")]
    assert len(lines) == 1, stream.getvalue()
    line = lines[0]
    assert line.startswith("estimate: 2.00 s per iteration at 1920x1080; ")
    assert "a later frame up to 1:40 (50 iterations)" in line
    # After iteration 5 of 150: 145 more, then 9 frames of 50, at 2 s each.
    assert "the rest of the render up to about 19:50" in line
    assert re.search(r"peak memory so far \d+\.\d GB$", line)


def test_the_estimate_names_the_tiles() -> None:
    from vidstyle.cli_progress import estimate_line

    p = Progress(0, None, 0, 5, 150, 1.0, 10.0, False, 0, (3840, 2160), (2, 2))
    line = estimate_line(16.0, p, 50, None)
    assert line.startswith("estimate: 16.00 s per iteration at 3840x2160 in 2x2 tiles; ")
    assert "rest of the render" not in line and "memory" not in line  # neither is known


def test_no_estimate_unless_asked(clock: Clock) -> None:
    stream = io.StringIO()
    with showing(FrameBar("clip.mp4", stream)) as bar:
        frames(bar, clock, total=3, count=3, iterations=10)
    assert "estimate" not in stream.getvalue()


def test_chunk_progress_lines_off_a_terminal(clock: Clock) -> None:
    from vidstyle.distributed import ChunkProgress

    stream = io.StringIO()
    with showing(ChunkBar("clip.mp4", stream)) as bar:
        for _ in range(3):  # reports that change nothing add no line
            bar(ChunkProgress("chunks", 2, 0, 2, 0, 8, 0.0))
        bar(ChunkProgress("chunks", 2, 1, 1, 4, 8, 1.0))
        bar(ChunkProgress("seams", 2, 2, 0, 8, 8, 2.0))
        bar(ChunkProgress("encode", 2, 2, 0, 8, 8, 3.0))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert "0/8" in lines[0] and "chunks 0 done, 2 running of 2" in lines[0]
    assert "4/8" in lines[1] and "chunks 1 done, 1 running of 2" in lines[1]
    assert lines[2].endswith("reconciling seams]") and lines[3].endswith("encoding]")


@pytest.mark.parametrize("quiet", [False, True])
def test_batch_progress_prints_each_outcome(
    clock: Clock, capsys: pytest.CaptureFixture[str], quiet: bool
) -> None:
    from vidstyle.distributed import BatchProgress

    def outcome(name: str, **kw: object) -> SimpleNamespace:
        fields = {"skipped": False, "error": None, "attempts": 1, "result": None}
        return SimpleNamespace(output=Path(name), **{**fields, **kw})

    stream = io.StringIO()
    rendered = SimpleNamespace(frames=2, seconds=75.0)
    with showing(BatchBar(quiet, stream)) as bar:
        bar(BatchProgress(3, 1, 0, 0, 0, 0.0, outcome("a.mp4", skipped=True)))
        bar(BatchProgress(3, 1, 2, 0, 1, 0.5))
        clock.now += 30
        bar(BatchProgress(3, 2, 1, 0, 1, 1.0, outcome("b.mp4", result=rendered)))
        bar(BatchProgress(3, 3, 0, 1, 0, 2.0, outcome("c.mp4", error="not a video",
                                                       attempts=2)))
    assert capsys.readouterr().out.splitlines() == [
        "up to date  a.mp4",
        "rendered    b.mp4: 2 frames in 1:15",
        "FAILED      c.mp4: not a video (after 2 attempts)",
    ]
    status = stream.getvalue().splitlines()
    if quiet:
        assert status == []
    else:
        assert "1/3" in status[0] and "3/3" in status[-1] and "1 failed" in status[-1]
        # Two outputs ended in 30 s; the one found up to date is not in the rate (10 s if it were).
        assert "15.00s/output" in status[-1]


def test_quiet_render_prints_no_progress(
    capsys: pytest.CaptureFixture[str], tiny_clip: Path, styles: list[Path], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "run", tiny_clip, "--style", styles[0], "--frames", "0:2",
                         "-o", tmp_path / "o.mp4", *TINY)
    assert code == 0, err
    assert err == "" and out.startswith("wrote ")


def test_bars_draw_the_library_records() -> None:
    """The bars read the records' fields by name: they must all exist."""
    from vidstyle.distributed import BatchProgress, ChunkProgress

    fields = {f.name for cls in (Progress, ChunkProgress, BatchProgress)
              for f in dataclasses.fields(cls)}
    assert {"frame", "total", "iteration", "iterations", "resumed", "frame_done",
            "chunks", "chunks_done", "chunks_running", "phase", "frames",
            "done", "running", "failed", "finished"} <= fields


@dataclasses.dataclass(frozen=True, kw_only=True)
class Unreadable:
    odd: complex = dataclasses.field(default=1j, metadata={"help": "a type nobody taught"})


def test_a_flag_of_an_unknown_type_is_refused_when_the_parser_is_built() -> None:
    import argparse

    from vidstyle.cli_parser import _add_fields

    group = argparse.ArgumentParser().add_argument_group("odd")
    with pytest.raises(TypeError, match=r"Unreadable\.odd: an option of type"):
        _add_fields(group, Unreadable)
