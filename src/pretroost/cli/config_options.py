"""Command-line options derived from the config dataclasses: one source for each default.

:func:`add_config_options` declares ``--field-name`` for chosen fields of a config dataclass, with
the field's type (``Literal`` fields become ``choices``, ``bool`` fields flags), its default (of the
class, or of a given instance: ``pretrain`` takes ``PretrainConfig().train``) and help text from the
class docstring's ``Attributes:`` section; :func:`config_from_args` reads them back. The classes
live in :mod:`pretroost.configs`, which imports no torch, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

__all__ = ["add_config_options", "attribute_docs", "config_from_args"]


@functools.cache
def attribute_docs(cls: type) -> dict[str, str]:
    """``{field: text}`` from the ``Attributes:`` section of ``cls``'s docstring (one line per
    field, continuation lines indented deeper; ``a, b: text`` documents both), as plain text."""
    doc = cls.__doc__ or ""
    if "Attributes:" not in doc:
        return {}
    out: dict[str, str] = {}
    current: list[str] = []
    for line in doc.split("Attributes:", 1)[1].splitlines():
        m = re.match(r"^ {8}([\w, ]+): (.*)$", line)
        if m:
            current = [n.strip() for n in m.group(1).split(",")]
            for name in current:
                out[name] = m.group(2).strip()
        elif line.startswith(" " * 12) and current:
            for name in current:
                out[name] += " " + line.strip()
        elif line.strip():
            current = []
    # reST markup as plain text: ``x`` -> x, :func:`~a.b.x` -> a.b.x
    return {k: re.sub(r"(:\w+:)?``?~?([^`]+)``?", r"\2", v) for k, v in out.items()}


def _option_type(hint: Any) -> tuple[Any, list[str] | None, bool]:
    """``(converter, choices, is_flag)`` for a field's resolved type hint."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    if typing.get_origin(hint) is typing.Literal:
        return str, [str(a) for a in typing.get_args(hint)], False
    if hint is bool:
        return None, None, True
    if hint in (int, float, str):
        return hint, None, False
    raise TypeError(f"no command-line option for a field of type {hint!r}")


def add_config_options(
    group: Any,
    cls: type,
    fields: Sequence[str],
    *,
    defaults: Any = None,
    help: dict[str, str] | None = None,
) -> None:
    """Add ``--<field>`` (underscores as dashes) for each of ``fields`` of dataclass ``cls``.

    Args:
        group: an argparse parser or argument group.
        cls: the config dataclass.
        fields: its field names, in the order the options appear.
        defaults: an instance of ``cls`` (or any object with those attributes) whose values are
            the defaults (default: the class's).
        help: help text replacing the docstring's, per field.
    """
    hints = typing.get_type_hints(cls)
    names, title = {f.name for f in dataclasses.fields(cls)}, cls.__name__
    source = defaults if defaults is not None else cls()
    docs = attribute_docs(cls)
    for name in fields:
        if name not in names:
            raise ValueError(f"{title} has no field {name!r}")
        default = getattr(source, name)
        text = (help or {}).get(name) or docs.get(name, "").replace("%", "%%") or None
        flag = "--" + name.replace("_", "-")
        convert, choices, is_flag = _option_type(hints[name])
        if is_flag:
            if default:
                raise ValueError(f"{title}.{name} defaults to True: no flag can turn it on")
            group.add_argument(flag, action="store_true", help=text)
            continue
        group.add_argument(
            flag, type=convert, choices=choices, default=default, help=text,
            metavar=None if choices else name.upper(),
        )  # fmt: skip


def config_from_args(
    cls: type,
    args: argparse.Namespace,
    fields: Sequence[str],
    *,
    base: Any = None,
    **overrides: Any,
) -> Any:
    """An instance of ``cls``: ``base`` (default: the class's defaults) with ``fields`` read from
    ``args`` (those it carries), then ``overrides``."""
    base = base if base is not None else cls()
    values = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    return dataclasses.replace(base, **{**values, **overrides})
