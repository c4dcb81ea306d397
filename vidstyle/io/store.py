"""Finished frames on disk, so that no finished work is lost.

Each stylized frame is written losslessly (PNG) into a hidden folder beside the output as soon
as it is finished, then recorded in an append-only journal. A Ctrl-C, a crash, a full disk or
a power cut therefore loses at most the frame in progress, and ``--resume`` continues from the
last recorded frame: the temporal chain restarts from exactly the pixels an uninterrupted run
would have used. The folder is removed once the output video is complete.

Layout of ``.<output name>.vidstyle/``::

    run.json        {"key": ...}: identifies the settings and inputs the frames belong to
    frames.jsonl    one {"index": i, "time": t} line per finished frame, in order
    000042.png      the stylized frame of input frame 42
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidstyle.errors import OutputError
from vidstyle.io.encode import disk_errors
from vidstyle.io.images import write_atomic, write_png


@dataclass(frozen=True)
class StoredFrame:
    index: int
    time: float


class FrameStore:
    """The work folder of one output."""

    def __init__(self, output: Path, key: str) -> None:
        self.output = output
        self.key = key
        self.folder = output.parent / f".{output.name}.vidstyle"
        self._frames: list[StoredFrame] = []

    # -- inspecting an existing folder -------------------------------------------------------
    def exists(self) -> bool:
        return (self.folder / "run.json").is_file()

    def stored_key(self) -> str | None:
        try:
            return str(json.loads((self.folder / "run.json").read_text())["key"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def read(self) -> list[StoredFrame]:
        """The frames recorded in the journal whose image file is present and complete.

        A line cut short by a crash, or a frame whose image is missing, ends the list there:
        everything after it is redone.
        """
        frames: list[StoredFrame] = []
        try:
            lines = (self.folder / "frames.jsonl").read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
                frame = StoredFrame(int(entry["index"]), float(entry["time"]))
            except (ValueError, KeyError, TypeError):
                break
            if not self._image_path(frame.index).is_file():
                break
            frames.append(frame)
        self._frames = frames
        return list(frames)

    # -- writing -----------------------------------------------------------------------------
    def start(self) -> None:
        """Begin a new run, discarding an older folder; the folder appears with the first frame,
        so a run stopped before finishing one leaves nothing behind."""
        self.remove()
        self._frames = []

    def resume(self) -> None:
        """Continue with the frames :meth:`read` found, dropping any unrecorded tail."""
        with disk_errors(self.folder):
            text = "".join(
                json.dumps({"index": f.index, "time": f.time}) + "\n" for f in self._frames
            )
            write_atomic(self.folder / "frames.jsonl", text.encode(), durable=True)

    def add(self, index: int, time: float, image: np.ndarray) -> None:
        """Record a finished ``(H, W, 3)`` uint8 RGB frame, durably, before moving on."""
        path = self._image_path(index)
        with disk_errors(self.folder):
            if not self.exists():
                self.folder.mkdir(parents=True, exist_ok=True)
                write_atomic(
                    self.folder / "run.json", json.dumps({"key": self.key}).encode(), durable=True
                )
            write_png(path, image, durable=True)
            with open(self.folder / "frames.jsonl", "a", encoding="utf-8") as journal:
                journal.write(json.dumps({"index": index, "time": time}) + "\n")
                journal.flush()
                os.fsync(journal.fileno())
        self._frames.append(StoredFrame(index, time))

    def load(self, index: int) -> np.ndarray:
        """The stored frame of input frame ``index`` as ``(H, W, 3)`` uint8 RGB."""
        # Read the bytes in Python and decode them in memory: cv2.imread takes the path as
        # UTF-8 text, so it crashes on POSIX names that are not valid UTF-8 (and cannot open
        # non-ASCII paths on Windows). add() writes through Python for the same reason.
        try:
            data = np.frombuffer(self._image_path(index).read_bytes(), np.uint8)
        except OSError:
            data = np.empty(0, np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise OutputError(f"stored frame {index} in {self.folder} is unreadable")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    @property
    def frames(self) -> list[StoredFrame]:
        return list(self._frames)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _image_path(self, index: int) -> Path:
        return self.folder / f"{index:06d}.png"
