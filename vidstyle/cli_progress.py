"""Progress on stderr for the command line, drawn by tqdm.

The library reports progress through callbacks carrying small records
(:class:`vidstyle.pipeline.Progress` for a render, :class:`vidstyle.distributed.ChunkProgress`
for a chunked render, :class:`vidstyle.distributed.BatchProgress` for a batch on Ray); the
classes here turn them into tqdm bars. On a terminal a bar is redrawn in place, at most every
:data:`REDRAW_SECONDS`. Anywhere else (a log file, CI) nothing is redrawn: each state worth
keeping becomes one line, at most one per finished frame, never one per iteration.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

if TYPE_CHECKING:
    from vidstyle.distributed import BatchProgress, ChunkProgress
    from vidstyle.pipeline import Progress

REDRAW_SECONDS = 0.2
"""Shortest time between two redraws of a bar on a terminal."""

# The rate is shown as seconds per frame (per output for a batch) and averaged from the bar's
# start, which is the first report: start-up (model loading, style targets) is not per-frame.
_BAR = ("{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, "
        "{rate_inv_fmt}{postfix}]")
_COUNT = "{desc}: {n_fmt} {unit}s [{elapsed}, {rate_inv_fmt}{postfix}]"  # no total known


class _Bar(tqdm):
    monitor_interval = 0  # no monitor thread: a bar is drawn when a report comes, never else


class _Lines:
    """A file for tqdm off a terminal: each redraw becomes a line; blank ones are dropped."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        for part in text.split("\r"):
            line = part.strip()
            if line:
                self._stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


class _Report:
    """One tqdm bar on ``stream`` (stderr by default), made on the first report, so that its
    clock starts there, and closed by :func:`showing`."""

    unit = "frame"
    leave = True
    """Keep the last state on a terminal once done (off a terminal it is written already)."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.bar: Any = None
        self._state: object = None

    def draw(self, n: int, postfix: str, state: object, *, total: int | None) -> None:
        """Show ``n`` done of ``total`` and ``postfix``. A changed ``state`` is drawn at once;
        otherwise only on a terminal, and at most every :data:`REDRAW_SECONDS`."""
        if self.bar is None:
            tty = self.stream.isatty()
            self.bar = _Bar(
                desc=self.label, total=total or None, initial=n, unit=self.unit,
                postfix=postfix, bar_format=_BAR if total else _COUNT,
                # Off a terminal no time is ever long enough: only changed states are drawn.
                file=self.stream if tty else _Lines(self.stream),
                mininterval=REDRAW_SECONDS if tty else math.inf,
                miniters=0,  # redraw on time alone, not after tqdm's adaptive count
                smoothing=0,  # the rate is the average since the start, not of the last few
                dynamic_ncols=tty, ascii=None if tty else True, leave=self.leave and tty,
            )
            self._state = state
            return
        self.bar.set_postfix_str(postfix, refresh=False)
        if state != self._state:
            self._state = state
            self.bar.n = n
            self.bar.refresh()
        else:
            self.bar.update(n - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


_PHASES = {"keyframes": "keyframe", "training": "step"}  # each phase's unit

ESTIMATE_AFTER = 4
"""Iterations of the first frame timed before :class:`FrameBar` says what the render costs."""


class FrameBar(_Report):
    """A render's frames: done / total, seconds per frame, ETA, the current frame's iteration.

    Frames resumed from an interrupted run count as done but not in the rate. Off a terminal:
    a line when the first frame starts and one per finished frame.

    Given ``iterations`` (the budget of every frame after the first), it also says once, a
    few iterations into the first frame, what the render will cost: seconds per iteration at
    the frame size, what that makes a later frame and the rest of the range, and the peak
    memory so far (:func:`estimate_line`). The bar's own ETA cannot know that yet: the first
    frame runs more iterations than the rest, and no frame has finished.
    """

    def __init__(self, label: str, stream: TextIO | None = None, *,
                 iterations: int | None = None) -> None:
        super().__init__(label, stream)
        self.iterations = iterations
        self._timed: tuple[int, int, float] | None = None  # (frame, iteration, elapsed)
        self._estimated = iterations is None
        self._phase: _Report | None = None

    def __call__(self, p: Progress) -> None:
        if p.phase != "frames":
            self._prepare(p)
            return
        if self._phase is not None:
            self._phase.close()
            self._phase = None
        if not self._estimated and not p.frame_done:
            self._estimate(p)
        postfix = f"iter {p.iteration}/{p.iterations}" if p.iterations > 1 else ""
        self.draw(p.frame, postfix, p.frame, total=p.total)

    def _prepare(self, p: Progress) -> None:
        """``--fast``'s phases before the frames, each on a bar of its own with its ETA: the
        keyframes optimized, then the network's training steps."""
        if self._phase is not None and self._phase.unit != _PHASES[p.phase]:
            self._phase.close()
            self._phase = None
        if self._phase is None:
            self._phase = _Report(f"{self.label} ({p.phase})", self.stream)
            self._phase.unit = _PHASES[p.phase]
        if p.phase == "training":
            self._phase.draw(p.iteration, "", None, total=p.iterations)
        else:
            self._phase.draw(p.frame, f"iter {p.iteration}/{p.iterations}", p.frame,
                             total=p.total)

    def close(self) -> None:
        if self._phase is not None:
            self._phase.close()
            self._phase = None
        super().close()

    def _estimate(self, p: Progress) -> None:
        # Timed from a frame's first report on: the work before it (content features, flows,
        # the first step's allocations) is not per iteration.
        if self._timed is None or self._timed[0] != p.source_index:
            self._timed = (p.source_index, p.iteration, p.elapsed)
            return
        _, first, began = self._timed
        if p.iteration - first < ESTIMATE_AFTER:
            return
        self._estimated = True
        per_iteration = (p.elapsed - began) / (p.iteration - first)
        assert self.iterations is not None
        line = estimate_line(per_iteration, p, self.iterations, peak_memory())
        tqdm.write(line, file=self.stream)  # on a terminal: above the bar, which is redrawn


def estimate_line(per_iteration: float, p: Progress, iterations: int,
                  memory: tuple[str, float] | None) -> str:
    """The one line :class:`FrameBar` writes on what a render will cost.

    ``per_iteration`` seconds as measured in frame ``p``; ``iterations`` the budget of a
    later frame; ``memory`` ``(where, peak bytes)`` so far. Early stopping can only make the
    frames shorter, so the times are upper bounds, the optical flow aside.
    """
    size = f" at {p.size[0]}x{p.size[1]}" if p.size is not None else ""
    if p.tiles != (1, 1):
        size += f" in {p.tiles[0]}x{p.tiles[1]} tiles"
    parts = [f"estimate: {per_iteration:.2f} s per iteration{size}",
             f"a later frame up to {clock(per_iteration * iterations)} ({iterations} iterations) "
             "plus its optical flow"]
    if p.total is not None:
        left = (p.iterations - p.iteration) + max(p.total - p.frame - 1, 0) * iterations
        parts.append(f"the rest of the render up to about {clock(per_iteration * left)}")
    if memory is not None:
        where, peak = memory
        parts.append(f"peak {where}memory so far {peak / 1e9:.1f} GB")
    return "; ".join(parts)


def peak_memory() -> tuple[str, float] | None:
    """``(where, bytes)``: the peak memory of this process so far, on the GPU when the render
    has used one, else in RAM; None where the system does not say."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return "GPU ", float(torch.cuda.max_memory_allocated())
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return "", float(peak if sys.platform == "darwin" else peak * 1024)  # bytes there, KiB here


class ChunkBar(_Report):
    """A chunked render: frames of all chunks (pre-roll and seams included), chunks done and
    running, and the phase after the chunks."""

    def __call__(self, p: ChunkProgress) -> None:
        parts = [f"chunks {p.chunks_done} done, {p.chunks_running} running of {p.chunks}"]
        if p.phase != "chunks":
            parts.append("reconciling seams" if p.phase == "seams" else "encoding")
        state = (p.frames, p.chunks_done, p.chunks_running, p.phase)
        self.draw(p.frames, ", ".join(parts), state, total=p.total)


class BatchBar(_Report):
    """A batch on Ray: outputs done of all, running and failed, frames in progress; and a line
    on stdout for each output as it ends, also with ``quiet`` (which only hides the bar).

    Outputs found up to date count as done but not in the rate.
    """

    unit = "output"

    def __init__(self, quiet: bool, stream: TextIO | None = None) -> None:
        super().__init__("batch", stream)
        self.quiet = quiet

    def __call__(self, p: BatchProgress) -> None:
        if p.finished is not None:
            if p.finished.skipped and self.bar is not None:
                self.bar.initial += 1  # tqdm's rate counts from `initial` on
            # On a terminal tqdm.write clears the bar, prints, and draws the bar again.
            tqdm.write(outcome_line(p.finished), file=sys.stdout)
        if not self.quiet:
            postfix = f"{p.running} running, {p.failed} failed, {p.frames} frames in progress"
            self.draw(p.done, postfix, (p.done, p.running, p.failed, p.frames), total=p.total)


def outcome_line(outcome: Any) -> str:
    """The line a batch prints for one output (a :class:`~vidstyle.distributed.JobOutcome`)."""
    if outcome.skipped:
        return f"up to date  {outcome.output}"
    if outcome.error is not None:
        tries = f" (after {outcome.attempts} attempts)" if outcome.attempts > 1 else ""
        return f"FAILED      {outcome.output}: {outcome.error}{tries}"
    result = outcome.result
    return f"rendered    {outcome.output}: {result.frames} frames in {clock(result.seconds)}"


class CountBar(_Report):
    """A count without a total (frames measured), on a terminal only, wiped when done."""

    leave = False

    def __call__(self, n: int) -> None:
        if self.stream.isatty():
            self.draw(n, "", None, total=None)


@contextlib.contextmanager
def showing(report: _Report | None) -> Iterator[Any]:
    """Yield ``report`` (None for ``--quiet``) and close its bar on any exit."""
    try:
        yield report
    finally:
        if report is not None:
            report.close()


def clock(seconds: float) -> str:
    """``75`` -> ``"1:15"``; ``3725`` -> ``"1:02:05"``."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
