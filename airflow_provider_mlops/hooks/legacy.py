"""
The hooks under their old connection-type names (``mlops_postgres``, ``mlops_mongo``, ...).

The connection types are now spelled with ``-`` (``mlops-postgres``): Airflow logs an RFC3986
warning for every URI it builds from a type name containing ``_``, and it builds one each time it
caches or tests a connection. Connections saved with the old names keep working through these
subclasses; they change nothing but the name Airflow registers them under (one class per name keeps
Airflow's hook / connection-type consistency check quiet).
"""

from __future__ import annotations

from airflow_provider_mlops.get_provider_info import LEGACY_CONN_TYPES, legacy_hook_name
from airflow_provider_mlops.hooks.http import HttpApiHook
from airflow_provider_mlops.hooks.mlflow import MlflowHook
from airflow_provider_mlops.hooks.mongo import MongoBatchHook
from airflow_provider_mlops.hooks.mysql import MySqlBatchHook
from airflow_provider_mlops.hooks.postgres import PostgresBatchHook
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook


class LegacyPostgresBatchHook(PostgresBatchHook):
    """:class:`~airflow_provider_mlops.hooks.postgres.PostgresBatchHook` for ``mlops_postgres`` connections."""

    conn_type = LEGACY_CONN_TYPES["postgres"]
    hook_name = legacy_hook_name(PostgresBatchHook.hook_name, conn_type)


class LegacyMongoBatchHook(MongoBatchHook):
    """:class:`~airflow_provider_mlops.hooks.mongo.MongoBatchHook` for ``mlops_mongo`` connections."""

    conn_type = LEGACY_CONN_TYPES["mongo"]
    hook_name = legacy_hook_name(MongoBatchHook.hook_name, conn_type)


class LegacyObjectStorageHook(ObjectStorageHook):
    """:class:`~airflow_provider_mlops.hooks.s3.ObjectStorageHook` for ``mlops_s3`` connections."""

    conn_type = LEGACY_CONN_TYPES["s3"]
    hook_name = legacy_hook_name(ObjectStorageHook.hook_name, conn_type)


class LegacyHttpApiHook(HttpApiHook):
    """:class:`~airflow_provider_mlops.hooks.http.HttpApiHook` for ``mlops_http`` connections."""

    conn_type = LEGACY_CONN_TYPES["http"]
    hook_name = legacy_hook_name(HttpApiHook.hook_name, conn_type)


class LegacyMlflowHook(MlflowHook):
    """:class:`~airflow_provider_mlops.hooks.mlflow.MlflowHook` for ``mlops_mlflow`` connections."""

    conn_type = LEGACY_CONN_TYPES["mlflow"]
    hook_name = legacy_hook_name(MlflowHook.hook_name, conn_type)


class LegacyMySqlBatchHook(MySqlBatchHook):
    """:class:`~airflow_provider_mlops.hooks.mysql.MySqlBatchHook` for ``mlops_mysql`` connections."""

    conn_type = LEGACY_CONN_TYPES["mysql"]
    hook_name = legacy_hook_name(MySqlBatchHook.hook_name, conn_type)
