"""Bad input through the command line: each gives one clear error line naming the file, row and
reason, exit code 1, and writes nothing. Plus: extreme-but-valid formulas work, error types are the
ones `main` catches, and interrupted writes leave no partial files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Element

from pretroost.artefacts import ArtefactError, load_artefact, save_artefact
from pretroost.cli import main
from pretroost.data.composition import FormulaError
from pretroost.data.matbench import DataNotFetchedError
from pretroost.data.structures import StructureError
from pretroost.data.tables import TableError
from pretroost.errors import WeightsNotFoundError
from pretroost.models.roost import RoostConfig, RoostEncoder

TINY_FLAGS = ["--epochs", "1", "--batch-size", "8", "--elem-fea-len", "8", "--n-graph", "1",
              "--heads", "1", "--hidden", "8", "--trunk-hidden", "8", "--out-hidden", "8,4",
              "--threads", "1"]  # fmt: skip
TINY = RoostConfig(
    elem_fea_len=8, n_graph=1, elem_heads=1, elem_gate=(8,), elem_msg=(8,),
    cry_heads=1, cry_gate=(8,), cry_msg=(8,),
)  # fmt: skip
GOOD = [
    "Fe2O3",
    "NaCl",
    "SiO2",
    "GaN",
    "LiF",
    "MgO",
    "CaTiO3",
    "ZnS",
    "Al2O3",
    "KCl",
    "CuO",
    "TiO2",
]
# 30 distinct elements, all with a matscholar200 vector
THIRTY = "".join(
    f"{e}1" for e in [e.symbol for e in map(Element.from_Z, range(1, 34)) if not e.is_noble_gas]
)


def _csv(path: Path, formulas=GOOD, targets=None, ids=None) -> Path:
    targets = list(range(len(formulas))) if targets is None else targets
    lines = ["id,formula,target"] + [
        f"{ids[i] if ids else f'r{i}'},{f},{t}"
        for i, (f, t) in enumerate(zip(formulas, targets, strict=True))
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _with(i: int, value: str, *, col: str = "formula") -> dict:
    formulas, targets = list(GOOD), [str(t) for t in range(len(GOOD))]
    (formulas if col == "formula" else targets)[i] = value
    return {"formulas": formulas, "targets": targets}


# (case id, csv contents, extra flags, fragments the error line must hold)
CASES = [
    ("paren", _with(3, "Fe2O3)"), [], ["row 3", "'Fe2O3)'", "cannot parse"]),
    ("unknown-element", _with(4, "Xx2"), [], ["row 4", "'Xx' is not a chemical element"]),
    ("negative", _with(5, "H-1"), [], ["row 5", "negative"]),
    ("zero", _with(2, "Fe0O2"), [], ["row 2", "zero"]),
    ("infinite", _with(2, "Fe1e999O"), [], ["row 2", "not finite"]),
    ("too-small", _with(2, "H1e-12O"), [], ["row 2", "too small"]),
    ("empty-formula", _with(1, ""), [], ["row 1", "missing value"]),
    ("nan-formula", _with(6, "NaN"), [], ["row 6", "missing value"]),
    ("no-vector", _with(7, "OgO2"), [], ["row 7", "Og has no matscholar200 feature vector"]),
    ("no-vector-megnet", _with(7, "CmO2"), ["--elem-embedding", "megnet16"], ["row 7", "Cm has no megnet16"]),
    ("string-target", _with(8, "abc", col="target"), [], ["row 8", "'abc' is not a number"]),
    ("nan-target", _with(8, "", col="target"), [], ["row 8", "not finite"]),
    ("inf-target", _with(9, "inf", col="target"), [], ["row 9", "not finite"]),
    ("classification", {"targets": [str(i % 2) for i in range(11)] + ["2"]},
     ["--task-type", "classification"], ["row 11", "not in {0, 1}"]),
    ("duplicate-id", {"ids": [f"r{i}" for i in range(11)] + ["r3"]}, ["--id-col", "id"],
     ["row 11", "duplicate id 'r3'"]),
]  # fmt: skip


def _error_line(capsys) -> str:
    lines = [x for x in capsys.readouterr().err.splitlines() if " ERROR " in x]
    assert len(lines) == 1, lines
    return lines[0]


def _run_refused(tmp_path: Path, capsys, args: list[str], fragments: list[str]) -> str:
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(args) == 1
    line = _error_line(capsys)
    for fragment in fragments:
        assert fragment in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing written"
    return line


@pytest.mark.parametrize(
    ("case", "content", "extra", "fragments"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_rows_are_refused_with_file_row_and_reason(
    tmp_path: Path, capsys, case: str, content: dict, extra: list[str], fragments: list[str]
) -> None:
    data = _csv(tmp_path / "in.csv", **content)
    args = ["finetune", "--data", str(data), "--out", str(tmp_path / "model"), *extra, *TINY_FLAGS]
    line = _run_refused(tmp_path, capsys, args, [str(data), *fragments])
    assert "Traceback" not in line


@pytest.mark.parametrize(
    ("text", "extra", "fragment"),
    [
        ("", [], "the file is empty"),
        ("formula,target\n", [], "no data rows"),
        ("formula,other\nFe2O3,1\n", [], "missing column(s) ['target']"),
        (None, [], "no such file"),
    ],
)
def test_bad_tables_are_refused(tmp_path: Path, capsys, text, extra, fragment) -> None:
    data = tmp_path / "in.csv"
    if text is not None:
        data.write_text(text)
    args = ["finetune", "--data", str(data), "--out", str(tmp_path / "model"), *extra, *TINY_FLAGS]
    _run_refused(tmp_path, capsys, args, [str(data), fragment])


def test_wrong_task_name_lists_the_valid_ones(tmp_path: Path, capsys) -> None:
    line = _run_refused(tmp_path, capsys, ["finetune", "--task", "matbench_nope", *TINY_FLAGS], [])
    assert "unknown Matbench task 'matbench_nope'" in line and "matbench_steels" in line


def _pretrained(folder: Path) -> Path:
    torch.manual_seed(0)
    enc = RoostEncoder(TINY)
    holder = torch.nn.Module()
    holder.encoder = enc
    return save_artefact(
        folder, holder, {"kind": "pretrained", "encoder": TINY.to_dict()}, card="test"
    )


def _damage(folder: Path, how: str) -> None:
    weights, cfg = folder / "model.safetensors", folder / "config.json"
    if how == "missing-weights":
        weights.unlink()
    elif how == "truncated-weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "newer-format":
        cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "format_version": 99}))
    elif how == "no-folder":
        shutil.rmtree(folder)


@pytest.mark.parametrize(
    ("how", "fragment"),
    [
        ("missing-weights", "model.safetensors is missing"),
        ("truncated-weights", "unreadable or truncated"),
        ("newer-format", "format_version 99 is newer than this pretroost understands"),
        ("no-folder", "not a model folder"),
    ],
)
def test_bad_artefacts_are_refused_by_finetune_and_predict(
    tmp_path: Path, capsys, how, fragment
) -> None:
    art = _pretrained(tmp_path / "art")
    data = _csv(tmp_path / "in.csv")
    _damage(art, how)
    args = [
        "finetune",
        "--data",
        str(data),
        "--init",
        str(art),
        "--out",
        str(tmp_path / "m"),
        *TINY_FLAGS,
    ]
    _run_refused(tmp_path, capsys, args, [str(art), fragment])
    args = ["predict", "--model", str(art), str(data), "-o", str(tmp_path / "pred.csv")]
    _run_refused(tmp_path, capsys, args, [str(art), fragment])


def test_structure_file_that_does_not_parse(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "structures.csv"
    bad.write_text('material_id,cif\nok-1,"data_x\n_cell_length_a 3\nnonsense"\n')
    args = ["corpus", "build", "--no-oqmd", "--include-matbench", "--structures", str(bad),
            "--out", str(tmp_path / "corpus.npz")]  # fmt: skip
    _run_refused(tmp_path, capsys, args, [str(bad), "row 0", "'ok-1'", "CIF does not parse"])


def test_error_types_are_the_ones_main_catches() -> None:
    for cls in (FormulaError, TableError, ArtefactError, StructureError):
        assert issubclass(cls, ValueError)
    for cls in (DataNotFetchedError, WeightsNotFoundError):
        assert issubclass(cls, FileNotFoundError)


def test_one_and_thirty_element_formulas_work(tmp_path: Path) -> None:
    formulas = [*GOOD, "Fe", "O", THIRTY, THIRTY.replace("As1", "Se1")]
    data = _csv(tmp_path / "in.csv", formulas=formulas)
    assert (
        main(["-q", "finetune", "--data", str(data), "--out", str(tmp_path / "m"), *TINY_FLAGS])
        == 0
    )
    queries = tmp_path / "q.csv"
    queries.write_text(f"formula\nFe\n{THIRTY}\nXx2\n")
    assert (
        main(
            [
                "-q",
                "predict",
                "--model",
                str(tmp_path / "m"),
                str(queries),
                "-o",
                str(tmp_path / "p.csv"),
            ]
        )
        == 0
    )
    pred = (tmp_path / "p.csv").read_text().splitlines()
    assert len(pred) == 4 and "not a chemical element" in pred[3]
    assert all(np.isfinite(float(row.split(",")[1])) for row in pred[1:3])


# ------------------------------------------------------------------------------ atomic writes


def test_a_failed_artefact_write_leaves_the_old_one_whole(tmp_path: Path, monkeypatch) -> None:
    import pretroost.artefacts

    art = _pretrained(tmp_path / "art")
    before = {p.name: p.read_bytes() for p in art.iterdir()}

    def dies(state, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(pretroost.artefacts, "save_file", dies)
    with pytest.raises(OSError, match="disk full"):
        _pretrained(tmp_path / "art")
    assert {p.name: p.read_bytes() for p in art.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"], "no temporary left behind"
    load_artefact(art)


def test_a_failed_checkpoint_write_leaves_the_previous_one(tmp_path: Path, monkeypatch) -> None:
    import pretroost.train
    from pretroost.data.batching import CompositionDataset
    from pretroost.data.composition import parse_formulas
    from pretroost.finetune import SupervisedTask
    from pretroost.models.roost import ModelConfig, RoostModel
    from pretroost.train import TrainConfig, load_checkpoint, train

    torch.manual_seed(0)
    task = SupervisedTask(
        RoostModel(ModelConfig(encoder=TINY, trunk_hidden=(8,), out_hidden=(8, 4))), "robust"
    )
    data = CompositionDataset(
        parse_formulas(GOOD), {"y": np.arange(len(GOOD), dtype=np.float32)[:, None]}
    )
    ckpt = tmp_path / "run.pt"
    train(task, data, TrainConfig(epochs=1, batch_size=4), checkpoint=ckpt, progress=False)
    saved = ckpt.read_bytes()
    real_save = torch.save

    def dies(obj, f):
        real_save({"half": 1}, f)
        raise OSError("disk full")

    monkeypatch.setattr(pretroost.train.torch, "save", dies)
    with pytest.raises(OSError, match="disk full"):
        train(task, data, TrainConfig(epochs=2, batch_size=4), checkpoint=ckpt, progress=False)
    monkeypatch.setattr(pretroost.train.torch, "save", real_save)
    assert ckpt.read_bytes() == saved and load_checkpoint(ckpt)["epoch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]
