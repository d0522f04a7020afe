"""Result cells come from committed code: the store refuses a modified package unless allowed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import pretroost.results as results
from pretroost.errors import DirtyTreeError


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with a committed ``src/pkg/mod.py``, the store's SOURCE."""
    root = tmp_path / "repo"
    pkg = root / "src" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text("x = 1\n")
    _git(root, "init", "-q")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    monkeypatch.setattr(results, "SOURCE", pkg)
    monkeypatch.delenv(results.ALLOW_DIRTY_ENV, raising=False)
    results.source_state.cache_clear()
    yield pkg
    results.source_state.cache_clear()


def _write(out: Path) -> list[dict]:
    return results.write_cell(
        out, "s", "matbench_steels", 0, 0,
        frame=pd.DataFrame({"id": ["a"], "prediction": [1.0]}), record={"best_val": 1.0},
        scores={"mae": 1.0}, n_train=10, epochs=1, seconds=1.0,
    )  # fmt: skip


def test_clean_package_records(package: Path, tmp_path: Path) -> None:
    rows = _write(tmp_path / "results")
    assert "diff_sha256" not in rows[0]
    assert results.cell_done(tmp_path / "results", "s", "matbench_steels", 0)


def test_modified_package_refused(package: Path, tmp_path: Path) -> None:
    (package / "mod.py").write_text("x = 2\n")
    with pytest.raises(DirtyTreeError, match="--allow-dirty"):
        _write(tmp_path / "results")
    assert not (tmp_path / "results").exists()  # nothing written
    with pytest.raises(DirtyTreeError):
        results.append_benchmark_rows(tmp_path / "b.jsonl", _row())


def _row() -> list[dict]:
    return [{"strategy": "s", "task": "t", "fold": 0, "metric": "mae", "value": 1.0,
             "n_train": 1, "epochs": 1, "seconds": 1.0, "git_sha": "x", "machine": "m"}]  # fmt: skip


def test_override_stores_the_diff(package: Path, tmp_path: Path, monkeypatch) -> None:
    (package / "mod.py").write_text("x = 2\n")
    monkeypatch.setenv(results.ALLOW_DIRTY_ENV, "1")
    out = tmp_path / "results"
    _write(out)
    diff = results.validation_path(out, "s", "matbench_steels", 0).with_suffix(".diff")
    assert "+x = 2" in diff.read_text()
    rows = [json.loads(line) for line in (out / "benchmark.jsonl").read_text().splitlines()]
    assert rows[0]["diff_sha256"] == results.source_state(package).diff_sha256
    assert results.check_source(allow_dirty=True).sha.endswith("+dirty")


def test_cli_refuses_then_allows(package: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """``pretroost select`` writes cells: refused from a modified package before any work;
    ``--allow-dirty`` passes the check (here the selection then finds no cells)."""
    from pretroost.cli import main

    (package / "mod.py").write_text("x = 2\n")
    argv = ["select", "--candidates", "a", "b", "--tasks", "matbench_steels",
            "--results-dir", str(tmp_path)]  # fmt: skip
    assert main(argv) == 1
    assert "uncommitted changes (src/pkg/mod.py)" in capsys.readouterr().err
    monkeypatch.setenv(results.ALLOW_DIRTY_ENV, "0")  # restored after the test
    assert main([*argv, "--allow-dirty"]) == 1
    err = capsys.readouterr().err
    assert "uncommitted changes" not in err
    assert "no fold has predictions" in err
