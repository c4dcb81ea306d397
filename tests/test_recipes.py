"""vidstyle.recipes and ``vidstyle batch``: TOML recipes mapped onto the config dataclasses."""

from __future__ import annotations

import dataclasses
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from vidstyle.cli import main
from vidstyle.config import FlowConfig, OptimConfig, RenderConfig, StyleConfig
from vidstyle.errors import UsageError
from vidstyle.recipes import Job, load_recipe

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path, tiny_clip: Path, styles: list[Path]) -> Path:
    """``clips/{a,b}.mp4``, ``art/ink.jpg`` and an empty ``recipes/`` folder in tmp_path."""
    (tmp_path / "clips").mkdir()
    (tmp_path / "art").mkdir()
    (tmp_path / "recipes").mkdir()
    shutil.copy(tiny_clip, tmp_path / "clips" / "a.mp4")
    shutil.copy(tiny_clip, tmp_path / "clips" / "b.mp4")
    shutil.copy(styles[0], tmp_path / "art" / "ink.jpg")
    shutil.copy(styles[1], tmp_path / "art" / "embers.jpg")
    return tmp_path


BASE = """\
inputs = ["../clips/*.mp4"]
styles = ["../art/ink.jpg"]
"""


def recipe(project: Path, body: str = "", *, name: str = "wash", base: str = BASE) -> Path:
    return write(project / "recipes" / f"{name}.toml", base + textwrap.dedent(body))


def test_load_recipe_maps_every_section(project: Path, tmp_path: Path) -> None:
    path = recipe(
        project,
        """\
        styles = ["../art/ink.jpg", "../art/embers.jpg"]
        max_side = 64
        frames = "0:2"
        seed = 7
        device = "cpu"

        [style]
        style_weight = 500
        temporal_weight = 0
        backbone = "vgg19"
        weights = "vgg.pth"

        [optim]
        first_iterations = 4
        iterations = 3
        lr = 0.05

        [flow]
        flow = "raft"
        """,
        base='inputs = ["../clips/*.mp4"]\n',
    )
    out_dir = tmp_path / "renders"
    jobs = load_recipe(path, out_dir=out_dir)
    assert [job.config.input for job in jobs] == [
        project / "recipes" / ".." / "clips" / "a.mp4",
        project / "recipes" / ".." / "clips" / "b.mp4",
    ]
    assert [job.config.output for job in jobs] == [out_dir / "a.wash.mp4", out_dir / "b.wash.mp4"]
    for job in jobs:
        assert isinstance(job, Job)
        assert job.recipe == path
        cfg = job.config
        assert [p.resolve() for p in cfg.styles] == [
            (project / "art" / "ink.jpg").resolve(),
            (project / "art" / "embers.jpg").resolve(),
        ]
        assert cfg.max_side == 64
        assert cfg.frames == (0, 2)
        assert cfg.seed == 7
        assert cfg.device == "cpu"
        assert cfg.overwrite is True  # batch outputs are derived data
        assert cfg.style.style_weight == 500.0
        assert cfg.style.temporal_weight == 0.0
        assert cfg.style.backbone == "vgg19"
        assert cfg.style.weights == path.parent / "vgg.pth"  # relative to the recipe
        assert cfg.optim.first_iterations == 4
        assert cfg.optim.iterations == 3
        assert cfg.optim.lr == 0.05
        assert cfg.flow.flow == "raft"


def test_defaults_when_sections_are_missing(project: Path, tmp_path: Path) -> None:
    jobs = load_recipe(recipe(project), out_dir=tmp_path / "out")
    cfg = jobs[0].config
    assert cfg.frames is None and cfg.start is None and cfg.end is None
    assert cfg.max_side == RenderConfig(input=cfg.input, styles=cfg.styles).max_side
    assert (cfg.style, cfg.optim, cfg.flow) == (StyleConfig(), OptimConfig(), FlowConfig())


def test_globs_are_relative_to_the_recipe_not_the_cwd(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = recipe(project)
    monkeypatch.chdir(project / "art")
    jobs = load_recipe(path, out_dir=tmp_path / "out")
    assert all(job.config.input.is_file() for job in jobs)
    assert len(jobs) == 2


def test_literal_inputs_and_duplicates(project: Path, tmp_path: Path) -> None:
    path = recipe(
        project, base='inputs = ["../clips/b.mp4", "../clips/*.mp4"]\nstyles = ["../art/ink.jpg"]\n'
    )
    jobs = load_recipe(path, out_dir=tmp_path)
    assert sorted(job.config.input.name for job in jobs) == ["a.mp4", "b.mp4"]


def test_time_range(project: Path, tmp_path: Path) -> None:
    cfg = load_recipe(recipe(project, "start = 1\nend = 2.5\n"), out_dir=tmp_path)[0].config
    assert (cfg.start, cfg.end) == (1.0, 2.5)


def test_bundled_recipes_are_valid(tmp_path: Path) -> None:
    recipes = sorted((REPO / "pipelines").glob("*.toml"))
    if not recipes or not list((REPO / "sample_videos").glob("*.mp4")):
        pytest.skip("no bundled recipes or sample videos in this checkout")
    for path in recipes:
        jobs = load_recipe(path, out_dir=tmp_path)
        assert jobs, path
        for job in jobs:
            assert job.config.output == tmp_path / f"{job.config.input.stem}.{path.stem}.mp4"
            assert all(p.is_file() for p in job.sources()), path


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "key", "hint"),
    [
        ("max_sides = 64\n", "max_sides", "did you mean 'max_side'"),
        ("[optim]\niteratons = 3\n", "iteratons", "did you mean 'iterations'"),
        ("[style]\nstyle_weigth = 3\n", "style_weigth", "did you mean 'style_weight'"),
        ("colour = 'red'\n", "colour", ""),
    ],
)
def test_unknown_key(project: Path, tmp_path: Path, body: str, key: str, hint: str) -> None:
    path = recipe(project, body)
    with pytest.raises(ValueError) as info:
        load_recipe(path, out_dir=tmp_path)
    message = str(info.value)
    assert repr(key) in message
    assert str(path) in message
    assert hint in message


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('max_side = "big"\n', "max_side"),
        ("max_side = 64.0\n", "max_side"),
        ("seed = true\n", "seed"),
        ("[optim]\niterations = 2.5\n", "iterations"),
        ('[style]\nstyle_weight = "lots"\n', "style_weight"),
        ("[style]\ntv_weight = false\n", "tv_weight"),
        ("[flow]\nflow = 3\n", "flow"),
        ("frames = 24\n", "frames"),
        ('start = "soon"\n', "start"),
    ],
)
def test_wrong_type(project: Path, tmp_path: Path, body: str, key: str) -> None:
    path = recipe(project, body)
    with pytest.raises(ValueError) as info:
        load_recipe(path, out_dir=tmp_path)
    message = str(info.value)
    assert key in message
    assert str(path) in message


@pytest.mark.parametrize("section", ["style", "optim", "flow"])
def test_section_that_is_not_a_table(project: Path, tmp_path: Path, section: str) -> None:
    """``style = "ink.jpg"`` (meant: styles = [...]) is a recipe error, not a crash."""
    path = recipe(project, f'{section} = "ink.jpg"\n')
    with pytest.raises(ValueError) as info:
        load_recipe(path, out_dir=tmp_path)
    assert section in str(info.value)
    assert str(path) in str(info.value)


def test_invalid_toml(project: Path, tmp_path: Path) -> None:
    path = recipe(project, "max_side = = 3\n[optim\n")
    with pytest.raises(ValueError, match="not valid TOML") as info:
        load_recipe(path, out_dir=tmp_path)
    assert str(path) in str(info.value)


def test_missing_recipe(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ValueError, match="cannot read recipe") as info:
        load_recipe(path, out_dir=tmp_path)
    assert str(path) in str(info.value)


def test_no_input_matched(project: Path, tmp_path: Path) -> None:
    path = recipe(project, base='inputs = ["../clips/*.mkv"]\nstyles = ["../art/ink.jpg"]\n')
    with pytest.raises(ValueError, match="no input matched") as info:
        load_recipe(path, out_dir=tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "base",
    [
        'styles = ["../art/ink.jpg"]\n',  # no inputs
        'inputs = []\nstyles = ["../art/ink.jpg"]\n',
        'inputs = "../clips/a.mp4"\nstyles = ["../art/ink.jpg"]\n',  # a string, not a list
        'inputs = ["../clips/*.mp4"]\n',  # no styles
        'inputs = ["../clips/*.mp4"]\nstyles = [1]\n',
    ],
)
def test_inputs_and_styles_must_be_lists_of_paths(
    project: Path, tmp_path: Path, base: str
) -> None:
    path = recipe(project, base=base)
    with pytest.raises(ValueError, match="must be a non-empty list of paths") as info:
        load_recipe(path, out_dir=tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("max_side = 64.0\n", "max_side must be a whole number, got 64.0"),
        ("[style]\ntv_weight = false\n", "[style]: tv_weight must be a number, got False"),
        ("[style]\nlong_term = 5\n", "long_term must be a list of whole numbers, got 5"),
        ("[style]\nstyle_blend = [1, \"a\"]\n", "style_blend must be a list of numbers"),
        ("[style]\nweights = 3\n", "weights must be a path (a string), got 3"),
        ("overwrite = 1\n", "overwrite must be true or false, got 1"),
    ],
)
def test_wrong_type_says_what_is_expected(
    project: Path, tmp_path: Path, body: str, message: str
) -> None:
    path = recipe(project, body)
    with pytest.raises(UsageError) as info:
        load_recipe(path, out_dir=tmp_path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_lists_and_numbers_are_converted(project: Path, tmp_path: Path) -> None:
    body = "[style]\nlong_term = [1, 10]\nstyle_weight = 500\n"
    cfg = load_recipe(recipe(project, body), out_dir=tmp_path)[0].config
    assert cfg.style.long_term == (1, 10)
    assert cfg.style.style_weight == 500.0 and isinstance(cfg.style.style_weight, float)


def test_every_recipe_problem_is_a_usage_error(project: Path, tmp_path: Path) -> None:
    bodies = ["max_sides = 64\n", "max_side = 'big'\n", "[optim]\niterations = 0\n",
              "frames = '5:5'\n", "= broken\n", 'style = "ink.jpg"\n']
    for body in bodies:
        with pytest.raises(UsageError):
            load_recipe(recipe(project, body), out_dir=tmp_path)
    binary = project / "recipes" / "binary.toml"
    binary.write_bytes(b"max_side = 64\n\xff\xfe\n")
    with pytest.raises(UsageError, match="not UTF-8 text") as info:
        load_recipe(binary, out_dir=tmp_path)
    assert str(binary) in str(info.value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Unreadable:
    odd: complex = dataclasses.field(default=1j, metadata={"help": "a type nobody taught"})


def test_a_field_of_an_unknown_type_is_refused_loudly() -> None:
    """Also when the recipe does not set it: never accepted without a check."""
    from vidstyle.recipes import _fields_of

    with pytest.raises(TypeError, match=r"Unreadable\.odd: an option of type"):
        _fields_of(Unreadable, {}, "recipe.toml", Path("."))


def test_invalid_value_is_rejected(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="iterations must be an integer >= 1"):
        load_recipe(recipe(project, "[optim]\niterations = 0\n"), out_dir=tmp_path)
    with pytest.raises(ValueError, match="empty or reversed"):
        load_recipe(recipe(project, 'frames = "5:5"\n'), out_dir=tmp_path)


# -- up to date --------------------------------------------------------------------------------


def set_mtime(path: Path, t: float) -> None:
    os.utime(path, (t, t))


def test_up_to_date(project: Path, tmp_path: Path) -> None:
    path = recipe(project)
    job = load_recipe(path, out_dir=tmp_path / "out")[0]
    assert job.up_to_date() is False  # no output yet

    t0 = 1_700_000_000.0
    for source in job.sources():
        set_mtime(source, t0)
    out = job.config.output_path
    out.parent.mkdir()
    out.write_bytes(b"rendered")
    set_mtime(out, t0 + 10)
    assert job.up_to_date() is True

    set_mtime(path, t0 + 20)  # the recipe was edited after the render
    assert job.up_to_date() is False


@pytest.mark.parametrize("which", ["input", "style"])
def test_newer_input_or_style_makes_it_stale(project: Path, tmp_path: Path, which: str) -> None:
    job = load_recipe(recipe(project), out_dir=tmp_path)[0]
    t0 = 1_700_000_000.0
    for source in job.sources():
        set_mtime(source, t0)
    job.config.output_path.write_bytes(b"rendered")
    set_mtime(job.config.output_path, t0 + 10)
    assert job.up_to_date()
    changed = job.config.input if which == "input" else job.config.styles[0]
    set_mtime(changed, t0 + 20)
    assert not job.up_to_date()


# -- vidstyle batch ----------------------------------------------------------------------------


TINY_RECIPE = """\
inputs = ["../clips/*.mp4"]
styles = ["../art/ink.jpg"]
max_side = 64
frames = "0:2"

[optim]
first_iterations = 2
iterations = 2
"""


def test_batch_renders_good_inputs_and_reports_bad_ones(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "clips" / "a.mp4").write_text("a text file, not a video\n")  # the bad one
    path = recipe(project, base=TINY_RECIPE, name="tiny")
    out_dir = tmp_path / "renders"
    bad, good = out_dir / "a.tiny.mp4", out_dir / "b.tiny.mp4"

    code = main(["batch", str(path), "--out-dir", str(out_dir), "-q"])
    out = capsys.readouterr().out
    assert code == 1
    assert sorted(os.listdir(out_dir)) == ["b.tiny.mp4"]  # nothing partial for the bad one
    lines = out.splitlines()
    bad_lines = [line for line in lines if str(bad) in line]
    good_lines = [line for line in lines if str(good) in line]
    assert len(bad_lines) == 1 and "FAILED" in bad_lines[0]
    assert len(good_lines) == 1 and "FAILED" not in good_lines[0]
    assert "rendered" in good_lines[0] and "2 frames" in good_lines[0]
    assert lines[-1] == "1 of 2 outputs ok, 1 failed"

    mtime = good.stat().st_mtime_ns
    code = main(["batch", str(path), "--out-dir", str(out_dir), "-q"])
    out = capsys.readouterr().out
    assert code == 1  # the bad input still fails
    good_lines = [line for line in out.splitlines() if str(good) in line]
    assert len(good_lines) == 1 and "up to date" in good_lines[0]
    assert good.stat().st_mtime_ns == mtime  # not rendered again
    assert any("FAILED" in line and str(bad) in line for line in out.splitlines())


def test_batch_bad_recipe_exit_2(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recipe(project, "max_sides = 64\n")
    code = main(["batch", str(path), "--out-dir", str(tmp_path / "renders")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("vidstyle: error: ") and "max_side" in err
    assert "Traceback" not in err


def test_ctrl_c_stops_the_whole_batch(project: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import vidstyle.pipeline
    from vidstyle.cli import main
    from vidstyle.errors import Interrupted

    path = recipe(project, "max_side = 64\n")
    calls: list[Path] = []

    def interrupted(cfg, progress=None):  # type: ignore[no-untyped-def]
        calls.append(cfg.input)
        raise Interrupted("interrupted after 0 frames")

    monkeypatch.setattr(vidstyle.pipeline, "render", interrupted)
    assert main(["batch", str(path), "--out-dir", str(tmp_path / "out"), "-q"]) == 130
    assert len(calls) == 1, "the next outputs are not started"
