"""What the web page's tests share: toy alloys, a model wrapper adding the domain columns the
shipped models have, and a real server on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from pretroost.data.composition import MAX_Z, parse_formulas

#: what the browser test types, and the order of magnitude of the toy target
BROWSER_FORMULAS = [
    "Fe0.70Ni0.12Cr0.12C0.06", "Fe0.55Ni0.25Cr0.15C0.05", "Fe0.80Ni0.05Cr0.10C0.05",
    "Fe0.62Ni0.10Cr0.25C0.03", "Fe0.45Ni0.30Cr0.20C0.05", "Fe0.70Co0.20Cr0.10", "Xx2O",
]  # fmt: skip


def toy_alloys(n: int = 60, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Random Fe-Ni-Cr-C alloys and a target linear in their C and Cr fractions (MPa-like)."""
    rng = np.random.default_rng(seed)
    x = rng.dirichlet([4.0, 2.0, 2.0, 1.0], size=n) + 1e-3
    formulas = [f"Fe{a:.3f}Ni{b:.3f}Cr{c:.3f}C{d:.3f}" for a, b, c, d in x]
    return formulas, 300.0 + 4000.0 * x[:, 3] + 800.0 * x[:, 2]


def _fractions(formulas: list[str]) -> tuple[np.ndarray, list[str | None]]:
    """(n, MAX_Z) element fractions (zeros for a bad formula) and each formula's error."""
    out = np.zeros((len(formulas), MAX_Z))
    errors: list[str | None] = [None] * len(formulas)
    for i, f in enumerate(formulas):
        try:
            z, w = parse_formulas([f])[0][:2]
        except ValueError as exc:
            errors[i] = str(exc)
            continue
        out[i, np.asarray(z) - 1] = w
    return out, errors


class WithDomain:
    """A model plus the columns the shipped models add: ``in_domain``, ``domain_reason`` and
    ``nearest`` (the 2 nearest training compositions by L1 distance of element fractions, with
    their recorded target)."""

    def __init__(self, model: Any, formulas: list[str], y: np.ndarray, radius: float = 0.15):
        self.model, self.train, self.y, self.radius = model, formulas, y, radius
        self.x = _fractions(formulas)[0]
        self.task_type = model.task_type

    def _domain(self, x: np.ndarray, known: np.ndarray) -> tuple[bool, str, str]:
        d = np.abs(self.x - x).sum(axis=1)
        order = np.argsort(d)[:2]
        near = "; ".join(f"{self.train[j]} {self.y[j]:.0f} (d={d[j]:.2f})" for j in order)
        new = [str(z + 1) for z in np.flatnonzero((x > 0) & ~known)]
        if new:
            return False, f"elements never seen in training (Z={', '.join(new)})", near
        if d[order[0]] > self.radius:
            return False, f"nearest training composition at d={d[order[0]]:.2f}", near
        return True, "close to training compositions", near

    @property
    def columns(self) -> list[str]:
        return [*self.model.columns, "in_domain", "domain_reason", "nearest"]

    def predict(self, formulas: Any, **kwargs: Any) -> pd.DataFrame:
        frame = self.model.predict(formulas, **kwargs)
        x, _ = _fractions(list(frame["formula"]))
        known = self.x.any(axis=0)
        flags, reasons, nearest = [], [], []
        for i in range(len(frame)):
            flag, reason, near = self._domain(x[i], known) if not frame["error"].iloc[i] else (
                pd.NA, "", "")  # fmt: skip
            flags.append(flag)
            reasons.append(reason)
            nearest.append(near)
        at = frame.columns.get_loc("error")
        frame.insert(at, "nearest", nearest)
        frame.insert(at, "domain_reason", reasons)
        frame.insert(at, "in_domain", pd.array(flags, dtype="boolean"))
        return frame


@contextlib.contextmanager
def running_server(app: Any, timeout: float = 20.0) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL and
    stops the server on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
