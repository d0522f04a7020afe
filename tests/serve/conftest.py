"""Fixtures of the web page's tests: a tiny trees model on toy alloys (fitted in a second) and
the same model with the domain columns the shipped models add."""

from __future__ import annotations

from pathlib import Path

import pytest
from serving import WithDomain, toy_alloys

from pretroost.data.composition import parse_formulas


@pytest.fixture(scope="session")
def trees_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random forest of 20 trees on 60 toy alloys, saved as ``alloy-strength``."""
    from pretroost.trees import TreesConfig, fit_trees, save_trees

    formulas, y = toy_alloys()
    config = TreesConfig(models=("randomforest",), features=("fractions",), n_estimators=20,
                         inner_folds=2)  # fmt: skip
    fitted = fit_trees(parse_formulas(formulas), y, "regression", config)
    out = tmp_path_factory.mktemp("models") / "alloy-strength"
    return save_trees(fitted, out, config=config, data="toy alloys", n_train=len(formulas))


@pytest.fixture(scope="session")
def domain_model(trees_folder: Path) -> WithDomain:
    import pretroost

    formulas, y = toy_alloys()
    return WithDomain(pretroost.load(trees_folder), formulas, y)
