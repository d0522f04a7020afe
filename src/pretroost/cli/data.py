"""``data`` (fetch the datasets) and ``corpus`` (build the pretraining corpus)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("pretroost.cli")


def cmd_data(args: argparse.Namespace) -> int:
    from pretroost.data.fetch import fetch_all

    path = fetch_all(wheel_dir=Path(args.wheel_dir) if args.wheel_dir else None, force=args.force)
    log.info("data ready in %s", path)
    return 0


def register_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["fetch"])
    p.add_argument("--wheel-dir", help="use already downloaded crabnet/matbench wheels from here")
    p.add_argument("--force", action="store_true", help="re-extract even if the cache is complete")


def default_corpus() -> Path:
    from pretroost.paths import cache_dir

    return cache_dir() / "corpus" / "oqmd-leakfree.npz"


def cmd_corpus(args: argparse.Namespace) -> int:
    from pretroost.data.corpus import build_corpus
    from pretroost.data.dft_corpus import EXCLUDED_TASKS, build_dft_corpus, dft_corpus_path

    if args.labels == "oqmd4":
        corpus = build_corpus(
            oqmd=not args.no_oqmd, structures=args.structures, exclude=args.exclude or None,
            include_matbench=args.include_matbench,
        )  # fmt: skip
        out = corpus.save(args.out or default_corpus())
    else:
        if args.structures or args.no_oqmd or args.include_matbench:
            raise SystemExit(
                "--labels all: OQMD plus Matbench's DFT tasks only (no --structures, --no-oqmd "
                "or --include-matbench)"
            )
        corpus = build_dft_corpus(args.labels, exclude=args.exclude or EXCLUDED_TASKS)
        out = corpus.save(args.out or dft_corpus_path(args.labels))
    report = corpus.info.get("exclusion_report", {})
    if report:
        cols = sorted({c for row in report.values() for c in row})
        lines = ["task".ljust(24) + "".join(c.rjust(max(14, len(c) + 2)) for c in cols)]
        for task, row in report.items():
            lines.append(
                task.ljust(24)
                + "".join(str(row.get(c, "")).rjust(max(14, len(c) + 2)) for c in cols)
            )
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.write(
        f"corpus: {len(corpus)} compositions, hash {corpus.info['hash']}, "
        f"{corpus.info.get('removed_total', 0)} Matbench compositions removed -> {out}\n"
    )
    return 0


def register_corpus(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["build"])
    p.add_argument(
        "--labels", default="oqmd4", choices=["oqmd4", "all", "all+perovskites"],
        help="oqmd4: OQMD's compositions minus all 13 Matbench tasks' (OQMD's four DFT labels); "
        "all: plus the compositions of matbench_mp_e_form/mp_gap/mp_is_metal (all+perovskites: "
        "and matbench_perovskites), minus the evaluation and confirmation tasks' by key and "
        "within 1e-3 on normalised fractions (default <cache>/corpus/dft-<labels>-leakfree.npz)",
    )  # fmt: skip
    p.add_argument(
        "--out", default=None, help="corpus file (default: <cache>/corpus/oqmd-leakfree.npz)"
    )
    p.add_argument(
        "--exclude", nargs="*", default=None, help="Matbench tasks to exclude (default: all)"
    )
    p.add_argument("--include-matbench", action="store_true", help="exclude nothing")
    p.add_argument(
        "--structures", nargs="*", default=[], help="structure sets to add (CSV/json.gz/CIF dir)"
    )
    p.add_argument("--no-oqmd", action="store_true", help="only the structure sets")
