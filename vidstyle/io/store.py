"""Finished frames on disk, so that no finished work is lost.

Each stylized frame is written losslessly (PNG) into a hidden folder beside the output as soon
as it is finished, then recorded in an append-only journal. A Ctrl-C, a crash, a full disk or
a power cut therefore loses at most the frame in progress, and ``--resume`` continues from the
last recorded frame: the temporal chain restarts from exactly the pixels an uninterrupted run
would have used. The folder is removed once the output video is complete.

Layout of ``.<output name>.vidstyle/``::

    run.json        {"key": ...}: identifies the settings and inputs the frames belong to
    frames.jsonl    one {"index": i, "time": t[, "pass": p]} line per finished frame, in order
    000042.png      the stylized frame of input frame 42 (first pass)
    000042.p2.png   the same frame after pass 2 (``--passes``); the latest pass is the result
    in-000042.png   input frame 42 at the working size, kept for later passes
    network.pt      ``--fast``'s trained network, so a resumed render does not train again

A later pass writes new files rather than replacing the earlier pass's, so a pass cut short
leaves every frame's inputs to that pass intact, and resuming it gives the same pixels.
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
        self._later: list[tuple[int, int]] = []  # (pass, index) of later passes, in order
        self._latest: dict[int, int] = {}

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
        later: list[tuple[int, int]] = []
        try:
            lines = (self.folder / "frames.jsonl").read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
                frame = StoredFrame(int(entry["index"]), float(entry["time"]))
                pass_ = int(entry.get("pass", 1))
            except (ValueError, KeyError, TypeError, AttributeError):
                break
            if not self._image_path(frame.index, pass_).is_file():
                break
            if pass_ == 1:
                frames.append(frame)
            else:
                later.append((pass_, frame.index))
        self._frames = frames
        self._later = later
        self._latest = {index: pass_ for pass_, index in later}
        return list(frames)

    # -- writing -----------------------------------------------------------------------------
    def start(self) -> None:
        """Begin a new run, discarding an older folder; the folder appears with the first frame,
        so a run stopped before finishing one leaves nothing behind."""
        self.remove()
        self._frames = []
        self._later = []
        self._latest = {}

    def resume(self) -> None:
        """Continue with the frames :meth:`read` found, dropping any unrecorded tail."""
        times = {f.index: f.time for f in self._frames}
        lines = [_entry(f.index, f.time, 1) for f in self._frames]
        lines += [_entry(index, times[index], pass_) for pass_, index in self._later]
        with disk_errors(self.folder):
            write_atomic(self.folder / "frames.jsonl", "".join(lines).encode(), durable=True)

    def add(self, index: int, time: float, image: np.ndarray, *, pass_: int = 1) -> None:
        """Record a finished ``(H, W, 3)`` uint8 RGB frame, durably, before moving on.

        Pass 1 adds frames; later passes (``pass_`` > 1) add new versions of frames already
        added, which :meth:`load` then returns.
        """
        path = self._image_path(index, pass_)
        with disk_errors(self.folder):
            self._begin()
            write_png(path, image, durable=True)
            with open(self.folder / "frames.jsonl", "a", encoding="utf-8") as journal:
                journal.write(_entry(index, time, pass_))
                journal.flush()
                os.fsync(journal.fileno())
        if pass_ == 1:
            self._frames.append(StoredFrame(index, time))
        else:
            self._later.append((pass_, index))
            self._latest[index] = pass_

    def keep_file(self, name: str, data: bytes) -> None:
        """Keep ``data`` as file ``name`` of the folder, durably: work that is not a frame but
        is worth not redoing on ``--resume`` (``--fast``'s trained network)."""
        with disk_errors(self.folder):
            self._begin()
            write_atomic(self.folder / name, data, durable=True)

    def kept_file(self, name: str) -> bytes | None:
        """What :meth:`keep_file` kept as ``name``, or None."""
        try:
            return (self.folder / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise OutputError(f"stored {name} in {self.folder} is unreadable: {exc}") from None

    def _begin(self) -> None:
        """Make the folder with its key, if this run has not yet (call within disk_errors)."""
        if not self.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(
                self.folder / "run.json", json.dumps({"key": self.key}).encode(), durable=True
            )

    def keep_input(self, index: int, image: np.ndarray) -> None:
        """Keep input frame ``index`` ``(H, W, 3)`` uint8 RGB for later passes (once)."""
        path = self.folder / f"in-{index:06d}.png"
        if path.is_file():
            return
        with disk_errors(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
            write_png(path, image, durable=True)

    def load_input(self, index: int) -> np.ndarray:
        """Input frame ``index`` as kept by :meth:`keep_input`."""
        return self._read_png(self.folder / f"in-{index:06d}.png", f"input frame {index}")

    def load(self, index: int) -> np.ndarray:
        """The latest stored version of input frame ``index`` as ``(H, W, 3)`` uint8 RGB."""
        return self._read_png(self._image_path(index, self.latest_pass(index)), f"frame {index}")

    def latest_pass(self, index: int) -> int:
        """The last pass that stored frame ``index`` (1 if only the first)."""
        return self._latest.get(index, 1)

    def done_in_pass(self, pass_: int) -> set[int]:
        """Indices of the frames that pass ``pass_`` (> 1) has finished."""
        return {i for p, i in self._later if p == pass_}

    @property
    def frames(self) -> list[StoredFrame]:
        """The frames of the first pass, in order."""
        return list(self._frames)

    @property
    def work_done(self) -> int:
        """Frames finished over all passes."""
        return len(self._frames) + len(self._later)

    def _read_png(self, path: Path, what: str) -> np.ndarray:
        # Read the bytes in Python and decode them in memory: cv2.imread takes the path as
        # UTF-8 text, so it crashes on POSIX names that are not valid UTF-8 (and cannot open
        # non-ASCII paths on Windows). add() writes through Python for the same reason.
        try:
            data = np.frombuffer(path.read_bytes(), np.uint8)
        except OSError:
            data = np.empty(0, np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise OutputError(f"stored {what} in {self.folder} is unreadable")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _image_path(self, index: int, pass_: int = 1) -> Path:
        suffix = "" if pass_ == 1 else f".p{pass_}"
        return self.folder / f"{index:06d}{suffix}.png"


def _entry(index: int, time: float, pass_: int) -> str:
    """One journal line; the first pass's lines are as they were before passes existed."""
    entry: dict[str, float] = {"index": index, "time": time}
    if pass_ != 1:
        entry["pass"] = pass_
    return json.dumps(entry) + "\n"
