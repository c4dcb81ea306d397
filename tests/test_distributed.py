"""vidstyle.distributed: batch outputs and chunks of one video on a local Ray instance (2 CPUs)."""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from vidstyle.cli import main
from vidstyle.distributed import check_shared_storage, render_chunked, require_ray
from vidstyle.errors import InputError, MissingExtraError, OutputError

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


def test_a_chunked_render_refuses_fast(tiny_clip: Path, styles: list[Path],
                                      tmp_path: Path) -> None:
    from vidstyle.config import FastConfig, RenderConfig
    from vidstyle.errors import UsageError

    cfg = RenderConfig(input=tiny_clip, styles=(styles[0],), output=tmp_path / "o.mp4",
                       fast=FastConfig(fast=True))
    with pytest.raises(UsageError, match="--fast"):
        render_chunked(cfg, chunks=2)
    assert not list(tmp_path.iterdir())


# -- real renders on the local Ray instance --------------------------------------------------


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
