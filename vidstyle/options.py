"""How a config field is given: as a ``--flag`` and as a recipe key, read from its real type.

The command line (:mod:`vidstyle.cli_parser`) and the recipes (:mod:`vidstyle.recipes`) both
ask :func:`option_kind`, so the two cannot read a field differently, and a field of a type
nobody taught them is refused loudly instead of losing its validation.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidstyle.errors import UsageError


def parse_floats(text: str) -> tuple[float, ...]:
    """Parse ``"0.7,0.3"`` into ``(0.7, 0.3)``."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(
            f"expected numbers separated by commas (like 0.7,0.3), got {text!r}"
        ) from None
    return values


def parse_ints(text: str) -> tuple[int, ...]:
    """Parse ``"1,2,5,10"`` into ``(1, 2, 5, 10)``."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(
            f"expected whole numbers separated by commas (like 1,2,5,10), got {text!r}"
        ) from None


def option_fields(cls: type) -> Iterator[dataclasses.Field[Any]]:
    """The fields of a config class that are exposed as ``--flags`` (and recipe keys)."""
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli", True):
            yield f


@dataclass(frozen=True)
class FieldKind:
    """How an option field's value is written: as a ``--flag`` string and as a TOML value.

    Made by :func:`option_kind` from the field's type, for the CLI and the recipes alike, so
    the two cannot read a field differently.
    """

    value_type: type
    """``bool``, ``int``, ``float``, ``str`` or ``Path``; for ``tuple[X, ...]`` it is ``X``."""
    many: bool
    """``tuple[X, ...]``: several values, comma-separated on the command line, a TOML list."""
    optional: bool
    """``X | None``: None (the default) means unset."""
    parse: Callable[[str], Any] | None
    """Turns a ``--flag`` string into the value; None for a ``bool``: a flag without a value."""
    metavar: str | None
    """The value's name in ``--help``."""
    what: str
    """The value as a recipe error names it: "a whole number", "a list of numbers" ..."""

    def from_toml(self, value: object, *, name: str, base: Path) -> Any:
        """Check a TOML ``value`` and convert it to the field's type.

        Integers are numbers too, but booleans are not; relative paths are taken from
        ``base`` (the recipe's folder). Raises :class:`UsageError` naming ``name``.
        """
        allowed = _TOML_TYPES[self.value_type]
        items = value if self.many and isinstance(value, list) else [value]
        if (self.many and not isinstance(value, list)) or not all(
            isinstance(v, allowed) and (self.value_type is bool or not isinstance(v, bool))
            for v in items
        ):
            raise UsageError(f"{name} must be {self.what}, got {value!r}")
        if self.value_type is Path:
            return base / typing.cast(str, value)
        converted = [self.value_type(v) for v in items]  # an int given for a float: 3 -> 3.0
        return tuple(converted) if self.many else converted[0]


# What a TOML value of each type may be: integers count as floats, paths are strings.
_TOML_TYPES: dict[type, tuple[type, ...]] = {
    bool: (bool,), int: (int,), float: (int, float), str: (str,), Path: (str,),
}
_WHAT = {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
         Path: "a path (a string)"}
_PARSE: dict[type, Callable[[str], Any]] = {int: int, float: float, str: str, Path: Path}
_METAVAR = {int: "N", float: "X", Path: "FILE"}
# Lists: only of numbers, written "1,2,5" on the command line.
_PARSE_MANY: dict[type, Callable[[str], Any]] = {int: parse_ints, float: parse_floats}
_WHAT_MANY = {int: "a list of whole numbers", float: "a list of numbers"}


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    # The modules use postponed annotations: ``f.type`` is a string, the hints are real types.
    return typing.get_type_hints(cls)


def option_kind(cls: type, f: dataclasses.Field[Any]) -> FieldKind:
    """How option field ``f`` of config class ``cls`` is given on the command line and in a
    recipe, from its real type: ``bool``, ``int``, ``float``, ``str``, ``Path``,
    ``tuple[int, ...]``, ``tuple[float, ...]``, each also ``| None``.

    Raises:
        TypeError: any other type. A new kind of option is taught here, once, for both the
            command line and the recipes; it is never taken without a check.
    """
    hint = _type_hints(cls)[f.name]
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(rest) < len(typing.get_args(hint))
        hint = rest[0] if len(rest) == 1 else hint
    many = typing.get_origin(hint) is tuple
    if many:
        args = typing.get_args(hint)
        hint = args[0] if len(args) == 2 and args[1] is Ellipsis else None
    known: dict[Any, Callable[[str], Any] | None] = (
        dict(_PARSE_MANY) if many else {**_PARSE, bool: None}
    )
    if hint not in known:
        raise TypeError(
            f"{cls.__name__}.{f.name}: an option of type {_type_hints(cls)[f.name]} cannot be "
            "read from the command line or a recipe; teach vidstyle.options.option_kind how"
        )
    metavar = f.metadata.get("metavar")
    if metavar is None and "choices" in f.metadata:
        metavar = "{" + ",".join(f.metadata["choices"]) + "}"
    elif metavar is None and many:
        metavar = f"{_METAVAR[hint]}1,{_METAVAR[hint]}2"
    elif metavar is None:
        metavar = "DIR" if hint is Path and f.name.endswith("_dir") else _METAVAR.get(hint)
    return FieldKind(
        value_type=hint,
        many=many,
        optional=optional,
        parse=known[hint],
        metavar=metavar,
        what=_WHAT_MANY[hint] if many else _WHAT[hint],
    )
