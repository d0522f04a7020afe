"""pretroost.experiment.encoder_validation: the design split reads training rows only."""

from __future__ import annotations

import numpy as np
import pytest

from pretroost.experiment.encoder_validation import design_split, format_table


def test_design_split_partitions_the_training_rows_and_is_seeded() -> None:
    train = np.arange(0, 100, 2)  # the official fold's training rows; odd rows are its test rows
    split = design_split(100, train, seed=3)
    assert set(split.train) | set(split.val) == set(train)
    assert not set(split.train) & set(split.val)
    assert len(split.val) == 10  # 20 % of 50
    again = design_split(100, train, seed=3)
    assert np.array_equal(split.val, again.val) and np.array_equal(split.train, again.train)
    assert not np.array_equal(split.val, design_split(100, train, seed=4).val)
    with pytest.raises(ValueError, match="fraction"):
        design_split(100, train, fraction=1.0)
    with pytest.raises(ValueError, match="outside"):
        design_split(10, train)


def test_table_averages_seeds_per_task_and_encoder() -> None:
    rows = [
        {"task": "t", "metric": "mae", "encoder": e, "fold": 0, "recipe": "converged", "value": v}
        for e, v in [("scratch", 2.0), ("scratch", 4.0), ("dft-oqmd", 1.0)]
    ]
    table = format_table(rows)
    assert "| t | mae | scratch | 0 | converged | 2 | 3 |" in table
    assert "| t | mae | dft-oqmd | 0 | converged | 1 | 1 |" in table
