"""
OpenLineage facets for the operators, built only when the OpenLineage provider is installed.

Every import happens inside the functions: without ``apache-airflow-providers-openlineage`` these
return None and cost nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class LineageDataset:
    """One input or output: an OpenLineage namespace and name, and the columns when known."""

    namespace: str
    name: str
    columns: Sequence[dict[str, Any]] = field(default_factory=tuple)
    version: str | None = None  # a Delta table's version read or written (OpenLineage ``version`` facet)


def versioned(dataset: LineageDataset, version: int | str | None) -> LineageDataset:
    """``dataset`` with the table version (a ``DatasetVersionDatasetFacet``); as it is for None."""
    if version is None:
        return dataset
    return LineageDataset(dataset.namespace, dataset.name, dataset.columns, str(version))


def dataset_for(kind: str, conn_id: str | None, name: str) -> LineageDataset:
    """Namespace ``<scheme>://<host>:<port>`` from the connection; storage URIs name themselves."""
    if kind == "storage":
        from airflow_provider_mlops.storage.uri import parse_uri

        location = parse_uri(name)
        if location.scheme == "s3":
            return LineageDataset(f"s3://{location.bucket}", location.key.rstrip("/"))
        return LineageDataset("file", location.key.rstrip("/"))
    namespace = f"{kind}://{conn_id}"
    if conn_id:
        from airflow.providers.common.compat.sdk import BaseHook

        # Lineage must never fail a task: an unreadable connection keeps the conn_id namespace.
        with contextlib.suppress(Exception):
            conn = BaseHook.get_connection(conn_id)
            if conn.host:
                host = conn.host.split("://", 1)[-1].split("/", 1)[0]
                namespace = f"{kind}://{host}{f':{conn.port}' if conn.port else ''}"
    return LineageDataset(namespace, name)


def operator_lineage(inputs: Sequence[LineageDataset], outputs: Sequence[LineageDataset]) -> Any:
    """An ``OperatorLineage`` with schema facets, or None when OpenLineage is not installed."""
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset
        from openlineage.client.facet_v2 import dataset_version_dataset, schema_dataset
    except ImportError:
        return None

    def convert(item: LineageDataset) -> Any:
        facets: dict[str, Any] = {}
        if item.columns:
            facets["schema"] = schema_dataset.SchemaDatasetFacet(
                fields=[
                    schema_dataset.SchemaDatasetFacetFields(name=c["name"], type=c["type"])
                    for c in item.columns
                ]
            )
        if item.version is not None:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=item.version
            )
        return Dataset(namespace=item.namespace, name=item.name, facets=facets)

    return OperatorLineage(inputs=[convert(i) for i in inputs], outputs=[convert(o) for o in outputs])


def pinned_inputs(pins: Sequence[Any]) -> Any:
    """
    An ``OperatorLineage`` whose inputs are storage datasets read at a Delta version (the ML
    operators' :class:`~airflow_provider_mlops.ml.lineage.DataPin`: ``uri``, ``version``), each with
    its ``version`` facet; None when OpenLineage is not installed.
    """
    return operator_lineage([versioned(dataset_for("storage", None, p.uri), p.version) for p in pins], [])
