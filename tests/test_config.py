"""vidstyle.config: defaults, validation on construction, frame ranges, output names."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from vidstyle.config import (
    FlowConfig,
    OptimConfig,
    RenderConfig,
    StyleConfig,
    check_choice,
    parse_frame_range,
)

CLIP = Path("clip.mp4")
INK = Path("ink.jpg")
EMBERS = Path("embers.jpg")


def render(**kwargs: object) -> RenderConfig:
    kwargs.setdefault("input", CLIP)
    kwargs.setdefault("styles", (INK,))
    return RenderConfig(**kwargs)  # type: ignore[arg-type]


class TestDefaults:
    def test_all_configs_construct_with_defaults(self) -> None:
        style, optim, flow = StyleConfig(), OptimConfig(), FlowConfig()
        assert style.backbone == "efficientnet-lite0"
        assert style.weights is None
        assert optim.optimizer == "adam"
        assert optim.first_iterations >= optim.iterations >= 1
        assert flow.flow == "dis"
        cfg = render()
        assert cfg.style == style and cfg.optim == optim and cfg.flow == flow
        assert cfg.device == "auto"
        assert cfg.max_side == 512
        assert cfg.frames is None and cfg.start is None and cfg.end is None
        assert cfg.overwrite is False

    def test_keyword_only(self) -> None:
        with pytest.raises(TypeError):
            StyleConfig("vgg19")  # type: ignore[misc]

    @pytest.mark.parametrize("cls", [StyleConfig, OptimConfig, FlowConfig])
    def test_sections_are_frozen(self, cls: type) -> None:
        cfg = cls()
        name = dataclasses.fields(cfg)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cfg, name, getattr(cfg, name))

    def test_render_config_is_frozen(self) -> None:
        cfg = render()
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.max_side = 64  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.style.style_weight = 1.0  # type: ignore[misc]


class TestOptimValidation:
    @pytest.mark.parametrize("name", ["first_iterations", "iterations", "patience"])
    @pytest.mark.parametrize("value", [0, -3])
    def test_counts_must_be_positive(self, name: str, value: int) -> None:
        flag = name.replace("_", "-")
        with pytest.raises(ValueError, match=rf"{flag} must be an integer >= 1, got {value}"):
            OptimConfig(**{name: value})

    def test_counts_must_be_integers(self) -> None:
        with pytest.raises(ValueError, match="iterations must be an integer"):
            OptimConfig(iterations=2.5)  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [0.0, -0.1, math.nan, math.inf])
    def test_lr_must_be_positive_and_finite(self, value: float) -> None:
        with pytest.raises(ValueError, match="lr must be > 0"):
            OptimConfig(lr=value)

    def test_early_stop_zero_is_allowed_negative_is_not(self) -> None:
        assert OptimConfig(early_stop=0.0).early_stop == 0.0
        with pytest.raises(ValueError, match="early-stop must be >= 0"):
            OptimConfig(early_stop=-1e-3)

    def test_unknown_optimizer(self) -> None:
        message = r"unknown optimizer 'sgd' \(choose from adam, lbfgs\)"
        with pytest.raises(ValueError, match=message):
            OptimConfig(optimizer="sgd")

    def test_optimizer_near_miss_suggests(self) -> None:
        with pytest.raises(ValueError, match="did you mean 'lbfgs'"):
            OptimConfig(optimizer="lbfg")


class TestStyleValidation:
    @pytest.mark.parametrize(
        "name", ["content_weight", "style_weight", "tv_weight", "temporal_weight"]
    )
    def test_negative_weight(self, name: str) -> None:
        flag = name.replace("_", "-")
        with pytest.raises(ValueError, match=rf"{flag} must be >= 0, got -1"):
            StyleConfig(**{name: -1.0})

    @pytest.mark.parametrize(
        "name", ["content_weight", "style_weight", "tv_weight", "temporal_weight", "style_scale"]
    )
    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_non_finite_weight(self, name: str, value: float) -> None:
        with pytest.raises(ValueError, match=name.replace("_", "-")):
            StyleConfig(**{name: value})

    @pytest.mark.parametrize("name", ["tv_weight", "temporal_weight", "content_weight"])
    def test_zero_weight_is_allowed(self, name: str) -> None:
        assert getattr(StyleConfig(**{name: 0.0}), name) == 0.0

    @pytest.mark.parametrize("content", [0.0, 1.0])
    def test_zero_style_weight_is_refused(self, content: float) -> None:
        with pytest.raises(ValueError, match="style-weight must be > 0"):
            StyleConfig(content_weight=content, style_weight=0.0)

    @pytest.mark.parametrize("value", [0.0, -2.0])
    def test_style_scale_must_be_positive(self, value: float) -> None:
        with pytest.raises(ValueError, match="style-scale must be > 0"):
            StyleConfig(style_scale=value)

    def test_unknown_backbone_suggests_vgg19(self) -> None:
        with pytest.raises(ValueError) as info:
            StyleConfig(backbone="vgg")
        message = str(info.value)
        assert "unknown backbone 'vgg'" in message
        assert "did you mean 'vgg19'" in message
        assert "efficientnet-lite0" in message  # the choices are listed

    def test_unknown_backbone_far_off_has_no_suggestion(self) -> None:
        with pytest.raises(ValueError) as info:
            StyleConfig(backbone="resnet50-xyz")
        assert "did you mean" not in str(info.value)

    def test_both_backbones_accepted(self) -> None:
        assert StyleConfig(backbone="vgg19").backbone == "vgg19"
        assert StyleConfig(backbone="efficientnet-lite0").backbone == "efficientnet-lite0"


class TestFlowValidation:
    def test_unknown_flow(self) -> None:
        message = (r"unknown flow method 'farneback' "
                   r"\(choose from dis, dis-coarse, dis-medium, deepflow, raft\)")
        with pytest.raises(ValueError, match=message):
            FlowConfig(flow="farneback")

    def test_raft_accepted(self) -> None:
        assert FlowConfig(flow="raft").flow == "raft"


class TestRenderValidation:
    def test_styles_required(self) -> None:
        with pytest.raises(ValueError, match="at least one --style"):
            render(styles=())

    @pytest.mark.parametrize("device", ["tpu", "npu", "CUDA", ""])
    def test_unknown_device(self, device: str) -> None:
        with pytest.raises(ValueError, match=f"unknown device {device!r}"):
            render(device=device)

    @pytest.mark.parametrize("device", ["auto", "cpu", "cuda"])
    def test_known_devices(self, device: str) -> None:
        # Constructing is not using: a cuda config exists even without a GPU.
        assert render(device=device).device == device

    @pytest.mark.parametrize("frames", [(9, 3), (5, 5), (-1, 4), (-2, None)])
    def test_empty_or_reversed_frame_range(self, frames: tuple[int, int | None]) -> None:
        with pytest.raises(ValueError, match="empty or reversed"):
            render(frames=frames)

    def test_open_ended_frame_range(self) -> None:
        assert render(frames=(5, None)).frames == (5, None)

    @pytest.mark.parametrize("times", [{"start": 1.0}, {"end": 2.0}, {"start": 0.0, "end": 1.0}])
    def test_frames_and_times_are_exclusive(self, times: dict[str, float]) -> None:
        with pytest.raises(ValueError, match="either --frames or --start/--end, not both"):
            render(frames=(0, 24), **times)

    @pytest.mark.parametrize(("start", "end"), [(2.0, 2.0), (3.0, 1.5)])
    def test_end_must_be_after_start(self, start: float, end: float) -> None:
        with pytest.raises(ValueError, match=r"--end \(.*\) must be after --start"):
            render(start=start, end=end)

    @pytest.mark.parametrize("name", ["start", "end"])
    @pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
    def test_times_must_be_finite_and_non_negative(self, name: str, value: float) -> None:
        with pytest.raises(ValueError, match=f"--{name} must be a time in seconds >= 0"):
            render(**{name: value})

    def test_time_range_accepted(self) -> None:
        cfg = render(start=0.5, end=1.5)
        assert (cfg.start, cfg.end) == (0.5, 1.5)

    @pytest.mark.parametrize("value", [-1, -512])
    def test_negative_max_side(self, value: int) -> None:
        with pytest.raises(ValueError, match=r"max-side must be an integer >= 0"):
            render(max_side=value)

    @pytest.mark.parametrize("value", [1, 2, 16, 31])
    def test_max_side_too_small(self, value: int) -> None:
        with pytest.raises(ValueError, match=rf"max-side must be at least 32 pixels, got {value}"):
            render(max_side=value)

    @pytest.mark.parametrize("value", [0, 32, 4096])
    def test_max_side_accepted(self, value: int) -> None:
        assert render(max_side=value).max_side == value

    def test_max_side_must_be_int(self) -> None:
        with pytest.raises(ValueError, match="max-side must be an integer"):
            render(max_side=64.5)  # type: ignore[arg-type]


class TestParseFrameRange:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("0:24", (0, 24)),
            ("5:", (5, None)),
            (":10", (0, 10)),
            (" 2 : 7 ", (2, 7)),
            ("100:101", (100, 101)),
        ],
    )
    def test_valid(self, text: str, expected: tuple[int, int | None]) -> None:
        assert parse_frame_range(text) == expected

    @pytest.mark.parametrize("text", ["abc", "5", "", "a:b", "1.5:3", "0:x", "1:2:3"])
    def test_malformed(self, text: str) -> None:
        with pytest.raises(ValueError, match="frame range must look like A:B"):
            parse_frame_range(text)

    @pytest.mark.parametrize("text", ["5:5", "9:3", "-1:4"])
    def test_empty_or_reversed(self, text: str) -> None:
        with pytest.raises(ValueError, match=f"frame range {text!r} is empty or reversed"):
            parse_frame_range(text)


class TestOutputName:
    def test_default_output_one_style(self) -> None:
        cfg = render(input=Path("videos/clip.mp4"), styles=(Path("styles/ink.jpg"),))
        assert cfg.default_output() == Path("videos/clip.ink.mp4")
        assert cfg.output_path == Path("videos/clip.ink.mp4")

    def test_default_output_two_styles(self) -> None:
        cfg = render(styles=(INK, EMBERS))
        assert cfg.default_output() == Path("clip.ink+embers.mp4")

    def test_default_output_is_mp4_for_other_containers(self) -> None:
        cfg = render(input=Path("holiday.mov"))
        assert cfg.default_output() == Path("holiday.ink.mp4")

    def test_explicit_output_wins(self) -> None:
        cfg = render(output=Path("out/preview.mkv"))
        assert cfg.output_path == Path("out/preview.mkv")


def test_check_choice_accepts_member() -> None:
    check_choice("thing", "b", ("a", "b"))


def test_style_blend_parsing_and_validation() -> None:
    from vidstyle.options import parse_floats

    assert parse_floats("0.7,0.3") == (0.7, 0.3)
    with pytest.raises(ValueError, match="commas"):
        parse_floats("0.7;0.3")
    with pytest.raises(ValueError, match="style-blend"):
        StyleConfig(style_blend=(-1.0, 2.0))
    with pytest.raises(ValueError, match="2 weights for 1 style"):
        RenderConfig(input=Path("a.mp4"), styles=(Path("s.jpg"),),
                     style=StyleConfig(style_blend=(0.5, 0.5)))
    with pytest.raises(ValueError, match="did you mean 'random'"):
        OptimConfig(init="randon")


def test_long_term_offsets_parsing_and_validation() -> None:
    from vidstyle.options import parse_ints

    assert parse_ints("1,2,5,10") == (1, 2, 5, 10)
    with pytest.raises(ValueError, match="whole numbers"):
        parse_ints("1,2.5")
    assert StyleConfig(long_term=(1, 10)).long_term == (1, 10)
    for bad in [(), (0, 1), (2, 1), (1, 1, 5)]:
        with pytest.raises(ValueError, match="long-term offsets must be increasing"):
            StyleConfig(long_term=bad)
    assert StyleConfig(long_term_anchor=0).long_term_anchor == 0
    with pytest.raises(ValueError, match="long-term-anchor must be >= 0"):
        StyleConfig(long_term_anchor=-0.5)


def test_passes_need_the_temporal_loss_and_lr_decay_is_a_fraction() -> None:
    assert OptimConfig(passes=3).passes == 3
    with pytest.raises(ValueError, match="passes must be an integer >= 1"):
        OptimConfig(passes=0)
    with pytest.raises(ValueError, match="--passes needs the temporal loss"):
        RenderConfig(input=Path("a.mp4"), styles=(Path("s.jpg"),),
                     style=StyleConfig(temporal_weight=0.0), optim=OptimConfig(passes=2))
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="lr-decay must be between 0 and 1"):
            OptimConfig(lr_decay=bad)


def test_every_refusal_is_a_usage_error() -> None:
    """Settings that cannot work raise UsageError (exit 2 in the CLI), still a ValueError."""
    from vidstyle.errors import UsageError
    from vidstyle.options import parse_floats, parse_ints

    refusals = [
        lambda: check_choice("thing", "c", ("a", "b")),
        lambda: parse_floats("x"),
        lambda: parse_ints("1.5"),
        lambda: parse_frame_range("9:3"),
        lambda: parse_frame_range("abc"),
        lambda: StyleConfig(style_weight=0.0),
        lambda: StyleConfig(tv_weight=-1.0),
        lambda: StyleConfig(long_term=(2, 1)),
        lambda: OptimConfig(iterations=0),
        lambda: OptimConfig(lr_decay=2.0),
        lambda: FlowConfig(flow="x"),
        lambda: render(max_side=8),
        lambda: render(styles=()),
        lambda: render(start=2.0, end=1.0),
    ]
    for refuse in refusals:
        with pytest.raises(UsageError) as info:
            refuse()
        assert isinstance(info.value, ValueError)


# -- option_kind: one reading of every option type, for the CLI and the recipes ---------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Every:
    """One option field of each type option_kind reads."""

    count: int = dataclasses.field(default=1, metadata={"help": ""})
    ratio: float = dataclasses.field(default=0.5, metadata={"help": ""})
    name: str = dataclasses.field(default="a", metadata={"help": "", "choices": ("a", "b")})
    free: str = dataclasses.field(default="", metadata={"help": ""})
    on: bool = dataclasses.field(default=False, metadata={"help": ""})
    weights: Path | None = dataclasses.field(default=None, metadata={"help": ""})
    out_dir: Path | None = dataclasses.field(default=None, metadata={"help": ""})
    offsets: tuple[int, ...] = dataclasses.field(default=(1,), metadata={"help": ""})
    blend: tuple[float, ...] | None = dataclasses.field(default=None, metadata={"help": ""})
    limit: int | None = dataclasses.field(default=None, metadata={"help": ""})
    hidden: dict[str, int] = dataclasses.field(
        default_factory=dict, metadata={"help": "", "cli": False}
    )


def kind_of(cls: type, name: str):  # type: ignore[no-untyped-def]
    from vidstyle.options import option_kind

    [f] = [f for f in dataclasses.fields(cls) if f.name == name]
    return option_kind(cls, f)


@pytest.mark.parametrize(
    ("name", "value_type", "many", "optional", "metavar"),
    [
        ("count", int, False, False, "N"),
        ("ratio", float, False, False, "X"),
        ("name", str, False, False, "{a,b}"),
        ("free", str, False, False, None),
        ("on", bool, False, False, None),
        ("weights", Path, False, True, "FILE"),
        ("out_dir", Path, False, True, "DIR"),
        ("offsets", int, True, False, "N1,N2"),
        ("blend", float, True, True, "X1,X2"),
        ("limit", int, False, True, "N"),
    ],
)
def test_option_kind_reads_the_real_type(
    name: str, value_type: type, many: bool, optional: bool, metavar: str | None
) -> None:
    kind = kind_of(Every, name)
    assert (kind.value_type, kind.many, kind.optional, kind.metavar) == (
        value_type, many, optional, metavar
    )
    assert (kind.parse is None) == (value_type is bool)


def test_option_kind_parses_flags() -> None:
    from vidstyle.errors import UsageError

    assert kind_of(Every, "count").parse("3") == 3
    assert kind_of(Every, "ratio").parse("1e-3") == 1e-3
    assert kind_of(Every, "weights").parse("w.pth") == Path("w.pth")
    assert kind_of(Every, "offsets").parse("1,2,5") == (1, 2, 5)
    assert kind_of(Every, "blend").parse("0.7,0.3") == (0.7, 0.3)
    with pytest.raises(ValueError):
        kind_of(Every, "count").parse("abc")
    with pytest.raises(UsageError, match="whole numbers separated by commas"):
        kind_of(Every, "offsets").parse("1,x")


def test_option_kind_checks_and_converts_toml_values() -> None:
    from vidstyle.errors import UsageError

    base = Path("recipes")
    read = {name: kind_of(Every, name) for name in ("count", "ratio", "free", "on", "weights",
                                                    "offsets", "blend")}
    assert read["count"].from_toml(3, name="count", base=base) == 3
    ratio = read["ratio"].from_toml(2, name="ratio", base=base)
    assert ratio == 2.0 and isinstance(ratio, float)  # an integer is a number
    assert read["on"].from_toml(True, name="on", base=base) is True
    assert read["weights"].from_toml("w.pth", name="weights", base=base) == base / "w.pth"
    assert read["offsets"].from_toml([1, 5], name="offsets", base=base) == (1, 5)
    assert read["blend"].from_toml([1, 0.5], name="blend", base=base) == (1.0, 0.5)
    refused = [
        ("count", 2.5, "a whole number"), ("count", True, "a whole number"),
        ("ratio", "lots", "a number"), ("ratio", False, "a number"), ("free", 3, "a string"),
        ("on", 1, "true or false"), ("weights", 3, "a path"),
        ("offsets", 1, "a list of whole numbers"), ("offsets", [1, 2.5], "a list of whole"),
        ("offsets", [True], "a list of whole numbers"), ("blend", ["a"], "a list of numbers"),
    ]
    for name, value, what in refused:
        with pytest.raises(UsageError, match=rf"^where: {name} must be {what}") as info:
            read[name].from_toml(value, name=f"where: {name}", base=base)
        assert str(info.value).endswith(f", got {value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Unreadable:
    ok: int = dataclasses.field(default=1, metadata={"help": ""})
    odd: complex = dataclasses.field(default=1j, metadata={"help": "a type nobody taught"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pair:
    size: tuple[int, int] = dataclasses.field(default=(1, 2), metadata={"help": ""})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Either:
    value: int | str = dataclasses.field(default=1, metadata={"help": ""})


@pytest.mark.parametrize(
    ("cls", "name"), [(Unreadable, "odd"), (Pair, "size"), (Either, "value")]
)
def test_option_of_an_unknown_type_is_refused_loudly(cls: type, name: str) -> None:
    with pytest.raises(TypeError, match=rf"{cls.__name__}\.{name}: an option of type"):
        kind_of(cls, name)


def test_every_option_field_of_the_configs_has_a_kind() -> None:
    from vidstyle.options import option_fields, option_kind

    for cls in (RenderConfig, StyleConfig, OptimConfig, FlowConfig):
        for f in option_fields(cls):
            option_kind(cls, f)
