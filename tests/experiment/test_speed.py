"""``pretroost speed``: the throughput benchmark runs end to end on a tiny sample."""

from __future__ import annotations

import json

import pytest


def test_speed_main_quick(tmp_path) -> None:
    from pretroost.cli import main

    out = tmp_path / "speed.json"
    argv = ["--quick", "--n", "120", "--threads", "1", "--batch-sizes", "64"]
    argv += [
        "--no-tune-malloc",
        "--out",
        str(out),
        "--only",
        "machine,train,steels,flops,fingerprint",
    ]
    assert main(["speed", *argv]) == 0
    report = json.loads(out.read_text())
    assert report["threads"] == 1 and report["n_compositions"] == 120
    m = report["measurements"]
    assert {"machine", "train", "steels", "flops", "fingerprint"} <= set(m)
    assert m["train"]["train_batch_128"]["ours"]["per_s"] > 0
    assert m["fingerprint"]["max_scaled_diff"] < 1e-6
    assert "machine" in report and "git_sha" in report


def test_speed_ssl_epoch_and_teachers_quick(tmp_path, data_cache) -> None:
    """The SSL-epoch measurement (a pretraining subprocess) and teacher throughput run and report."""
    from pretroost.cli import main

    if not (data_cache / "corpus" / "oqmd-leakfree.npz").is_file():
        pytest.skip("no leak-free corpus: run `pretroost corpus build`")
    out = tmp_path / "speed.json"
    argv = ["--quick", "--n", "50", "--threads", "1", "--only", "ssl_epoch,teachers"]
    assert main(["speed", *argv, "--no-tune-malloc", "--out", str(out)]) == 0
    m = json.loads(out.read_text())["measurements"]
    assert m["ssl_epoch"]["compositions"] == 3000 and m["ssl_epoch"]["epoch_seconds"] > 0
    assert 0 < m["ssl_epoch"]["peak_rss_gb"] < 24
    if "skipped" not in m["teachers"]:
        assert m["teachers"]["crystal-twins"].get("per_s", 1) > 0


def test_speed_merge_keeps_other_measurements(tmp_path) -> None:
    from pretroost.cli import main

    out = tmp_path / "speed.json"
    base = ["--quick", "--n", "50", "--threads", "1", "--no-tune-malloc", "--out", str(out)]
    assert main(["speed", *base, "--only", "machine"]) == 0
    assert main(["speed", *base, "--only", "flops", "--merge"]) == 0
    m = json.loads(out.read_text())["measurements"]
    assert {"machine", "flops"} <= set(m) and "run" in m["flops"] and "run" not in m["machine"]


def test_speed_through_the_cli(tmp_path) -> None:
    from pretroost.cli import main

    out = tmp_path / "speed.json"
    assert main(["speed", "--quick", "--threads", "1", "--only", "machine", "--out", str(out)]) == 0
    assert "machine" in json.loads(out.read_text())["measurements"]


def test_speed_measurement_names_match() -> None:
    """The CLI names the measurements without importing torch; they must be the benchmark's."""
    from pretroost.cli.experiment import MEASUREMENT_NAMES
    from pretroost.experiment import (
        finetune_speed,  # registers finetune_epoch
        pretrain_speed,  # registers dft_epoch, dft_heldout
    )
    from pretroost.experiment.speed import MEASUREMENTS

    assert pretrain_speed.VARIANTS and finetune_speed.EPOCHS
    assert tuple(MEASUREMENTS) == MEASUREMENT_NAMES
