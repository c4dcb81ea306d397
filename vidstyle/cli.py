"""The command line: parse, build configs, call the library, show progress, map errors.

This is the only module (with its parser, :mod:`vidstyle.cli_parser`, and its progress bars,
:mod:`vidstyle.cli_progress`) that prints or decides exit codes:

====  ========================================================================================
0     success
1     ``batch``: some outputs failed (the others were rendered)
2     a setting cannot work: bad command-line arguments or recipe; --ray without Ray installed
3     bad input: video or style image missing, unreadable or undecodable
4     output cannot be written (exists without --overwrite, no directory, disk full)
5     model weights unavailable (offline and not cached)
6     the requested device cannot be used; the Ray cluster cannot be reached
70    a bug in vidstyle, not in the input (EX_SOFTWARE): rerun with --debug and report it
130   interrupted (Ctrl-C / SIGTERM); finished frames are kept for --resume
====  ========================================================================================

A :class:`~vidstyle.errors.VidstyleError` is one line on stderr with its ``exit_code``; any
other exception is a bug and is reported as one, never as the user's mistake.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidstyle.cli_parser import (
    DEFAULT_PREROLL,
    DEFAULT_SEAM_WINDOW,
    NOT_FOR_PREVIEW,
    build_parser,
    flag,
)
from vidstyle.cli_progress import BatchBar, ChunkBar, CountBar, FrameBar, clock, showing
from vidstyle.config import (
    FastConfig,
    FlowConfig,
    OptimConfig,
    RenderConfig,
    StyleConfig,
    parse_frame_range,
)
from vidstyle.errors import Interrupted, OutputError, UsageError, VidstyleError
from vidstyle.options import option_fields

__all__ = [
    "DEFAULT_PREROLL",
    "DEFAULT_SEAM_WINDOW",
    "EXIT_BATCH_FAILED",
    "EXIT_BUG",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "build_parser",
    "config_from_args",
    "main",
]

EXIT_BATCH_FAILED = 1
EXIT_USAGE = 2
EXIT_BUG = 70  # EX_SOFTWARE in sysexits.h: an internal software error
EXIT_INTERRUPTED = 130


def _values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    return {
        f.name: getattr(args, f.name)
        for f in option_fields(cls)
        if getattr(args, f.name, None) is not None
    }


def config_from_args(args: argparse.Namespace) -> RenderConfig:
    """Build the RenderConfig for ``vidstyle run``; raises UsageError on bad values."""
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
        fast=FastConfig(**_values(args, FastConfig)),
        **_values(args, RenderConfig),
    )


def _frame_bar(args: argparse.Namespace, label: str, iterations: int | None = None
               ) -> FrameBar | None:
    return None if args.quiet else FrameBar(label, iterations=iterations)


def _cmd_run(args: argparse.Namespace) -> int:
    from vidstyle.pipeline import render

    cfg = config_from_args(args)
    _colour_note(cfg.input)
    if args.chunks is not None or args.ray is not None:
        return _run_chunked(args, cfg)
    # A --fast frame is one pass of a network, not --iterations: no estimate from them.
    iterations = None if cfg.fast.fast else cfg.optim.iterations
    with showing(_frame_bar(args, cfg.input.name, iterations)) as bar:
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
        f"in {clock(result.seconds)} ({per_frame:.1f} s/frame on {result.device})"
    )
    for note in result.dropped_audio:
        print(f"note: {note}: left out of the output", file=sys.stderr)
    return 0


def _colour_note(path: Path) -> None:
    """Say up front when the input's colour is converted (HDR), not kept."""
    from vidstyle.io import probe
    from vidstyle.io.colour import colour_note

    note = colour_note(probe(path).colour)
    if note is not None:
        print(f"note: {note}", file=sys.stderr)


def _run_chunked(args: argparse.Namespace, cfg: RenderConfig) -> int:
    from vidstyle.distributed import render_chunked

    if args.ray is None:
        raise UsageError(
            "--chunks renders the chunks on Ray workers: add --ray (a Ray instance on this "
            "machine) or --ray ADDRESS (a cluster)"
        )
    chunks = 1 if args.chunks is None else args.chunks
    if chunks < 1:
        raise UsageError(f"--chunks must be >= 1, got {chunks}")
    if args.preroll < 0 or args.seam_window < 0:
        raise UsageError("--preroll and --seam-window must be >= 0")
    with showing(ChunkBar(cfg.input.name) if not args.quiet else None) as bar:
        result = render_chunked(
            cfg, chunks=chunks, address=args.ray, preroll=args.preroll,
            seam_window=args.seam_window, progress=bar,
        )
    seams = sum(1 for c in result.chunks if c.seam)
    at_cuts = len(result.chunks) - 1 - seams
    width, height = result.size
    joined = "reconciled" if result.seam_window else "joined as they are"
    print(
        f"wrote {cfg.output_path}: {result.frames} frames at {width}x{height} in "
        f"{clock(result.seconds)}; {_count(len(result.chunks), 'chunk')} on Ray "
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


def _cmd_preview(args: argparse.Namespace) -> int:
    from vidstyle.preview import default_sheet, preview

    for name in NOT_FOR_PREVIEW:
        if getattr(args, name, None):
            raise UsageError(f"{flag(name)} does not apply to preview (it always starts afresh)")
    if args.count < 1:
        raise UsageError(f"--count must be >= 1, got {args.count}")
    if args.frames is None and args.start is None and args.end is None:
        args.frames = "0:24"
    # -o names the sheet, not a render output: the render itself goes to a temporary file.
    cfg = config_from_args(argparse.Namespace(**{**vars(args), "output": None}))
    sheet = args.output if args.output is not None else default_sheet(cfg)
    with showing(_frame_bar(args, cfg.input.name, cfg.optim.iterations)) as bar:
        result = preview(cfg, sheet=sheet, count=args.count, video=args.video, progress=bar)
    width, height = result.size
    also = f" and {result.video}" if result.video is not None else ""
    print(
        f"wrote {result.sheet}{also}: {result.shown} of {result.frames} frames at "
        f"{width}x{height} in {clock(result.seconds)} "
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
            with showing(_frame_bar(args, job.config.input.name)) as bar:
                result = render(job.config, progress=bar)
        except Interrupted:
            raise  # Ctrl-C stops the whole batch; a rerun continues where it stopped
        except VidstyleError as exc:
            failed += 1
            print(f"FAILED      {out}: {exc}")
            continue
        print(f"rendered    {out}: {result.frames} frames in {clock(result.seconds)}")
    return _batch_summary(len(jobs), failed)


def _batch_on_ray(args: argparse.Namespace, jobs: list[Any]) -> int:
    from vidstyle.distributed import render_batch

    with showing(BatchBar(args.quiet)) as bar:
        outcomes = render_batch(jobs, address=args.ray, force=args.force, progress=bar)
    return _batch_summary(len(jobs), sum(1 for o in outcomes if o.error is not None))


def _batch_summary(jobs: int, failed: int) -> int:
    print(f"{jobs - failed} of {jobs} outputs ok" + (f", {failed} failed" if failed else ""))
    return EXIT_BATCH_FAILED if failed else 0


def _cmd_metrics(args: argparse.Namespace) -> int:
    import json

    from vidstyle.flow import make_flow
    from vidstyle.metrics import check_plot_path, format_report, measure, plot_report
    from vidstyle.pipeline import resolve_device

    for name, value, least in (("--start", args.start, 0), ("--long-range", args.long_range, 0),
                               ("--every", args.every, 1)):
        if value < least:
            raise UsageError(f"{name} must be >= {least}, got {value}")
    if args.plot is not None:
        check_plot_path(args.plot)  # fail before the measuring, not after
    device = resolve_device(args.device)
    with showing(None if args.quiet else CountBar(f"measuring {args.output.name}")) as bar:
        report = measure(
            args.input, args.output, start_index=args.start, long_range=args.long_range,
            style=args.style, backbone=args.backbone, style_scale=args.style_scale,
            every=args.every, device=device, estimator=make_flow(args.flow, device),
            progress=bar,
        )
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


def _bug(exc: BaseException) -> str:
    """One line naming an exception that is a bug in vidstyle."""
    lines = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    if len(lines) > 1:
        what += " ..."
    return (f"vidstyle: bug: {what} (this is a bug in vidstyle, not in your input; rerun with "
            "--debug for the traceback and report it)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the table above)."""
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
    except Interrupted as exc:
        print(f"\nvidstyle: {exc}", file=sys.stderr)
        return exc.exit_code
    except VidstyleError as exc:
        if args.debug:
            raise
        print(f"vidstyle: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - anything else is a bug: say so, in one line
        if args.debug:
            raise
        print(_bug(exc), file=sys.stderr)
        return EXIT_BUG
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
