"""
Project templates for running the provider where users run Airflow.

``python -m airflow_provider_mlops.scaffold astro DIR`` renders an Astro CLI project (what ``astro
dev init`` writes, plus the lifecycle's services and connections); ``... compose DIR`` renders a
plain docker compose stack (Airflow 3 with the CeleryExecutor and two workers). Both come with the
example DAGs, a demo data source and the same backing services: a PostgreSQL warehouse, MinIO (S3)
with its bucket, MongoDB, an MLflow tracking server and the model server. ``... kubernetes DIR``
renders the KubernetesExecutor's side: the worker image (provider and DAGs baked in), the worker pod
template and the connections' Secret (for a cluster that already runs Airflow, e.g. the Helm chart).

A plain module on purpose: rendering a project must not need (or import) Airflow.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from airflow_provider_mlops import __version__

KINDS = ("astro", "compose", "kubernetes")
# Extras the lifecycle DAGs use (sqlite and mysql are not needed in a stack with a PostgreSQL warehouse;
# alerts: the example DAGs' WebhookNotifier is the http provider's HttpNotifier).
DEFAULT_EXTRAS = "postgres,mongo,s3,ml,alerts"
# Images pinned so that a rendered project is reproducible; every one can be overridden on the command
# line. The newest Airflow by default; the provider runs on every 3.x minor (docs/installation.rst).
DEFAULT_AIRFLOW_IMAGE = "apache/airflow:3.3.2-python3.11"
DEFAULT_RUNTIME_IMAGE = "astrocrpublic.azurecr.io/runtime:3.3-2"
# Templates whose names start with "." are stored as "dot-..." (dotfiles in package data are easy to
# lose: ignored by tools, hidden in listings); every path part is renamed on the way out.
_DOT_PREFIX = "dot-"
# Files that are copied byte for byte (no placeholders substituted).
_VERBATIM_SUFFIXES = (".py",)


@dataclass(frozen=True)
class Options:
    """What a rendered project installs and runs."""

    provider_spec: str = field(default=f"airflow-provider-mlops[{DEFAULT_EXTRAS}]>={__version__}")
    airflow_image: str = DEFAULT_AIRFLOW_IMAGE
    runtime_image: str = DEFAULT_RUNTIME_IMAGE

    def substitutions(self) -> dict[str, str]:
        return {
            "@@PROVIDER_SPEC@@": self.provider_spec,
            "@@AIRFLOW_IMAGE@@": self.airflow_image,
            "@@RUNTIME_IMAGE@@": self.runtime_image,
            "@@VERSION@@": __version__,
        }


def _templates() -> Path:
    return Path(str(resources.files("airflow_provider_mlops.scaffold") / "templates"))


def example_dags_dir() -> Path:
    """
    The example DAGs: shipped in the package (``scaffold/templates/dags``) when installed from a wheel,
    else the repository's ``example_dags`` folder (an editable install or a source checkout).
    """
    shipped = _templates() / "dags"
    if shipped.is_dir() and any(shipped.glob("*.py")):
        return shipped
    repo = Path(__file__).resolve().parents[2] / "example_dags"
    if repo.is_dir():
        return repo
    raise FileNotFoundError("example DAGs not found: neither shipped templates/dags nor the repository's")


def _copy_tree(src: Path, dst: Path, subs: dict[str, str]) -> list[Path]:
    written = []
    for path in sorted(src.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.name.endswith(".pyc"):
            continue
        parts = [
            "." + part[len(_DOT_PREFIX) :] if part.startswith(_DOT_PREFIX) else part
            for part in path.relative_to(src).parts
        ]
        target = dst.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in _VERBATIM_SUFFIXES:
            shutil.copyfile(path, target)
        else:
            text = path.read_text()
            for key, value in subs.items():
                text = text.replace(key, value)
            target.write_text(text)
        shutil.copymode(path, target)
        written.append(target)
    return written


def render(kind: str, dest: Path, options: Options | None = None, *, force: bool = False) -> list[Path]:
    """Write the ``kind`` project into ``dest``; returns the files written."""
    if kind not in KINDS:
        raise ValueError(f"unknown project kind {kind!r}: one of {', '.join(KINDS)}")
    options = options or Options()
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()) and not force:
        raise FileExistsError(f"{dest} is not empty (use --force to write into it anyway)")
    dest.mkdir(parents=True, exist_ok=True)
    subs = options.substitutions()
    root = _templates()
    written = _copy_tree(root / "common", dest, subs)
    written += _copy_tree(root / kind, dest, subs)
    dags = dest / "dags"
    dags.mkdir(exist_ok=True)
    for dag_file in sorted(example_dags_dir().glob("*.py")):
        shutil.copyfile(dag_file, dags / dag_file.name)
        written.append(dags / dag_file.name)
    return written
