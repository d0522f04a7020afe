"""pretroost.serve under load: many requests at once on a real server (uvicorn on 127.0.0.1).

Bounded: 200 requests from 8 threads, each with a 30 s timeout, against the tiny trees model; the
server stops by itself at the end. Every answer must be complete, and the process's resident
memory may grow by at most ``RSS_GROWTH_MIB`` over the 200 requests (after 20 warm-up requests).
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the 'serve' extra is not installed")

from serving import running_server, toy_alloys

from pretroost.serve.app import create_app
from pretroost.serve.config import ServeConfig
from pretroost.serve.models import ModelRegistry

REQUESTS, THREADS, WARM_UP = 200, 8, 20
RSS_GROWTH_MIB = 40.0


def _rss_mib() -> float | None:
    """This process's resident memory (Linux /proc), None elsewhere."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def test_many_concurrent_requests_all_succeed_in_steady_memory(trees_folder: Path) -> None:
    registry = ModelRegistry.from_sources([str(trees_folder)], shipped=False)
    app = create_app(registry, ServeConfig(max_concurrent=2), allowed_hosts=["127.0.0.1"])
    formulas, _ = toy_alloys(12, seed=11)

    def ask(url: str, i: int) -> tuple[int, bool]:
        rows = [*formulas[i % 6 : i % 6 + 6], "Xx2O"]
        body = urllib.parse.urlencode({"model": "alloy-strength", "formulas": "\n".join(rows)})
        request = urllib.request.Request(url + "/", data=body.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=30) as r:
            text = r.read().decode()
        return r.status, "6 of 7 predicted" in text and text.rstrip().endswith("</html>")

    with running_server(app) as url, ThreadPoolExecutor(THREADS) as pool:
        warm = list(pool.map(lambda i: ask(url, i), range(WARM_UP)))
        before = _rss_mib()
        answers = list(pool.map(lambda i: ask(url, i), range(REQUESTS)))
        after = _rss_mib()
    assert warm == [(200, True)] * WARM_UP
    assert answers == [(200, True)] * REQUESTS
    assert registry.loads == 0  # loaded once, at start, and shared
    if before is not None and after is not None:
        print(f"RSS {before:.1f} -> {after:.1f} MiB over {REQUESTS} requests")
        assert after - before < RSS_GROWTH_MIB
