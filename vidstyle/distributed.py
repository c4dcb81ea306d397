"""Scale out on Ray: many outputs at once, and long videos cut into chunks with hidden seams.

Inside a shot the work is sequential (each frame starts from the previous stylized frame), so
speed across GPUs and machines comes from two places:

* :func:`render_batch` runs every output of a batch as its own Ray task.
* :func:`render_chunked` cuts one render's frame range into chunks
  (:func:`vidstyle.chunking.plan_chunks`: at shot cuts where the video has them, at even
  points otherwise). Each chunk renders on its own worker, starting a few frames early (the
  *pre-roll*, rendered and not kept) so that its temporal chain has settled when its kept
  frames begin. When all chunks are done, a short window after each seam inside a shot is
  painted again toward both neighbouring chains (:func:`vidstyle.seams.reconcile_seam`, by
  the same temporal rule as every other frame), and the chunks are joined into one encode
  with the source's audio for the whole range (:func:`vidstyle.seams.join`).

This module is the orchestration alone; the Ray plumbing (connecting, the shared-storage
check, the tasks) is :mod:`vidstyle.cluster`. Ray is the scheduler: the same code runs on a
laptop (a local Ray instance), on a workstation with several GPUs, or on a cluster (``ray
start --head`` on one machine, ``ray start --address ...`` on the others). Each task asks for
one GPU when the cluster has GPUs and one CPU otherwise. Every file (inputs, styles, outputs
and the work folders beside the outputs) must be on storage that all workers see under the
same path; :func:`~vidstyle.cluster.check_shared_storage` checks that on every node before
any work starts.

Ray is imported only when these functions are called, so vidstyle works without it
(``pip install 'vidstyle[ray]'`` adds it). Like the rest of the library this module never
prints: progress leaves through callbacks, failures as :class:`~vidstyle.errors.VidstyleError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidstyle.chunking import (
    DEFAULT_PREROLL,
    DEFAULT_SEAM_WINDOW,
    Chunk,
    plan_chunks,
    scan,
    shot_cuts,
)
from vidstyle.cluster import (
    Tracker,
    absolute_paths,
    check_shared_storage,
    connect,
    describe,
    files_read,
    gather,
    reconcile_task,
    render_task,
    require_ray,
    task_cause,
    wait_any,
)
from vidstyle.config import RenderConfig
from vidstyle.errors import (
    Interrupted,
    OutputError,
    UsageError,
)
from vidstyle.pipeline import RenderResult
from vidstyle.seams import chunk_output, join, work_folder

if TYPE_CHECKING:
    from vidstyle.recipes import Job


# -- batch -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobOutcome:
    """How one output of a batch ended."""

    job: Job
    result: RenderResult | None = None
    """The render, when it succeeded."""
    error: str | None = None
    """One line, when it failed (after its retry)."""
    skipped: bool = False
    """Up to date: not rendered again."""
    attempts: int = 0
    """Times the output's task started: 2 when it was retried."""

    @property
    def output(self) -> Path:
        return self.job.config.output_path


@dataclass(frozen=True)
class BatchProgress:
    """The state of a batch on Ray: sent at least once a second, and when an output ends."""

    total: int
    done: int
    """Outputs finished: rendered, up to date or failed."""
    running: int
    """Outputs a worker is rendering now (the others wait for a free worker)."""
    failed: int
    frames: int
    """Frames finished by the outputs being rendered now."""
    elapsed: float
    finished: JobOutcome | None = None
    """The output that has just ended, if any."""


def render_batch(
    jobs: Sequence[Job],
    *,
    address: str | None = None,
    force: bool = False,
    progress: Callable[[BatchProgress], None] | None = None,
    poll: float = 0.5,
) -> list[JobOutcome]:
    """Render every job of a batch as its own Ray task; one failing output does not stop the
    others.

    Outputs that are up to date (:meth:`Job.up_to_date`) are skipped unless ``force``. Each
    task asks for one GPU when the cluster has them (one CPU otherwise) and is retried once
    when it fails; an output that fails twice is reported with its error. An interrupted
    render keeps its finished frames, so running the batch again continues it.

    Returns:
        One outcome per job, in the order they ended.

    Raises:
        MissingExtraError, ClusterError: no Ray, or no cluster at ``address``.
        InputError, OutputError: a worker cannot see an input or the output folder that this
            machine sees (storage not shared).
        Interrupted: Ctrl-C / SIGTERM; the running tasks are cancelled.
    """
    began = time.monotonic()
    outcomes: list[JobOutcome] = []
    todo: list[Job] = []
    for job in jobs:
        if job.up_to_date() and not force:
            outcomes.append(JobOutcome(job, skipped=True))
        else:
            todo.append(job)
    total = len(jobs)

    def report(finished: JobOutcome | None, running: int = 0, frames: int = 0) -> None:
        if progress is not None:
            failed = sum(1 for o in outcomes if o.error is not None)
            progress(BatchProgress(total, len(outcomes), running, failed, frames,
                                   time.monotonic() - began, finished))

    for outcome in outcomes:
        report(outcome)
    if not todo:
        return outcomes

    with connect(address) as cluster:
        ray = require_ray()
        # Inputs this machine can read must be readable everywhere; one it cannot read is
        # a bad input, reported with its output below.
        # Workers get absolute paths; outcomes keep the jobs as the caller named them.
        configs = [absolute_paths(job.config) for job in todo]
        readable = {p for cfg in configs for p in files_read(cfg) if os.access(p, os.R_OK)}
        # A missing output folder is reported with its outputs, as without Ray.
        folders = {cfg.output_path.parent for cfg in configs}
        folders = {f for f in folders if f.is_dir()}
        check_shared_storage(sorted(readable), sorted(folders))

        tracker = ray.remote(num_cpus=0)(Tracker).remote()
        task = ray.remote(render_task).options(
            max_retries=1, retry_exceptions=True, **cluster.task_options
        )
        pending = {task.remote(cfg, str(i), tracker, True): (str(i), job)
                   for i, (job, cfg) in enumerate(zip(todo, configs))}
        try:
            while pending:
                ready = wait_any(ray, list(pending), poll)
                for ref in ready:
                    key, job = pending.pop(ref)
                    attempts = ray.get(tracker.attempts.remote(key))
                    try:
                        outcome = JobOutcome(job, result=ray.get(ref), attempts=attempts)
                    except Exception as exc:  # noqa: BLE001 - every failure is reported
                        if isinstance(task_cause(exc), Interrupted):
                            raise task_cause(exc) from None
                        outcome = JobOutcome(job, error=describe(exc), attempts=attempts)
                    outcomes.append(outcome)
                    report(outcome)
                frames = ray.get(tracker.snapshot.remote())
                keys = {key for key, _ in pending.values()}
                running = [n for key, n in frames.items() if key in keys]
                report(None, len(running), sum(running))
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)
            done = sum(1 for o in outcomes if o.error is None)
            raise Interrupted(
                f"interrupted with {done} of {total} outputs done; run the same command again "
                "to continue (finished frames are kept)"
            ) from None
    return outcomes


# -- chunks: rendering -----------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkProgress:
    """The state of a chunked render: sent at least once a second."""

    phase: str
    """``"chunks"`` (workers render the chunks), ``"seams"`` or ``"encode"``."""
    chunks: int
    chunks_done: int
    chunks_running: int
    frames: int
    """Frames finished, pre-roll and seam windows included."""
    total: int
    """Frames to render, pre-roll and seam windows included."""
    elapsed: float


@dataclass(frozen=True)
class ChunkedResult:
    output: Path
    frames: int
    size: tuple[int, int]
    seconds: float
    first_index: int
    """Input frame index of the output's first frame."""
    chunks: tuple[Chunk, ...]
    """The plan, in positions from ``first_index``."""
    cuts: tuple[int, ...]
    """Shot cuts found, in positions from ``first_index``."""
    seam_window: int
    dropped_audio: tuple[str, ...]
    workers: int
    """Render tasks the cluster could run at once."""


def render_chunked(
    cfg: RenderConfig,
    *,
    chunks: int,
    address: str | None = None,
    preroll: int = DEFAULT_PREROLL,
    seam_window: int = DEFAULT_SEAM_WINDOW,
    num_cpus: int | None = None,
    progress: Callable[[ChunkProgress], None] | None = None,
    poll: float = 0.5,
) -> ChunkedResult:
    """Render ``cfg`` as ``chunks`` parts on Ray workers and join them into ``cfg.output_path``.

    The frame range is cut at shot cuts where the video has them and at even points otherwise
    (:func:`~vidstyle.chunking.plan_chunks`). Each chunk renders on a worker from ``preroll``
    frames before its first kept frame; its frames stay losslessly in a work folder beside
    the output (``.NAME.chunks/``). Then the first ``seam_window`` frames after each seam
    inside a shot are painted again toward both neighbouring chains
    (:func:`~vidstyle.seams.reconcile_seam`; 0 joins the chunks as they are). The video is
    encoded once, with the source's audio for the whole range, and the work folder removed.

    An interrupted or failed chunked render keeps its work folder: the same call with
    ``cfg.resume`` continues each chunk from its last finished frame; ``cfg.overwrite``
    without ``cfg.resume`` starts over.

    Raises:
        UsageError: ``chunks`` < 1, ``preroll`` or ``seam_window`` < 0, ``keep_partial``, or
            ``fast``.
        MissingExtraError, ClusterError: no Ray, or no cluster at ``address``.
        InputError, DecodeError, OutputError, WeightsError, DeviceError: as in
            :func:`~vidstyle.pipeline.render`, also when a worker cannot see a file.
        Interrupted: Ctrl-C / SIGTERM; finished frames are kept for ``cfg.resume``.
    """
    from vidstyle.io import check_codec, check_output_path, probe, working_size
    from vidstyle.io.images import load_image

    if chunks < 1 or preroll < 0 or seam_window < 0:
        raise UsageError(
            f"need chunks >= 1, pre-roll >= 0 and seam window >= 0, got {chunks}, {preroll}, "
            f"{seam_window}"
        )
    if cfg.keep_partial:
        raise UsageError("--keep-partial does not apply to a chunked render")
    if cfg.fast.fast:
        # One network per chunk would paint each chunk its own way.
        raise UsageError("--fast trains one network over the whole range: use it without "
                         "--chunks and --ray")
    began = time.monotonic()
    cfg = absolute_paths(cfg)
    output = cfg.output_path
    info = probe(cfg.input)
    for style in cfg.styles:
        load_image(style)
    check_output_path(output, overwrite=cfg.overwrite, inputs=(cfg.input, *cfg.styles))
    check_codec(output, cfg.codec)
    work = work_folder(output)
    if work.exists():
        if cfg.overwrite and not cfg.resume:
            shutil.rmtree(work, ignore_errors=True)
        elif not cfg.resume:
            raise OutputError(
                f"an interrupted chunked render of {output.name} exists ({work}): add "
                "--resume to continue it, or --overwrite to start over"
            )
    indices, times, diffs = scan(cfg)
    first = indices[0]
    cuts = shot_cuts(diffs)
    plan = plan_chunks(len(indices), chunks, cuts=cuts, preroll=preroll,
                       min_length=seam_window + 1)
    seams = [j for j, c in enumerate(plan) if c.seam and seam_window > 0]
    total = sum(c.stop - c.render_from for c in plan) + sum(
        min(seam_window, len(plan[j]) - 1) for j in seams
    )

    with connect(address, num_cpus=num_cpus) as cluster:
        ray = require_ray()
        with _disk(work):
            work.mkdir(parents=True, exist_ok=True)
        check_shared_storage(files_read(cfg), [work])

        def report(phase: str, done: int, running: int, frames: int) -> None:
            if progress is not None:
                progress(ChunkProgress(phase, len(plan), done, running, frames, total,
                                       time.monotonic() - began))

        tracker = ray.remote(num_cpus=0)(Tracker).remote()
        task = ray.remote(render_task).options(
            max_retries=1, retry_exceptions=True, **cluster.task_options
        )
        refs: dict[Any, str] = {}
        for j, chunk in enumerate(plan):
            chunk_cfg = dataclasses.replace(
                cfg, output=chunk_output(work, j),
                frames=(first + chunk.render_from, first + chunk.stop), start=None, end=None,
                overwrite=True, resume=True, keep_partial=False,
            )
            refs[task.remote(chunk_cfg, f"chunk{j}", tracker, False)] = f"chunk{j}"
        gather(ray, refs, tracker, lambda d, r, f: report("chunks", d, r, f), poll)
        rendered = sum(c.stop - c.render_from for c in plan)

        seam_task = ray.remote(reconcile_task).options(
            max_retries=1, retry_exceptions=True, **cluster.task_options
        )
        refs = {
            seam_task.remote(cfg, work, j, first + plan[j].start,
                             min(seam_window, len(plan[j]) - 1), tracker, f"seam{j}"): f"seam{j}"
            for j in seams
        }
        gather(ray, refs, tracker,
                lambda d, r, f: report("seams", len(plan), 0, rendered + f), poll)
        report("encode", len(plan), 0, total)
        dropped = join(work, plan, seams, first, info, cfg, output)
        workers = cluster.workers

    shutil.rmtree(work, ignore_errors=True)
    width, height = working_size(info.width, info.height, cfg.max_side)
    return ChunkedResult(
        output=output,
        frames=len(indices),
        size=(width, height),
        seconds=time.monotonic() - began,
        first_index=first,
        chunks=tuple(plan),
        cuts=tuple(cuts),
        seam_window=seam_window,
        dropped_audio=tuple(dropped),
        workers=workers,
    )


@contextlib.contextmanager
def _disk(path: Path) -> Iterator[None]:
    from vidstyle.io.encode import disk_errors

    with disk_errors(path):
        yield


