"""pretroost.load: one registry of model kinds, one resolver of shipped names."""

from __future__ import annotations

from pathlib import Path

import pytest

from pretroost.artefacts import load_artefact
from pretroost.errors import ArtefactError
from pretroost.hub import LOADERS, load, loader
from pretroost.predict import Predictor
from pretroost.pretrained import resolve, shipped


def test_every_kind_has_a_loader() -> None:
    for kind in LOADERS:
        assert callable(loader(kind))
    with pytest.raises(ArtefactError, match="valid: finetuned"):
        loader("mystery")


def test_shipped_names_resolve_once(tmp_path: Path) -> None:
    name, folder = next(iter(shipped().items()))
    assert resolve(name) == folder
    assert resolve(tmp_path) == tmp_path
    assert isinstance(load(name), Predictor)
    with pytest.raises(ArtefactError, match="nor a shipped encoder"):
        resolve(tmp_path / "missing")
    with pytest.raises(ArtefactError, match="not a model folder"):
        load_artefact(name)  # the low-level reader takes folders only
