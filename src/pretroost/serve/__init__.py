"""``pretroost serve``: a local web page that predicts properties from formulas.

Formulas typed, pasted or uploaded as a CSV go to a chosen model; the page shows, per formula, the
prediction with its uncertainty, any other column the model returns (metal probability, the
in-domain flag and its reason, the nearest training compositions with their recorded values), a
chart of the predictions with their uncertainty bars, and a CSV download of the table. Everything
is served from the package (no network); the server binds to 127.0.0.1 unless told otherwise.

- :mod:`~pretroost.serve.config`: :class:`ServeConfig`, the limits and the address;
- :mod:`~pretroost.serve.inputs`: formulas from pasted text or an uploaded CSV, within the limits;
- :mod:`~pretroost.serve.models`: the models on offer, each loaded once and shared between
  requests;
- :mod:`~pretroost.serve.render`: the table's columns and the chart (SVG made on the server);
- :mod:`~pretroost.serve.app`: the Starlette application (needs the ``serve`` extra).
"""

from __future__ import annotations

from pretroost.serve.config import ServeConfig

__all__ = ["ServeConfig"]
