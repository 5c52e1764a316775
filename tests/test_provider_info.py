from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_mlops import __version__
from airflow_provider_mlops.get_provider_info import get_provider_info


def _schema() -> dict:
    import airflow

    return json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())


def test_provider_info_validates_against_airflow_schema() -> None:
    info = get_provider_info()
    jsonschema.validate(info, _schema())
    assert info["package-name"] == "airflow-provider-mlops"
    assert info["versions"] == [__version__]


def test_entry_point_is_registered() -> None:
    eps = metadata.entry_points(group="apache_airflow_provider")
    ours = [ep for ep in eps if ep.value.startswith("airflow_provider_mlops")]
    assert len(ours) == 1
    assert ours[0].load()() == get_provider_info()


def test_every_listed_module_and_hook_imports_and_matches() -> None:
    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(section, []):
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for conn in info["connection-types"]:
        module_name, _, class_name = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module_name), class_name)
        assert hook.conn_type == conn["connection-type"]
        assert hook.hook_name == conn["hook-name"]
        assert hook.default_conn_name
        assert hook.conn_name_attr
        assert callable(hook.test_connection)
        for name, field in conn.get("conn-fields", {}).items():
            assert field["label"] and "type" in field["schema"], name
    for dotted in info.get("notifications", []) + info.get("extra-links", []):
        module_name, _, class_name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module_name), class_name)


def _airflow(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_airflow_cli_lists_the_provider_and_its_connection_types(airflow_db: str) -> None:
    providers = _airflow("providers", "list", "--output", "json")
    assert any(
        p["package_name"] == "airflow-provider-mlops" and p["version"] == __version__
        for p in json.loads(providers)
    )
    hooks = json.loads(_airflow("providers", "hooks", "--output", "json"))
    ours = {h["connection_type"]: h for h in hooks if h["package_name"] == "airflow-provider-mlops"}
    assert set(ours) == {c["connection-type"] for c in get_provider_info()["connection-types"]}


@pytest.mark.parametrize("conn_fixture", ["pg_conn_id", "mongo_conn_id", "s3_conn_id"])
def test_airflow_connections_test_cli(
    conn_fixture: str, request: pytest.FixtureRequest, airflow_db: str
) -> None:
    conn_id = request.getfixturevalue(conn_fixture)
    out = _airflow("connections", "test", conn_id)
    assert "Connection success!" in out, out


def test_the_type_picker_lists_the_old_names_together_apart_from_the_current_ones() -> None:
    """
    #27: Airflow 3.3's type picker lists every type the providers manager resolves, sorted by hook
    name (case-insensitively), so the old mlops_* names cannot be hidden; they are listed as one
    block of "Old type name ..." entries, not each beside its current type, and still resolve.
    """
    from airflow.providers_manager import ProvidersManager

    from airflow_provider_mlops.get_provider_info import CONN_TYPES, LEGACY_CONN_TYPES

    manager = ProvidersManager()
    listed = sorted(
        (m.hook_name or m.connection_type, m.connection_type)
        for m in manager.iter_connection_type_hook_ui_metadata()
    )
    listed.sort(key=lambda item: item[0].casefold())
    types = [conn_type for _, conn_type in listed]
    old = [types.index(t) for t in LEGACY_CONN_TYPES.values()]
    assert sorted(old) == list(range(min(old), min(old) + len(old))), listed
    for kind, current in CONN_TYPES.items():
        name = dict((t, n) for n, t in listed)[LEGACY_CONN_TYPES[kind]]
        assert name.startswith(f"Old type name {LEGACY_CONN_TYPES[kind]}: "), name
        assert abs(types.index(current) - types.index(LEGACY_CONN_TYPES[kind])) > 1
        assert manager.hooks[LEGACY_CONN_TYPES[kind]].hook_class_name.startswith(
            "airflow_provider_mlops.hooks.legacy.Legacy"
        )
