"""The web application of ``pretroost serve`` (Starlette): a form, a results page, a CSV download.

Routes: ``GET /`` the form; ``POST /`` the form's predictions (table and chart) under it;
``POST /download`` the same predictions as a CSV file; ``/static/...`` the page's own stylesheet
and script. Nothing is written to disk: uploads are read in memory (the body limit is below
Starlette's in-memory spool size) and results live only in the response. Each model is loaded once
(:class:`~pretroost.serve.models.ModelRegistry`) and at most ``max_concurrent`` predictions run at
a time.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pretroost import __version__
from pretroost.serve.config import ServeConfig
from pretroost.serve.inputs import FormulaInput, InputError, formula_too_long, from_csv, from_text
from pretroost.serve.models import ModelRegistry, UnknownModelError
from pretroost.serve.render import chart_svgs, columns_of, rows_of

__all__ = ["create_app", "predict_frame"]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
#: the page loads nothing but its own files; no inline script, no frames
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class _BodyLimit:
    """Refuse a request body over ``limit`` bytes with 413: at once from its Content-Length, or
    as soon as the bytes received pass the limit (a body sent without a length)."""

    def __init__(self, app: ASGIApp, limit: int, page: Any):
        self.app, self.limit, self.page = app, limit, page

    def message(self) -> str:
        return f"request too large: at most {self.limit:,} bytes; split the list"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self.page(self.message(), 413)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, self.message())
            return message

        await self.app(scope, limited, send)


class _SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                have = {k.lower() for k, _ in message["headers"]}
                message["headers"] = list(message["headers"]) + [
                    (k.encode(), v.encode())
                    for k, v in SECURITY_HEADERS.items()
                    if k.encode() not in have
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


def predict_frame(model: Any, formulas: Sequence[str], *, max_formula_chars: int) -> pd.DataFrame:
    """``model.predict`` on ``formulas``, one row each in order; a formula longer than
    ``max_formula_chars`` is not sent to the model and gets its error in place."""
    too_long = [formula_too_long(f, max_formula_chars) for f in formulas]
    sent = ["" if e else f for f, e in zip(formulas, too_long, strict=True)]
    frame = model.predict(sent, progress=False).reset_index(drop=True)
    if len(frame) != len(formulas):
        raise RuntimeError(f"the model returned {len(frame)} rows for {len(formulas)} formulas")
    frame["formula"] = list(formulas)
    errors = frame["error"].astype(object).tolist()
    frame["error"] = [e if e else old for e, old in zip(too_long, errors, strict=True)]
    return frame


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status, media_type="text/plain; charset=utf-8")


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def create_app(
    registry: ModelRegistry,
    config: ServeConfig | None = None,
    *,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The application serving ``registry``'s models within ``config``'s limits.

    ``allowed_hosts``: Host header values accepted (the port aside); None accepts any. A server
    on a loopback address should accept only its own names, which keeps web pages elsewhere from
    reaching it through DNS rebinding."""
    config = config if config is not None else ServeConfig()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    template = env.get_template("page.html")
    slots = threading.BoundedSemaphore(config.max_concurrent)

    def page(
        status: int = 200,
        *,
        model: str | None = None,
        text: str = "",
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> HTMLResponse:
        chosen = model if model in registry.names else registry.default
        html = template.render(
            models=[registry.entry(n) for n in registry.names], chosen=chosen,
            text=text, error=error, result=result, config=config, version=__version__,
        )  # fmt: skip
        return HTMLResponse(html, status_code=status)

    def error_page(message: str, status: int) -> HTMLResponse:
        return page(status, error=message)

    def run_model(name: str, formulas: list[str]) -> pd.DataFrame:
        model = registry.get(name)
        with slots:
            return predict_frame(model, formulas, max_formula_chars=config.max_formula_chars)

    async def read_form(request: Request) -> Any:
        return await request.form(max_files=1, max_fields=8, max_part_size=config.max_upload_bytes)

    async def index(request: Request) -> Response:
        return page(model=request.query_params.get("model"))

    async def predict(request: Request) -> Response:
        form = await read_form(request)
        name = str(form.get("model") or registry.default)
        text = str(form.get("formulas") or "")
        upload = form.get("file")
        try:
            registry.entry(name)
            if isinstance(upload, UploadFile) and upload.filename:
                data = await upload.read()
                given = from_csv(data, Path(upload.filename).name, max_rows=config.max_rows)
            else:
                given = from_text(text, max_rows=config.max_rows)
        except UnknownModelError as exc:
            return page(400, text=text, error=str(exc))
        except InputError as exc:
            return page(exc.status, model=name, text=text, error=str(exc))
        try:
            frame = await run_in_threadpool(run_model, name, given.formulas)
        except Exception as exc:
            log.exception("model %s failed", name)
            return page(500, model=name, text=text, error=f"the model {name} failed: {exc}")
        return page(model=name, text=text, result=_result(registry, name, given, frame))

    async def download(request: Request) -> Response:
        form = await read_form(request)
        name = str(form.get("model") or registry.default)
        try:
            registry.entry(name)
            formulas = json.loads(str(form.get("formulas") or "[]"))
            if not isinstance(formulas, list) or not all(isinstance(f, str) for f in formulas):
                raise InputError("formulas: expected a JSON list of strings")
            if not formulas:
                raise InputError("no formulas given")
            if len(formulas) > config.max_rows:
                raise InputError(f"at most {config.max_rows:,} formulas per request", 413)
        except json.JSONDecodeError:
            return _text(400, "formulas: expected a JSON list of strings")
        except InputError as exc:
            return _text(exc.status, str(exc))
        except UnknownModelError as exc:
            return _text(400, str(exc))
        try:
            frame = await run_in_threadpool(run_model, name, formulas)
        except Exception as exc:
            log.exception("model %s failed", name)
            return _text(500, f"the model {name} failed: {exc}")
        body = frame.to_csv(index=False, float_format="%.7g")
        filename = f"predictions-{_safe_filename(name)}.csv"
        return Response(
            body, media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )  # fmt: skip

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.url.path.startswith("/static"):
            return Response(exc.detail, exc.status_code, media_type="text/plain")
        return error_page(str(exc.detail), exc.status_code)

    middleware = [Middleware(_SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    middleware.append(Middleware(_BodyLimit, limit=config.max_upload_bytes, page=error_page))
    routes = [
        Route("/", index, methods=["GET"]),
        Route("/", predict, methods=["POST"]),
        Route("/download", download, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers={HTTPException: http_error}
    )


def _result(
    registry: ModelRegistry, name: str, given: FormulaInput, frame: pd.DataFrame
) -> dict[str, Any]:
    model, entry = registry.get(name), registry.entry(name)
    task_type = getattr(model, "task_type", None)
    columns = columns_of(frame, entry.unit, task_type)
    rows = rows_of(frame, columns)
    n_bad = sum(r.error is not None for r in rows)
    return {
        "model": entry,
        "task_type": task_type,
        "source": given.source,
        "n": len(rows),
        "n_bad": n_bad,
        "columns": columns,
        "rows": rows,
        "chart": chart_svgs(frame, task_type, entry.unit),
        "formulas_json": json.dumps(given.formulas),
    }
