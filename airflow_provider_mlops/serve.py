"""
``python -m airflow_provider_mlops.serve`` (console script ``mlops-serve``): serve a registered model.

Examples::

    # the champion of churn_model, digests checked against MLflow
    MLOPS_SERVE_TOKEN=... mlops-serve --model-name churn_model --tracking-uri sqlite:///mlflow.db

    # what DeployModelOperator published (version and file from latest.json, digest from MLflow)
    mlops-serve --latest s3://bucket/published/churn_model/latest.json --tracking-uri http://mlflow:5000 \\
        --storage-conn-id mlops_s3

Every option also reads an environment variable (``MLOPS_SERVE_<OPTION>``), which is how container
platforms configure it; ``--port`` falls back to ``$PORT`` (Heroku), then 8080 (SageMaker), and a
leading ``serve`` argument (how SageMaker starts a container) is ignored. The image is
``airflow_provider_mlops/serving/container/Dockerfile``.

The server can start before the first deployment: when the model has no version under ``--alias``
yet (no champion), it starts empty and answers 503 until a ``POST /reload`` brings one (the first
``DeployModelOperator`` run with a ``local_server`` target does). Start it once, deploy from the DAG. The reload token is read from ``MLOPS_SERVE_TOKEN`` or ``--token-file`` (not a
command-line value: those are visible to every user of the machine).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_mlops.serving.app import ServeConfig


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"MLOPS_SERVE_{name}", default)


def _env_flag(name: str) -> bool:
    return _env(name, "") in ("1", "true", "True")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlops-serve", description="Serve a registered model over HTTP.")
    what = p.add_argument_group("what to serve")
    what.add_argument("--model-name", default=_env("MODEL_NAME"), help="the registered model")
    what.add_argument(
        "--alias", default=_env("ALIAS", "champion"), help="serve this alias (default champion)"
    )
    what.add_argument("--version", default=_env("VERSION"), help="serve this version instead of the alias")
    what.add_argument(
        "--latest", default=_env("LATEST"), help="a latest.json published by DeployModelOperator"
    )
    what.add_argument(
        "--model-uri",
        default=_env("MODEL_URI"),
        help="read --version's file from here (with --sha256 when there is no MLflow)",
    )
    trust = p.add_argument_group("trust")
    trust.add_argument(
        "--tracking-uri",
        default=_env("TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI: where the trusted digests are",
    )
    trust.add_argument(
        "--registry-uri", default=_env("REGISTRY_URI") or os.environ.get("MLFLOW_REGISTRY_URI")
    )
    trust.add_argument(
        "--sha256", default=_env("SHA256"), help="pin the model's digest (needed without MLflow)"
    )
    trust.add_argument(
        "--allow-cloudpickle",
        action="store_true",
        default=_env_flag("ALLOW_CLOUDPICKLE"),
        help="also load cloudpickle models (runs code on load)",
    )
    trust.add_argument(
        "--trusted-type", action="append", default=[], help="an extra type (or prefix.) skops may build"
    )
    trust.add_argument(
        "--token-file", default=_env("TOKEN_FILE"), help="file holding the /reload bearer token"
    )
    p.add_argument("--storage-conn-id", default=_env("STORAGE_CONN_ID"), help="Airflow connection for s3://")
    p.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(_env("PORT") or os.environ.get("PORT") or 8080))
    p.add_argument("--max-rows", type=int, default=int(_env("MAX_ROWS") or 10_000))
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(_env("MAX_BODY_BYTES") or 64 * 1024 * 1024),
        help="the largest request body (413 beyond it; default 64 MiB)",
    )
    p.add_argument(
        "--max-columns",
        type=int,
        default=int(_env("MAX_COLUMNS") or 10_000),
        help="the most columns a request names",
    )
    p.add_argument(
        "--strict-columns",
        action="store_true",
        default=_env_flag("STRICT_COLUMNS"),
        help="refuse columns the model does not take (MLflow ignores them, the default)",
    )
    p.add_argument(
        "--docs",
        action="store_true",
        default=_env_flag("DOCS"),
        help="serve /docs and /openapi.json (off by default)",
    )
    p.add_argument("--log-predictions", default=_env("LOG_PREDICTIONS"), help="prefix for the prediction log")
    p.add_argument("--log-flush-seconds", type=float, default=float(_env("LOG_FLUSH_SECONDS") or 10))
    p.add_argument("--log-flush-rows", type=int, default=int(_env("LOG_FLUSH_ROWS") or 10_000))
    p.add_argument("--log-level", default=_env("LOG_LEVEL", "info"))
    return p


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    from airflow_provider_mlops.ml.serialization import LoadPolicy
    from airflow_provider_mlops.serving.app import ServeConfig

    token = os.environ.get("MLOPS_SERVE_TOKEN")
    if args.token_file:
        with open(args.token_file) as handle:
            token = handle.read().strip()
    return ServeConfig(
        model_name=args.model_name,
        alias=args.alias,
        version=args.version,
        latest_uri=args.latest,
        model_uri=args.model_uri,
        tracking_uri=args.tracking_uri,
        registry_uri=args.registry_uri,
        storage_conn_id=args.storage_conn_id,
        sha256=args.sha256,
        policy=LoadPolicy.of(allow_cloudpickle=args.allow_cloudpickle, trusted_types=args.trusted_type),
        token=token or None,
        max_rows=args.max_rows,
        max_body_bytes=args.max_body_bytes,
        max_columns=args.max_columns,
        strict_columns=args.strict_columns,
        docs=args.docs,
        log_uri=args.log_predictions,
        log_flush_seconds=args.log_flush_seconds,
        log_flush_rows=args.log_flush_rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["serve"]:
        # SageMaker starts a container as `docker run IMAGE serve`: the word names the mode.
        arguments = arguments[1:]
    args = _parser().parse_args(arguments)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.model_name and not args.latest:
        print("mlops-serve: give --model-name (with --alias/--version) or --latest", file=sys.stderr)
        return 2
    config = config_from_args(args)
    from airflow_provider_mlops.serving.app import ModelServer

    try:
        server = ModelServer(config)
    except Exception as err:
        # A model that cannot be verified is never served: exit with the reason (a missing champion
        # is not an error: the server starts empty, see ModelServer).
        print(f"mlops-serve: cannot load the model: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    import uvicorn

    from airflow_provider_mlops.serving.http import create_app

    logger = logging.getLogger("airflow_provider_mlops.serve")
    if server.current is None:
        logger.info(
            "Serving no model yet (%s has no %r version): /ping and /invocations answer 503 until a "
            "POST /reload on http://%s:%s brings one",
            config.model_name,
            config.alias,
            args.host,
            args.port,
        )
    else:
        described = server.current.verified
        logger.info(
            "Serving %s version %s (sha256 %s) on http://%s:%s",
            described.name,
            described.version,
            described.sha256,
            args.host,
            args.port,
        )
    uvicorn.run(
        create_app(server), host=args.host, port=args.port, log_level="warning", access_log=False, workers=1
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
