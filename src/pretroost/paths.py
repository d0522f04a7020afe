"""Where pretroost keeps its data cache and where it looks for the shared (git-only) data."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["cache_dir", "shared_data_dir"]

CACHE_ENV = "PRETROOST_CACHE"
SHARED_ENV = "PRETROOST_SHARED_DATA"


def cache_dir() -> Path:
    """The data cache: ``$PRETROOST_CACHE`` if set, else the user cache dir (``~/.cache/pretroost``)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("pretroost"))


def shared_data_dir() -> Path | None:
    """The folder of data that only git repositories carry (teacher weights, structures, fixtures).

    ``$PRETROOST_SHARED_DATA`` if set; else ``../shared/data`` beside the current directory or beside
    the source checkout; ``None`` when none exists.
    """
    env = os.environ.get(SHARED_ENV)
    if env:
        return Path(env).expanduser()
    here = Path(__file__).resolve()
    candidates = [Path.cwd().parent / "shared" / "data"]
    candidates += [p.parent / "shared" / "data" for p in here.parents]
    for c in candidates:
        if c.is_dir():
            return c
    return None
