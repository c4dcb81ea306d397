"""The stage overlap: items produced ahead in a worker thread, in order, errors and all."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import vidstyle.flow as flow
from vidstyle.config import OptimConfig, RenderConfig, StyleConfig
from vidstyle.overlap import ahead
from vidstyle.pipeline import render


def test_items_come_in_order() -> None:
    assert list(ahead(iter(range(100)), depth=3)) == list(range(100))
    assert list(ahead(iter([]))) == []


def test_an_error_reaches_the_consumer_at_its_place() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("frame 3 is damaged")

    got: list[int] = []
    with pytest.raises(OSError, match="frame 3 is damaged"):
        for item in ahead(items()):
            got.append(item)
    assert got == [1, 2]


def test_the_worker_works_ahead_of_the_consumer_but_at_most_depth_items() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(6):
            produced.append(i)
            yield i

    stream = ahead(items(), depth=2)
    assert next(stream) == 0
    # While frame 0 is "being optimized", the worker goes on: two frames wait in the queue
    # and a third is held by the worker, then it waits.
    deadline = time.monotonic() + 10
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert produced == [0, 1, 2, 3]
    assert list(stream) == [1, 2, 3, 4, 5]


def test_closing_early_stops_the_worker_and_closes_the_source_in_it() -> None:
    closed_in: list[threading.Thread] = []

    def items() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed_in.append(threading.current_thread())

    before = set(threading.enumerate())
    with contextlib.closing(ahead(items(), depth=2)) as stream:
        assert next(stream) == 0
    assert len(closed_in) == 1 and closed_in[0] is not threading.current_thread()
    assert set(threading.enumerate()) <= before


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth must be >= 1, got 0"):
        ahead(iter([1]), depth=0)


def test_render_with_overlap_gives_the_same_frames(
    tiny_clip: Path, styles: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    kept_frames: Callable[[Path], np.ndarray],
) -> None:
    cfg = RenderConfig(
        input=tiny_clip, styles=(styles[0],), output=tmp_path / "a.mp4", max_side=64,
        style=StyleConfig(long_term=(1, 2)),
        optim=OptimConfig(first_iterations=6, iterations=3, early_stop=0),
    )
    threads: list[str] = []
    original = flow.flow_pair

    def flow_pair(*args: object) -> object:
        threads.append(threading.current_thread().name)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(flow, "flow_pair", flow_pair)
    together = render(cfg, overlap=True)
    assert threads and set(threads) == {"vidstyle-ahead"}
    threads.clear()
    apart = render(dataclasses.replace(cfg, output=tmp_path / "b.mp4"), overlap=False)
    assert threads and set(threads) == {threading.main_thread().name}
    assert together.frames == apart.frames == 12
    np.testing.assert_array_equal(kept_frames(together.output), kept_frames(apart.output))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_a_nice_worker_runs_at_low_priority_and_the_consumer_does_not() -> None:
    def items() -> Iterator[int]:
        yield os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert list(ahead(items(), nice=5)) == [min(19, mine + 5)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine


def test_the_worker_runs_pytorch_on_one_thread_and_the_consumer_keeps_its_own() -> None:
    import torch

    def items() -> Iterator[int]:
        yield torch.get_num_threads()

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert list(ahead(items())) == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
