"""The error hierarchy: every failure the user can act on is a :class:`VidstyleError`.

The CLI turns each into one line on stderr and a distinct exit code (``exit_code``), so
scripts can tell a bad input from a missing weights file from an interrupted render.
Settings a user gave that cannot work (a flag, a recipe, a config field) raise
:class:`UsageError`, which is also a :class:`ValueError`. Bad arguments from code that calls
a library function (a tensor of the wrong shape) raise a plain :class:`ValueError`. Any
exception other than a :class:`VidstyleError` reaching the CLI is a bug in vidstyle and is
reported as one, never as the user's mistake.
"""

from __future__ import annotations


class VidstyleError(Exception):
    """Base class, raised only as one of the subclasses below. ``exit_code`` is what the CLI
    exits with: each subclass has its own (see the table in :mod:`vidstyle.cli`)."""

    exit_code = 1


class UsageError(VidstyleError, ValueError):
    """A setting the user gave cannot work: a bad flag value, recipe key or config field."""

    exit_code = 2


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
