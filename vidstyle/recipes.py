"""Batch recipes: ``pipelines/*.toml`` files mapped onto the same config dataclasses.

A recipe names inputs (files or globs), one or more styles, and settings::

    inputs = ["../sample_videos/*.mp4"]   # relative to the recipe file
    styles = ["../sample_videos/ink.jpg"]
    max_side = 320                          # any RenderConfig option
    frames = "0:24"                         # or start / end in seconds

    [style]                                 # StyleConfig fields
    style_weight = 1e3
    [optim]                                 # OptimConfig fields
    iterations = 40
    [flow]                                  # FlowConfig fields
    flow = "dis"
    [fast]                                  # FastConfig fields
    fast = true

Each key is read the way :func:`vidstyle.options.option_kind` says for its field, as the
command line reads the matching ``--flag``. Outputs are named ``<input stem>.<recipe
name>.mp4`` in the output folder. Every problem with a recipe raises
:class:`~vidstyle.errors.UsageError` naming the file and the key.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidstyle.config import (
    FastConfig,
    FlowConfig,
    OptimConfig,
    RenderConfig,
    StyleConfig,
    check_choice,
    parse_frame_range,
)
from vidstyle.errors import UsageError
from vidstyle.options import option_fields, option_kind

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_SECTIONS: dict[str, type] = {"style": StyleConfig, "optim": OptimConfig, "flow": FlowConfig,
                               "fast": FastConfig}
_TOP = ("inputs", "styles", "frames", "start", "end")


@dataclass(frozen=True)
class Job:
    """One output of a recipe."""

    recipe: Path
    config: RenderConfig

    def sources(self) -> tuple[Path, ...]:
        """Files the output depends on: input, styles and the recipe itself."""
        return (self.config.input, *self.config.styles, self.recipe)

    def up_to_date(self) -> bool:
        """True when the output exists and is newer than everything it was made from."""
        out = self.config.output_path
        if not out.exists():
            return False
        newest = max((p.stat().st_mtime for p in self.sources() if p.exists()), default=0.0)
        return out.stat().st_mtime >= newest


def _fields_of(cls: type, table: dict[str, Any], where: str, base: Path) -> dict[str, Any]:
    """Check ``table``'s keys and values against ``cls``'s option fields and convert the
    values; paths are relative to ``base`` (the recipe's folder)."""
    # Every field's kind, not only those the table sets: a field no recipe could read is
    # refused on the first recipe, not on the first one that uses it.
    kinds = {f.name: option_kind(cls, f) for f in option_fields(cls)}
    if not isinstance(table, dict):  # e.g. `style = "ink.jpg"` instead of a [style] table
        raise UsageError(f"{where}: must be a table of settings, got {table!r}")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in kinds:
            check_choice(f"key in {where}", key, tuple(kinds))
        values[key] = kinds[key].from_toml(value, name=f"{where}: {key}", base=base)
    return values


def load_recipe(path: str | os.PathLike[str], *, out_dir: Path) -> list[Job]:
    """Read a recipe and expand it into one :class:`Job` per input.

    Raises:
        UsageError: unreadable TOML, unknown keys, wrong types, values the config classes
            refuse, no inputs matched; the message names the file and the key.
    """
    path = Path(path)
    try:
        return _jobs(path, out_dir)
    except UsageError as exc:
        # Every message names the recipe, also those raised by the config classes.
        message = str(exc)
        if not message.startswith(str(path)):
            message = f"{path}: {message}"
        raise UsageError(message) from None


def _jobs(path: Path, out_dir: Path) -> list[Job]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read recipe {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    base = path.parent
    where = str(path)

    sections = {name: data.pop(name, {}) for name in _SECTIONS}
    top = {k: data.pop(k) for k in _TOP if k in data}
    render = _fields_of(RenderConfig, data, where, base)
    nested = {
        name: cls(**_fields_of(cls, sections[name], f"{where} [{name}]", base))
        for name, cls in _SECTIONS.items()
    }
    for key in ("inputs", "styles"):
        value = top.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{where}: {key} must be a non-empty list of paths")
    if "frames" in top:
        if not isinstance(top["frames"], str):
            raise UsageError(f"{where}: frames must be a string like \"0:24\"")
        render["frames"] = parse_frame_range(top["frames"])
    for key in ("start", "end"):
        if key in top:
            if not isinstance(top[key], (int, float)) or isinstance(top[key], bool):
                raise UsageError(f"{where}: {key} must be a number of seconds")
            render[key] = float(top[key])

    styles = tuple(base / s for s in top["styles"])
    inputs = sorted(dict.fromkeys(_expand(base, top["inputs"])))
    if not inputs:
        raise UsageError(f"{where}: no input matched {top['inputs']}")
    return [
        Job(
            recipe=path,
            config=RenderConfig(
                input=src,
                styles=styles,
                output=out_dir / f"{src.stem}.{path.stem}.mp4",
                # Batch output is derived data: an out-of-date one is replaced (like make), and
                # an interrupted one continues when its settings are unchanged.
                **{**render, **nested, "overwrite": True, "resume": True},
            ),
        )
        for src in inputs
    ]


def _expand(base: Path, patterns: list[str]) -> Iterator[Path]:
    for pattern in patterns:
        full = str(base / pattern)
        matches = sorted(glob.glob(full)) if glob.has_magic(pattern) else [full]
        yield from (Path(m) for m in matches)
