"""Ray plumbing: connecting to a cluster, checking shared storage, and running render tasks.

What :mod:`vidstyle.distributed` builds its batch and chunked renders on: :func:`connect`
(a local instance, the cluster started here, or a remote one), :func:`check_shared_storage`
(every node sees the files under the same paths), a tracker actor that tasks report their
progress to, the tasks themselves, and :func:`gather`, which waits for tasks and turns their
failures into :class:`~vidstyle.errors.VidstyleError`. Ray is imported only when these are
called, so vidstyle works without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from vidstyle.config import RenderConfig
from vidstyle.errors import (
    ClusterError,
    InputError,
    Interrupted,
    MissingExtraError,
    OutputError,
    VidstyleError,
)

if TYPE_CHECKING:
    from vidstyle.pipeline import RenderResult

SHARED_HINT = (
    "with --ray, inputs, styles and outputs must be on storage every Ray worker sees under "
    "the same path (a shared file system)"
)


# -- connecting ------------------------------------------------------------------------------


def require_ray() -> ModuleType:
    """The ``ray`` module, or :class:`MissingExtraError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError(
            "--ray needs Ray, which is not installed: pip install 'vidstyle[ray]'"
        ) from None
    return ray


@dataclass(frozen=True)
class Cluster:
    """What the connected Ray cluster offers."""

    nodes: int
    cpus: float
    gpus: float

    @property
    def task_options(self) -> dict[str, Any]:
        """Resources of one render task: one GPU where the cluster has them, else one CPU.

        Ray gives a task that asks for one CPU one thread for PyTorch (``OMP_NUM_THREADS=1``),
        so CPU tasks share a machine's cores without fighting over them. The tasks are spread
        over the nodes: a task lends its CPU back to Ray while it waits on the progress
        tracker at its start, and without spreading a second task could take that CPU on
        the same node while another node sat idle.
        """
        return {"num_cpus": 1, "num_gpus": 1 if self.gpus >= 1 else 0,
                "scheduling_strategy": "SPREAD"}

    @property
    def workers(self) -> int:
        """Render tasks that can run at the same time."""
        return max(1, int(self.gpus if self.gpus >= 1 else self.cpus))


@contextlib.contextmanager
def connect(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Cluster]:
    """Use the Ray cluster at ``address`` for the block.

    Args:
        address: ``None`` or ``"local"`` starts a Ray instance on this machine for the block;
            ``"auto"`` joins the cluster started here with ``ray start --head``; ``HOST:PORT``
            or ``ray://HOST:10001`` a remote one. When Ray is already initialized in this
            process (a caller's own ``ray.init``), that connection is used as it is.
        num_cpus: CPUs of a local instance (all of this machine's by default).

    Raises:
        MissingExtraError: Ray is not installed.
        ClusterError: the cluster cannot be reached.
    """
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {
            "address": None if address in (None, "local") else address,
            "include_dashboard": False,
            # The library never prints: no worker output or Ray banners on the terminal.
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        }
        if num_cpus is not None:
            options["num_cpus"] = num_cpus
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "a local Ray instance" if options["address"] is None else address
            raise ClusterError(f"cannot start or reach {where}: {first_line(exc)}") from exc
        started = True
    try:
        resources = ray.cluster_resources()
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        yield Cluster(
            nodes=nodes,
            cpus=float(resources.get("CPU", 0.0)),
            gpus=float(resources.get("GPU", 0.0)),
        )
    finally:
        if started:
            ray.shutdown()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def task_cause(exc: BaseException) -> BaseException:
    """The exception a Ray task raised, unwrapped from Ray's RayTaskError."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def describe(exc: BaseException) -> str:
    """One line for a failed task: our own errors as they are, others with their type."""
    exc = task_cause(exc)
    if isinstance(exc, VidstyleError):
        return first_line(exc)
    return f"{type(exc).__name__}: {first_line(exc)}"


# -- shared storage --------------------------------------------------------------------------


def _node_problems(read: Sequence[str], write: Sequence[str]) -> tuple[str, list[str]]:
    """Runs on a node: which of ``read`` it cannot read and which ``write`` folders it cannot
    write in."""
    problems = []
    for path in read:
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as exc:
            problems.append(f"cannot read {path} ({exc.strerror})")
    for folder in write:
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".vidstyle-check-"):
                pass
        except OSError as exc:
            problems.append(f"cannot write in {folder} ({exc.strerror})")
    return socket.gethostname(), problems


def check_shared_storage(read: Iterable[Path], write: Iterable[Path] = ()) -> None:
    """Check on every node of the connected cluster that ``read`` files are readable and
    ``write`` folders writable, under the same absolute paths as here.

    Raises:
        InputError: a node cannot read a file (the message names the node and the file).
        OutputError: a node cannot write in a folder.
    """
    ray = require_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    read_paths = [str(Path(p).absolute()) for p in read]
    write_paths = [str(Path(p).absolute()) for p in write]
    check = ray.remote(num_cpus=0, max_retries=1)(_node_problems)
    refs = [
        check.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote(read_paths, write_paths)
        for node in ray.nodes()
        if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) > 0
    ]
    for host, problems in ray.get(refs):
        for problem in problems:
            error = InputError if problem.startswith("cannot read") else OutputError
            raise error(f"a Ray worker on {host} {problem}; {SHARED_HINT}")


def absolute_paths(cfg: RenderConfig) -> RenderConfig:
    """``cfg`` with every path absolute: workers do not share the caller's working folder."""
    style = cfg.style
    if style.weights is not None:
        style = dataclasses.replace(style, weights=style.weights.absolute())
    return dataclasses.replace(
        cfg,
        input=cfg.input.absolute(),
        styles=tuple(p.absolute() for p in cfg.styles),
        output=cfg.output_path.absolute(),
        debug_dir=cfg.debug_dir.absolute() if cfg.debug_dir is not None else None,
        style=style,
    )


def files_read(cfg: RenderConfig) -> list[Path]:
    weights = [cfg.style.weights] if cfg.style.weights is not None else []
    return [cfg.input, *cfg.styles, *weights]


# -- progress from the workers ---------------------------------------------------------------


class Tracker:
    """A Ray actor the tasks tell when they start and how many frames they have finished."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}
        self.starts: dict[str, int] = {}

    def started(self, key: str) -> None:
        self.frames[key] = 0
        self.starts[key] = self.starts.get(key, 0) + 1

    def attempts(self, key: str) -> int:
        """How many times the task ``key`` started (a retry starts it again)."""
        return self.starts.get(key, 0)

    def frame(self, key: str, frames: int) -> None:
        self.frames[key] = frames

    def snapshot(self) -> dict[str, int]:
        return dict(self.frames)


def render_task(
    cfg: RenderConfig, key: str, tracker: Any, encode: bool
) -> RenderResult:
    """Runs on a worker: one render, reporting its start and finished frames to ``tracker``."""
    from vidstyle.pipeline import render

    require_ray().get(tracker.started.remote(key))  # counted before the task can fail

    def progress(p: Any) -> None:
        if p.frame_done:
            tracker.frame.remote(key, p.frame)

    return render(cfg, progress=progress, encode=encode)


def wait_any(ray: ModuleType, refs: list[Any], timeout: float) -> list[Any]:
    ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
    return list(ready)


def gather(
    ray: ModuleType,
    refs: dict[Any, str],
    tracker: Any,
    report: Callable[[int, int, int], None],
    poll: float,
) -> None:
    """Wait for the tasks ``refs`` (object ref -> tracker key), reporting ``(done, running,
    frames)``; the first failure cancels the others and is raised."""
    pending = dict(refs)
    done = 0
    try:
        while pending:
            for ref in wait_any(ray, list(pending), poll):
                pending.pop(ref)
                try:
                    ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - re-raised as our own error
                    for other in pending:
                        ray.cancel(other)
                    cause = task_cause(exc)
                    if isinstance(cause, VidstyleError):
                        raise cause from None
                    raise ClusterError(f"a Ray task failed: {describe(exc)}") from None
                done += 1
            frames = ray.get(tracker.snapshot.remote())
            waiting = set(pending.values())
            running = sum(1 for key in frames if key in waiting)
            report(done, running, sum(n for key, n in frames.items() if key in refs.values()))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        raise Interrupted(
            "interrupted; run the same command with --resume to continue (finished frames "
            "are kept)"
        ) from None


# -- seams --------------------------------------------------------------------------


def reconcile_task(
    cfg: RenderConfig, work: Path, number: int, start: int, window: int, tracker: Any,
    key: str,
) -> int:
    """Runs on a worker: reconcile the seam before chunk ``number`` (input frame ``start``)."""
    from vidstyle.seams import reconcile

    require_ray().get(tracker.started.remote(key))  # counted before the task can fail
    return reconcile(cfg, work, number, start, window,
                     on_frame=lambda n: tracker.frame.remote(key, n))
