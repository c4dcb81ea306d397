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

Outputs are named ``<input stem>.<recipe name>.mp4`` in the output folder.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from vidstyle.config import (
    FlowConfig,
    OptimConfig,
    RenderConfig,
    StyleConfig,
    check_choice,
    option_fields,
    parse_frame_range,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_SECTIONS: dict[str, type] = {"style": StyleConfig, "optim": OptimConfig, "flow": FlowConfig}
_TOP = ("inputs", "styles", "frames", "start", "end")
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "Path | None": (str,),
    "tuple[float, ...] | None": (list,),
    "tuple[int, ...]": (list,),
}


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
    """Check ``table``'s keys and value types against ``cls``'s option fields; paths are
    relative to ``base`` (the recipe's folder)."""
    if not isinstance(table, dict):  # e.g. `style = "ink.jpg"` instead of a [style] table
        raise ValueError(f"{where}: must be a table of settings, got {table!r}")
    known = {f.name: f for f in option_fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            check_choice(f"key in {where}", key, tuple(known))
        ftype = str(known[key].type)
        allowed = _TYPES.get(ftype, (object,))
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ValueError(f"{where}: {key} must be {ftype.split(' ')[0]}, got {value!r}")
        # isinstance with a tuple[type, ...] narrows only to object; _TYPES says paths are str.
        if ftype.startswith("tuple"):
            items = cast(list, value)
            whole = ftype.startswith("tuple[int")
            kinds = (int,) if whole else (int, float)
            if not all(isinstance(v, kinds) and not isinstance(v, bool) for v in items):
                what = "whole numbers" if whole else "numbers"
                raise ValueError(f"{where}: {key} must be a list of {what}, got {value!r}")
            value = tuple(int(v) if whole else float(v) for v in items)
        values[key] = base / cast(str, value) if ftype == "Path | None" else value
    return values


def load_recipe(path: str | os.PathLike[str], *, out_dir: Path) -> list[Job]:
    """Read a recipe and expand it into one :class:`Job` per input.

    Raises:
        ValueError: unreadable TOML, unknown keys, wrong types, no inputs matched; the message
            names the file and the key.
    """
    path = Path(path)
    try:
        return _jobs(path, out_dir)
    except ValueError as exc:
        # Every message names the recipe, also those raised by the config classes.
        message = str(exc)
        if not message.startswith(str(path)):
            message = f"{path}: {message}"
        raise ValueError(message) from None


def _jobs(path: Path, out_dir: Path) -> list[Job]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read recipe {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
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
            raise ValueError(f"{where}: {key} must be a non-empty list of paths")
    if "frames" in top:
        if not isinstance(top["frames"], str):
            raise ValueError(f"{where}: frames must be a string like \"0:24\"")
        render["frames"] = parse_frame_range(top["frames"])
    for key in ("start", "end"):
        if key in top:
            if not isinstance(top[key], (int, float)) or isinstance(top[key], bool):
                raise ValueError(f"{where}: {key} must be a number of seconds")
            render[key] = float(top[key])

    styles = tuple(base / s for s in top["styles"])
    inputs = sorted(dict.fromkeys(_expand(base, top["inputs"])))
    if not inputs:
        raise ValueError(f"{where}: no input matched {top['inputs']}")
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
