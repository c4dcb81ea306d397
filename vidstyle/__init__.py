"""vidstyle: turn a video into a painting that moves without flickering.

The package is a library first: :func:`vidstyle.pipeline.render` runs the whole
decode -> flow -> warp + mask -> stylize -> encode chain and reports progress through a
callback. :mod:`vidstyle.cli` is the thin command line over it.
"""

from __future__ import annotations

__version__ = "0.1.0"
