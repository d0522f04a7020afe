"""The package's own exceptions, on the ground floor so that every floor can raise and catch them."""

from __future__ import annotations

__all__ = ["ArtefactError", "DirtyTreeError", "WeightsNotFoundError"]


class ArtefactError(ValueError):
    """A model folder that cannot be loaded (missing/truncated weights, newer format, ...)."""


class WeightsNotFoundError(FileNotFoundError):
    """A teacher's weights file is missing; the message says where we looked and how to fix it."""


class DirtyTreeError(RuntimeError):
    """Result cells refused: the package's source has uncommitted changes (see
    :func:`pretroost.results.source_state`)."""
