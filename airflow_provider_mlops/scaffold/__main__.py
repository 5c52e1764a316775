"""``python -m airflow_provider_mlops.scaffold {astro,compose,kubernetes} DIR``: render a runnable project."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from airflow_provider_mlops.scaffold import (
    DEFAULT_AIRFLOW_IMAGE,
    DEFAULT_RUNTIME_IMAGE,
    KINDS,
    Options,
    render,
)


def main(argv: list[str] | None = None) -> int:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_mlops.scaffold",
        description="Render an Astro CLI project or a docker compose stack (CeleryExecutor) that runs "
        "the provider's example ML lifecycle with its services, or the worker image and pod template "
        "of the KubernetesExecutor.",
    )
    parser.add_argument(
        "kind",
        choices=KINDS,
        help="astro: for `astro dev start`; compose: `docker compose up`; kubernetes: worker image + "
        "pod template for the KubernetesExecutor",
    )
    parser.add_argument("dest", type=Path, help="the project folder to create")
    parser.add_argument(
        "--provider-spec",
        default=defaults.provider_spec,
        help="the requirement line that installs the provider (default: %(default)s); a wheel path "
        "or a VCS URL works too",
    )
    parser.add_argument(
        "--airflow-image",
        default=DEFAULT_AIRFLOW_IMAGE,
        help="compose, kubernetes: base image (default: %(default)s)",
    )
    parser.add_argument(
        "--runtime-image",
        default=DEFAULT_RUNTIME_IMAGE,
        help="astro: Astro Runtime image (default: %(default)s)",
    )
    parser.add_argument("--force", action="store_true", help="write into a non-empty folder")
    args = parser.parse_args(argv)
    options = Options(
        provider_spec=args.provider_spec, airflow_image=args.airflow_image, runtime_image=args.runtime_image
    )
    try:
        written = render(args.kind, args.dest, options, force=args.force)
    except FileExistsError as err:
        print(f"scaffold: {err}", file=sys.stderr)
        return 1
    print(f"Wrote {len(written)} files to {args.dest}")
    if args.kind == "astro":
        print(f"Next: cd {args.dest} && astro dev start   (then open http://localhost:8080)")
    elif args.kind == "kubernetes":
        print(
            f"Next: see {args.dest / 'README.md'} (build the image, create the Secret, set pod_template_file)"
        )
    else:
        print(f"Next: cd {args.dest} && cp .env.example .env && docker compose up   (http://localhost:8080)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
