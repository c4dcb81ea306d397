"""The error hierarchy: every failure the user can act on is a :class:`VidstyleError`.

The CLI turns each into one line on stderr and a distinct exit code (``exit_code``), so
scripts can tell a bad input from a missing weights file from an interrupted render.
Bad *arguments* to library functions raise :class:`ValueError` as usual.
"""

from __future__ import annotations


class VidstyleError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class InputError(VidstyleError):
    """An input file (video or style image) is missing, unreadable or unusable."""

    exit_code = 3


class DecodeError(InputError):
    """The video could not be decoded (not a video, no video stream, corrupt data)."""


class OutputError(VidstyleError):
    """The output cannot be written (exists, directory missing, disk full ...)."""

    exit_code = 4


class WeightsError(VidstyleError):
    """Model weights are not available (offline, wrong file)."""

    exit_code = 5


class Interrupted(VidstyleError):
    """The render was stopped (Ctrl-C, SIGTERM); finished frames are kept for ``--resume``."""

    exit_code = 130


class DeviceError(VidstyleError):
    """The requested compute device cannot be used."""

    exit_code = 6


class MissingExtraError(VidstyleError):
    """An optional part of vidstyle was asked for but its packages are not installed."""

    exit_code = 2


class ClusterError(DeviceError):
    """The Ray cluster cannot be reached or cannot run the work (a kind of unusable device)."""
