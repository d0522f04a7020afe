"""Shared fixtures. Tests never download: data comes from the cache that ``pretroost data fetch``
fills (the README's test command runs it first) or from ``../shared/data``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pretroost.paths import cache_dir, shared_data_dir

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$PRETROOST_SHARED_DATA``); skips the test where it is absent."""
    path = shared_data_dir()
    if path is None or not path.is_dir():
        pytest.skip("shared data folder absent: set PRETROOST_SHARED_DATA to ../shared/data")
    return path


@pytest.fixture(scope="session")
def data_cache() -> Path:
    """The fetched data cache; skips where ``pretroost data fetch`` has not been run."""
    path = cache_dir()
    if not (path / "matbench" / "folds.json").is_file():
        pytest.skip(f"no fetched data in {path}: run `pretroost data fetch` first")
    return path


@pytest.fixture(autouse=True)
def _results_from_committed_code(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """The results store refuses cells from a modified package (``pretroost.results.SOURCE``);
    tests write cells from whatever tree they run in, so they point it at a folder outside git
    (tests/test_provenance.py points it at a git repository of its own)."""
    import pretroost.results

    monkeypatch.setattr(pretroost.results, "SOURCE", tmp_path_factory.getbasetemp())
