"""The command line's argument parser: every command, flag, default and help text.

The render options are not listed here: one ``--flag`` is made per option field of the config
dataclasses (:mod:`vidstyle.config`), read the way :func:`~vidstyle.options.option_kind` says,
with the field's default and help, so the command line cannot drift from the library.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidstyle import __version__
from vidstyle.config import (
    FLOW_METHODS,
    FastConfig,
    FlowConfig,
    OptimConfig,
    RenderConfig,
    StyleConfig,
)
from vidstyle.errors import UsageError
from vidstyle.options import option_fields, option_kind

# Plain numbers, not an import of the chunked renderer: `--help` stays fast (a test checks
# that they are the library's).
DEFAULT_PREROLL = 8
DEFAULT_SEAM_WINDOW = 10

# RenderConfig fields that mean nothing to a preview (hidden from its help, refused if given).
NOT_FOR_PREVIEW = ("resume", "keep_partial")

EXIT_CODES = """\
exit codes: 0 ok; 1 some outputs of a batch failed; 2 bad arguments or recipe; 3 bad input;
4 output not writable; 5 weights unavailable; 6 device or Ray cluster unusable; 70 a bug in
vidstyle (rerun with --debug and report it); 130 interrupted.
"""

_EPILOG = """\
examples:
  vidstyle run clip.mp4 --style ink.jpg                  writes clip.ink.mp4 beside the input
  vidstyle run clip.mp4 --style ink.jpg --frames 0:24 --max-side 320 -o preview.mp4
  vidstyle run clip.mp4 --style ink.jpg --temporal-weight 0     per-frame (flickers; to compare)
  vidstyle run clip.mp4 --style ink.jpg --backbone vgg19 --device cuda

speed: a frame costs its iterations (--first-iterations for the first, --iterations for the
others; --early-stop may end one sooner), each a forward and backward pass of the feature
network whose cost grows with the pixel count (--max-side); a GPU is much faster than a CPU.
The progress bar shows the seconds per frame of the render at hand (measured figures:
benchmarks/RESULTS.md).
scaling out: --chunks 4 --ray auto renders 4 chunks at once on a Ray cluster (see README).
""" + EXIT_CODES

_GROUPS: tuple[tuple[str, type], ...] = (
    ("frames and output", RenderConfig),
    ("style and losses", StyleConfig),
    ("optimizer", OptimConfig),
    ("optical flow", FlowConfig),
    ("fast mode (experimental)", FastConfig),
)


def flag(name: str) -> str:
    """The ``--flag`` of a config field: ``max_side`` -> ``--max-side``."""
    return "--" + name.replace("_", "-")


def _arg_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` for argparse: its :class:`UsageError` message is shown as it is."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    # argparse names the type in its own message: "invalid int value: 'abc'".
    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _add_fields(group: argparse._ArgumentGroup, cls: type) -> None:
    """Add one ``--flag`` per option field of ``cls``; defaults and help come from the field.

    argparse's own default is None, so only flags the user gave override the dataclass.

    Raises:
        TypeError: a field of a type :func:`~vidstyle.options.option_kind` cannot read.
    """
    for f in option_fields(cls):
        kind = option_kind(cls, f)
        help_text = f.metadata["help"]
        if kind.parse is None:  # a switch: a bool field, a flag without a value
            group.add_argument(flag(f.name), action="store_true", default=None, help=help_text)
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        # A list is shown as it is typed: 1,2,5,10.
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument(
            flag(f.name), type=_arg_type(kind.parse), metavar=kind.metavar, default=None,
            help=f"{help_text} (default: {shown})",
        )


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``vidstyle`` and its commands: run, preview, batch, metrics."""
    parser = argparse.ArgumentParser(
        prog="vidstyle",
        description="Turn a video into a painting that moves without flickering.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"vidstyle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(sub)
    _add_preview(sub)
    _add_batch(sub)
    _add_metrics(sub)
    return parser


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="stylize a video",
        description="Stylize INPUT with one or more style images. Each frame starts from the "
        "previous stylized frame moved along the optical flow, and a temporal loss keeps "
        "what did not change steady.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    _add_input_and_styles(run)
    run.add_argument(
        "-o", "--output", type=Path, metavar="FILE",
        help="output video (.mp4, .mov, .mkv); default INPUT.STYLE.mp4 beside the input",
    )
    rng = run.add_argument_group("frame range (default: the whole video)")
    rng.add_argument(
        "--frames", type=str, metavar="A:B",
        help="input frame indices A to B, end exclusive (0:24 = the first 24 frames); "
        "the quick way to preview settings",
    )
    rng.add_argument("--start", type=float, metavar="SEC", help="start time in seconds")
    rng.add_argument("--end", type=float, metavar="SEC", help="end time in seconds (exclusive)")
    for title, cls in _GROUPS:
        _add_fields(run.add_argument_group(title), cls)
    scale = run.add_argument_group(
        "scaling out on Ray (pip install 'vidstyle[ray]'; files on storage all workers see)"
    )
    _add_ray(scale)
    scale.add_argument(
        "--chunks", type=int, metavar="N",
        help="cut the frame range into N chunks (at shot cuts where the video has them) "
        "rendered at once on Ray workers, seams reconciled; needs --ray",
    )
    scale.add_argument(
        "--preroll", type=int, default=DEFAULT_PREROLL, metavar="N",
        help="frames rendered (not kept) before each chunk to settle its temporal chain "
        f"(default: {DEFAULT_PREROLL})",
    )
    scale.add_argument(
        "--seam-window", type=int, default=DEFAULT_SEAM_WINDOW, metavar="N",
        help="frames after each seam optimized again toward both chunks; 0 joins the chunks "
        f"as they are (default: {DEFAULT_SEAM_WINDOW})",
    )
    _add_common(run)


def _add_preview(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    preview = sub.add_parser(
        "preview",
        help="render a few frames and show them on a contact sheet",
        usage="vidstyle preview INPUT --style IMAGE [--style IMAGE ...] "
        "[--frames A:B | --start SEC --end SEC] [-o SHEET.png] [--count N] [--video FILE.mp4] "
        "[options]",
        description="Try a style on a few frames before the long render: render a short range\n"
        "of INPUT with the same pipeline and options as `run`, then write a PNG contact sheet\n"
        "of --count frames evenly spaced over the range: input frames on the top row, stylized\n"
        "frames below, each labelled with its input frame number.\n\n"
        "A preview is quick because it is short and small: by default the first 24 frames at\n"
        "256 px (--max-side defaults to 256 here, 512 for run); pass --max-side 512 to see the\n"
        "final size. The progress bar shows the seconds per frame as it goes, and the last line\n"
        "what the preview cost per frame (measured figures: benchmarks/RESULTS.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  vidstyle preview clip.mp4 --style ink.jpg         writes clip.ink.preview.png\n"
        "  vidstyle preview clip.mp4 --style ink.jpg --frames 240:264 --style-weight 3e4\n"
        "  vidstyle preview clip.mp4 --style ink.jpg --start 12 --end 13 --video side.mp4\n\n"
        + EXIT_CODES,
    )
    _add_input_and_styles(preview)
    preview.add_argument(
        "-o", "--output", type=Path, metavar="SHEET.png",
        help="contact sheet (PNG); default INPUT.STYLE.preview.png beside the input",
    )
    preview.add_argument(
        "--count", type=int, default=6, metavar="N",
        help="frames shown on the sheet, evenly spaced over the range (default: 6)",
    )
    preview.add_argument(
        "--video", type=Path, metavar="FILE.mp4",
        help="also write a clip with input and stylized frames side by side (with the audio)",
    )
    prng = preview.add_argument_group("frame range (default: the first 24 frames, 0:24)")
    prng.add_argument("--frames", type=str, metavar="A:B",
                      help="input frame indices A to B, end exclusive")
    prng.add_argument("--start", type=float, metavar="SEC", help="start time in seconds")
    prng.add_argument("--end", type=float, metavar="SEC", help="end time in seconds (exclusive)")
    for title, cls in _GROUPS:
        _add_fields(preview.add_argument_group(title), cls)
    preview.set_defaults(max_side=256)
    for action in preview._actions:
        if action.dest == "max_side" and action.help:
            action.help = action.help.replace("(default: 512)", "(default: 256 for preview)")
        elif action.dest in NOT_FOR_PREVIEW:
            # A preview starts afresh in a temporary folder: nothing to resume or keep.
            action.help = argparse.SUPPRESS
    _add_common(preview)


def _add_batch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    batch = sub.add_parser(
        "batch",
        help="render every input of a pipelines/*.toml recipe",
        description="Render every input of RECIPE into --out-dir, skipping outputs newer\n"
        "than their input, styles and recipe. One failing input does not stop the\n"
        "others: each is reported, and the batch exits 1 at the end if any failed.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  vidstyle batch pipelines/*.toml --out-dir renders\n"
        "  vidstyle batch pipelines/ink.toml --ray auto --force\n\n" + EXIT_CODES,
    )
    batch.add_argument("recipes", type=Path, nargs="+", metavar="RECIPE", help="recipe file(s)")
    batch.add_argument("--out-dir", type=Path, default=Path("renders"),
                       help="where outputs go (default: renders)")
    batch.add_argument("--force", action="store_true", help="re-render up-to-date outputs too")
    _add_ray(batch)
    _add_common(batch)


def _add_metrics(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    metrics = sub.add_parser(
        "metrics",
        help="measure how steady (and how stylized) a render is",
        description="Measure the temporal consistency of OUTPUT, a stylization of INPUT.\n\n"
        "The warping error (Lai et al. 2018) warps each output frame back onto the previous\n"
        "one along the optical flow of the *input*, and averages the squared colour difference\n"
        "where the flow can be trusted. The input's own error is the floor; their ratio is the\n"
        "flicker ratio: 1.0 is as steady as the source, 2.0 changes twice as much along the\n"
        "motion (visible flicker), below 1.0 is smoother than the source (often a blur).\n"
        "With --style, also how far the output moved toward the style on the backbone the\n"
        "optimizer used.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  vidstyle metrics clip.mp4 clip.ink.mp4\n"
        "  vidstyle metrics clip.mp4 clip.ink.mp4 --style ink.jpg --plot errors.png\n"
        "  vidstyle metrics clip.mp4 preview.mp4 --start 24 --json    (a render of --frames 24:)\n"
        "\n" + EXIT_CODES,
    )
    metrics.add_argument("input", type=Path, metavar="INPUT", help="the source video")
    metrics.add_argument("output", type=Path, metavar="OUTPUT", help="its stylized render")
    metrics.add_argument(
        "--start", type=int, default=0, metavar="N",
        help="input frame index of OUTPUT's first frame, for a render of a frame range "
        "(default: 0)",
    )
    metrics.add_argument(
        "--long-range", type=int, default=10, metavar="K",
        help="also compare frames t and t+K with the direct flow between them: catches slow "
        "drift that consecutive pairs miss; 0 skips it (default: 10)",
    )
    metrics.add_argument(
        "--style", type=Path, metavar="IMAGE",
        help="the style image of the render: adds the style loss ratio (output over input; "
        "< 1 moved toward the style) and the content loss",
    )
    # The render's own fields, so the defaults cannot drift from what `run` used.
    style_fields = {f.name: f for f in option_fields(StyleConfig)}
    metrics.add_argument(
        "--backbone", default=style_fields["backbone"].default,
        choices=style_fields["backbone"].metadata["choices"],
        help=f"the render's feature network (default: {style_fields['backbone'].default})",
    )
    metrics.add_argument(
        "--style-scale", type=float, default=style_fields["style_scale"].default, metavar="X",
        help=f"the render's --style-scale (default: {style_fields['style_scale'].default})",
    )
    metrics.add_argument("--every", type=int, default=1, metavar="N",
                         help="style and content losses on every N-th frame only, for speed "
                         "(default: 1)")
    metrics.add_argument(
        "--flow", default="dis-medium", choices=FLOW_METHODS,
        help="the optical flow the error is measured along (default: dis-medium, the "
        "yardstick of the published figures). A render is blind to the errors of its own "
        "flow, and so is a yardstick sharing it: deepflow, a different algorithm, measures "
        "a render along motion it did not use (slower)",
    )
    metrics.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                         help="where flow warping and the backbone run (default: auto)")
    metrics.add_argument("--json", action="store_true",
                         help="print a JSON object (with the per-pair curves) instead of a table")
    metrics.add_argument("--plot", type=Path, metavar="FILE.png",
                         help="write the per-frame error curves (output vs input, log scale)")
    _add_common(metrics)


def _add_input_and_styles(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, metavar="INPUT", help="input video (any FFmpeg format)")
    p.add_argument(
        "--style", "-s", dest="styles", type=Path, action="append", required=True,
        metavar="IMAGE", help="style image; repeat to blend several (see --style-blend)",
    )


def _add_ray(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="render on Ray: alone, a Ray instance on this machine; 'auto' the cluster "
        "started here with `ray start --head`; or HOST:PORT. Inputs and outputs must be on "
        "storage every worker sees",
    )


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an error instead of one line")
