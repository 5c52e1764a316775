"""
Assets naming the targets the operators write, so downstream DAGs can be scheduled on them.

Tables and collections get ``x-mlops-*`` URIs (Airflow passes ``x-`` schemes through unchanged)
built from the connection id and the target name: no connection lookup at DAG parse time.
Storage targets use their own ``s3://`` / ``file://`` URI.
"""

from __future__ import annotations

from airflow.sdk import Asset


def table_asset(conn_id: str, table: str) -> Asset:
    """The Asset of a SQL table written through ``conn_id``."""
    return Asset(name=f"{conn_id}.{table}", uri=f"x-mlops-sql://{conn_id}/{table}")


def collection_asset(conn_id: str, collection: str, database: str | None = None) -> Asset:
    """The Asset of a MongoDB collection written through ``conn_id``."""
    path = f"{database}/{collection}" if database else collection
    return Asset(name=f"{conn_id}.{path.replace('/', '.')}", uri=f"x-mlops-mongo://{conn_id}/{path}")


def storage_asset(uri: str) -> Asset:
    """The Asset of a dataset prefix on S3 or a local path."""
    from airflow_provider_mlops.storage.uri import parse_uri

    location = parse_uri(uri)
    return Asset(uri=location.uri.rstrip("/"))
