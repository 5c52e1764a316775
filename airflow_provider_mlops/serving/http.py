"""
The HTTP routes of the model server (FastAPI). Imported only by the server process
(:mod:`airflow_provider_mlops.serve`), never by DAG files or operators.
"""

# lazy-imports: runtime-only
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from airflow_provider_mlops.serving.protocol import MAX_MESSAGE_CHARS, SMOKE_TEST_HEADER, RequestError

log = logging.getLogger("airflow_provider_mlops.serve")

if TYPE_CHECKING:
    from airflow_provider_mlops.serving.app import ModelServer

# Bodies larger than this are scored in a worker thread so /ping and small requests are not held up.
INLINE_BYTES = 64 * 1024

# Where a model file is (a path or a URI), and the digest of a file that is not the registered one:
# never in an answer (the server's log has them).
_LOCATION = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"]+|(?<![\w.])/[^\s'\":]+")
_OTHER_DIGEST = re.compile(r"the model file has sha256 [0-9a-f]{64}")


def redact(message: str) -> str:
    """``message`` without file paths, URIs and the digest of an unregistered file."""
    message = _OTHER_DIGEST.sub("the model file has another sha256", message)
    return _LOCATION.sub("<location>", message)


def too_large(limit: int) -> RequestError:
    return RequestError(
        f"The request body is larger than this server accepts ({limit} bytes): split the batch",
        status=413,
        code="REQUEST_TOO_LARGE",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """
    The body, or a 413 :class:`RequestError` as soon as it is known to exceed ``limit``: from
    Content-Length before reading, else while reading (chunked uploads), never parsing any of it.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise RequestError("The Content-Length header is not a number")
        if int(declared) > limit:
            raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class _Observe:
    """
    Counts requests and times them for ``/metrics``. A plain ASGI middleware: FastAPI's
    ``@app.middleware("http")`` wraps every request in extra tasks and streams (measured ~0.5 ms of a
    one-row prediction).
    """

    def __init__(self, app: Any, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe(scope["path"], status, time.perf_counter() - start)


def create_app(server: ModelServer) -> Any:
    """The FastAPI app for ``server``."""

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        yield
        server.close()  # flush the prediction log on shutdown

    docs = bool(getattr(server.config, "docs", False))
    app = FastAPI(
        title="airflow-provider-mlops model server",
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        lifespan=lifespan,
    )
    app.state.server = server
    app.add_middleware(_Observe, metrics=server.metrics)

    def error(err: RequestError) -> JSONResponse:
        # a 413 leaves the rest of the body unread: close the connection rather than drain it
        headers = {"Connection": "close"} if err.status == 413 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.get("/ping")
    async def ping() -> Response:
        # readiness: 503 until there is a model to serve (the first deployment brings it)
        if server.current is None:
            return error(server.unavailable())
        return Response(content=b"\n", media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        # liveness: the process answers, with or without a model
        return Response(content=b"\n", media_type="application/json")

    @app.get("/version")
    async def version(request: Request) -> JSONResponse:
        # name, version and digest for anyone; where the file is stored only for the token holder
        authorized = server.authorized(request.headers.get("authorization"))
        return JSONResponse(server.describe(locations=bool(authorized)))

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        content_type = request.headers.get("content-type")
        try:
            body = await read_body(request, server.config.max_body_bytes)
        except RequestError as err:
            return error(err)
        smoke = request.headers.get(SMOKE_TEST_HEADER, "").strip().lower() in ("1", "true", "yes")
        try:
            if len(body) > INLINE_BYTES:
                # A big body is a big batch: score it off the event loop.
                data = await asyncio.to_thread(server.predict, body, content_type, smoke_test=smoke)
            else:
                data = server.predict(body, content_type, smoke_test=smoke)
        except RequestError as err:
            return error(err)
        return Response(content=data, media_type="application/json")

    @app.post("/reload")
    async def reload(request: Request) -> JSONResponse:
        allowed = server.authorized(request.headers.get("authorization"))
        if allowed is None:
            return JSONResponse(
                {"error_code": "FORBIDDEN", "message": "Reloading is disabled: the server has no token"},
                status_code=403,
            )
        if not allowed:
            return JSONResponse(
                {"error_code": "UNAUTHORIZED", "message": "A valid bearer token is required"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            raw = await read_body(request, 1024 * 1024)
            payload = json.loads(raw) if raw.strip() else {}
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
        except RequestError as err:
            return error(err)
        except (ValueError, RecursionError) as err:
            return error(RequestError(f"The reload body is not a JSON object: {err}"))
        previous = server.describe(locations=False)
        try:
            await asyncio.to_thread(server.reload, payload)
        except RequestError as err:
            return error(RequestError(redact(str(err)), status=err.status, code=err.code))
        except Exception as err:
            # The old model keeps serving; say why the new one was refused (the log has the details).
            log.warning("Reload refused: %s: %s", type(err).__name__, err)
            return JSONResponse(
                {
                    "error_code": "RELOAD_FAILED",
                    "message": redact(f"{type(err).__name__}: {err}")[:MAX_MESSAGE_CHARS],
                    "serving": previous if previous.get("version") is not None else None,
                },
                status_code=409,
            )
        return JSONResponse({"reloaded": True, "previous": previous, **server.describe(locations=False)})

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            server.metrics.render(server.labels()), media_type="text/plain; version=0.0.4"
        )

    return app
