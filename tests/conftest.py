"""Shared fixtures: tiny clips and style images made with the project's own generator."""

from __future__ import annotations

import faulthandler
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from vidstyle.features import Backbone, load_backbone
from vidstyle.io.store import FrameStore
from vidstyle.samples import make_clip, make_style_images


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def tiny_clip(media_dir: Path) -> Path:
    """12 frames of 96x64 at 24 fps: a pan with a moving ball, with AAC audio."""
    return make_clip(media_dir / "tiny.mp4", width=96, height=64, frames=12, fps=24)


@pytest.fixture(scope="session")
def styles(media_dir: Path) -> list[Path]:
    """``[ink.jpg, embers.jpg]`` at 128 px."""
    return make_style_images(media_dir, size=128)


@pytest.fixture(scope="session")
def lite0() -> Backbone:
    return load_backbone("efficientnet-lite0")


@pytest.fixture()
def kept_frames(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], np.ndarray]:
    """Keep every render's work folder; the returned function reads the frames a render of
    that output stored there ``(N, H, W, 3)``: what to compare exactly, as the H.264 encoder is
    not bit-exact from run to run on every build while the renders are."""
    monkeypatch.setattr(FrameStore, "remove", lambda self: None)

    def read(output: Path) -> np.ndarray:
        store = FrameStore(output, key="")
        store.read()
        return np.stack([store.load(f.index) for f in store.frames])

    return read


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# The slowest test takes about a minute on two cores. A hang (a deadlock inside FFmpeg holds
# the GIL, so no Python-level timer could fire) prints every thread's stack and ends the run
# instead of stalling it: faulthandler's watchdog is a C thread.
TEST_TIME_LIMIT_S = 600


@pytest.fixture(autouse=True)
def _watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(TEST_TIME_LIMIT_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
