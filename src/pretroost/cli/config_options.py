"""Command-line options derived from the config dataclasses: one source for each default.

:func:`add_config_options` declares ``--field-name`` for chosen fields of a config dataclass, with
the field's type (``Literal`` fields become ``choices``, ``bool`` fields flags), its default (of the
class, or of a given instance: ``pretrain`` takes ``PretrainConfig().train``) and help text from the
class docstring's ``Attributes:`` section; :func:`config_from_args` reads them back.

A class may be named ``"module:Class"`` instead of given: its fields, type hints, literal defaults
and docstring are then read from the module's source (:func:`static_config`, with :mod:`ast`)
without importing it. The modules that define the training configs import torch, which alone
takes about a second to load; ``pretroost finetune --help`` declares its options this way and
stays well under a second. The tests check that the source reading equals the imported class.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import functools
import importlib.util
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["StaticConfig", "add_config_options", "attribute_docs", "config_from_args",
           "static_config"]  # fmt: skip

#: names an annotation may use without defining them
_BASICS: dict[str, Any] = {
    "Literal": typing.Literal, "Any": typing.Any, "int": int, "float": float, "str": str,
    "bool": bool, "tuple": tuple, "list": list, "dict": dict, "None": None,
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class StaticConfig:
    """A config dataclass as its module's source declares it (never imported).

    Attributes:
        fields: its field names, in order.
        hints: field -> resolved type hint (fields whose annotation names a class are left out).
        defaults: field -> default, for defaults written as literals (others left out).
        doc: the class docstring as written (``cls.__doc__``).
    """

    fields: tuple[str, ...]
    hints: dict[str, Any]
    defaults: dict[str, Any]
    doc: str


@functools.cache
def _module_source(module: str) -> ast.Module:
    spec = importlib.util.find_spec(module)  # imports the parent packages only (light)
    if spec is None or spec.origin is None:
        raise ValueError(f"no module {module!r}")
    return ast.parse(Path(spec.origin).read_text(), filename=spec.origin)


class _Names(dict):
    """A module's top-level names for evaluating annotations: literal aliases defined there
    (``Schedule = Literal[...]``) or imported from another pretroost module, resolved on
    demand from the source."""

    def __init__(self, module: str) -> None:
        super().__init__(_BASICS)
        self.module = module

    def __missing__(self, name: str) -> Any:
        for node in _module_source(self.module).body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == name
            ):
                value = _evaluate(node.value, self)
                self[name] = value
                return value
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pretroost"):
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        value = _Names(str(node.module))[alias.name]
                        self[name] = value
                        return value
        raise KeyError(name)


def _evaluate(node: ast.expr, names: _Names) -> Any:
    """An annotation or alias expression (``int | None``, ``Literal["a", "b"]``,
    ``tuple[int, ...]``, an alias), interpreted node by node: names, constants, subscripts,
    tuples and ``|``; anything else is a TypeError (nothing is evaluated as code)."""
    if isinstance(node, ast.Name):
        return names[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_evaluate(e, names) for e in node.elts)
    if isinstance(node, ast.Subscript):
        return _evaluate(node.value, names)[_evaluate(node.slice, names)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _evaluate(node.left, names) | _evaluate(node.right, names)
    raise TypeError(f"cannot read the annotation {ast.unparse(node)!r}")


@functools.cache
def static_config(ref: str) -> StaticConfig:
    """The dataclass ``"module:Class"`` read from the module's source: fields, type hints
    (literal aliases resolved, across pretroost modules too), literal defaults, docstring."""
    module, _, name = ref.partition(":")
    tree = _module_source(module)
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if node is None:
        raise ValueError(f"{module} defines no class {name!r}")
    names = _Names(module)
    fields: list[str] = []
    hints: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        field = stmt.target.id
        fields.append(field)
        # a class (``train: TrainConfig``) has no option: no hint
        with contextlib.suppress(KeyError, NameError, TypeError):
            hints[field] = _evaluate(stmt.annotation, names)
        if stmt.value is not None:  # ``field(...)``, a call, is not a literal: no default
            with contextlib.suppress(ValueError):
                defaults[field] = ast.literal_eval(stmt.value)
    doc = ast.get_docstring(node, clean=False) or ""
    return StaticConfig(tuple(fields), hints, defaults, doc)


@functools.cache
def attribute_docs(cls: type | str) -> dict[str, str]:
    """``{field: text}`` from the ``Attributes:`` section of ``cls``'s docstring (one line per
    field, continuation lines indented deeper; ``a, b: text`` documents both); ``cls`` may be
    ``"module:Class"`` (:func:`static_config`)."""
    doc = static_config(cls).doc if isinstance(cls, str) else (cls.__doc__ or "")
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
    return {k: re.sub(r"``?([^`]+)``?", r"\1", v) for k, v in out.items()}


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
    cls: type | str,
    fields: Sequence[str],
    *,
    defaults: Any = None,
    help: dict[str, str] | None = None,
) -> None:
    """Add ``--<field>`` (underscores as dashes) for each of ``fields`` of dataclass ``cls``.

    Args:
        group: an argparse parser or argument group.
        cls: the config dataclass, or ``"module:Class"`` to read it from its source.
        fields: its field names, in the order the options appear.
        defaults: an instance of ``cls`` whose values are the defaults (default: the class's).
        help: help text replacing the docstring's, per field.
    """
    source: Any
    if isinstance(cls, str):  # read from the source, not imported (see the module docstring)
        static = static_config(cls)
        hints, names, title = static.hints, set(static.fields), cls
        source = defaults if defaults is not None else argparse.Namespace(**static.defaults)
    else:
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
