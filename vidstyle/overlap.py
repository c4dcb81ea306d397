"""Overlap the stages: produce an iterator's items in a worker thread, a few ahead.

Decoding a frame and computing its optical flow need only the *input* frames, so they can
run while the previous frame is being optimized. :func:`ahead` runs any iterator that way:
items come out in order, at most ``depth`` are waiting at a time (streaming is kept: memory
does not grow with the video), an exception raised while producing an item is raised in the
consumer when it reaches that item, and closing the consumer stops and joins the worker.

The worker does NumPy, OpenCV and PyAV work, which release the GIL, so it runs alongside
PyTorch's own threads instead of waiting for them. What PyTorch work it does (the flow's
masks and its sharpening at motion edges) runs on one thread: each thread that calls into
PyTorch gets an OpenMP team of its own, as many threads as cores, and a second team spinning
beside the optimizer's took a render on 2 cores from 30 s to 57 s (benchmarks/RESULTS.md,
2026-12-04).
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

import torch

T = TypeVar("T")

_ITEM, _END, _ERROR = range(3)


def ahead(
    items: Iterator[T], *, depth: int = 2, name: str = "vidstyle-ahead", nice: int = 0
) -> Generator[T, None, None]:
    """Yield ``items`` in order, produced up to ``depth`` items ahead by a worker thread.

    The worker owns ``items``: it is iterated and, at the end (exhausted, failed, or the
    consumer closed early), closed in the worker, so a generator is never touched by two
    threads. Close the returned generator (``contextlib.closing``) to stop the worker early;
    closing waits for the item it is producing, then joins it.

    ``nice`` > 0 lowers the worker thread's scheduling priority by that much (Linux; elsewhere
    ignored), so
    that on a machine whose cores the consumer keeps busy the worker takes only the time they
    leave idle instead of slowing the consumer down.

    Raises:
        ValueError: ``depth`` < 1.
        Whatever producing an item raised, when the consumer reaches that item.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    box: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple[int, object]) -> bool:
        # A bounded wait, so a consumer that went away cannot leave the worker blocked.
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        # Per thread (OpenMP's thread count is a per-thread setting): the consumer keeps its own.
        torch.set_num_threads(1)
        if nice > 0 and sys.platform.startswith("linux"):
            # On Linux a thread is a schedulable task with its own nice value; elsewhere
            # PRIO_PROCESS with a thread id would name a process, so it is not tried.
            with contextlib.suppress(OSError):
                me = threading.get_native_id()
                os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me)
                                                       + nice))
        try:
            for item in items:
                if not offer((_ITEM, item)):
                    return
            offer((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            offer((_ERROR, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def consume() -> Generator[T, None, None]:
        worker = threading.Thread(target=work, name=name, daemon=True)
        worker.start()
        try:
            while True:
                kind, value = box.get()
                if kind == _END:
                    return
                if kind == _ERROR:
                    assert isinstance(value, BaseException)
                    raise value
                yield value  # type: ignore[misc]
        finally:
            stop.set()
            worker.join()

    return consume()
