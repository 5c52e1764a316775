"""
The HTTP routes of the model server (FastAPI). Imported only by the server process
(:mod:`airflow_provider_mlops.serve`), never by DAG files or operators.
"""

# lazy-imports: runtime-only
from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from airflow_provider_mlops.serving.protocol import SMOKE_TEST_HEADER, RequestError

if TYPE_CHECKING:
    from airflow_provider_mlops.serving.app import ModelServer

# Bodies larger than this are scored in a worker thread so /ping and small requests are not held up.
INLINE_BYTES = 64 * 1024


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

    app = FastAPI(
        title="airflow-provider-mlops model server", docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.state.server = server
    app.add_middleware(_Observe, metrics=server.metrics)

    def error(err: RequestError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

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
    async def version() -> JSONResponse:
        return JSONResponse(server.describe())

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type")
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
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw.strip() else {}
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as err:
            return error(RequestError(f"The reload body is not a JSON object: {err}"))
        previous = server.describe()
        try:
            await asyncio.to_thread(server.reload, payload)
        except RequestError as err:
            return error(err)
        except Exception as err:
            # The old model keeps serving; say why the new one was refused.
            return JSONResponse(
                {
                    "error_code": "RELOAD_FAILED",
                    "message": f"{type(err).__name__}: {err}",
                    "serving": previous if previous.get("version") is not None else None,
                },
                status_code=409,
            )
        return JSONResponse({"reloaded": True, "previous": previous, **server.describe()})

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            server.metrics.render(server.labels()), media_type="text/plain; version=0.0.4"
        )

    return app
