"""``pretroost speed --only finetune_epoch``: a baseline commit's package exported beside this
one, the worker's timed finetune, and the interleaved comparison end to end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import pretroost
from pretroost.experiment.finetune_speed import source_tree
from pretroost.experiment.finetune_speed_worker import run

REPO = Path(pretroost.__file__).resolve().parents[2]


@pytest.fixture
def git_checkout() -> Path:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    return REPO


def test_source_tree_exports_a_commits_package(git_checkout: Path, tmp_path: Path) -> None:
    src, sha = source_tree("HEAD", tmp_path)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=git_checkout, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    assert sha == head
    assert (src / "pretroost" / "finetune.py").is_file()
    with pytest.raises(ValueError, match="not a commit"):
        source_tree("no-such-commit-name", tmp_path / "x")


def test_worker_times_one_finetune_and_hashes_what_it_computed(data_cache) -> None:
    res = run("matbench_jdft2d", epochs=1)
    assert (res["n_train"], res["batch_size"], res["epochs"]) == (457, 32, 1)
    assert res["seconds_cpu"] > 0 and res["train_seconds_wall"] <= res["seconds_wall"]
    assert res["best_epoch"] == 0 and len(res["weights_sha256"]) == 64


@pytest.mark.slow
def test_finetune_epoch_against_head_is_identical(git_checkout, data_cache, tmp_path) -> None:
    from pretroost.cli import main

    out = tmp_path / "speed.json"
    argv = ["--quick", "--n", "50", "--threads", "1", "--only", "finetune_epoch"]
    assert main(["speed", *argv, "--baseline", "HEAD", "--out", str(out)]) == 0
    m = json.loads(out.read_text())["measurements"]["finetune_epoch"]
    entry = m["tasks"]["matbench_jdft2d"]
    assert len(entry["sides"]) == 2 and entry["sides"]["this"]["per_s_cpu"] > 0
    assert entry["identical_results"]  # HEAD's package computes what this one does
