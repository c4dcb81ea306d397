"""Chunked rendering on Ray against one unchunked render, measured in one run.

    python benchmarks/chunks.py                                # sample_videos/pan.mp4, 2 chunks
    python benchmarks/chunks.py --frames 0:24 --max-side 160   # a quicker look
    python benchmarks/chunks.py --workers 2 --no-raw --measure-flow deepflow
                                      # measured along a flow the render does not use

Renders the clip with the default settings four times:

* **unchunked**: :func:`vidstyle.pipeline.render` in this process (the reference);
* **2 chunks, 1 worker** and **2 chunks, 2 workers**: :func:`vidstyle.distributed.render_chunked`
  on a local Ray instance with 1 and then 2 CPUs (each task gets one core), seams reconciled;
* **2 chunks, seams not reconciled** (``seam_window=0``, 2 workers): what reconciling buys.

Then prints, with the warping error of Lai et al. (2018) per consecutive frame pair:

* at each seam, the error of the pairs in the seam's window (the pair across the seam and the
  reconciled frames after it) against the median error of the pairs inside the chunks (goal:
  the worst window pair at most 1.3x the median);
* the flicker ratio of each chunked render against the unchunked one (goal: at most 1.05x);
* wall time of each render, Ray start-up included, with the machine's core count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=REPO / "sample_videos" / "pan.mp4")
    parser.add_argument("--style", type=Path, default=REPO / "sample_videos" / "ink.jpg")
    parser.add_argument("--frames", default=None, help="A:B, input frame range (default: all)")
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="local Ray CPUs to time (default 1,2)")
    parser.add_argument("--no-raw", action="store_true", help="skip the unreconciled render")
    parser.add_argument("--preroll", type=int, default=None, help="default: the library's")
    parser.add_argument("--seam-window", type=int, default=None, help="default: the library's")
    parser.add_argument("--measure-flow", default="dis-medium",
                        help="the flow the warping error is measured along (default dis-medium; "
                        "deepflow is independent of the render's DIS)")
    args = parser.parse_args(argv)

    # Ray runs its workers 15 steps nicer than the process that starts it; here they compete
    # with the unchunked render in this process, so they get the same priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    import torch

    from vidstyle.config import RenderConfig, parse_frame_range
    from vidstyle.distributed import DEFAULT_PREROLL, DEFAULT_SEAM_WINDOW, render_chunked
    from vidstyle.flow import make_flow
    from vidstyle.metrics import measure
    from vidstyle.pipeline import render

    frames = parse_frame_range(args.frames) if args.frames else None
    preroll = DEFAULT_PREROLL if args.preroll is None else args.preroll
    seam_window = DEFAULT_SEAM_WINDOW if args.seam_window is None else args.seam_window
    # One thread here, as Ray gives each CPU task: the unchunked render and a 1-worker chunked
    # one use one core each, and a busy core does not stall PyTorch's threads at every step.
    torch.set_num_threads(1)
    cores = os.cpu_count()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"# {args.input.name}, style {args.style.name}, default settings, max side "
          f"{args.max_side}; {cores} CPU cores, {gpu}; torch threads in this process: "
          f"{torch.get_num_threads()}; pre-roll {preroll}, seam window {seam_window}; measured "
          f"along {args.measure_flow}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)

        def cfg(name: str) -> RenderConfig:
            return RenderConfig(input=args.input, styles=(args.style,), output=work / name,
                                frames=frames, max_side=args.max_side)

        times: dict[str, float] = {}
        began = time.perf_counter()
        plain = render(cfg("plain.mp4"))
        times["unchunked, in this process"] = time.perf_counter() - began
        print(f"unchunked: {plain.frames} frames in {times['unchunked, in this process']:.1f} s",
              flush=True)

        results = {}
        for workers in (int(w) for w in args.workers.split(",")):
            name = f"{args.chunks} chunks, {workers} worker{'s' if workers > 1 else ''}"
            began = time.perf_counter()
            results[name] = render_chunked(cfg(f"chunked{workers}.mp4"), chunks=args.chunks,
                                           preroll=preroll, seam_window=seam_window,
                                           num_cpus=workers)
            times[name] = time.perf_counter() - began
            print(f"{name}: {times[name]:.1f} s", flush=True)
        if not args.no_raw:
            name = f"{args.chunks} chunks, seams not reconciled"
            began = time.perf_counter()
            results[name] = render_chunked(cfg("raw.mp4"), chunks=args.chunks, seam_window=0,
                                           preroll=preroll,
                                           num_cpus=int(args.workers.split(",")[-1]))
            times[name] = time.perf_counter() - began
            print(f"{name}: {times[name]:.1f} s", flush=True)

        start = frames[0] if frames else 0
        estimator = make_flow(args.measure_flow)
        ref = measure(args.input, plain.output, start_index=start, long_range=None,
                      estimator=estimator)
        print()
        print("| render | seam at frame | window pairs (error) | worst window pair / median "
              "inside chunks | flicker ratio | vs unchunked |")
        print("|---|---|---|---|---|---|")
        print(f"| unchunked | - | - | - | {ref.flicker_ratio:.2f} | 1.00 |")
        for name, result in results.items():
            report = measure(args.input, result.output, start_index=start, long_range=None,
                             estimator=estimator)
            errors = report.per_pair_output
            window = max(result.seam_window, seam_window)
            # Pair t joins frames t and t+1 (positions in the range). A seam's window is the
            # pair across it and the pairs inside the frames reconciled after it (the same
            # number of pairs for the unreconciled render, for comparison).
            seams = [c.start for c in result.chunks if c.seam]
            in_window = {p for s in seams for p in range(s - 1, min(s + window, len(errors)))}
            inside = [e for p, e in enumerate(errors) if p not in in_window]
            median = statistics.median(inside)
            ratio = report.flicker_ratio / ref.flicker_ratio
            for s in seams:
                pairs = range(s - 1, min(s + window, len(errors)))
                listed = ", ".join(f"{errors[p]:.4f}" for p in pairs)
                worst = max(errors[p] for p in pairs)
                print(f"| {name} | {start + s} | {listed} | {worst / median:.2f} "
                      f"(median {median:.4f}) | {report.flicker_ratio:.2f} | {ratio:.2f} |")
            if not seams:
                print(f"| {name} | none | - | - | {report.flicker_ratio:.2f} | {ratio:.2f} |")
        seam_pairs = sorted({
            p for r in results.values() for c in r.chunks if c.seam
            for p in range(c.start - 1, min(c.start + seam_window, ref.pairs))
        })
        listed = ", ".join(f"{ref.per_pair_output[p]:.4f}" for p in seam_pairs)
        print(f"\nunchunked render, the same pairs for reference: {listed}")
        print(f"unchunked median pair error: {statistics.median(ref.per_pair_output):.4f}")
        print()
        print(f"| render | wall time ({cores} CPU cores, {gpu}) |")
        print("|---|---|")
        for name, seconds in times.items():
            print(f"| {name} | {seconds:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
