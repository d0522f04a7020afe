"""``predict`` and ``embed``: a trained model on a file of formulas."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("pretroost.cli")

_MAX_LOGGED_BAD_ROWS = 20


def _add_formula_input_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", required=True,
        help="model folder (finetune/ensemble/pretrain --out) or a shipped name (pretroost ready list)",
    )  # fmt: skip
    p.add_argument(
        "input",
        help="CSV with a formula column, a file with one formula per line, or - (standard input)",
    )
    p.add_argument(
        "-o", "--output", default=None,
        help="output file, .csv or .parquet by extension (default: CSV on standard output)",
    )  # fmt: skip
    p.add_argument("--formula-col", default="formula", help="formula column (default: formula)")
    p.add_argument(
        "--id-col", default=None,
        help="id column copied to the output (default: the id column the model was trained "
        "with, or else 'id', when the input has it)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=1024, help="compositions per forward pass")
    p.add_argument(
        "--no-progress", dest="progress", action="store_const", const=False, default=None,
        help="no progress bar (default: shown when stderr is a terminal)",
    )  # fmt: skip


def _read_formula_rows(args: argparse.Namespace, trained_id: str | None = None):
    """The input's ([id], formula) columns, the id column used (or None) and the line offset.
    Without ``--id-col``: ``trained_id`` (the model's training id column), else ``id``, if the
    input has it."""
    from pretroost.predict import read_formula_input

    df = read_formula_input(args.input, formula_col=args.formula_col)
    offset = df.attrs.get("line_offset", 2)
    id_col = args.id_col
    for found in (trained_id, "id"):
        if id_col is None and found in df.columns and args.formula_col != found:
            id_col = found
    if id_col is not None and id_col not in df.columns:
        raise ValueError(f"{args.input}: no id column {id_col!r}; columns: {list(df.columns)}")
    if id_col is not None and df[id_col].duplicated().any():
        log.warning("%s: the id column %r has duplicates", args.input, id_col)
    keep = [c for c in (id_col, args.formula_col) if c is not None]
    return df[keep].reset_index(drop=True), id_col, offset


def _report_bad_rows(formulas: list, errors: list, offset: int, source: str) -> int:
    """Log each bad row (row, line, formula, reason); returns how many rows were good."""
    bad = [i for i, e in enumerate(errors) if e is not None]
    for i in bad[:_MAX_LOGGED_BAD_ROWS]:
        log.warning(
            "%s: row %d (line %d): formula %r: %s", source, i, i + offset, formulas[i], errors[i]
        )
    if len(bad) > _MAX_LOGGED_BAD_ROWS:
        more = len(bad) - _MAX_LOGGED_BAD_ROWS
        log.warning("... and %d more bad rows (see the error column)", more)
    n_good = len(errors) - len(bad)
    log.info("%s: %d rows done, %d failed", source, n_good, len(bad))
    if n_good == 0:
        log.error("%s: no row could be used", source)
    return n_good


def _with_ids(df, id_col: str | None, result, formula_col: str):
    import pandas as pd

    result = result.reset_index(drop=True).rename(columns={"formula": formula_col})
    return pd.concat([df[[id_col]], result], axis=1) if id_col else result


def cmd_predict(args: argparse.Namespace) -> int:
    from pretroost.hub import load
    from pretroost.predict import write_table

    model = load(args.model)
    df, id_col, offset = _read_formula_rows(args, getattr(model, "id_col", None))
    formulas = df[args.formula_col].tolist()
    pred = model.predict(formulas, batch_size=args.batch_size, progress=args.progress)
    source = "<stdin>" if args.input == "-" else args.input
    n_good = _report_bad_rows(formulas, pred["error"].tolist(), offset, source)
    write_table(_with_ids(df, id_col, pred, args.formula_col), args.output)
    return 0 if n_good else 1


def cmd_embed(args: argparse.Namespace) -> int:
    from pretroost.hub import load
    from pretroost.predict import write_table

    model = load(args.model)
    df, id_col, offset = _read_formula_rows(args)
    formulas = df[args.formula_col].tolist()
    emb = model.embed_frame(
        formulas, member=args.member, batch_size=args.batch_size, progress=args.progress
    )
    source = "<stdin>" if args.input == "-" else args.input
    n_good = _report_bad_rows(formulas, emb["error"].tolist(), offset, source)
    write_table(_with_ids(df, id_col, emb, args.formula_col), args.output)
    return 0 if n_good else 1


def register_predict(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Predict a property for each formula with a trained model (finetuned or ensemble).\n\n"
        "Output: the id column (if any), the formula, then 'prediction' and 'std' (regression;\n"
        "ensembles add 'std_aleatoric' and 'std_epistemic', 'std' being their total) or\n"
        "'prediction' and 'probability' (classification), then 'error'. Rows keep the input\n"
        "order. A formula that cannot be used keeps its row, with empty predictions and the\n"
        "reason in 'error'; each is also logged with its row and line number.\n\n"
        "Exit status: 0 if at least one row was predicted, 1 if none was (or on bad input)."
    )
    _add_formula_input_args(p)


def register_embed(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Write the encoder's material vector for each formula (any model folder, pretrained\n"
        "encoders included).\n\n"
        "Output: the id column (if any), the formula, emb_0 .. emb_{d-1}, then 'error' (empty\n"
        "vector and the reason for a formula that cannot be used). Rows keep the input order.\n\n"
        "Exit status: 0 if at least one row was embedded, 1 if none was (or on bad input)."
    )
    _add_formula_input_args(p)
    p.add_argument(
        "--member", type=int, default=0,
        help="ensembles: whose encoder (members' latent spaces differ; default 0)",
    )  # fmt: skip
