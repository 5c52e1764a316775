"""
MongoDB: the hook that reads and writes collections as Arrow record batches (pymongo).

- :mod:`.hook`: :class:`MongoBatchHook`, the connection (typed extras, URI, *Test*).
- :mod:`.reader`: its read path (``find`` / aggregation cursor -> record batches).
- :mod:`.writer`: its write path (the write contract, transactions or a staging collection).
- :mod:`.values`: BSON <-> Arrow values.

Every name importable from the former single module ``hooks/mongo.py`` is importable from here.
"""

from __future__ import annotations

from airflow_provider_mlops.hooks.mongo.hook import MongoBatchHook
from airflow_provider_mlops.hooks.mongo.writer import MongoWriteMode

__all__ = ["MongoBatchHook", "MongoWriteMode"]
