"""pretroost.serve.render: any column a model returns is shown; the chart draws what it can."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pretroost.serve.render import chart_svgs, columns_of, nice_ticks, rows_of


def test_known_columns_get_headers_units_and_unknown_ones_show_as_is() -> None:
    frame = pd.DataFrame({
        "formula": ["NaCl", "Cu", "Q"], "prediction": [8.5, 0.0, np.nan], "std": [0.3, np.nan, np.nan],
        "p_metal": [0.02, 0.97, np.nan], "label": ["insulator", "metal", None],
        "in_domain": pd.array([True, False, pd.NA], dtype="boolean"),
        "domain_reason": ["close to training", "far from training (d=0.9)", ""],
        "nearest": ["NaCl 8.5 (d=0.00); KCl 8.4 (d=0.12)", "Ag 0 (d=0.9)", ""],
        "shiny_new": [1.5, 2.5, np.nan], "error": [None, None, "'Q' is not a chemical element"],
    })  # fmt: skip
    columns = columns_of(frame, "eV", "regression")
    headers = {c.name: c.header for c in columns}
    assert headers["prediction"] == "Prediction (eV)" and headers["std"] == "± std (eV)"
    assert headers["p_metal"] == "P(metal)" and headers["shiny_new"] == "shiny_new"
    assert "domain_reason" not in headers  # shown beside the in-domain flag
    rows = rows_of(frame, columns)
    by = {c.name: k for k, c in enumerate(columns)}
    assert rows[0].cells[by["prediction"]].text == "8.5" and rows[1].cells[by["std"]].text == "—"
    flag = rows[1].cells[by["in_domain"]]
    assert flag.text == "no" and flag.items == ("far from training (d=0.9)",)
    assert rows[0].cells[by["nearest"]].items == ("NaCl 8.5 (d=0.00)", "KCl 8.4 (d=0.12)")
    assert rows[2].error and rows[2].cells == ()
    chart = chart_svgs(frame, "regression", "eV")
    assert chart is not None and chart.kind == "dots" and chart.label.endswith("(eV)")
    assert chart.svgs["value"].count("<circle") == 2 and 'class="dot out"' in chart.svgs["value"]


def test_classification_and_several_targets() -> None:
    frame = pd.DataFrame({
        "formula": ["A", "B"], "prediction": pd.array([1, 0], dtype="Int64"),
        "probability": [0.9, 0.2], "error": [None, None],
    })  # fmt: skip
    chart = chart_svgs(frame, "classification")
    assert chart is not None and chart.label.startswith("probability")
    assert [c.header for c in columns_of(frame, "eV", "classification")] == [
        "Prediction", "P(class 1)"]  # fmt: skip
    multi = pd.DataFrame({"formula": ["A"], "prediction_0": [1.0], "std_0": [0.1],
                          "prediction_1": [2.0], "std_1": [0.2], "error": [None]})  # fmt: skip
    assert [c.header for c in columns_of(multi)] == [
        "Prediction [0]", "± std [0]", "Prediction [1]", "± std [1]"]  # fmt: skip
    assert chart_svgs(multi, "regression") is not None
    nothing = pd.DataFrame({"formula": ["Q"], "prediction": [np.nan], "error": ["bad"]})
    assert chart_svgs(nothing, "regression") is None


def test_nice_ticks_cover_the_range_in_round_steps() -> None:
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = nice_ticks(417.3, 806.2)
    assert ticks[0] <= 417.3 and ticks[-1] >= 806.2 and np.allclose(np.diff(ticks), 100)
    assert nice_ticks(3.0, 3.0)[0] <= 3.0 <= nice_ticks(3.0, 3.0)[-1]
