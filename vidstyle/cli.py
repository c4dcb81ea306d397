"""The command line: parse, build configs, call the library, show progress, map errors.

This is the only module that prints or decides exit codes:

====  =====================================================================
0     success
1     unexpected internal error (rerun with --debug and report it)
2     bad command-line arguments or recipe; --ray without Ray installed
3     bad input: video or style image missing, unreadable or undecodable
4     output cannot be written (exists without --overwrite, no directory, disk full)
5     model weights unavailable (offline and not cached)
6     the requested device cannot be used; the Ray cluster cannot be reached
130   interrupted (Ctrl-C / SIGTERM); finished frames are kept for --resume
====  =====================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from vidstyle import __version__
from vidstyle.config import (
    FlowConfig,
    OptimConfig,
    RenderConfig,
    StyleConfig,
    option_fields,
    parse_frame_range,
)
from vidstyle.errors import Interrupted, OutputError, VidstyleError

# Plain numbers, not an import of vidstyle.distributed: `--help` stays fast.
DEFAULT_PREROLL = 8
DEFAULT_SEAM_WINDOW = 6

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_EPILOG = """\
examples:
  vidstyle run clip.mp4 --style ink.jpg                  writes clip.ink.mp4 beside the input
  vidstyle run clip.mp4 --style ink.jpg --frames 0:24 --max-side 320 -o preview.mp4
  vidstyle run clip.mp4 --style ink.jpg --temporal-weight 0     per-frame (flickers; to compare)
  vidstyle run clip.mp4 --style ink.jpg --backbone vgg19 --device cuda

speed: with the defaults a frame of 512 px costs about 50 iterations x 0.1 s on a 2-core CPU
(a few seconds per frame); a GPU is one to two orders of magnitude faster.
scaling out: --chunks 4 --ray auto renders 4 chunks at once on a Ray cluster (see README).
exit codes: 0 ok, 2 bad arguments, 3 bad input, 4 output not writable, 5 weights
unavailable, 6 device or Ray cluster unusable, 130 interrupted.
"""

_GROUPS: tuple[tuple[str, type], ...] = (
    ("frames and output", RenderConfig),
    ("style and losses", StyleConfig),
    ("optimizer", OptimConfig),
    ("optical flow", FlowConfig),
)


# `vidstyle preview sample_videos/pan.mp4 --style sample_videos/ink.jpg` with the defaults
# (24 frames at 256 px) took 38 s on a 2-core CPU, model loading included (43 s with the
# interpreter start).
_PREVIEW_SECONDS_PER_FRAME = 1.6
# RenderConfig fields that mean nothing to a preview (hidden from its help, refused if given).
_NOT_FOR_PREVIEW = ("resume", "keep_partial")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_fields(group: argparse._ArgumentGroup, cls: type) -> None:
    """Add one ``--flag`` per option field of ``cls``; defaults and help come from the field.

    argparse's own default is None, so only flags the user gave override the dataclass.
    """
    for f in option_fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f.metadata["help"]
        ftype = str(f.type)
        if ftype == "bool":
            group.add_argument(_flag(f.name), action="store_true", default=None, help=help_text)
            continue
        kwargs: dict[str, Any] = {"default": None, "help": f"{help_text} (default: {default})"}
        if "parse" in f.metadata:
            kwargs.update(type=f.metadata["parse"], metavar=f.metadata["metavar"])
        elif "choices" in f.metadata:
            kwargs["metavar"] = "{" + ",".join(f.metadata["choices"]) + "}"
        elif ftype == "int":
            kwargs.update(type=int, metavar="N")
        elif ftype == "float":
            kwargs.update(type=float, metavar="X")
        elif ftype.startswith("Path"):
            kwargs.update(type=Path, metavar="DIR" if f.name.endswith("_dir") else "FILE")
        group.add_argument(_flag(f.name), **kwargs)


def _values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    return {
        f.name: getattr(args, f.name)
        for f in option_fields(cls)
        if getattr(args, f.name, None) is not None
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidstyle",
        description="Turn a video into a painting that moves without flickering.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"vidstyle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
        f"A preview takes about {_PREVIEW_SECONDS_PER_FRAME} s per frame on a 2-core CPU at "
        "the default 256 px\n(the first 24 frames: about "
        f"{round(_PREVIEW_SECONDS_PER_FRAME * 24)} s); a GPU is much faster.\n"
        "--max-side defaults to 256 here (512 for run), so previews are quick; pass\n"
        "--max-side 512 to see the final size.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  vidstyle preview clip.mp4 --style ink.jpg         writes clip.ink.preview.png\n"
        "  vidstyle preview clip.mp4 --style ink.jpg --frames 240:264 --style-weight 3e4\n"
        "  vidstyle preview clip.mp4 --style ink.jpg --start 12 --end 13 --video side.mp4\n",
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
        elif action.dest in _NOT_FOR_PREVIEW:
            # A preview starts afresh in a temporary folder: nothing to resume or keep.
            action.help = argparse.SUPPRESS
    _add_common(preview)

    batch = sub.add_parser(
        "batch",
        help="render every input of a pipelines/*.toml recipe",
        description="Render every input of RECIPE into --out-dir, skipping outputs newer than "
        "their input, styles and recipe. One failing input does not stop the others.",
    )
    batch.add_argument("recipes", type=Path, nargs="+", metavar="RECIPE", help="recipe file(s)")
    batch.add_argument("--out-dir", type=Path, default=Path("renders"),
                       help="where outputs go (default: renders)")
    batch.add_argument("--force", action="store_true", help="re-render up-to-date outputs too")
    _add_ray(batch)
    _add_common(batch)

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
        "  vidstyle metrics clip.mp4 preview.mp4 --start 24 --json    (a render of --frames 24:)\n",
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
    metrics.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                         help="where flow warping and the backbone run (default: auto)")
    metrics.add_argument("--json", action="store_true",
                         help="print a JSON object (with the per-pair curves) instead of a table")
    metrics.add_argument("--plot", type=Path, metavar="FILE.png",
                         help="write the per-frame error curves (output vs input, log scale)")
    _add_common(metrics)
    return parser


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
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def config_from_args(args: argparse.Namespace) -> RenderConfig:
    """Build the RenderConfig for ``vidstyle run``; raises ValueError on bad values."""
    frames = parse_frame_range(args.frames) if args.frames is not None else None
    return RenderConfig(
        input=args.input,
        styles=tuple(args.styles),
        output=args.output,
        frames=frames,
        start=args.start,
        end=args.end,
        style=StyleConfig(**_values(args, StyleConfig)),
        optim=OptimConfig(**_values(args, OptimConfig)),
        flow=FlowConfig(**_values(args, FlowConfig)),
        **_values(args, RenderConfig),
    )


class ProgressBar:
    """Frames done, seconds per frame and ETA on one line of stderr.

    On a terminal the line is redrawn in place; otherwise (logs, CI) one line per frame.
    """

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.tty = stream.isatty()
        self.first_frame_at: float | None = None
        self._last_draw = 0.0

    def __call__(self, p: Any) -> None:
        now = time.monotonic()
        if self.first_frame_at is None:
            # Seconds per frame are measured from the first frame on: model loading and the
            # style targets are start-up costs, not per-frame ones.
            self.first_frame_at = p.elapsed
        if not p.frame_done and (not self.tty or now - self._last_draw < 0.2):
            return
        self._last_draw = now
        new_frames = p.frame - p.resumed
        per_frame = (p.elapsed - self.first_frame_at) / new_frames if new_frames > 0 else None
        total = p.total
        if total:
            filled = int(20 * min(p.frame, total) / total)
            bar = f"[{'#' * filled}{'.' * (20 - filled)}] {p.frame}/{total}"
        else:
            bar = f"{p.frame} frames"
        parts = [f"{self.label} {bar}", f"iter {p.iteration}/{p.iterations}"]
        if per_frame is not None:
            parts.append(f"{per_frame:.1f} s/frame")
            if total:
                parts.append(f"ETA {_clock(per_frame * max(total - p.frame, 0))}")
        line = " | ".join(parts)
        if self.tty:
            self.stream.write("\r" + line.ljust(100)[:100])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._last_draw:
            self.stream.write("\n")
            self.stream.flush()


@contextlib.contextmanager
def _progress(quiet: bool, label: str) -> Iterator[ProgressBar | None]:
    """A progress bar on stderr for the block (None when ``--quiet``), closed on any exit."""
    bar = None if quiet else ProgressBar(sys.stderr, label)
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _cmd_run(args: argparse.Namespace) -> int:
    from vidstyle.pipeline import render

    cfg = config_from_args(args)
    if args.chunks is not None or args.ray is not None:
        return _run_chunked(args, cfg)
    with _progress(args.quiet, cfg.input.name) as bar:
        result = render(cfg, progress=bar)
    # Per frame stylized by this run: every pass counts, frames resumed do not.
    work = result.frames * cfg.optim.passes - result.resumed_frames
    per_frame = result.seconds / max(work, 1)
    resumed = ""
    if cfg.optim.passes > 1:
        resumed = f", {cfg.optim.passes} passes"
    if result.resumed_frames:
        unit = "frame passes" if cfg.optim.passes > 1 else "of them"
        resumed += f", {result.resumed_frames} {unit} resumed"
    width, height = result.size
    print(
        f"wrote {result.output}: {result.frames} frames{resumed} at {width}x{height} "
        f"in {_clock(result.seconds)} ({per_frame:.1f} s/frame on {result.device})"
    )
    for note in result.dropped_audio:
        print(f"note: {note}: left out of the output", file=sys.stderr)
    return 0


def _run_chunked(args: argparse.Namespace, cfg: RenderConfig) -> int:
    from vidstyle.distributed import render_chunked

    if args.ray is None:
        raise ValueError(
            "--chunks renders the chunks on Ray workers: add --ray (a Ray instance on this "
            "machine) or --ray ADDRESS (a cluster)"
        )
    chunks = 1 if args.chunks is None else args.chunks
    if chunks < 1:
        raise ValueError(f"--chunks must be >= 1, got {chunks}")
    if args.preroll < 0 or args.seam_window < 0:
        raise ValueError("--preroll and --seam-window must be >= 0")
    with _progress_line(args.quiet) as line:

        def progress(p: Any) -> None:
            parts = [f"{cfg.input.name} {_bar(p.frames, p.total)} frames",
                     f"chunks {p.chunks_done} done, {p.chunks_running} running of {p.chunks}"]
            if p.phase != "chunks":
                parts.append("reconciling seams" if p.phase == "seams" else "encoding")
            line(" | ".join(parts))

        result = render_chunked(
            cfg, chunks=chunks, address=args.ray, preroll=args.preroll,
            seam_window=args.seam_window, progress=progress,
        )
    seams = sum(1 for c in result.chunks if c.seam)
    at_cuts = len(result.chunks) - 1 - seams
    width, height = result.size
    joined = "reconciled" if result.seam_window else "joined as they are"
    print(
        f"wrote {cfg.output_path}: {result.frames} frames at {width}x{height} in "
        f"{_clock(result.seconds)}; {_count(len(result.chunks), 'chunk')} on Ray "
        f"({_count(result.workers, 'worker')}), {_count(seams, 'seam')} {joined}, "
        f"{at_cuts} at shot cuts"
    )
    if len(result.chunks) < chunks:
        print(f"note: {result.frames} frames make only {_count(len(result.chunks), 'chunk')} "
              f"of at least {args.seam_window + 1} frames (--seam-window + 1)", file=sys.stderr)
    for note in result.dropped_audio:
        print(f"note: {note}: left out of the output", file=sys.stderr)
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _bar(done: int, total: int) -> str:
    filled = int(20 * min(done, total) / total) if total else 0
    return f"[{'#' * filled}{'.' * (20 - filled)}] {done}/{total}"


class _StatusLine:
    """A status line on stderr: redrawn in place on a terminal, else printed when it changes."""

    def __init__(self, stream: TextIO, quiet: bool) -> None:
        self.stream, self.quiet, self.tty = stream, quiet, stream.isatty()
        self.text, self.drawn = "", 0.0

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if self.quiet or text == self.text or (self.tty and now - self.drawn < 0.2):
            return
        self.text, self.drawn = text, now
        self.stream.write("\r" + text.ljust(100)[:100] if self.tty else text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Wipe the line on a terminal, before other output is printed."""
        if self.tty and self.text and not self.quiet:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()
            self.text = ""

    def close(self) -> None:
        if self.tty and self.text and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


@contextlib.contextmanager
def _progress_line(quiet: bool) -> Iterator[_StatusLine]:
    line = _StatusLine(sys.stderr, quiet)
    try:
        yield line
    finally:
        line.close()


def _cmd_preview(args: argparse.Namespace) -> int:
    from vidstyle.preview import default_sheet, preview

    for name in _NOT_FOR_PREVIEW:
        if getattr(args, name, None):
            raise ValueError(f"{_flag(name)} does not apply to preview (it always starts afresh)")
    if args.count < 1:
        raise ValueError(f"--count must be >= 1, got {args.count}")
    if args.frames is None and args.start is None and args.end is None:
        args.frames = "0:24"
    # -o names the sheet, not a render output: the render itself goes to a temporary file.
    cfg = config_from_args(argparse.Namespace(**{**vars(args), "output": None}))
    sheet = args.output if args.output is not None else default_sheet(cfg)
    with _progress(args.quiet, cfg.input.name) as bar:
        result = preview(cfg, sheet=sheet, count=args.count, video=args.video, progress=bar)
    width, height = result.size
    also = f" and {result.video}" if result.video is not None else ""
    print(
        f"wrote {result.sheet}{also}: {result.shown} of {result.frames} frames at "
        f"{width}x{height} in {_clock(result.seconds)} "
        f"({result.seconds_per_frame:.1f} s/frame on {result.device})"
    )
    for note in result.dropped_audio:
        print(f"note: {note}: left out of the clip", file=sys.stderr)
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from vidstyle.pipeline import render
    from vidstyle.recipes import load_recipe

    try:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {args.out_dir}: {exc}") from exc
    jobs = [job for recipe in args.recipes for job in load_recipe(recipe, out_dir=args.out_dir)]
    if args.ray is not None:
        return _batch_on_ray(args, jobs)
    failed = 0
    for job in jobs:
        out = job.config.output_path
        if job.up_to_date() and not args.force:
            print(f"up to date  {out}")
            continue
        try:
            with _progress(args.quiet, job.config.input.name) as bar:
                result = render(job.config, progress=bar)
        except Interrupted:
            raise  # Ctrl-C stops the whole batch; a rerun continues where it stopped
        except VidstyleError as exc:
            failed += 1
            print(f"FAILED      {out}: {exc}")
            continue
        print(f"rendered    {out}: {result.frames} frames in {_clock(result.seconds)}")
    summary = f"{len(jobs) - failed} of {len(jobs)} outputs ok"
    print(summary + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


def _batch_on_ray(args: argparse.Namespace, jobs: list[Any]) -> int:
    from vidstyle.distributed import render_batch

    with _progress_line(args.quiet) as line:

        def progress(p: Any) -> None:
            if p.finished is not None:
                outcome = p.finished
                if outcome.skipped:
                    text = f"up to date  {outcome.output}"
                elif outcome.error is not None:
                    tries = f" (after {outcome.attempts} attempts)" if outcome.attempts > 1 else ""
                    text = f"FAILED      {outcome.output}: {outcome.error}{tries}"
                else:
                    result = outcome.result
                    text = (f"rendered    {outcome.output}: {result.frames} frames in "
                            f"{_clock(result.seconds)}")
                line.clear()
                print(text, flush=True)
            line(f"batch: {p.done} done, {p.running} running, {p.failed} failed of {p.total}"
                 f" | {p.frames} frames in progress | {_clock(p.elapsed)}")

        outcomes = render_batch(jobs, address=args.ray, force=args.force, progress=progress)
    failed = sum(1 for o in outcomes if o.error is not None)
    summary = f"{len(jobs) - failed} of {len(jobs)} outputs ok"
    print(summary + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


def _cmd_metrics(args: argparse.Namespace) -> int:
    import json

    from vidstyle.metrics import check_plot_path, format_report, measure, plot_report
    from vidstyle.pipeline import resolve_device

    if args.plot is not None:
        check_plot_path(args.plot)  # fail before the measuring, not after
    device = resolve_device(args.device)
    tty = sys.stderr.isatty() and not args.quiet

    def progress(frames: int) -> None:
        if tty:
            sys.stderr.write(f"\rmeasuring {args.output.name}: {frames} frames")
            sys.stderr.flush()

    try:
        report = measure(
            args.input, args.output, start_index=args.start, long_range=args.long_range,
            style=args.style, backbone=args.backbone, style_scale=args.style_scale,
            every=args.every, device=device, progress=progress,
        )
    finally:
        if tty:
            sys.stderr.write("\r" + " " * 60 + "\r")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report, source=str(args.input), output=str(args.output)))
    if args.plot is not None:
        plot_report(report, args.plot)
        # stdout stays pure JSON with --json.
        print(f"wrote {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    # SIGTERM (kill, a scheduler's stop) gets the same clean stop as Ctrl-C.
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        commands = {
            "run": _cmd_run,
            "preview": _cmd_preview,
            "batch": _cmd_batch,
            "metrics": _cmd_metrics,
        }
        return commands[args.command](args)
    except KeyboardInterrupt:
        print("\nvidstyle: interrupted; no output was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ValueError as exc:
        if args.debug:
            raise
        print(f"vidstyle: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as exc:
        print(f"\nvidstyle: {exc}", file=sys.stderr)
        return exc.exit_code
    except VidstyleError as exc:
        if args.debug:
            raise
        print(f"vidstyle: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if args.debug:
            raise
        print(f"vidstyle: internal error: {exc!r} (rerun with --debug and report it)",
              file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
