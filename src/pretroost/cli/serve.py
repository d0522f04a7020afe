"""``serve``: the local web page (:mod:`pretroost.serve`)."""

from __future__ import annotations

import argparse
import logging

from pretroost.cli.config_options import add_config_options, config_from_args
from pretroost.serve.config import ServeConfig

log = logging.getLogger("pretroost.cli")

SERVE_FIELDS = ("host", "port", "max_upload_bytes", "max_rows", "max_formula_chars",
                "max_concurrent")  # fmt: skip


def register_serve(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Serve a local web page that predicts from formulas: type or paste them (one per line)\n"
        "or upload a CSV, choose a model, and read the predictions with their uncertainty, the\n"
        "in-domain flag and the nearest training compositions (where the model gives them), a\n"
        "chart, and a CSV download. The page offers the models named with --model and every\n"
        "shipped model that predicts. It listens on 127.0.0.1 (this computer only) unless --host\n"
        "says otherwise. Stop it with Ctrl-C."
    )
    p.add_argument(
        "--model", nargs="+", action="extend", default=[], metavar="NAME_OR_FOLDER",
        help="model folders or shipped names to offer, the first preselected (repeatable)",
    )  # fmt: skip
    add_config_options(p, ServeConfig, SERVE_FIELDS)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from pretroost.serve.app import create_app
    except ModuleNotFoundError as exc:
        log.error(
            "pretroost serve needs the 'serve' extra (%s is missing): pip install 'pretroost[serve]'",
            exc.name,
        )
        return 1
    from pretroost.serve.models import ModelRegistry

    config = config_from_args(ServeConfig, args, SERVE_FIELDS)
    registry = ModelRegistry.from_sources(args.model)
    if config.loopback:
        hosts: list[str] | None = sorted({config.host, "localhost", "127.0.0.1", "[::1]", "::1"})
    else:
        hosts = None
        log.warning(
            "listening on %s: the page is open to every machine that can reach this one; it has "
            "no login. Use the default 127.0.0.1 to keep it to this computer.",
            config.host,
        )
    app = create_app(registry, config, allowed_hosts=hosts)
    shown = f"[{config.host}]" if ":" in config.host else config.host
    log.info("models: %s", ", ".join(registry.names))
    log.info("open http://%s:%d in a browser (Ctrl-C stops)", shown, config.port)
    uvicorn.run(app, host=config.host, port=config.port, log_config=None, access_log=False)
    return 0
